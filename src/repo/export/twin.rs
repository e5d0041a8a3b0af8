//! The single-snapshot repository an export carries: a twin of the source (its config and the
//! key file that opened it, copied as they are), so the export stays sealed with the source's
//! key and opens with the same password, and a copy into it moves sealed data as it is.

use std::path::Path;
use std::sync::Arc;

use crate::backend::{Backend, LocalBackend, PutMode};
use crate::error::{Error, Result};
use crate::index::MemIndex;
use crate::repo::keys::key_files;
use crate::repo::layout::{key_file_key, CONFIG_KEY, KEYS_DIR, LOCKS_DIR, PACKS_DIR, SNAPSHOTS_DIR};
use crate::repo::open::{Access, DEFAULT_LOCK_WAIT};
use crate::repo::Repository;

impl Repository {
    /// Creates an empty twin of this repository in the new directory `dir` and opens it for
    /// writing, with an in-memory index.
    pub fn export_twin(&self, dir: &Path) -> Result<Repository> {
        for sub in ["", PACKS_DIR, SNAPSHOTS_DIR, KEYS_DIR, LOCKS_DIR] {
            let d = dir.join(sub.trim_end_matches('/'));
            crate::io::create_private_dir_all(&d).map_err(|e| Error::io("cannot create", &d, e))?;
        }
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir));
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
