//! Index values and their fixed-width encoding (see `docs/format.md`, "Index").
//!
//! Chunk value (46 bytes): pack id (32) | offset u32 | stored_len u32 | raw_len u32 |
//! kind u8 | codec u8. Pack value (12 bytes): size u64 | blob count u32.

use crate::error::{Error, Result};
use crate::id::PackId;
use crate::pack::{BlobEntry, BlobKind, Codec, HEADER_BYTES, MAX_BLOB_RAW_BYTES, MAX_BLOB_STORED_BYTES};

pub const LOCATION_BYTES: usize = 32 + 4 + 4 + 4 + 1 + 1;
pub const PACK_INFO_BYTES: usize = 8 + 4;

/// Where one blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub pack: PackId,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
    pub kind: BlobKind,
    pub codec: Codec,
}

impl Location {
    pub fn new(pack: PackId, e: &BlobEntry) -> Self {
        Location { pack, offset: e.offset, stored_len: e.stored_len, raw_len: e.raw_len, kind: e.kind, codec: e.codec }
    }

    /// The trailer entry this location describes, for decoding the blob.
    pub fn entry(&self, id: crate::id::ChunkId) -> BlobEntry {
        BlobEntry {
            id,
            kind: self.kind,
            codec: self.codec,
            offset: self.offset,
            stored_len: self.stored_len,
            raw_len: self.raw_len,
        }
    }

    pub fn encode(&self) -> [u8; LOCATION_BYTES] {
        let mut out = [0u8; LOCATION_BYTES];
        out[..32].copy_from_slice(self.pack.as_bytes());
        out[32..36].copy_from_slice(&self.offset.to_le_bytes());
        out[36..40].copy_from_slice(&self.stored_len.to_le_bytes());
        out[40..44].copy_from_slice(&self.raw_len.to_le_bytes());
        out[44] = self.kind.to_u8();
        out[45] = self.codec.to_u8();
        out
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        let bad = |d: &str| Error::corrupt("index entry", d.to_string());
        if b.len() != LOCATION_BYTES {
            return Err(bad("wrong length"));
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        // A read is sized from these: bound them as the trailer they came from was.
        let (offset, stored_len, raw_len) = (u32_at(32), u32_at(36), u32_at(40));
        if (offset as usize) < HEADER_BYTES || stored_len > MAX_BLOB_STORED_BYTES || raw_len > MAX_BLOB_RAW_BYTES {
            return Err(bad("offset or length out of bounds"));
        }
        Ok(Location {
            pack: PackId::from_slice(&b[..32]).expect("32 bytes"),
            offset,
            stored_len,
            raw_len,
            kind: BlobKind::from_u8(b[44]).ok_or_else(|| bad("unknown blob kind"))?,
            codec: Codec::from_u8(b[45]).ok_or_else(|| bad("unknown codec"))?,
        })
    }
}

/// What the index knows about a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackInfo {
    pub size: u64,
    pub blobs: u32,
}

impl PackInfo {
    pub fn encode(&self) -> [u8; PACK_INFO_BYTES] {
        let mut out = [0u8; PACK_INFO_BYTES];
        out[..8].copy_from_slice(&self.size.to_le_bytes());
        out[8..].copy_from_slice(&self.blobs.to_le_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        if b.len() != PACK_INFO_BYTES {
            return Err(Error::corrupt("index pack record", "wrong length"));
        }
        let mut size = [0u8; 8];
        size.copy_from_slice(&b[..8]);
        Ok(PackInfo { size: u64::from_le_bytes(size), blobs: u32::from_le_bytes([b[8], b[9], b[10], b[11]]) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Digest;

    #[test]
    fn out_of_bounds_values_are_corrupt_before_anything_is_read() {
        let ok = Location {
            pack: PackId(Digest::of(b"pack")),
            offset: 8,
            stored_len: 100,
            raw_len: 200,
            kind: BlobKind::Data,
            codec: Codec::Zstd,
        };
        assert_eq!(Location::decode(&ok.encode()).unwrap(), ok);
        for bad in [
            Location { offset: 0, ..ok },
            Location { stored_len: u32::MAX, ..ok },
            Location { raw_len: MAX_BLOB_RAW_BYTES + 1, ..ok },
        ] {
            assert!(matches!(Location::decode(&bad.encode()), Err(Error::Corrupt { .. })), "{bad:?}");
        }
    }
}
