//! The bytes of an export file (`docs/format.md`, "Export file"): the plaintext header, the
//! entry framing, the manifest and the trailer. Pure encoding and decoding, no I/O: every
//! decoder here checks lengths and returns `Corrupt` naming the part, never panics (fuzzed by
//! `fuzz/targets.rs::export`).
//!
//! ```text
//! header   32 B   magic "CAIRNEXP", major u16, minor u16, created_ns i64, flags u8,
//!                 3 B zero, BLAKE3(bytes 0..24)[..8]
//! entries         per repository file: key_len u16, key, size u64, content
//! manifest        bincode Manifest (its `contents` sealed when encrypted)
//! trailer  80 B   manifest_len u64, BLAKE3(manifest) 32 B, BLAKE3(every byte before this
//!                 field) 32 B, magic "CAIRNEND"
//! ```

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::crypto::{Kind, Sealer};
use crate::error::{Error, Result};

pub const EXPORT_MAGIC: [u8; 8] = *b"CAIRNEXP";
pub const TRAILER_MAGIC: [u8; 8] = *b"CAIRNEND";
/// Readers refuse a newer major version; a newer minor version only adds what they may ignore.
pub const EXPORT_MAJOR: u16 = 1;
pub const EXPORT_MINOR: u16 = 0;
const HEADER_CHECKED_BYTES: usize = 8 + 2 + 2 + 8 + 1 + 3;
const HEADER_CHECK_BYTES: usize = 8;
pub const HEADER_BYTES: usize = HEADER_CHECKED_BYTES + HEADER_CHECK_BYTES;
const HASH_BYTES: usize = 32;
/// The whole-file hash covers every byte before it: header, entries, manifest, and the
/// trailer's first two fields.
pub const TRAILER_BYTES: usize = 8 + HASH_BYTES + HASH_BYTES + TRAILER_MAGIC.len();
pub const TRAILER_HASHED_BYTES: usize = 8 + HASH_BYTES;
/// Longest repository key an entry may name (keys are short: `packs/ab/<64 hex>`).
pub const MAX_KEY_BYTES: usize = 1024;
/// Bytes of an entry's framing before its content: key length, key, size.
pub fn entry_head_bytes(key_len: usize) -> usize {
    2 + key_len + 8
}
const FLAG_ENCRYPTED: u8 = 1;
/// Associated data of the sealed manifest contents (with [`Kind::ExportManifest`]).
const SEAL_CONTEXT: &[u8] = b"export manifest";

/// The plaintext header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub major: u16,
    pub minor: u16,
    pub created_ns: i64,
    pub encrypted: bool,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[..8].copy_from_slice(&EXPORT_MAGIC);
        b[8..10].copy_from_slice(&self.major.to_le_bytes());
        b[10..12].copy_from_slice(&self.minor.to_le_bytes());
        b[12..20].copy_from_slice(&self.created_ns.to_le_bytes());
        b[20] = if self.encrypted { FLAG_ENCRYPTED } else { 0 };
        let check = blake3::hash(&b[..HEADER_CHECKED_BYTES]);
        b[HEADER_CHECKED_BYTES..].copy_from_slice(&check.as_bytes()[..HEADER_CHECK_BYTES]);
        b
    }

    /// Decodes and checks a header: magic, checksum, then the major version (refused when
    /// newer, naming both; a newer minor version reads).
    pub fn decode(b: &[u8], what: &str) -> Result<Header> {
        let part = || format!("{what} (header)");
        if b.len() < HEADER_BYTES {
            return Err(Error::corrupt(part(), "the file is shorter than an export header"));
        }
        if b[..8] != EXPORT_MAGIC {
            return Err(Error::corrupt(part(), "this is not a cairn export file (wrong magic)"));
        }
        let check = blake3::hash(&b[..HEADER_CHECKED_BYTES]);
        if b[HEADER_CHECKED_BYTES..HEADER_BYTES] != check.as_bytes()[..HEADER_CHECK_BYTES] {
            return Err(Error::corrupt(part(), "its checksum does not match"));
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let (major, minor) = (u16_at(8), u16_at(10));
        if major != EXPORT_MAJOR {
            return Err(Error::UnsupportedVersion {
                what: format!("{what} (export format {major}.{minor})"),
                found: u32::from(major),
                supported: u32::from(EXPORT_MAJOR),
            });
        }
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[12..20]);
        if b[20] & !FLAG_ENCRYPTED != 0 || b[21..24] != [0, 0, 0] {
            return Err(Error::corrupt(part(), "unknown flags are set"));
        }
        Ok(Header { major, minor, created_ns: i64::from_le_bytes(t), encrypted: b[20] & FLAG_ENCRYPTED != 0 })
    }
}

/// The fixed-size end of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    pub manifest_len: u64,
    pub manifest_hash: [u8; HASH_BYTES],
    pub whole_hash: [u8; HASH_BYTES],
}

impl Trailer {
    pub fn encode(&self) -> [u8; TRAILER_BYTES] {
        let mut b = [0u8; TRAILER_BYTES];
        b[..8].copy_from_slice(&self.manifest_len.to_le_bytes());
        b[8..40].copy_from_slice(&self.manifest_hash);
        b[40..72].copy_from_slice(&self.whole_hash);
        b[72..].copy_from_slice(&TRAILER_MAGIC);
        b
    }

    pub fn decode(b: &[u8], what: &str) -> Result<Trailer> {
        let part = || format!("{what} (trailer)");
        if b.len() != TRAILER_BYTES {
            return Err(Error::corrupt(part(), "the file is too short to hold one"));
        }
        if b[72..] != TRAILER_MAGIC {
            return Err(Error::corrupt(part(), "its end marker is missing (a truncated or damaged file)"));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&b[..8]);
        let (mut manifest_hash, mut whole_hash) = ([0u8; HASH_BYTES], [0u8; HASH_BYTES]);
        manifest_hash.copy_from_slice(&b[8..40]);
        whole_hash.copy_from_slice(&b[40..72]);
        Ok(Trailer { manifest_len: u64::from_le_bytes(len), manifest_hash, whole_hash })
    }
}

/// One repository file inside the export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    pub key: String,
    pub size: u64,
    pub blake3: [u8; HASH_BYTES],
}

/// One regular file of the exported snapshot: its path below the snapshot's root, size and
/// the BLAKE3 of its content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: Vec<u8>,
    pub size: u64,
    pub blake3: [u8; HASH_BYTES],
}

/// What the export holds, as users know it: sealed when the repository is encrypted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contents {
    pub host: String,
    pub paths: Vec<Vec<u8>>,
    pub snapshot_time_ns: i64,
    pub files: Vec<FileEntry>,
}

/// The manifest as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub major: u16,
    pub minor: u16,
    pub created_ns: i64,
    /// The exported snapshot's id (keyed in an encrypted repository: it names nothing).
    pub snapshot: [u8; HASH_BYTES],
    /// Every repository file in the export, in the order of the entries.
    pub objects: Vec<ObjectEntry>,
    /// [`Contents`], encoded, then sealed with the repository's key when encrypted.
    pub contents: Vec<u8>,
}

impl Manifest {
    pub fn encode(&self) -> Result<Vec<u8>> {
        codec::to_bytes(self)
    }

    pub fn decode(bytes: &[u8], what: &str) -> Result<Manifest> {
        codec::from_bytes(bytes, &format!("{what} (manifest)"))
    }
}

impl Contents {
    /// Encodes, and seals when `sealer` is encrypted.
    pub fn seal(&self, sealer: &Sealer) -> Result<Vec<u8>> {
        let plain = codec::to_bytes(self)?;
        match sealer.is_encrypted() {
            true => sealer.seal(Kind::ExportManifest, SEAL_CONTEXT, &plain),
            false => Ok(plain),
        }
    }

    pub fn open(bytes: &[u8], sealer: &Sealer, what: &str) -> Result<Contents> {
        let what = format!("{what} (manifest contents)");
        let plain = match sealer.is_encrypted() {
            true => sealer.open(Kind::ExportManifest, SEAL_CONTEXT, bytes).map_err(|e| match e {
                Error::Corrupt { detail, .. } => Error::corrupt(&what, detail),
                other => other,
            })?,
            false => bytes.to_vec(),
        };
        codec::from_bytes(&plain, &what)
    }
}

/// The framing of one entry (what precedes its content).
pub fn encode_entry_head(key: &str, size: u64) -> Result<Vec<u8>> {
    let len = u16::try_from(key.len()).ok().filter(|&l| usize::from(l) <= MAX_KEY_BYTES);
    let len = len.ok_or_else(|| Error::Internal(format!("repository key {key:?} is too long to export")))?;
    let mut b = Vec::with_capacity(entry_head_bytes(key.len()));
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(key.as_bytes());
    b.extend_from_slice(&size.to_le_bytes());
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_refuses_a_newer_major() {
        let h = Header { major: EXPORT_MAJOR, minor: 3, created_ns: 42, encrypted: true };
        assert_eq!(Header::decode(&h.encode(), "x").unwrap(), h);
        let newer = Header { major: EXPORT_MAJOR + 1, ..h }.encode();
        let e = Header::decode(&newer, "x").unwrap_err().to_string();
        assert!(e.contains("export format 2.3") && e.contains("supports version 1"), "{e}");
    }

    #[test]
    fn every_flipped_header_byte_is_named() {
        let h = Header { major: 1, minor: 0, created_ns: 7, encrypted: false }.encode();
        for i in 0..HEADER_BYTES {
            let mut b = h;
            b[i] ^= 0x10;
            assert!(Header::decode(&b, "x").unwrap_err().to_string().contains("header"), "byte {i}");
        }
    }
}
