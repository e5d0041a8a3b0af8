//! Assembling one pack in memory: blobs appended after the header, the trailer added last.

use crate::id::{ChunkId, PackId};
use crate::pack::format::{encode_trailer, BlobEntry, BlobKind, HEADER_BYTES, PACK_HEADER};
use crate::pack::EncodedBlob;

/// A pack being filled. Not thread-safe by itself; the write session serialises access.
pub struct PackBuilder {
    bytes: Vec<u8>,
    entries: Vec<BlobEntry>,
    raw_bytes: u64,
}

impl Default for PackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PackBuilder {
    pub fn new() -> Self {
        Self::with_capacity(HEADER_BYTES)
    }

    /// A builder whose buffer is allocated once for a pack of about `bytes`: a growing `Vec`
    /// would double past the target and briefly hold two copies.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(HEADER_BYTES));
        buf.extend_from_slice(&PACK_HEADER);
        PackBuilder { bytes: buf, entries: Vec::new(), raw_bytes: 0 }
    }

    /// A builder writing into `buffer` (a finished pack's, say), whatever it held.
    pub fn reusing(mut buffer: Vec<u8>) -> Self {
        buffer.clear();
        buffer.extend_from_slice(&PACK_HEADER);
        PackBuilder { bytes: buffer, entries: Vec::new(), raw_bytes: 0 }
    }

    /// Bytes the pack would have without its trailer.
    pub fn data_len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn blob_count(&self) -> usize {
        self.entries.len()
    }

    /// Appends a blob. The caller keeps packs well under 4 GiB (offsets are u32).
    pub fn add(&mut self, id: ChunkId, kind: BlobKind, raw_len: u32, blob: &EncodedBlob) {
        let offset = u32::try_from(self.bytes.len()).expect("packs stay below 4 GiB");
        let stored_len = u32::try_from(blob.bytes.len()).expect("blobs stay below 4 GiB");
        self.bytes.extend_from_slice(&blob.bytes);
        self.raw_bytes += u64::from(raw_len);
        self.entries.push(BlobEntry { id, kind, codec: blob.codec, offset, stored_len, raw_len });
    }

    /// Appends the trailer and names the pack by the BLAKE3 of its bytes.
    pub fn finish(mut self) -> FinishedPack {
        let trailer = encode_trailer(&self.entries);
        // Exactly: the buffer was sized for a typical trailer, and doubling a 17 MiB buffer for
        // the trailer of many small blobs (2.6 MB at 1 KiB chunks) reserved 35 MiB per pack.
        self.bytes.reserve_exact(trailer.len());
        self.bytes.extend_from_slice(&trailer);
        let id = PackId(crate::id::Digest::of(&self.bytes));
        FinishedPack { id, bytes: self.bytes, entries: self.entries, raw_bytes: self.raw_bytes }
    }
}

/// A complete pack, ready to store.
pub struct FinishedPack {
    pub id: PackId,
    pub bytes: Vec<u8>,
    pub entries: Vec<BlobEntry>,
    pub raw_bytes: u64,
}
