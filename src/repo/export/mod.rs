//! Export files: one snapshot of a repository as one self-verifying file (`docs/format.md`,
//! "Export file"). The snapshot is copied into a twin repository (same config and key, so an
//! encrypted export stays encrypted and dedup and verification keep working), whose files are
//! framed into one file with a plaintext header, a manifest and whole-file BLAKE3.
//!
//! `format` owns the bytes, `twin` the temporary repository, `digest` the per-file BLAKE3 of
//! the manifest, `write` and `read` the file itself (reading verifies everything first).

mod digest;
mod format;
mod read;
mod twin;
mod write;

pub use format::{
    Contents, FileEntry, Header, Manifest, ObjectEntry, Trailer, EXPORT_MAJOR, EXPORT_MINOR, HEADER_BYTES,
    TRAILER_BYTES,
};
pub use read::{open_export, OpenedExport};
pub use write::{write_export, ExportFile};
