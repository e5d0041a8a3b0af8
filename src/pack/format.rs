//! Byte layout of a pack (all integers little-endian):
//!
//! | offset            | size   | field                                             |
//! |-------------------|--------|---------------------------------------------------|
//! | 0                 | 8      | header: magic `CRNPACK` + format version `1`      |
//! | 8                 | …      | blob data, stored back to back                    |
//! | T                 | 48 × n | trailer entries, one per blob (layout below)      |
//! | T + 48n           | 4      | entry count `n`                                   |
//! | T + 48n + 4       | 32     | BLAKE3 of the entries region `T .. T+48n`         |
//! | T + 48n + 36      | 2      | trailer version `1`                               |
//! | T + 48n + 38      | 2      | reserved, 0                                       |
//! | T + 48n + 40      | 8      | magic `CRNTRAIL`                                  |
//!
//! Trailer entry: id (32) | kind u8 | codec u8 | reserved u16 | offset u32 | stored_len u32 |
//! raw_len u32. A reader reads the fixed footer from the end, then the entries before it.

use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::pack::Codec;

pub const PACK_HEADER: [u8; 8] = *b"CRNPACK\x01";
pub const HEADER_BYTES: usize = PACK_HEADER.len();
const FOOTER_MAGIC: [u8; 8] = *b"CRNTRAIL";
const TRAILER_VERSION: u16 = 1;
const CHECKSUM_BYTES: usize = 32;
pub const FOOTER_BYTES: usize = 4 + CHECKSUM_BYTES + 2 + 2 + FOOTER_MAGIC.len();
pub const TRAILER_ENTRY_BYTES: usize = 32 + 1 + 1 + 2 + 4 + 4 + 4;
/// No blob decompresses to more than this; bounds what a hostile trailer can make us allocate.
pub const MAX_BLOB_RAW_BYTES: u32 = 512 << 20;
/// No blob is stored in more than this: zstd's worst case for [`MAX_BLOB_RAW_BYTES`] (its
/// bound adds 1/256 and a few bytes) with room to spare. Bounds a read a trailer or an index
/// entry can ask for.
pub const MAX_BLOB_STORED_BYTES: u32 = MAX_BLOB_RAW_BYTES + MAX_BLOB_RAW_BYTES / 64;

/// What a blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum BlobKind {
    /// A chunk of file (or WAL) data.
    Data,
    /// A serialized directory tree.
    Tree,
}

impl BlobKind {
    pub fn to_u8(self) -> u8 {
        match self {
            BlobKind::Data => 0,
            BlobKind::Tree => 1,
        }
    }
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// One trailer entry: where a blob sits in its pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobEntry {
    pub id: ChunkId,
    pub kind: BlobKind,
    pub codec: Codec,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
}

impl BlobEntry {
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.id.as_bytes());
        out.push(self.kind.to_u8());
        out.push(self.codec.to_u8());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.stored_len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
    }

    /// Decodes one entry; `what` names the pack in errors.
    pub fn decode(b: &[u8], what: &str) -> Result<Self> {
        if b.len() != TRAILER_ENTRY_BYTES {
            return Err(Error::corrupt(what, "trailer entry has the wrong length"));
        }
        let id = ChunkId::from_slice(&b[..32]).expect("slice is 32 bytes");
        let kind = BlobKind::from_u8(b[32])
            .ok_or_else(|| Error::corrupt(what, format!("blob {} has unknown kind {}", id.short(), b[32])))?;
        let codec = Codec::from_u8(b[33])
            .ok_or_else(|| Error::corrupt(what, format!("blob {} has unknown codec {}", id.short(), b[33])))?;
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        Ok(BlobEntry { id, kind, codec, offset: u32_at(36), stored_len: u32_at(40), raw_len: u32_at(44) })
    }
}

/// Encodes the trailer (entries + footer) for `entries`.
pub fn encode_trailer(entries: &[BlobEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * TRAILER_ENTRY_BYTES + FOOTER_BYTES);
    for e in entries {
        e.encode_into(&mut out);
    }
    let checksum = blake3::hash(&out);
    let count = u32::try_from(entries.len()).expect("pack builder bounds the entry count");
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(checksum.as_bytes());
    out.extend_from_slice(&TRAILER_VERSION.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&FOOTER_MAGIC);
    out
}

/// Reads the footer (the last [`FOOTER_BYTES`] of a pack of `pack_len` bytes) and returns
/// the entry count and the checksum the entries must have.
pub fn parse_footer(footer: &[u8], pack_len: u64, what: &str) -> Result<(u32, [u8; 32])> {
    if footer.len() != FOOTER_BYTES {
        return Err(Error::corrupt(what, format!("pack of {pack_len} bytes is too short for a trailer")));
    }
    if footer[FOOTER_BYTES - 8..] != FOOTER_MAGIC {
        return Err(Error::corrupt(what, "trailer magic missing (truncated or not a pack)"));
    }
    let version = u16::from_le_bytes([footer[36], footer[37]]);
    if version != TRAILER_VERSION {
        return Err(Error::UnsupportedVersion {
            what: what.to_string(),
            found: u32::from(version),
            supported: u32::from(TRAILER_VERSION),
        });
    }
    let count = u32::from_le_bytes([footer[0], footer[1], footer[2], footer[3]]);
    let max_entries = pack_len.saturating_sub((HEADER_BYTES + FOOTER_BYTES) as u64) / TRAILER_ENTRY_BYTES as u64;
    if u64::from(count) > max_entries {
        return Err(Error::corrupt(what, format!("trailer claims {count} blobs, more than the pack can hold")));
    }
    let mut checksum = [0u8; 32];
    checksum.copy_from_slice(&footer[4..36]);
    Ok((count, checksum))
}

/// Decodes and validates the entries region of a pack of `pack_len` bytes against the footer's
/// checksum: every blob must lie between the header and the trailer, within the size bounds,
/// and no two blobs may share a byte (a trailer that says otherwise describes no pack a
/// writer made, so none of it is trusted).
pub fn parse_trailer(entries: &[u8], checksum: &[u8; 32], pack_len: u64, what: &str) -> Result<Vec<BlobEntry>> {
    if entries.len() % TRAILER_ENTRY_BYTES != 0 {
        return Err(Error::corrupt(what, "trailer length is not a whole number of entries"));
    }
    if blake3::hash(entries).as_bytes() != checksum {
        return Err(Error::corrupt(what, "trailer checksum mismatch"));
    }
    let data_end = pack_len - (entries.len() + FOOTER_BYTES) as u64;
    let decoded = entries
        .chunks_exact(TRAILER_ENTRY_BYTES)
        .map(|b| {
            let e = BlobEntry::decode(b, what)?;
            let end = u64::from(e.offset) + u64::from(e.stored_len);
            if u64::from(e.offset) < HEADER_BYTES as u64 || end > data_end {
                return Err(Error::corrupt(what, format!("blob {} lies outside the pack's data", e.id.short())));
            }
            if e.raw_len > MAX_BLOB_RAW_BYTES || e.stored_len > MAX_BLOB_STORED_BYTES {
                let (raw, stored) = (e.raw_len, e.stored_len);
                return Err(Error::corrupt(
                    what,
                    format!("blob {} claims {raw} raw, {stored} stored bytes", e.id.short()),
                ));
            }
            Ok(e)
        })
        .collect::<Result<Vec<BlobEntry>>>()?;
    check_disjoint(&decoded, what)?;
    Ok(decoded)
}

/// Fails when two blobs' byte ranges overlap (an empty range overlaps nothing).
fn check_disjoint(entries: &[BlobEntry], what: &str) -> Result<()> {
    let mut by_offset: Vec<&BlobEntry> = entries.iter().filter(|e| e.stored_len > 0).collect();
    by_offset.sort_by_key(|e| e.offset);
    for pair in by_offset.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if u64::from(b.offset) < u64::from(a.offset) + u64::from(a.stored_len) {
            return Err(Error::corrupt(
                what,
                format!("blobs {} and {} overlap (at offset {})", a.id.short(), b.id.short(), b.offset),
            ));
        }
    }
    Ok(())
}

/// Parses a whole pack held in memory: header, footer and trailer.
pub fn parse_pack(bytes: &[u8], what: &str) -> Result<Vec<BlobEntry>> {
    let len = bytes.len() as u64;
    if bytes.len() < HEADER_BYTES + FOOTER_BYTES {
        return Err(Error::corrupt(what, format!("pack of {len} bytes is too short")));
    }
    if bytes[..HEADER_BYTES] != PACK_HEADER {
        return Err(Error::corrupt(what, "pack header magic missing"));
    }
    let (count, checksum) = parse_footer(&bytes[bytes.len() - FOOTER_BYTES..], len, what)?;
    let start = bytes.len() - FOOTER_BYTES - count as usize * TRAILER_ENTRY_BYTES;
    parse_trailer(&bytes[start..bytes.len() - FOOTER_BYTES], &checksum, len, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::{EncodedBlob, PackBuilder};

    /// A pack of `hello world` and `world` (raw, back to back), with `world`'s entry moved
    /// `back` bytes towards the start (0 keeps the pack as written).
    fn pack_with_world_moved(back: u32) -> Vec<u8> {
        let mut b = PackBuilder::new();
        for data in [&b"hello world"[..], b"world"] {
            let blob = EncodedBlob { codec: Codec::Raw, bytes: data.to_vec() };
            b.add(ChunkId::of(data), BlobKind::Data, data.len() as u32, &blob);
        }
        let mut pack = b.finish();
        pack.entries[1].offset -= back;
        let data_end = pack.bytes.len() - FOOTER_BYTES - pack.entries.len() * TRAILER_ENTRY_BYTES;
        pack.bytes.truncate(data_end);
        pack.bytes.extend_from_slice(&encode_trailer(&pack.entries));
        pack.bytes
    }

    #[test]
    fn overlapping_blob_ranges_are_corrupt() {
        assert_eq!(parse_pack(&pack_with_world_moved(0), "pack p").unwrap().len(), 2);
        // `world` pointed at the last five bytes of `hello world`: each range still holds
        // bytes that hash to its id, but they share bytes.
        let err = parse_pack(&pack_with_world_moved(5), "pack p").unwrap_err().to_string();
        assert!(err.contains("overlap"), "{err}");
        assert!(parse_pack(&pack_with_world_moved(1), "pack p").is_err());
    }

    #[test]
    fn an_empty_range_overlaps_nothing() {
        let mut b = PackBuilder::new();
        b.add(ChunkId::of(b"abc"), BlobKind::Data, 3, &EncodedBlob { codec: Codec::Raw, bytes: b"abc".to_vec() });
        let mut pack = b.finish();
        let mut empty = pack.entries[0];
        (empty.id, empty.offset, empty.stored_len, empty.raw_len) = (ChunkId::of(b""), 9, 0, 0);
        pack.entries.push(empty);
        pack.bytes.truncate(pack.bytes.len() - FOOTER_BYTES - TRAILER_ENTRY_BYTES);
        pack.bytes.extend_from_slice(&encode_trailer(&pack.entries));
        assert_eq!(parse_pack(&pack.bytes, "pack p").unwrap().len(), 2);
    }
}
