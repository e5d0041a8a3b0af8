//! Where each kind of object lives in the backend: the one place that spells object keys.

use crate::id::{PackId, SnapshotId};
use crate::snapshot::RunKind;

pub const CONFIG_KEY: &str = "config";
pub const PACKS_DIR: &str = "packs/";
pub const SNAPSHOTS_DIR: &str = "snapshots/";
pub const WAL_DIR: &str = "wal/";
pub const LOCKS_DIR: &str = "locks/";
/// Run records: restore tests, checks, failed snapshots (`docs/format.md` §14).
pub const RECORDS_DIR: &str = "records/";
/// Key files of an encrypted repository (`docs/format.md` §13.2).
pub const KEYS_DIR: &str = "keys/";
/// Write-only session headers (§13.6).
pub const SESSIONS_DIR: &str = "sessions/";
/// Local repositories keep their RocksDB index here (not a backend object).
pub const LOCAL_INDEX_DIR: &str = "index";

/// `packs/3f/3fa2…`: sharded by the first byte so no directory grows too large.
pub fn pack_key(id: &PackId) -> String {
    let hex = id.to_hex();
    format!("{PACKS_DIR}{}/{hex}", &hex[..2])
}

/// `keys/<id>`: one key file.
pub fn key_file_key(id: &str) -> String {
    format!("{KEYS_DIR}{id}")
}

/// `sessions/<id hex>`: one write-only session header.
pub fn session_key(id: &[u8; 16]) -> String {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!("{SESSIONS_DIR}{hex}")
}

pub fn snapshot_key(id: &SnapshotId) -> String {
    format!("{SNAPSHOTS_DIR}{}", id.to_hex())
}

/// The pack id named by a key from a `packs/` listing, if it is one.
pub fn pack_id_from_key(key: &str) -> Option<PackId> {
    let rest = key.strip_prefix(PACKS_DIR)?;
    let (shard, name) = rest.split_once('/')?;
    let id: PackId = name.parse().ok()?;
    (shard.len() == 2 && name.starts_with(shard)).then_some(id)
}

pub fn snapshot_id_from_key(key: &str) -> Option<SnapshotId> {
    key.strip_prefix(SNAPSHOTS_DIR)?.parse().ok()
}

/// `wal/<stream>/<name>`: one archived WAL file.
pub fn wal_key(stream: &str, name: &str) -> String {
    format!("{WAL_DIR}{stream}/{name}")
}

/// `wal/<stream>/`, or `wal/` for every stream.
pub fn wal_prefix(stream: Option<&str>) -> String {
    match stream {
        Some(s) => format!("{WAL_DIR}{s}/"),
        None => WAL_DIR.to_string(),
    }
}

/// `records/<kind>/`: where the run records of one kind are.
pub fn run_records_prefix(kind: RunKind) -> String {
    format!("{RECORDS_DIR}{}/", kind.name())
}

/// `records/<kind>/<id hex>`: one run record.
pub fn run_record_key(kind: RunKind, id_hex: &str) -> String {
    format!("{}{id_hex}", run_records_prefix(kind))
}
