//! cairn: a content-addressed, deduplicating snapshot store for service data directories.
//!
//! Files are split with FastCDC into chunks named by their BLAKE3 hash, compressed with zstd
//! into immutable, self-describing pack files, and indexed in RocksDB (derived data, rebuilt
//! from the packs on demand). Directories become tree blobs; a snapshot record, written last,
//! names the root tree.
//!
//! Layers (a module uses only layers below it; `tests/layering.rs` checks this):
//!
//! ```text
//! interface     cli (binary only)
//! configuration config (the cairn.toml file: sources → operations' options)
//! operations    ops::{backup, restore (+ pitr), browse, check, copy, forget, prune, wal, select}
//! repository    repo (config, layout, init, index sync, write session, snapshots, WAL, locks)
//! blocks        chunker, pack, index, snapshot, fs, backend, pg, redis, progress, hooks, metrics
//! foundation    error, id, codec, crypto, io, time
//! ```

pub mod backend;
pub mod chunker;
pub mod codec;
pub mod config;
pub mod crypto;
pub mod error;
pub mod fs;
pub mod hooks;
pub mod id;
pub mod index;
pub mod io;
pub mod metrics;
pub mod ops;
pub mod pack;
pub mod pg;
pub mod progress;
pub mod redis;
pub mod repo;
pub mod snapshot;
pub mod time;

pub use error::{Error, Result};
pub use id::{ChunkId, PackId, SnapshotId};
pub use repo::{Access, IndexKind, Repository};
