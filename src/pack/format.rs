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
//!
//! An encrypted repository's packs (`docs/format.md` §13.5) differ in three places: the header
//! is `CRNPACK` + `2` followed by a 16-byte random pack salt; each blob is an AEAD envelope
//! (sealed by the caller, see `blob`); and the entries region is one suite 1 envelope of the
//! 48 × n entry bytes (kind pack trailer, context = the pack salt), so it is 48n + 41 bytes.
//! The footer keeps its layout with trailer version `2`; its checksum covers the sealed region.

use crate::crypto::{Kind, Sealer, KEY_OVERHEAD_BYTES};
use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::pack::Codec;

pub const PACK_HEADER: [u8; 8] = *b"CRNPACK\x01";
pub const HEADER_BYTES: usize = PACK_HEADER.len();
/// The header magic of an encrypted pack; the pack salt follows it.
pub const SEALED_PACK_HEADER: [u8; 8] = *b"CRNPACK\x02";
pub const PACK_SALT_BYTES: usize = 16;
pub const SEALED_HEADER_BYTES: usize = SEALED_PACK_HEADER.len() + PACK_SALT_BYTES;
const FOOTER_MAGIC: [u8; 8] = *b"CRNTRAIL";
const TRAILER_VERSION: u16 = 1;
const SEALED_TRAILER_VERSION: u16 = 2;
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

/// Encodes the trailer (entries + footer) for `entries`; sealed under the index key with the
/// pack salt as context when `salt` is given (an encrypted pack).
pub fn encode_trailer(entries: &[BlobEntry], sealed: Option<(&Sealer, &[u8; PACK_SALT_BYTES])>) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(entries.len() * TRAILER_ENTRY_BYTES + FOOTER_BYTES + KEY_OVERHEAD_BYTES);
    for e in entries {
        e.encode_into(&mut out);
    }
    let version = match sealed {
        Some((sealer, salt)) => {
            out = sealer.seal(Kind::PackTrailer, salt, &out)?;
            SEALED_TRAILER_VERSION
        }
        None => TRAILER_VERSION,
    };
    let checksum = blake3::hash(&out);
    let count = u32::try_from(entries.len()).expect("pack builder bounds the entry count");
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(checksum.as_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&FOOTER_MAGIC);
    Ok(out)
}

/// What a pack's footer says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    pub count: u32,
    pub checksum: [u8; 32],
    /// Trailer version 2: an encrypted pack (sealed header, blobs and entries).
    pub sealed: bool,
}

impl Footer {
    /// Bytes of the entries region before the footer.
    pub fn region_len(&self) -> usize {
        self.count as usize * TRAILER_ENTRY_BYTES + if self.sealed { KEY_OVERHEAD_BYTES } else { 0 }
    }

    /// Bytes of the pack header.
    pub fn header_len(&self) -> usize {
        if self.sealed {
            SEALED_HEADER_BYTES
        } else {
            HEADER_BYTES
        }
    }
}

/// Reads the footer (the last [`FOOTER_BYTES`] of a pack of `pack_len` bytes): the entry
/// count, the checksum the entries region must have, and whether the pack is encrypted.
pub fn parse_footer(footer: &[u8], pack_len: u64, what: &str) -> Result<Footer> {
    if footer.len() != FOOTER_BYTES {
        return Err(Error::corrupt(what, format!("pack of {pack_len} bytes is too short for a trailer")));
    }
    if footer[FOOTER_BYTES - 8..] != FOOTER_MAGIC {
        return Err(Error::corrupt(what, "trailer magic missing (truncated or not a pack)"));
    }
    let version = u16::from_le_bytes([footer[36], footer[37]]);
    if version != TRAILER_VERSION && version != SEALED_TRAILER_VERSION {
        return Err(Error::UnsupportedVersion {
            what: what.to_string(),
            found: u32::from(version),
            supported: u32::from(SEALED_TRAILER_VERSION),
        });
    }
    let sealed = version == SEALED_TRAILER_VERSION;
    let fixed = if sealed { SEALED_HEADER_BYTES + KEY_OVERHEAD_BYTES } else { HEADER_BYTES } + FOOTER_BYTES;
    let count = u32::from_le_bytes([footer[0], footer[1], footer[2], footer[3]]);
    let max_entries = pack_len.saturating_sub(fixed as u64) / TRAILER_ENTRY_BYTES as u64;
    if u64::from(count) > max_entries || pack_len < fixed as u64 {
        return Err(Error::corrupt(what, format!("trailer claims {count} blobs, more than the pack can hold")));
    }
    let mut checksum = [0u8; 32];
    checksum.copy_from_slice(&footer[4..36]);
    Ok(Footer { count, checksum, sealed })
}

/// Checks the entries `region` against the footer and opens it: an encrypted pack's with the
/// index key and the salt from its `header` (the first [`SEALED_HEADER_BYTES`]). A pack
/// whose encryption does not match the repository's is corrupt, so nobody can slip an
/// unencrypted pack into an encrypted repository.
pub fn open_trailer(region: &[u8], footer: &Footer, header: &[u8], sealer: &Sealer, what: &str) -> Result<Vec<u8>> {
    if region.len() != footer.region_len() {
        return Err(Error::corrupt(what, "trailer length does not match its entry count"));
    }
    if blake3::hash(region).as_bytes() != &footer.checksum {
        return Err(Error::corrupt(what, "trailer checksum mismatch"));
    }
    match (footer.sealed, sealer.is_encrypted()) {
        (false, false) => Ok(region.to_vec()),
        (true, true) => {
            if header.len() < SEALED_HEADER_BYTES || header[..SEALED_PACK_HEADER.len()] != SEALED_PACK_HEADER {
                return Err(Error::corrupt(what, "encrypted pack header missing"));
            }
            sealer
                .open(Kind::PackTrailer, &header[SEALED_PACK_HEADER.len()..SEALED_HEADER_BYTES], region)
                .map_err(|e| Error::corrupt(what, format!("trailer: {e}")))
        }
        (true, false) => Err(Error::corrupt(what, "the pack is encrypted but the repository is not")),
        (false, true) => Err(Error::corrupt(what, "the pack is not encrypted but the repository is")),
    }
}

/// Decodes and validates the (opened) entries of a pack of `pack_len` bytes: every blob must
/// lie between the header and the trailer, within the size bounds, and no two blobs may share
/// a byte (a trailer that says otherwise describes no pack a writer made, so none of it is
/// trusted).
pub fn parse_trailer(entries: &[u8], footer: &Footer, pack_len: u64, what: &str) -> Result<Vec<BlobEntry>> {
    if entries.len() != footer.count as usize * TRAILER_ENTRY_BYTES {
        return Err(Error::corrupt(what, "trailer length is not a whole number of entries"));
    }
    let data_end = pack_len.saturating_sub((footer.region_len() + FOOTER_BYTES) as u64);
    let header_len = footer.header_len() as u64;
    let decoded = entries
        .chunks_exact(TRAILER_ENTRY_BYTES)
        .map(|b| {
            let e = BlobEntry::decode(b, what)?;
            let end = u64::from(e.offset) + u64::from(e.stored_len);
            if u64::from(e.offset) < header_len || end > data_end {
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
pub fn parse_pack(bytes: &[u8], sealer: &Sealer, what: &str) -> Result<Vec<BlobEntry>> {
    let len = bytes.len() as u64;
    if bytes.len() < HEADER_BYTES + FOOTER_BYTES {
        return Err(Error::corrupt(what, format!("pack of {len} bytes is too short")));
    }
    let footer = parse_footer(&bytes[bytes.len() - FOOTER_BYTES..], len, what)?;
    let magic = if footer.sealed { SEALED_PACK_HEADER } else { PACK_HEADER };
    if bytes[..HEADER_BYTES] != magic {
        return Err(Error::corrupt(what, "pack header magic missing"));
    }
    let start = bytes.len() - FOOTER_BYTES - footer.region_len();
    let entries = open_trailer(&bytes[start..bytes.len() - FOOTER_BYTES], &footer, bytes, sealer, what)?;
    parse_trailer(&entries, &footer, len, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Sealer;
    use crate::pack::{EncodedBlob, PackBuilder};

    /// A pack of `hello world` and `world` (raw, back to back), with `world`'s entry moved
    /// `back` bytes towards the start (0 keeps the pack as written).
    fn pack_with_world_moved(back: u32) -> Vec<u8> {
        let mut b = PackBuilder::new();
        for data in [&b"hello world"[..], b"world"] {
            let blob = EncodedBlob { codec: Codec::Raw, bytes: data.to_vec() };
            b.add(ChunkId::of(data), BlobKind::Data, data.len() as u32, &blob);
        }
        let mut pack = b.finish(&Sealer::None).unwrap();
        pack.entries[1].offset -= back;
        let data_end = pack.bytes.len() - FOOTER_BYTES - pack.entries.len() * TRAILER_ENTRY_BYTES;
        pack.bytes.truncate(data_end);
        pack.bytes.extend_from_slice(&encode_trailer(&pack.entries, None).unwrap());
        pack.bytes
    }

    #[test]
    fn overlapping_blob_ranges_are_corrupt() {
        assert_eq!(parse_pack(&pack_with_world_moved(0), &Sealer::None, "pack p").unwrap().len(), 2);
        // `world` pointed at the last five bytes of `hello world`: each range still holds
        // bytes that hash to its id, but they share bytes.
        let err = parse_pack(&pack_with_world_moved(5), &Sealer::None, "pack p").unwrap_err().to_string();
        assert!(err.contains("overlap"), "{err}");
        assert!(parse_pack(&pack_with_world_moved(1), &Sealer::None, "pack p").is_err());
    }

    #[test]
    fn an_empty_range_overlaps_nothing() {
        let mut b = PackBuilder::new();
        b.add(ChunkId::of(b"abc"), BlobKind::Data, 3, &EncodedBlob { codec: Codec::Raw, bytes: b"abc".to_vec() });
        let mut pack = b.finish(&Sealer::None).unwrap();
        let mut empty = pack.entries[0];
        (empty.id, empty.offset, empty.stored_len, empty.raw_len) = (ChunkId::of(b""), 9, 0, 0);
        pack.entries.push(empty);
        pack.bytes.truncate(pack.bytes.len() - FOOTER_BYTES - TRAILER_ENTRY_BYTES);
        pack.bytes.extend_from_slice(&encode_trailer(&pack.entries, None).unwrap());
        assert_eq!(parse_pack(&pack.bytes, &Sealer::None, "pack p").unwrap().len(), 2);
    }
}
