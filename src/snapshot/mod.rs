//! Persisted records that describe what was backed up: directory trees, snapshots and WAL
//! catalog records.
//!
//! These are plain data types with their encodings; the logic that builds and walks them lives
//! in `ops`. Both travel in the `codec` envelope with a version so old readers refuse new
//! records clearly and new readers upgrade old ones on load.

mod record;
mod tree;
mod validate;
mod wal;

pub use record::{Snapshot, Summary, SNAPSHOT_VERSION};
pub use tree::{
    ChunkList, ChunkRef, ListPiece, Node, NodeContent, Tree, CHUNK_LIST_VERSION, LIST_PIECE_CHUNKS, TREE_VERSION,
};
pub use validate::{chunk_bytes, MAX_CHUNK_BYTES};
pub use wal::{valid_wal_name, WalRecord, WAL_RECORD_VERSION};
