//! Pack files: many compressed blobs appended into one immutable, self-describing file.
//!
//! See `docs/format.md` for the byte layout. `format` encodes and decodes the header and
//! trailer, `blob` compresses and verifies single blobs, `builder` assembles a pack in memory.

mod blob;
mod builder;
mod format;

pub use blob::{decode_blob, decode_blob_into, encode_blob, seal_blob, verify_blob, Codec, EncodedBlob};
pub use builder::{FinishedPack, PackBuilder};
pub use format::{
    encode_trailer, open_trailer, parse_footer, parse_pack, parse_trailer, BlobEntry, BlobKind, Footer, FOOTER_BYTES,
    HEADER_BYTES, MAX_BLOB_RAW_BYTES, MAX_BLOB_STORED_BYTES, PACK_HEADER, PACK_SALT_BYTES, SEALED_HEADER_BYTES,
    SEALED_PACK_HEADER, TRAILER_ENTRY_BYTES,
};
