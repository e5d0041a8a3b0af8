//! The repository config: format version, identity, the parameters fixed at `init`, and (from
//! version 2) the optional features the repository uses.
//!
//! Version 1 and 2 configs are both read; a version 1 config decodes into [`Config`] with
//! `format_version` 1 and no features. A repository keeps the version it was created with
//! (`docs/format.md`, "Version history"): `cairn init` writes version 2.

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::chunker::ChunkerParams;
use crate::codec::{self, RecordKind};
use crate::error::{Error, Result};
use crate::id::Digest;

/// The newest repository format this build reads and writes (the config record's version).
pub const REPO_FORMAT_VERSION: u16 = 2;

/// The feature of an encrypted repository (`docs/format.md` §13.1).
pub const ENCRYPTION_FEATURE: &str = "encryption";

/// Features this build understands. A config naming any other feature is refused (exit 12),
/// so an older cairn never misreads a repository whose objects need the feature.
pub const KNOWN_FEATURES: &[&str] = &[ENCRYPTION_FEATURE];

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

/// An optional feature a repository uses, with its parameters (encoded by the feature's own
/// module; opaque here). Example: `encryption` with its KDF and AEAD choice (issue 16).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feature {
    pub name: String,
    pub params: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub id: RepoId,
    pub created_ns: i64,
    pub chunker: ChunkerParams,
    /// zstd level for new blobs; 0 stores blobs uncompressed.
    pub compression_level: i32,
    /// A pack is closed once its data reaches this size.
    pub pack_target_bytes: u32,
    /// Features in use, sorted by name, each once (version 2 on; empty in version 1).
    pub features: Vec<Feature>,
    /// The config record's version: the repository's format (not part of the payload).
    #[serde(skip)]
    pub format_version: u16,
}

/// The version 1 payload: version 2 without `features`.
#[derive(Deserialize, Serialize)]
struct ConfigV1 {
    id: RepoId,
    created_ns: i64,
    chunker: ChunkerParams,
    compression_level: i32,
    pack_target_bytes: u32,
}

const CONFIG_WHAT: &str = "repository config";

impl Config {
    pub fn encode(&self) -> Result<Vec<u8>> {
        match self.format_version {
            1 => codec::seal(
                RecordKind::Config,
                1,
                &ConfigV1 {
                    id: self.id,
                    created_ns: self.created_ns,
                    chunker: self.chunker,
                    compression_level: self.compression_level,
                    pack_target_bytes: self.pack_target_bytes,
                },
            ),
            _ => codec::seal(RecordKind::Config, REPO_FORMAT_VERSION, self),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let opened = codec::open(bytes, RecordKind::Config, CONFIG_WHAT)?;
        Self::decode_payload(opened.version, opened.payload)
    }

    /// The config from the payload of a config record of format `version` (what
    /// [`Config::decode`] finds behind the record's checksum), validated.
    pub fn decode_payload(version: u16, payload: &[u8]) -> Result<Self> {
        let config = match version {
            1 => {
                let v1: ConfigV1 = codec::from_bytes(payload, CONFIG_WHAT)?;
                Config {
                    id: v1.id,
                    created_ns: v1.created_ns,
                    chunker: v1.chunker,
                    compression_level: v1.compression_level,
                    pack_target_bytes: v1.pack_target_bytes,
                    features: Vec::new(),
                    format_version: 1,
                }
            }
            REPO_FORMAT_VERSION => {
                let mut config: Config = codec::from_bytes(payload, CONFIG_WHAT)?;
                config.format_version = REPO_FORMAT_VERSION;
                config
            }
            found => {
                return Err(Error::UnsupportedVersion {
                    what: CONFIG_WHAT.to_string(),
                    found: u32::from(found),
                    supported: u32::from(REPO_FORMAT_VERSION),
                })
            }
        };
        config.validate()?;
        if let Some(f) = config.features.iter().find(|f| !KNOWN_FEATURES.contains(&f.name.as_str())) {
            return Err(Error::UnsupportedFeature { feature: f.name.clone() });
        }
        Ok(config)
    }

    /// Whether trees of this repository carry the version 2 metadata (hard links, holes,
    /// xattrs, owner names, special files). A version 1 repository keeps getting version 1
    /// trees, so that the cairn that created it can still read it (`docs/format.md`).
    pub fn stores_full_metadata(&self) -> bool {
        self.format_version >= 2
    }

    pub fn validate(&self) -> Result<()> {
        self.chunker.validate().map_err(|e| Error::corrupt("repository config", e.to_string()))?;
        if !(0..=22).contains(&self.compression_level) {
            return Err(Error::corrupt("repository config", format!("compression level {}", self.compression_level)));
        }
        if !(1 << 20..=1 << 30).contains(&self.pack_target_bytes) {
            return Err(Error::corrupt("repository config", format!("pack size {}", self.pack_target_bytes)));
        }
        let sorted = self.features.windows(2).all(|w| w[0].name < w[1].name);
        if !sorted || (self.format_version < 2 && !self.features.is_empty()) {
            return Err(Error::corrupt("repository config", "features unsorted or repeated"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(version: u16) -> Config {
        Config {
            id: RepoId(Digest([7; 32])),
            created_ns: 42,
            chunker: ChunkerParams::default(),
            compression_level: 2,
            pack_target_bytes: 16 << 20,
            features: Vec::new(),
            format_version: version,
        }
    }

    #[test]
    fn both_versions_round_trip() {
        for v in [1, 2] {
            let c = sample(v);
            let bytes = c.encode().unwrap();
            assert_eq!(codec::open(&bytes, RecordKind::Config, "c").unwrap().version, v);
            assert_eq!(Config::decode(&bytes).unwrap(), c);
        }
    }

    #[test]
    fn unknown_feature_is_refused_by_name() {
        let mut c = sample(2);
        c.features.push(Feature { name: "compression-dictionaries".into(), params: vec![1, 2] });
        let err = Config::decode(&c.encode().unwrap()).unwrap_err();
        assert!(matches!(&err, Error::UnsupportedFeature { feature } if feature == "compression-dictionaries"));
        assert_eq!(err.exit_code(), crate::error::exit::UNSUPPORTED_VERSION);
        assert!(err.to_string().contains("uses feature \"compression-dictionaries\" that this cairn does not support"));
    }

    #[test]
    fn newer_version_names_both() {
        let bytes = codec::seal(RecordKind::Config, 3, &1u8).unwrap();
        let err = Config::decode(&bytes).unwrap_err();
        assert!(matches!(err, Error::UnsupportedVersion { found: 3, supported: 2, .. }));
    }
}
