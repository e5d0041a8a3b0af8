//! Where repository objects live: one small trait over immutable, whole-object storage.
//!
//! Everything except the (derived, local) index is written through [`Backend`] as complete
//! objects that are never modified: no append, no rename visible to callers, no locks. That is
//! what object storage offers, so an S3 backend is a second implementation, not a redesign.
//! `put` with [`PutMode::IfAbsent`] gives the one atomic primitive the repository needs where a
//! name must be unique (WAL records).

mod local;
#[cfg(feature = "s3")]
mod s3;

pub use local::{sync_dir as local_sync_dir, LocalBackend, RESERVE_BYTES, RESERVE_FILE, TEMP_PREFIX};
#[cfg(feature = "s3")]
pub use s3::{S3Backend, S3Options};

use crate::error::Result;

/// Whether a put may replace an existing object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutMode {
    /// Replace whatever is there (content-addressed objects, where the same name means the same
    /// bytes).
    Overwrite,
    /// Fail with [`PutOutcome::AlreadyExists`] when the name is taken, atomically.
    IfAbsent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Written,
    AlreadyExists,
}

/// One listed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

/// Immutable object storage. Keys are `/`-separated relative names such as
/// `packs/3f/3fa2…`. Implementations are `Send + Sync`; callers parallelise.
pub trait Backend: Send + Sync {
    /// Where the repository lives, for messages (a path or URL).
    fn location(&self) -> String;

    /// Stores `data` under `key`; returns only once the object is durable.
    fn put(&self, key: &str, data: &[u8], mode: PutMode) -> Result<PutOutcome>;

    /// The whole object; `Error::NotFound` when it does not exist.
    fn get(&self, key: &str) -> Result<Vec<u8>>;

    /// `len` bytes from `offset`; an object shorter than that is reported as corrupt.
    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>>;

    /// [`Backend::get_range`] into `buf` (its old content replaced), for callers reading many
    /// ranges one after the other: a local repository then reuses one buffer instead of
    /// faulting in fresh memory for every read.
    fn get_range_into(&self, key: &str, offset: u64, len: u64, buf: &mut Vec<u8>) -> Result<()> {
        *buf = self.get_range(key, offset, len)?;
        Ok(())
    }

    /// A hint that `len` bytes from `offset` will be read soon: a local repository asks the
    /// kernel to read them in the background, so that the read overlaps with decoding what
    /// came before. Only a hint: errors are ignored, and backends without a cheap way to act
    /// on it do nothing.
    fn prefetch(&self, _key: &str, _offset: u64, _len: u64) {}

    /// The object's size, or `None` when it does not exist.
    fn size(&self, key: &str) -> Result<Option<u64>>;

    /// Calls `f` for every object whose key starts with `prefix` (a directory such as
    /// `packs/`), in no particular order. Streams: memory does not grow with the listing.
    fn list(&self, prefix: &str, f: &mut dyn FnMut(ObjectInfo) -> Result<()>) -> Result<()>;

    /// Removes an object; removing a missing object is not an error.
    fn delete(&self, key: &str) -> Result<()>;

    /// Leftovers of interrupted writes (temporary files), for `repo check` to report.
    fn stray_temporaries(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Frees the space a local repository keeps in reserve (see [`RESERVE_FILE`]), so that a
    /// command that reclaims space can start on a full disk; true when something was freed.
    fn release_reserve(&self) -> Result<bool> {
        Ok(false)
    }

    /// Sets the reserve aside again, as far as free space allows (a full disk leaves it
    /// smaller or absent: that is not an error).
    fn restore_reserve(&self) -> Result<()> {
        Ok(())
    }

    /// Deletes one of the leftovers [`Backend::stray_temporaries`] named; false when it was
    /// kept because it may still be a write in progress (younger than an hour).
    fn delete_temporary(&self, _key: &str) -> Result<bool> {
        Ok(false)
    }
}
