//! The repository: config, object layout, the shared index, and write sessions.
//!
//! `Repository` ties a backend to its config and chunk index; operations (`ops`) use it to read
//! blobs and trees, list snapshots and, through a [`WriteSession`], store new data with the
//! commit order of `docs/design.md`: packs durable → index entries → snapshot object last.

mod config;
pub mod export;
mod index_sync;
mod ingest;
mod init;
mod keyring;
mod keys;
mod layout;
mod location;
mod lock;
mod open;
mod own_cache;
mod read;
mod runs;
mod session;
mod snapshots;
mod wal;
mod write_only;

pub use config::{
    Config, Feature, RepoId, DEFAULT_COMPRESSION_LEVEL, ENCRYPTION_FEATURE, KNOWN_FEATURES, REPO_FORMAT_VERSION,
};
pub use index_sync::SyncReport;
pub use ingest::{hash_file, FileFailure, StoredFile};
pub use keyring::{import_paper_key, KeyInfo};
pub use keys::{key_files, key_owner, store_key_file, InitEncryption, KeySource, PasswordFn};
pub use layout::{
    key_file_key, pack_id_from_key, pack_key, snapshot_key, wal_key, wal_prefix, CONFIG_KEY, KEYS_DIR, LOCKS_DIR,
    PACKS_DIR, RECORDS_DIR, SNAPSHOTS_DIR, WAL_DIR,
};
pub use location::{default_cache_dir, Connect, RepoLocation, S3Options};
pub use lock::{acquire_lock, list_locks, LockGuard, LockKind, LockRecord, EXPIRED_AFTER_SECS, HEARTBEAT_SECS};
pub use open::{repair_index, repair_local_index, Access, AuditOpen, IndexKind, InitOptions, Repository};
pub(crate) use own_cache::PushedWal;
pub use runs::{Runs, RUNS_KEPT_PER_SOURCE};
pub use session::{FileList, SessionStats, WriteSession};
pub use snapshots::{SnapshotFilter, SnapshotSpec};
pub use wal::check_wal_names;
