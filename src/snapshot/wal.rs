//! The WAL catalog record: one archived WAL (or log segment) file of one stream.
//!
//! Stored at `wal/<stream>/<name>`, written once with put-if-absent after the file's chunks
//! are durable: a name is archived once, and a different file under the same name is refused
//! (PostgreSQL's rule for `archive_command`).

use serde::{Deserialize, Serialize};

use crate::codec::{self, RecordKind};
use crate::error::{Error, Result};
use crate::snapshot::ChunkRef;

pub const WAL_RECORD_VERSION: u16 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalRecord {
    pub stream: String,
    /// File name, e.g. `000000010000000000000003`.
    pub name: String,
    pub size: u64,
    pub chunks: Vec<ChunkRef>,
    /// When the archive made it durable (nanoseconds since the epoch, UTC).
    pub archived_ns: i64,
    /// The file's mtime when it was read.
    pub mtime_ns: i64,
    pub host: String,
}

impl WalRecord {
    pub fn encode(&self) -> Result<Vec<u8>> {
        codec::seal(RecordKind::WalRecord, WAL_RECORD_VERSION, self)
    }

    pub fn decode(bytes: &[u8], what: &str) -> Result<Self> {
        let r: WalRecord = codec::unseal(bytes, RecordKind::WalRecord, WAL_RECORD_VERSION, what)?;
        if !valid_wal_name(&r.stream) || !valid_wal_name(&r.name) {
            return Err(Error::corrupt(what, "invalid stream or file name"));
        }
        // The file's chunks must hold exactly its size (`docs/format.md`, "Validation rules").
        match crate::snapshot::chunk_bytes(&r.chunks) {
            Err(why) => Err(Error::corrupt(what, why)),
            Ok(held) if held != r.size => {
                Err(Error::corrupt(what, format!("declares {} bytes, its chunks hold {held}", r.size)))
            }
            Ok(_) => Ok(r),
        }
    }
}

/// Stream and file names: 1–255 of `A-Z a-z 0-9 . _ -`, not starting with a dot. Safe as
/// object keys and as file names in a restore directory.
pub fn valid_wal_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
