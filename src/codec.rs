//! The one serialization configuration and the envelope every small record travels in.
//!
//! Records (config, snapshot, tree, WAL record, lock) are serialized with bincode 1 in one
//! pinned configuration: fixed-width little-endian integers, no trailing bytes, and a size limit
//! so hostile length prefixes cannot allocate unbounded memory. bincode is unmaintained upstream
//! (RUSTSEC-2025-0141); keeping it behind this module means a switch touches one file and one
//! format version.
//!
//! Envelope layout (all integers little-endian; see `docs/format.md`):
//!
//! | offset | size | field                                          |
//! |--------|------|------------------------------------------------|
//! | 0      | 4    | magic `CRN\0`                                  |
//! | 4      | 1    | kind (see [`RecordKind`])                      |
//! | 5      | 1    | reserved, 0                                    |
//! | 6      | 2    | record version                                 |
//! | 8      | 4    | payload length `n`                             |
//! | 12     | n    | payload (bincode)                              |
//! | 12+n   | 32   | BLAKE3 of bytes `0 .. 12+n`                    |

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::Digest;

/// Largest payload any record may have. Trees of huge directories are the biggest records.
pub const MAX_RECORD_BYTES: usize = 1 << 30;

pub const ENVELOPE_MAGIC: [u8; 4] = *b"CRN\0";
const MAGIC_LEN: usize = ENVELOPE_MAGIC.len();
const HEADER_BYTES: usize = MAGIC_LEN + 1 + 1 + 2 + 4;
const CHECKSUM_BYTES: usize = 32;

/// What a record is; stored in the envelope so a misplaced file is recognised as such.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    Config = 1,
    Snapshot = 2,
    WalRecord = 3,
    Lock = 4,
    Tree = 5,
    ChunkList = 6,
    /// A run record (restore test, check, failed snapshot): `records/`.
    Run = 7,
}

impl RecordKind {
    fn name(self) -> &'static str {
        match self {
            RecordKind::Config => "config",
            RecordKind::Snapshot => "snapshot",
            RecordKind::WalRecord => "WAL record",
            RecordKind::Lock => "lock",
            RecordKind::Tree => "tree",
            RecordKind::ChunkList => "chunk list",
            RecordKind::Run => "run record",
        }
    }
}

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(MAX_RECORD_BYTES as u64)
        .reject_trailing_bytes()
}

/// Serializes a value with the pinned configuration (no envelope).
pub fn to_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    options().serialize(value).map_err(|e| Error::Internal(format!("cannot encode record: {e}")))
}

/// Deserializes a value with the pinned configuration; `what` names it in errors.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    options().deserialize(bytes).map_err(|e| Error::corrupt(what, format!("cannot decode: {e}")))
}

/// Wraps `value` in an envelope of `kind` at `version`.
pub fn seal<T: Serialize>(kind: RecordKind, version: u16, value: &T) -> Result<Vec<u8>> {
    let payload = to_bytes(value)?;
    let payload_len =
        u32::try_from(payload.len()).map_err(|_| Error::TooLarge(format!("{} record too large", kind.name())))?;
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len() + CHECKSUM_BYTES);
    out.extend_from_slice(&ENVELOPE_MAGIC);
    out.push(kind as u8);
    out.push(0);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&payload);
    let sum = Digest::of(&out);
    out.extend_from_slice(&sum.0);
    Ok(out)
}

/// An opened envelope: its version and still-encoded payload.
pub struct Opened<'a> {
    pub version: u16,
    pub payload: &'a [u8],
}

/// Checks magic, kind and checksum; returns the version and payload. `what` names the record
/// in errors (e.g. `snapshot 41ab…`).
pub fn open<'a>(bytes: &'a [u8], kind: RecordKind, what: &str) -> Result<Opened<'a>> {
    if bytes.len() < HEADER_BYTES + CHECKSUM_BYTES {
        return Err(Error::corrupt(what, format!("only {} bytes, too short", bytes.len())));
    }
    if bytes[..MAGIC_LEN] != ENVELOPE_MAGIC {
        return Err(Error::corrupt(what, "not a cairn record (bad magic)"));
    }
    let found_kind = bytes[MAGIC_LEN];
    if found_kind != kind as u8 {
        return Err(Error::corrupt(
            what,
            format!("holds record kind {found_kind}, expected {} ({})", kind as u8, kind.name()),
        ));
    }
    let version = u16::from_le_bytes([bytes[6], bytes[7]]);
    let payload_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let body_end = HEADER_BYTES.checked_add(payload_len).filter(|&e| e + CHECKSUM_BYTES == bytes.len());
    let Some(body_end) = body_end else {
        return Err(Error::corrupt(
            what,
            format!("length field says {payload_len} payload bytes, file has {}", bytes.len()),
        ));
    };
    if Digest::of(&bytes[..body_end]).0 != bytes[body_end..] {
        return Err(Error::corrupt(what, "checksum mismatch"));
    }
    Ok(Opened { version, payload: &bytes[HEADER_BYTES..body_end] })
}

/// Opens an envelope and decodes its payload, rejecting versions newer than `supported`.
pub fn unseal<T: DeserializeOwned>(bytes: &[u8], kind: RecordKind, supported: u16, what: &str) -> Result<T> {
    let opened = open(bytes, kind, what)?;
    if opened.version == 0 || opened.version > supported {
        return Err(Error::UnsupportedVersion {
            what: what.to_string(),
            found: u32::from(opened.version),
            supported: u32::from(supported),
        });
    }
    from_bytes(opened.payload, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_and_detects_damage() {
        let sealed = seal(RecordKind::Lock, 1, &("host".to_string(), 42u32)).unwrap();
        let back: (String, u32) = unseal(&sealed, RecordKind::Lock, 1, "lock").unwrap();
        assert_eq!(back, ("host".to_string(), 42));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x10;
            assert!(unseal::<(String, u32)>(&bad, RecordKind::Lock, 1, "lock").is_err());
        }
        assert!(matches!(
            unseal::<(String, u32)>(&sealed, RecordKind::Config, 1, "config"),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn newer_version_is_refused() {
        let sealed = seal(RecordKind::Config, 7, &1u8).unwrap();
        assert!(matches!(
            unseal::<u8>(&sealed, RecordKind::Config, 1, "config"),
            Err(Error::UnsupportedVersion { found: 7, .. })
        ));
    }
}
