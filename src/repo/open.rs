//! Creating and opening repositories, and choosing how this process holds the index.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{Backend, LocalBackend};
use crate::chunker::ChunkerParams;
use crate::crypto::Sealer;
use crate::error::{Error, Result};
use crate::index::{ChunkIndex, MemIndex};
use crate::repo::config::{Config, RepoId};
use crate::repo::keys::{self, InitEncryption, KeySource};
use crate::repo::layout::{CONFIG_KEY, LOCAL_INDEX_DIR};
use crate::repo::LockKind;

/// Whether the caller will add data. Writers try to become the index's primary; readers follow
/// it as a secondary so they never block a writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Which index implementation to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IndexKind {
    /// RocksDB on disk (the default when built with the `rocksdb` feature).
    #[default]
    Persistent,
    /// Rebuilt in memory from pack trailers at every open; for tests and small repositories.
    Memory,
}

/// Parameters fixed at `init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub chunker: ChunkerParams,
    pub compression_level: i32,
    pub pack_target_bytes: u32,
    /// Encrypt the repository (`docs/format.md` §13). The library default is `None`, because
    /// it has no password to use; `cairn init` encrypts unless told `--encryption none`.
    pub encryption: Option<InitEncryption>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerParams::default(),
            compression_level: crate::repo::DEFAULT_COMPRESSION_LEVEL,
            pack_target_bytes: 16 << 20,
            encryption: None,
        }
    }
}

/// An open repository.
pub struct Repository {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) config: Config,
    pub(crate) index: Box<dyn ChunkIndex>,
    pub(crate) index_path: Option<PathBuf>,
    pub(crate) access: Access,
    /// How long taking a lock waits for conflicting ones.
    pub(crate) lock_wait: std::time::Duration,
    /// Seals and opens every object, and names chunks (`Sealer::None` when unencrypted).
    pub(crate) sealer: Arc<Sealer>,
    /// The key file this open used (encrypted repositories; not for audits).
    pub(crate) key: Option<keys::UnlockedKey>,
    /// A write-only sealer's session header is stored (see `repo/write_only.rs`).
    pub(crate) session_stored: std::sync::atomic::AtomicBool,
    /// A write-only host's own last snapshots, for change detection (`repo/own_cache.rs`).
    pub(crate) own_cache: Option<crate::repo::own_cache::OwnCache>,
    /// Declared last, so it acts after the index is closed.
    pub(crate) reserve: Option<ReserveGuard>,
}

/// Sets a local repository's space reserve aside again when the repository is dropped (see
/// [`crate::repo::Connect::open_to_reclaim`]).
pub(crate) struct ReserveGuard(pub(crate) Arc<dyn Backend>);

impl Drop for ReserveGuard {
    fn drop(&mut self) {
        // Best effort: a disk still full keeps the reserve released, and the next reclaiming
        // command tries again.
        let _ = self.0.restore_reserve();
    }
}

/// Default wait for a conflicting lock (a running prune) before giving up.
pub const DEFAULT_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

impl Repository {
    /// Opens the local repository at `path`; an encrypted one with the password from the
    /// environment ([`KeySource::from_env`]).
    pub fn open_local(path: &Path, access: Access, kind: IndexKind) -> Result<Repository> {
        Self::open_local_with(path, access, kind, &KeySource::from_env())
    }

    /// Opens the local repository at `path`, unlocking it with `keys` if it is encrypted.
    pub fn open_local_with(path: &Path, access: Access, kind: IndexKind, keys: &KeySource) -> Result<Repository> {
        require_config(path)?;
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(path));
        Self::open_with(backend, Some(path.join(LOCAL_INDEX_DIR)), access, kind, keys)
    }

    /// [`Repository::open_with`] with the password from the environment.
    pub fn open(
        backend: Arc<dyn Backend>,
        index_path: Option<PathBuf>,
        access: Access,
        kind: IndexKind,
    ) -> Result<Repository> {
        Self::open_with(backend, index_path, access, kind, &KeySource::from_env())
    }

    /// Opens a repository on any backend, with its persistent index (if any) at `index_path`,
    /// and brings the index up to date with the packs that exist. An encrypted repository is
    /// unlocked with `keys` first (one KDF run per key file tried).
    pub fn open_with(
        backend: Arc<dyn Backend>,
        index_path: Option<PathBuf>,
        access: Access,
        kind: IndexKind,
        keys: &KeySource,
    ) -> Result<Repository> {
        let (config, sealer, key) = keys::load_config(&backend, keys)?;
        let index_path = index_path.filter(|_| kind == IndexKind::Persistent);
        let index = open_index(index_path.as_deref(), access)?;
        let repo = Repository {
            backend,
            config,
            index,
            index_path,
            access,
            lock_wait: DEFAULT_LOCK_WAIT,
            sealer: Arc::new(sealer),
            key,
            session_stored: Default::default(),
            own_cache: None,
            reserve: None,
        };
        repo.sync_index()?;
        Ok(repo)
    }

    /// Seals and opens this repository's objects.
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    pub fn is_encrypted(&self) -> bool {
        self.sealer.is_encrypted()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn index(&self) -> &dyn ChunkIndex {
        self.index.as_ref()
    }

    pub fn location(&self) -> String {
        self.backend.location()
    }

    pub fn access(&self) -> Access {
        self.access
    }

    /// Where the persistent index lives, if there is one.
    pub fn index_path(&self) -> Option<&Path> {
        self.index_path.as_deref()
    }
}

/// Fails unless the local repository at `path` has its config: with a sentence saying the
/// repository was never finished when an interrupted `init` left its other parts.
fn require_config(path: &Path) -> Result<()> {
    if path.join(CONFIG_KEY).is_file() {
        return Ok(());
    }
    if crate::repo::init::is_unfinished(path) {
        return Err(Error::UnfinishedRepository { path: path.display().to_string() });
    }
    Err(Error::NotARepository { path: path.display().to_string() })
}

#[cfg(not(feature = "rocksdb"))]
pub(crate) fn open_index(_path: Option<&Path>, _access: Access) -> Result<Box<dyn ChunkIndex>> {
    Ok(Box::new(MemIndex::new()))
}

#[cfg(feature = "rocksdb")]
pub(crate) fn open_index(path: Option<&Path>, access: Access) -> Result<Box<dyn ChunkIndex>> {
    use crate::index::{OpenMode, OverlayIndex, RocksIndex};
    let Some(path) = path else {
        return Ok(Box::new(MemIndex::new()));
    };
    let exists = path.join("CURRENT").exists();
    let result = if access == Access::Read && exists {
        RocksIndex::open(path, OpenMode::Secondary)
            .map(|db| Box::new(OverlayIndex::new(Box::new(db))) as Box<dyn ChunkIndex>)
    } else {
        match RocksIndex::open(path, OpenMode::Primary) {
            Ok(db) => Ok(Box::new(db) as Box<dyn ChunkIndex>),
            Err(Error::Locked(_)) => RocksIndex::open(path, OpenMode::Secondary)
                .map(|db| Box::new(OverlayIndex::new(Box::new(db))) as Box<dyn ChunkIndex>),
            Err(e) => Err(e),
        }
    };
    result.map_err(|e| match e {
        Error::Index(msg) if msg.contains("Read-only file system") => {
            Error::ReadOnly { path: path.display().to_string() }
        }
        Error::Index(msg) if msg.contains("No space left") => Error::NoSpace { path: path.display().to_string() },
        Error::Index(msg) => {
            Error::Index(format!("cannot open: {msg}; if the index is damaged, `cairn repo repair index` rebuilds it"))
        }
        other => other,
    })
}

/// Rebuilds a local repository's index from its pack trailers (see [`repair_index`]).
pub fn repair_local_index(path: &Path, keys: &KeySource) -> Result<crate::repo::SyncReport> {
    require_config(path)?;
    repair_index(Arc::new(LocalBackend::new(path)), &path.join(LOCAL_INDEX_DIR), keys)
}

/// Rebuilds the index at `index_dir` from the pack trailers. A damaged index directory that
/// RocksDB cannot open is moved aside and replaced; an index held by a running process is left
/// alone (`Error::Locked`).
pub fn repair_index(backend: Arc<dyn Backend>, index_dir: &Path, keys: &KeySource) -> Result<crate::repo::SyncReport> {
    let index_dir = index_dir.to_path_buf();
    let (config, sealer, key) = keys::load_config(&backend, keys)?;
    let repo = match open_index(Some(&index_dir), Access::Write) {
        Ok(index) if index.clear().is_ok() => Repository {
            config,
            backend,
            index,
            index_path: Some(index_dir),
            access: Access::Write,
            lock_wait: DEFAULT_LOCK_WAIT,
            sealer: Arc::new(sealer),
            key,
            session_stored: Default::default(),
            own_cache: None,
            reserve: None,
        },
        Ok(_) => return Err(Error::Locked(format!("index {} is in use by another process", index_dir.display()))),
        Err(e @ Error::Locked(_)) => return Err(e),
        Err(_) => {
            let aside = index_dir.with_extension(format!("damaged-{}", crate::time::now_ns()));
            std::fs::rename(&index_dir, &aside).map_err(|e| Error::io("cannot move aside", &index_dir, e))?;
            let repo = Repository::open_with(backend, Some(index_dir), Access::Write, IndexKind::Persistent, keys)?;
            let _ = std::fs::remove_dir_all(&aside);
            return repo.rebuild_index();
        }
    };
    repo.rebuild_index()
}

/// A repository opened for auditing, with what was wrong before the audit could start.
pub struct AuditOpen {
    pub repo: Repository,
    /// The config could not be read; the audit goes on with placeholder parameters.
    pub config_error: Option<Error>,
    /// The persistent index is missing or unreadable; the audit goes on with an in-memory
    /// index rebuilt from the pack trailers.
    pub index_error: Option<String>,
    /// Packs the index did not know yet (now in the audit's private overlay).
    pub unindexed_packs: Vec<crate::id::PackId>,
    /// Held for the audit's life.
    _lock: Option<crate::repo::LockGuard>,
}

impl Repository {
    /// Opens a local repository for `repo check` (see [`Repository::open_for_audit`]).
    pub fn open_local_for_audit(path: &Path, kind: IndexKind, keys: &KeySource) -> Result<AuditOpen> {
        Self::open_local_for_audit_waiting(path, kind, DEFAULT_LOCK_WAIT, keys)
    }

    /// [`Repository::open_local_for_audit`], waiting up to `lock_wait` for a conflicting lock.
    pub fn open_local_for_audit_waiting(
        path: &Path,
        kind: IndexKind,
        lock_wait: Duration,
        keys: &KeySource,
    ) -> Result<AuditOpen> {
        require_config(path)?;
        Self::open_for_audit(Arc::new(LocalBackend::new(path)), Some(path.join(LOCAL_INDEX_DIR)), kind, lock_wait, keys)
    }

    /// Opens a repository for `repo check` without changing anything: the index is not synced
    /// (so unindexed packs can be reported) and a damaged config or index is reported instead
    /// of failing the open. Without a usable index dir, the audit rebuilds one in memory.
    pub fn open_for_audit(
        backend: Arc<dyn Backend>,
        index_dir: Option<PathBuf>,
        kind: IndexKind,
        lock_wait: Duration,
        keys: &KeySource,
    ) -> Result<AuditOpen> {
        let (config, config_error, sealer) = keys::load_config_for_audit(&backend, keys)?;
        // Hold a shared lock before reading anything, so a prune cannot change the repository
        // under the audit (a read-only repository is audited without one).
        let sealer = Arc::new(sealer);
        let lock = match crate::repo::acquire_lock(&backend, &sealer, LockKind::Shared, "repo check", lock_wait) {
            Ok(g) => Some(g),
            Err(Error::ReadOnly { .. }) => None,
            Err(e) => return Err(e),
        };
        let (index, index_error): (Box<dyn ChunkIndex>, _) = match index_dir.as_deref().map(|d| audit_index(d, kind)) {
            Some(Ok(Some(index))) => (Box::new(crate::index::OverlayIndex::new(index)) as Box<dyn ChunkIndex>, None),
            Some(Err(e)) => (Box::new(MemIndex::new()), Some(e)),
            _ => (Box::new(MemIndex::new()), None),
        };
        let rebuild =
            index_error.is_some() || index_dir.is_none() || kind == IndexKind::Memory || cfg!(not(feature = "rocksdb"));
        let repo = Repository {
            backend,
            config,
            index,
            index_path: index_dir,
            access: Access::Read,
            lock_wait,
            sealer,
            key: None,
            session_stored: Default::default(),
            own_cache: None,
            reserve: None,
        };
        // Packs written since the index was last updated (by a guest, or by another host sharing
        // an object store) go into a private overlay, so their chunks count as present; the
        // audit reports them.
        let unindexed_packs = if rebuild {
            repo.rebuild_index()?;
            Vec::new()
        } else {
            repo.ingest_unknown_packs()?
        };
        Ok(AuditOpen { repo, config_error, index_error, unindexed_packs, _lock: lock })
    }
}

/// Parameters to go on with when the config cannot be read (and the outer config of an
/// encrypted repository).
pub(crate) fn placeholder_config() -> Config {
    let opts = InitOptions::default();
    Config {
        id: RepoId(crate::id::Digest::default()),
        created_ns: 0,
        chunker: opts.chunker,
        compression_level: opts.compression_level,
        pack_target_bytes: opts.pack_target_bytes,
        features: Vec::new(),
        format_version: crate::repo::REPO_FORMAT_VERSION,
    }
}

/// The persistent index as a read-only secondary, `Ok(None)` when none is used, or why it
/// cannot be used.
#[cfg(feature = "rocksdb")]
fn audit_index(dir: &Path, kind: IndexKind) -> std::result::Result<Option<Box<dyn ChunkIndex>>, String> {
    use crate::index::{OpenMode, RocksIndex};
    if kind == IndexKind::Memory {
        return Ok(None);
    }
    if !dir.join("CURRENT").exists() {
        return Err(format!("index {} is missing", dir.display()));
    }
    RocksIndex::open(dir, OpenMode::Secondary)
        .map(|db| Some(Box::new(db) as Box<dyn ChunkIndex>))
        .map_err(|e| format!("index {} cannot be opened: {e}", dir.display()))
}

#[cfg(not(feature = "rocksdb"))]
fn audit_index(_dir: &Path, _kind: IndexKind) -> std::result::Result<Option<Box<dyn ChunkIndex>>, String> {
    Ok(None)
}
