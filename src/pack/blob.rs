//! Compressing one blob for a pack, and decoding one back with its id verified.
//!
//! Every blob a user reads passes through [`decode_blob`], which opens it (in an encrypted
//! repository: compress, then seal, each blob on its own, so a range read of one blob works),
//! checks the decompressed length and the id: a damaged pack can fail a read, never hand back
//! wrong bytes.

use std::cell::RefCell;

use crate::crypto::{Kind, Sealer};
use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::pack::{BlobEntry, BlobKind};

/// How a blob's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// Stored as is (used when compression would not save space).
    Raw,
    /// zstd frame.
    Zstd,
}

impl Codec {
    pub fn to_u8(self) -> u8 {
        match self {
            Codec::Raw => 0,
            Codec::Zstd => 1,
        }
    }
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            _ => None,
        }
    }
}

/// A blob ready to append to a pack.
pub struct EncodedBlob {
    pub codec: Codec,
    pub bytes: Vec<u8>,
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    static VERIFY_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static OPEN_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The AEAD kind of a blob: chunk lists travel as tree blobs (the trailer does not tell them
/// apart), so they are sealed as trees (`docs/format.md` §13.5).
fn seal_kind(kind: BlobKind) -> Kind {
    match kind {
        BlobKind::Data => Kind::DataBlob,
        BlobKind::Tree => Kind::Tree,
    }
}

/// Seals an encoded blob of `kind` named `id` (its bytes pass through unencrypted).
pub fn seal_blob(sealer: &Sealer, kind: BlobKind, id: &ChunkId, blob: EncodedBlob) -> Result<EncodedBlob> {
    if !sealer.is_encrypted() {
        return Ok(blob);
    }
    Ok(EncodedBlob { codec: blob.codec, bytes: sealer.seal(seal_kind(kind), id.as_bytes(), &blob.bytes)? })
}

/// A thread's verify buffer larger than this is freed after use rather than kept.
const KEPT_SCRATCH_BYTES: usize = 8 << 20;

/// Compresses `data` at zstd `level`, keeping it raw when that saves nothing. Reuses one zstd
/// context per thread so the hot path allocates only the output.
pub fn encode_blob(data: &[u8], level: i32) -> Result<EncodedBlob> {
    if level == 0 {
        return Ok(EncodedBlob { codec: Codec::Raw, bytes: data.to_vec() });
    }
    let compressed = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        let (_, c) = slot.as_mut().expect("set just above");
        c.compress(data)
    });
    let compressed = compressed.map_err(|e| Error::Internal(format!("zstd compression failed: {e}")))?;
    if compressed.len() < data.len() {
        Ok(EncodedBlob { codec: Codec::Zstd, bytes: compressed })
    } else {
        Ok(EncodedBlob { codec: Codec::Raw, bytes: data.to_vec() })
    }
}

/// Decodes a blob's stored bytes and verifies them against its id. `what` names the pack.
pub fn decode_blob(entry: &BlobEntry, stored: &[u8], what: &str, sealer: &Sealer) -> Result<Vec<u8>> {
    let mut raw = Vec::new();
    decode_blob_into(entry, stored, what, &mut raw, sealer)?;
    Ok(raw)
}

/// Decodes and verifies a blob without keeping its bytes (`repo check --read-data`), in a
/// buffer each thread reuses.
pub fn verify_blob(entry: &BlobEntry, stored: &[u8], what: &str, sealer: &Sealer) -> Result<()> {
    VERIFY_SCRATCH.with(|cell| {
        let mut raw = cell.borrow_mut();
        let verified = decode_blob_into(entry, stored, what, &mut raw, sealer);
        if raw.capacity() > KEPT_SCRATCH_BYTES {
            *raw = Vec::new();
        }
        verified
    })
}

/// [`decode_blob`] into `raw` (its old content replaced), for callers that decode many blobs
/// and use each briefly: reusing one buffer saves an allocation per blob and, for large blobs,
/// the page faults and zeroing of fresh memory (check --read-data of corpus (a), see
/// `docs/performance.md`).
pub fn decode_blob_into(
    entry: &BlobEntry,
    stored: &[u8],
    what: &str,
    raw: &mut Vec<u8>,
    sealer: &Sealer,
) -> Result<()> {
    let fail = |detail: String| Error::corrupt(format!("{what} blob {}", entry.id), detail);
    if stored.len() != entry.stored_len as usize {
        return Err(fail(format!("expected {} stored bytes, got {}", entry.stored_len, stored.len())));
    }
    if !sealer.is_encrypted() {
        return decompress_verified(entry, stored, raw, sealer, &fail);
    }
    OPEN_SCRATCH.with(|cell| {
        let mut opened = cell.borrow_mut();
        let result = match sealer.open_into(seal_kind(entry.kind), entry.id.as_bytes(), stored, &mut opened) {
            Ok(()) => decompress_verified(entry, &opened, raw, sealer, &fail),
            Err(Error::Corrupt { detail, .. }) => Err(fail(detail)),
            Err(e) => Err(e),
        };
        if opened.capacity() > KEPT_SCRATCH_BYTES {
            *opened = Vec::new();
        }
        result
    })
}

/// Decompresses an opened blob into `raw` and checks its length and id.
fn decompress_verified(
    entry: &BlobEntry,
    stored: &[u8],
    raw: &mut Vec<u8>,
    sealer: &Sealer,
    fail: &dyn Fn(String) -> Error,
) -> Result<()> {
    raw.clear();
    match entry.codec {
        Codec::Raw => raw.extend_from_slice(stored),
        // The frame header must declare the length the trailer claims before we allocate it:
        // a hostile trailer alone cannot make us reserve memory.
        Codec::Zstd
            if zstd::zstd_safe::get_frame_content_size(stored).ok().flatten() != Some(u64::from(entry.raw_len)) =>
        {
            return Err(fail("zstd frame does not declare the expected length".to_string()));
        }
        Codec::Zstd => {
            raw.reserve(entry.raw_len as usize);
            DECOMPRESSOR
                .with(|cell| {
                    let mut slot = cell.borrow_mut();
                    if slot.is_none() {
                        *slot = Some(zstd::bulk::Decompressor::new()?);
                    }
                    slot.as_mut().expect("set just above").decompress_to_buffer(stored, raw)
                })
                .map_err(|e| fail(format!("cannot decompress: {e}")))?;
        }
    }
    if raw.len() != entry.raw_len as usize {
        return Err(fail(format!("decompressed to {} bytes, expected {}", raw.len(), entry.raw_len)));
    }
    if sealer.id_of(raw) != entry.id {
        return Err(fail("hash mismatch: content does not match its id".to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_for(data: &[u8], blob: &EncodedBlob) -> BlobEntry {
        BlobEntry {
            id: ChunkId::of(data),
            kind: BlobKind::Data,
            codec: blob.codec,
            offset: 0,
            stored_len: blob.bytes.len() as u32,
            raw_len: data.len() as u32,
        }
    }

    #[test]
    fn a_reused_buffer_holds_exactly_each_blob_in_turn() {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let small = b"a much smaller blob, stored raw".to_vec();
        let incompressible: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let mut raw = Vec::new();
        for (data, level) in [(&big, 2), (&small, 0), (&incompressible, 2), (&big, 0), (&small, 2)] {
            let blob = encode_blob(data, level).unwrap();
            let entry = entry_for(data, &blob);
            decode_blob_into(&entry, &blob.bytes, "pack p", &mut raw, &Sealer::None).unwrap();
            assert_eq!(&raw, data);
            verify_blob(&entry, &blob.bytes, "pack p", &Sealer::None).unwrap();
        }
    }

    #[test]
    fn a_damaged_blob_fails_in_a_reused_buffer() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 97) as u8).collect();
        let blob = encode_blob(&data, 0).unwrap();
        let entry = entry_for(&data, &blob);
        let mut raw = Vec::new();
        decode_blob_into(&entry, &blob.bytes, "pack p", &mut raw, &Sealer::None).unwrap();
        let mut damaged = blob.bytes.clone();
        damaged[1234] ^= 1;
        let err = decode_blob_into(&entry, &damaged, "pack p", &mut raw, &Sealer::None).unwrap_err().to_string();
        assert!(err.contains("hash mismatch"), "{err}");
        assert!(verify_blob(&entry, &damaged, "pack p", &Sealer::None).is_err());
    }
}
