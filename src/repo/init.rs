//! Creating a repository so that an interrupted `init` leaves nothing or a whole repository.
//!
//! The config is what makes a location a repository, so it is written last, after every other
//! part (layout directories, the index, the space reserve) is complete and durable: a `kill -9`
//! before it leaves an *unfinished* repository, never a config without its parts. Everything
//! an unfinished one can hold is re-creatable (empty directories, an empty index, the reserve,
//! temporary files), so `init` recognises one, clears it and starts again, and other commands
//! name it ("run `cairn init` again") instead of calling it "not a repository". On object
//! storage the config is the only object `init` writes, and a PUT is atomic.

use std::path::Path;
use std::sync::Arc;

use crate::backend::{local_sync_dir, Backend, LocalBackend, PutMode, PutOutcome, RESERVE_FILE, TEMP_PREFIX};
use crate::chunker::ChunkerParams;
use crate::error::{Error, Result};
use crate::repo::config::{Config, Feature, RepoId, ENCRYPTION_FEATURE};
use crate::repo::keys;
use crate::repo::layout::{CONFIG_KEY, KEYS_DIR, LOCAL_INDEX_DIR, LOCKS_DIR, PACKS_DIR, SNAPSHOTS_DIR, WAL_DIR};
use crate::repo::open::open_index;
use crate::repo::{Access, InitOptions, Repository};

/// The directories of a local repository's layout, created empty by `init`.
const LAYOUT_DIRS: [&str; 4] = [PACKS_DIR, SNAPSHOTS_DIR, WAL_DIR, LOCKS_DIR];

/// What a local path holds, as far as `init` is concerned.
#[derive(Debug, PartialEq, Eq)]
enum Contents {
    /// Nothing there (or not a directory we can list).
    Missing,
    Empty,
    /// Only what an interrupted `init` leaves, and no config.
    Unfinished,
    /// Anything else: not ours to touch.
    Other,
}

/// Whether `path` holds an unfinished repository (parts of one, no config).
pub(crate) fn is_unfinished(path: &Path) -> bool {
    !path.join(CONFIG_KEY).exists() && contents(path) == Contents::Unfinished
}

fn contents(path: &Path) -> Contents {
    let Ok(entries) = std::fs::read_dir(path) else { return Contents::Missing };
    let mut any = false;
    for entry in entries {
        let Ok(entry) = entry else { return Contents::Other };
        any = true;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with(TEMP_PREFIX)
            || name == LOCAL_INDEX_DIR
            || name == RESERVE_FILE
            || (LAYOUT_DIRS.iter().any(|d| d.trim_end_matches('/') == name) && only_temporaries(&entry.path()))
            || (KEYS_DIR.trim_end_matches('/') == name && only_key_files(&entry.path()));
        if !ours {
            return Contents::Other;
        }
    }
    if any {
        Contents::Unfinished
    } else {
        Contents::Empty
    }
}

/// A directory holding nothing but temporary files.
fn only_temporaries(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries
        .into_iter()
        .all(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) && e.path().is_file()))
}

/// A directory holding nothing but key files (named by their hash) and temporary files: the
/// first key file of an encrypted `init` is written before the config, so an `init`
/// interrupted between the two leaves one. Without a config nothing was ever sealed under it.
fn only_key_files(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.into_iter().all(|e| {
        e.is_ok_and(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let key_file = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
            (key_file || name.starts_with(TEMP_PREFIX)) && e.path().is_file()
        })
    })
}

/// Removes what an interrupted `init` left, unless another `init` is still at work on it (it
/// holds the index open).
fn clear_unfinished(path: &Path) -> Result<()> {
    let index_dir = path.join(LOCAL_INDEX_DIR);
    if index_dir.join("CURRENT").exists() {
        match open_index(Some(&index_dir), Access::Write) {
            Ok(index) if !index.shared_writer() => {
                return Err(Error::Locked(format!(
                    "another `cairn init` is creating a repository at {}",
                    path.display()
                )))
            }
            Err(e @ Error::Locked(_)) => return Err(e),
            _ => {}
        }
    }
    let remove = |p: &Path| {
        let gone = if p.is_dir() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) };
        gone.or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
            .map_err(|e| Error::io("cannot remove", p, e))
    };
    for entry in std::fs::read_dir(path).map_err(|e| Error::io("cannot list", path, e))? {
        let entry = entry.map_err(|e| Error::io("cannot list", path, e))?;
        let p = entry.path();
        let is_layout = LAYOUT_DIRS.iter().any(|d| d.trim_end_matches('/') == entry.file_name().to_string_lossy());
        if is_layout {
            for tmp in std::fs::read_dir(&p).map_err(|e| Error::io("cannot list", &p, e))?.flatten() {
                remove(&tmp.path())?;
            }
        } else {
            remove(&p)?;
        }
    }
    Ok(())
}

impl Repository {
    /// Creates a repository in `path`, which may exist if it is empty or holds an unfinished
    /// repository (completed here). The config is written last (see the module doc).
    pub fn init_local(path: &Path, options: &InitOptions) -> Result<Config> {
        if path.join(CONFIG_KEY).exists() {
            return Err(Error::RepositoryExists { path: path.display().to_string() });
        }
        match contents(path) {
            Contents::Missing | Contents::Empty => {}
            Contents::Unfinished => clear_unfinished(path)?,
            Contents::Other => {
                return Err(Error::InvalidArgument(format!(
                    "{} exists and is not empty; give a new or empty directory",
                    path.display()
                )))
            }
        }
        crate::io::create_private_dir_all(path).map_err(|e| Error::io("cannot create", path, e))?;
        for dir in LAYOUT_DIRS {
            let d = path.join(dir.trim_end_matches('/'));
            crate::io::create_private_dir_all(&d).map_err(|e| Error::io("cannot create", &d, e))?;
        }
        let backend = Arc::new(LocalBackend::new(path));
        create_index(path)?;
        backend.restore_reserve()?;
        local_sync_dir(path)?;
        // Last: from here on the directory is a repository.
        let config = Self::init(&(backend as Arc<dyn Backend>), options)?;
        local_sync_dir(path)?;
        Ok(config)
    }

    /// Writes a new config to `backend`, after the first key file when encrypted; fails if a
    /// config exists. On object storage these one or two atomic PUTs are the whole of `init`.
    pub fn init(backend: &Arc<dyn Backend>, options: &InitOptions) -> Result<Config> {
        let mut config = Config {
            id: RepoId::random()?,
            created_ns: crate::time::now_ns(),
            // The seed of an encrypted repository comes from its key and is never stored.
            chunker: ChunkerParams { seed: 0, ..options.chunker },
            compression_level: options.compression_level,
            pack_target_bytes: options.pack_target_bytes,
            features: Vec::new(),
            format_version: crate::repo::REPO_FORMAT_VERSION,
        };
        config.validate().map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if backend.get(CONFIG_KEY).is_ok() {
            return Err(Error::RepositoryExists { path: backend.location() });
        }
        let bytes = match &options.encryption {
            None => config.encode()?,
            Some(enc) => {
                // The key file first: a config that names a key nobody holds would be a
                // repository nobody can open.
                let (sealer, params) = keys::init_keys(backend, enc)?;
                let bytes = keys::seal_config(&config, &sealer, &params)?;
                config.features = vec![Feature { name: ENCRYPTION_FEATURE.into(), params }];
                bytes
            }
        };
        match backend.put(CONFIG_KEY, &bytes, PutMode::IfAbsent)? {
            PutOutcome::Written => Ok(config),
            PutOutcome::AlreadyExists => Err(Error::RepositoryExists { path: backend.location() }),
        }
    }
}

/// Creates the (empty) persistent index and closes it, so the layout is complete before the
/// config appears.
fn create_index(path: &Path) -> Result<()> {
    let index = open_index(Some(&path.join(LOCAL_INDEX_DIR)), Access::Write)?;
    if !index.shared_writer() {
        return Err(Error::Locked(format!("another `cairn init` is creating a repository at {}", path.display())));
    }
    index.persist()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_layouts_are_recognised_and_others_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r");
        assert_eq!(contents(&p), Contents::Missing);
        std::fs::create_dir(&p).unwrap();
        assert_eq!(contents(&p), Contents::Empty);
        std::fs::write(p.join(".tmp-abc"), b"partial config").unwrap();
        assert_eq!(contents(&p), Contents::Unfinished);
        std::fs::create_dir(p.join("packs")).unwrap();
        std::fs::create_dir(p.join("index")).unwrap();
        assert!(is_unfinished(&p));
        std::fs::write(p.join("packs").join("ab"), b"x").unwrap();
        assert_eq!(contents(&p), Contents::Other, "a pack shard is not init's");
        std::fs::remove_file(p.join("packs").join("ab")).unwrap();
        std::fs::write(p.join("notes.txt"), b"user file").unwrap();
        assert_eq!(contents(&p), Contents::Other);
    }

    #[test]
    fn init_completes_an_unfinished_repository() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r");
        std::fs::create_dir_all(p.join("locks")).unwrap();
        std::fs::write(p.join(".tmp-xyz"), b"half a config").unwrap();
        Repository::init_local(&p, &InitOptions::default()).unwrap();
        assert!(p.join(CONFIG_KEY).is_file());
        assert!(!p.join(".tmp-xyz").exists());
        assert!(matches!(Repository::init_local(&p, &InitOptions::default()), Err(Error::RepositoryExists { .. })));
    }

    /// An encrypted `init` killed between its key file and its config: `init` again finishes
    /// (the orphan key is removed, so its password cannot shadow the new key), and the result
    /// opens with the password.
    #[test]
    fn an_orphan_key_file_without_config_is_an_unfinished_repository() {
        use crate::crypto::{KdfParams, Password};
        use crate::repo::{IndexKind, InitEncryption, KeySource};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r");
        std::fs::create_dir_all(p.join("keys")).unwrap();
        std::fs::create_dir_all(p.join("packs")).unwrap();
        std::fs::write(p.join("keys").join("ab".repeat(32)), b"a key file").unwrap();
        assert!(is_unfinished(&p));
        std::fs::write(p.join("keys").join("notes"), b"x").unwrap();
        assert_eq!(contents(&p), Contents::Other, "only key files are init's");
        std::fs::remove_file(p.join("keys").join("notes")).unwrap();
        let encryption = Some(InitEncryption {
            password: Password::new("pw".to_string()),
            kdf: KdfParams::INSECURE_FAST,
            master: None,
        });
        Repository::init_local(&p, &InitOptions { encryption, ..InitOptions::default() }).unwrap();
        assert!(!p.join("keys").join("ab".repeat(32)).exists());
        let repo = Repository::open_local_with(&p, Access::Read, IndexKind::Memory, &KeySource::password("pw"));
        assert!(repo.unwrap().sealer().is_encrypted());
    }

    /// On object storage nothing clears an interrupted encrypted `init`'s key file: the next
    /// `init` under the same password must still open (the orphan opens, but holds another
    /// key, and is passed over).
    #[test]
    fn an_orphan_key_file_does_not_shadow_the_key_of_the_config() {
        use crate::crypto::{KdfParams, Password};
        use crate::repo::{IndexKind, InitEncryption, KeySource};
        let dir = tempfile::tempdir().unwrap();
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path()));
        let enc = InitEncryption { password: Password::new("pw".into()), kdf: KdfParams::INSECURE_FAST, master: None };
        Repository::init(&backend, &InitOptions { encryption: Some(enc.clone()), ..InitOptions::default() }).unwrap();
        let real = keys::key_files(backend.as_ref()).unwrap()[0].0.clone();
        // Orphans until one is tried before the real key (files are tried in id order).
        while keys::key_files(backend.as_ref()).unwrap()[0].0 == real {
            keys::init_keys(&backend, &enc).unwrap();
        }
        let keys = KeySource::password("pw");
        let repo = Repository::open_with(backend, None, Access::Read, IndexKind::Memory, &keys).unwrap();
        assert!(repo.sealer().is_encrypted());
    }
}
