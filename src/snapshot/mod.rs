//! Persisted records that describe what was backed up: directory trees, snapshots and WAL
//! catalog records; and run records (restore tests, checks, failed snapshots).
//!
//! These are plain data types with their encodings; the logic that builds and walks them lives
//! in `ops`. Both travel in the `codec` envelope with a version so old readers refuse new
//! records clearly and new readers upgrade old ones on load.

mod node;
mod record;
mod run;
mod tree;
mod tree_v1;
mod validate;
mod wal;

pub use node::{ChunkRef, HardLink, ListPiece, Node, NodeContent, Xattr, LIST_PIECE_CHUNKS, MAX_ZERO_RUN_BYTES};
pub use record::{source_name, Snapshot, Summary, SNAPSHOT_VERSION};
pub use run::{RunKind, RunRecord, MAX_RUN_TEXT_BYTES, RUN_RECORD_VERSION};
pub use tree::{valid_name, ChunkList, Tree, CHUNK_LIST_VERSION, TREE_VERSION};
pub use validate::{chunk_bytes, MAX_CHUNK_BYTES};
pub use wal::{valid_wal_name, WalRecord, WAL_RECORD_VERSION};
