//! A repository opened with a write-only key (`docs/security.md`, "Write-only hosts"): what
//! it may do, the session header it stores before its first sealed object, and its own
//! last snapshots in a local cache.
//!
//! Invariants: the header of a write-only session is durable under `sessions/<id>` (written
//! put-if-absent) before any pack, snapshot or WAL record sealed with its key, so a full key
//! can always open what the session wrote. Headers are never deleted: they are 106 bytes each,
//! one per run, and a header whose objects were all pruned costs nothing but its bytes
//! (`docs/format.md` §13.6).

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use crate::backend::{PutMode, PutOutcome};
use crate::error::{Error, Result};
use crate::id::{ChunkId, SnapshotId};
use crate::repo::layout::session_key;
use crate::repo::own_cache::{OwnCache, PushedWal};
use crate::repo::Repository;
use crate::snapshot::{ChunkRef, Snapshot};

impl Repository {
    /// Whether this open can read data and metadata (false with a write-only key).
    pub fn can_read(&self) -> bool {
        self.sealer.can_read()
    }

    /// Whether this repository was opened with a write-only key.
    pub fn is_write_only(&self) -> bool {
        !self.sealer.can_read()
    }

    /// Fails with `this is a write-only key: it cannot <action>` (exit 14) unless this open
    /// can read data and metadata. Commands call it before they change or create anything.
    pub fn require_read(&self, action: &str) -> Result<()> {
        if self.can_read() {
            Ok(())
        } else {
            Err(Error::WriteOnly { action: action.to_string() })
        }
    }

    /// Keeps this write-only host's own last snapshots in `dir` (its local cache, never the
    /// repository), so that `snapshot create` finds unchanged files without reading them.
    /// Without it, a write-only host reads every file again (deduplicated: only new chunks
    /// are stored). Nothing changes for a full key.
    pub fn use_own_cache(&mut self, dir: PathBuf) {
        if self.is_write_only() {
            self.own_cache = Some(OwnCache::new(dir));
        }
    }

    /// The last snapshot of `host` and `paths` this write-only host remembers.
    pub(crate) fn own_parent(&self, host: &str, paths: &[Vec<u8>]) -> Option<(SnapshotId, Snapshot)> {
        self.own_cache.as_ref()?.last(&self.sealer, host, paths)
    }

    /// A tree or chunk-list blob from the own cache, if this is a write-only host with one.
    pub(crate) fn own_blob(&self, id: &ChunkId) -> Option<Result<Vec<u8>>> {
        self.own_cache.as_ref().map(|c| c.get_blob(id, &self.sealer))
    }

    /// Keeps a tree or chunk-list blob this write-only host stores (best effort: a blob
    /// missing from the cache costs re-reading files, not a wrong snapshot).
    pub(crate) fn keep_own_blob(&self, id: &ChunkId, bytes: &[u8]) {
        if let Some(c) = &self.own_cache {
            let _ = c.put_blob(id, bytes);
        }
    }

    /// Records a snapshot this write-only host just saved as its last (best effort, as
    /// [`Repository::keep_own_blob`]).
    pub(crate) fn remember_own_snapshot(&self, id: &SnapshotId, snapshot: &Snapshot) {
        if let Some(c) = &self.own_cache {
            let _ = c.remember(&self.sealer, id, snapshot);
        }
    }

    /// A keyed digest of a WAL file's chunk list: what a write-only host compares a repeated
    /// push with.
    pub(crate) fn wal_digest(&self, chunks: &[ChunkRef]) -> [u8; 32] {
        let mut b = b"cairn own wal digest\0".to_vec();
        for c in chunks {
            b.extend_from_slice(c.id.as_bytes());
            b.extend_from_slice(&c.len.to_le_bytes());
        }
        self.sealer.chunk_id(&b)
    }

    /// What this write-only host remembers pushing under `object_key`.
    pub(crate) fn own_pushed_wal(&self, object_key: &str) -> Option<PushedWal> {
        self.own_cache.as_ref()?.pushed_wal(object_key)
    }

    /// Remembers a WAL file before its record is written (best effort): a repeated push of
    /// the same file is then recognised although the record cannot be opened.
    pub(crate) fn remember_own_wal(&self, object_key: &str, pushed: &PushedWal) {
        if let Some(c) = &self.own_cache {
            let _ = c.remember_wal(object_key, pushed);
        }
    }

    /// Forgets a WAL file remembered by [`Repository::remember_own_wal`] whose record was
    /// not written.
    pub(crate) fn forget_own_wal(&self, object_key: &str) {
        if let Some(c) = &self.own_cache {
            c.forget_wal(object_key);
        }
    }

    /// Stores this open's write-only session header, once, before the first object sealed
    /// with the session key is written. Nothing to do for other sealers.
    pub(crate) fn store_session_header(&self) -> Result<()> {
        let Some((id, header)) = self.sealer.session_header() else {
            return Ok(());
        };
        if self.session_stored.load(Ordering::Acquire) {
            return Ok(());
        }
        // Two threads may both get here: put-if-absent makes the second put a no-op. A name
        // taken by other bytes would be a BLAKE3 collision (the id hashes the header) or a
        // forgery; the full key's check of the header against its id catches the latter.
        match self.backend.put(&session_key(&id), header, PutMode::IfAbsent)? {
            PutOutcome::Written | PutOutcome::AlreadyExists => {}
        }
        self.session_stored.store(true, Ordering::Release);
        Ok(())
    }
}
