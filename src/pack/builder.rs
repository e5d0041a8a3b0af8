//! Assembling one pack in memory: blobs appended after the header, the trailer added last.
//! An encrypted pack starts with its random salt and gets a sealed trailer; its blobs come
//! sealed already (`seal_blob`).

use crate::crypto::Sealer;
use crate::error::Result;
use crate::id::{ChunkId, PackId};
use crate::pack::format::{
    encode_trailer, BlobEntry, BlobKind, HEADER_BYTES, PACK_HEADER, PACK_SALT_BYTES, SEALED_HEADER_BYTES,
    SEALED_PACK_HEADER,
};
use crate::pack::EncodedBlob;

/// A pack being filled. Not thread-safe by itself; the write session serialises access.
pub struct PackBuilder {
    bytes: Vec<u8>,
    entries: Vec<BlobEntry>,
    raw_bytes: u64,
    /// An encrypted pack: its header has room for the pack salt, drawn at `finish`.
    sealed: bool,
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
        Self::reusing(Vec::with_capacity(bytes.max(HEADER_BYTES)))
    }

    /// A builder writing into `buffer` (a finished pack's, say), whatever it held.
    pub fn reusing(mut buffer: Vec<u8>) -> Self {
        buffer.clear();
        buffer.extend_from_slice(&PACK_HEADER);
        PackBuilder { bytes: buffer, entries: Vec::new(), raw_bytes: 0, sealed: false }
    }

    /// As [`PackBuilder::reusing`], for a repository sealed by `sealer`: an encrypted one gets
    /// the encrypted header, whose random pack salt is drawn when the pack is finished.
    pub fn for_sealer(mut buffer: Vec<u8>, sealer: &Sealer) -> Self {
        if !sealer.is_encrypted() {
            return Self::reusing(buffer);
        }
        buffer.clear();
        buffer.extend_from_slice(&SEALED_PACK_HEADER);
        buffer.extend_from_slice(&[0; PACK_SALT_BYTES]);
        PackBuilder { bytes: buffer, entries: Vec::new(), raw_bytes: 0, sealed: true }
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

    /// Appends the trailer (sealed with `sealer` in an encrypted pack) and names the pack by
    /// the BLAKE3 of its bytes.
    pub fn finish(mut self, sealer: &Sealer) -> Result<FinishedPack> {
        let salt = if self.sealed {
            let mut salt = [0u8; PACK_SALT_BYTES];
            crate::crypto::fill_random(&mut salt)?;
            self.bytes[SEALED_PACK_HEADER.len()..SEALED_HEADER_BYTES].copy_from_slice(&salt);
            Some(salt)
        } else {
            None
        };
        let trailer = encode_trailer(&self.entries, salt.as_ref().map(|s| (sealer, s)))?;
        // Exactly: the buffer was sized for a typical trailer, and doubling a 17 MiB buffer for
        // the trailer of many small blobs (2.6 MB at 1 KiB chunks) reserved 35 MiB per pack.
        self.bytes.reserve_exact(trailer.len());
        self.bytes.extend_from_slice(&trailer);
        let id = PackId(crate::id::Digest::of(&self.bytes));
        Ok(FinishedPack { id, bytes: self.bytes, entries: self.entries, raw_bytes: self.raw_bytes })
    }
}

/// A complete pack, ready to store.
pub struct FinishedPack {
    pub id: PackId,
    pub bytes: Vec<u8>,
    pub entries: Vec<BlobEntry>,
    pub raw_bytes: u64,
}
