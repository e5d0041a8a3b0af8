//! The repository config: format version, identity and the parameters fixed at `init`.

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::chunker::ChunkerParams;
use crate::codec::{self, RecordKind};
use crate::error::{Error, Result};
use crate::id::Digest;

/// The repository format this build reads and writes (the config record's version).
pub const REPO_FORMAT_VERSION: u16 = 1;

/// Random identity of a repository; names its index cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoId(pub Digest);

impl RepoId {
    pub fn random() -> Result<Self> {
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(|e| Error::io("cannot read", std::path::Path::new("/dev/urandom"), e))?;
        Ok(RepoId(Digest(bytes)))
    }
}

/// zstd level of new repositories. Level 2 is measured (docs/performance.md, "Compression
/// level") to store segment logs of records 5% smaller than level 3 on 32 KiB chunks, and
/// to be the fastest of levels 1-3; binaries and prose come out 2-3% larger than at level 3.
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 2;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub id: RepoId,
    pub created_ns: i64,
    pub chunker: ChunkerParams,
    /// zstd level for new blobs; 0 stores blobs uncompressed.
    pub compression_level: i32,
    /// A pack is closed once its data reaches this size.
    pub pack_target_bytes: u32,
}

impl Config {
    pub fn encode(&self) -> Result<Vec<u8>> {
        codec::seal(RecordKind::Config, REPO_FORMAT_VERSION, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let config: Config = codec::unseal(bytes, RecordKind::Config, REPO_FORMAT_VERSION, "repository config")?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        self.chunker.validate().map_err(|e| Error::corrupt("repository config", e.to_string()))?;
        if !(0..=22).contains(&self.compression_level) {
            return Err(Error::corrupt("repository config", format!("compression level {}", self.compression_level)));
        }
        if !(1 << 20..=1 << 30).contains(&self.pack_target_bytes) {
            return Err(Error::corrupt("repository config", format!("pack size {}", self.pack_target_bytes)));
        }
        Ok(())
    }
}
