//! The single-snapshot repository an export carries: a twin of the source (its config and the
//! key file that opened it, copied as they are), so the export stays sealed with the source's
//! key and opens with the same password, and a copy into it moves sealed data as it is. Or,
//! to hand a backup to someone without the source's password, a fresh encrypted repository
//! with the source's chunker and pack settings and a new master key.

use std::path::Path;
use std::sync::Arc;

use crate::backend::{Backend, LocalBackend, PutMode};
use crate::error::{Error, Result};
use crate::index::MemIndex;
use crate::repo::keys::{key_files, InitEncryption, KeySource};
use crate::repo::layout::{key_file_key, CONFIG_KEY, KEYS_DIR, LOCKS_DIR, PACKS_DIR, SNAPSHOTS_DIR};
use crate::repo::open::{Access, IndexKind, InitOptions, DEFAULT_LOCK_WAIT};
use crate::repo::Repository;

impl Repository {
    /// Creates an empty twin of this repository in the new directory `dir` and opens it for
    /// writing, with an in-memory index.
    pub fn export_twin(&self, dir: &Path) -> Result<Repository> {
        let backend = export_dir(dir)?;
        if self.is_encrypted() {
            // Only the key that opened the source: the export opens with that password and no
            // other (every key file when the one used is unknown).
            let keys = match &self.key {
                Some(k) => vec![(k.id.clone(), self.backend.get(&key_file_key(&k.id))?)],
                None => key_files(self.backend.as_ref())?,
            };
            for (id, bytes) in keys {
                backend.put(&key_file_key(&id), &bytes, PutMode::IfAbsent)?;
            }
        }
        backend.put(CONFIG_KEY, &self.backend.get(CONFIG_KEY)?, PutMode::IfAbsent)?;
        Ok(Repository {
            backend,
            config: self.config.clone(),
            index: Box::new(MemIndex::new()),
            index_path: None,
            access: Access::Write,
            lock_wait: DEFAULT_LOCK_WAIT,
            sealer: Arc::clone(&self.sealer),
            key: self.key.clone(),
            session_stored: Default::default(),
            own_cache: None,
            reserve: None,
        })
    }
}

impl Repository {
    /// Creates a new encrypted repository in the new directory `dir` with a fresh master key
    /// under `enc`'s password (this repository's chunker and pack settings), and opens it for
    /// writing with an in-memory index.
    pub fn export_fresh(&self, dir: &Path, enc: &InitEncryption) -> Result<Repository> {
        let backend = export_dir(dir)?;
        let options = InitOptions {
            chunker: self.config.chunker,
            compression_level: self.config.compression_level,
            pack_target_bytes: self.config.pack_target_bytes,
            encryption: Some(enc.clone()),
        };
        Repository::init(&backend, &options)?;
        let password = enc.password.clone();
        let keys = KeySource::from_fn(Arc::new(move || Ok(password.clone())));
        Repository::open_with(backend, None, Access::Write, IndexKind::Memory, &keys)
    }
}

/// Creates the layout of an export's repository in `dir`; its backend.
fn export_dir(dir: &Path) -> Result<Arc<dyn Backend>> {
    for sub in ["", PACKS_DIR, SNAPSHOTS_DIR, KEYS_DIR, LOCKS_DIR] {
        let d = dir.join(sub.trim_end_matches('/'));
        crate::io::create_private_dir_all(&d).map_err(|e| Error::io("cannot create", &d, e))?;
    }
    Ok(Arc::new(LocalBackend::new(dir)))
}
