//! The snapshot record: when, where from, what (root tree), and what it cost.

use serde::{Deserialize, Serialize};

use crate::codec::{self, RecordKind};
use crate::error::Result;
use crate::id::{ChunkId, SnapshotId};

pub const SNAPSHOT_VERSION: u16 = 1;

/// Counters of one snapshot run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Sum of the sizes of all files in the snapshot.
    pub bytes: u64,
    /// Files whose data was read (new or changed ones).
    pub files_read: u64,
    pub bytes_read: u64,
    /// Plaintext bytes of chunks new to the repository.
    pub bytes_added: u64,
    /// What those new chunks occupy in packs (compressed).
    pub bytes_stored: u64,
    pub chunks_added: u64,
    pub packs_written: u64,
    /// Entries that could not be read and were left out.
    pub skipped: u64,
    pub duration_ms: u64,
}

/// A snapshot: written last, after everything it references is durable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the snapshot started, in nanoseconds since the Unix epoch (UTC).
    pub time_ns: i64,
    pub host: String,
    /// The absolute paths given to `snapshot create`, as bytes.
    pub paths: Vec<Vec<u8>>,
    pub tags: Vec<String>,
    /// Root tree: a directory holding each path under its full name (`/var/lib/x` is
    /// `var` → `lib` → `x`).
    pub root: ChunkId,
    pub parent: Option<SnapshotId>,
    pub summary: Summary,
    /// `cairn x.y.z` that wrote it.
    pub tool: String,
}

impl Snapshot {
    pub fn encode(&self) -> Result<Vec<u8>> {
        codec::seal(RecordKind::Snapshot, SNAPSHOT_VERSION, self)
    }

    pub fn decode(bytes: &[u8], what: &str) -> Result<Self> {
        codec::unseal(bytes, RecordKind::Snapshot, SNAPSHOT_VERSION, what)
    }

    /// The source this snapshot belongs to, as `cairn status` and metrics name it:
    /// `host:/path[,/path…]` (what `snapshot create` groups parents by).
    pub fn source(&self) -> String {
        source_name(&self.host, &self.paths)
    }

    pub fn paths_lossy(&self) -> Vec<String> {
        self.paths.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect()
    }
}

/// `host:/a,/b`: the name of the source of snapshots of `host` and `paths`.
pub fn source_name(host: &str, paths: &[Vec<u8>]) -> String {
    let paths: Vec<String> = paths.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    format!("{host}:{}", paths.join(","))
}
