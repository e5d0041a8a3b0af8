//! What a sealed object is: part of its associated data, and what picks its key.

/// The kind of a sealed object. The byte value is bound into the associated data, so a
/// ciphertext of one kind never opens as another (`docs/format.md` §13.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The repository config. Index key: write-only hosts read it.
    Config,
    /// A lock record. Index key.
    Lock,
    /// A pack's trailer (blob ids, kinds, offsets, lengths). Index key: dedup needs it.
    PackTrailer,
    /// A chunk of file or WAL data inside a pack.
    DataBlob,
    /// A directory tree.
    Tree,
    /// A piece of a long file's chunk list.
    ChunkList,
    /// A snapshot record.
    Snapshot,
    /// A WAL catalog record.
    WalRecord,
    /// The wrapped key inside a key file (sealed under a passphrase key).
    KeyFile,
    /// A write-only session's data key (sealed to the repository public key).
    SessionKey,
    /// The contents of an export file's manifest (host, paths, file list).
    ExportManifest,
    /// A run record (`records/`).
    RunRecord,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::Config,
        Kind::Lock,
        Kind::PackTrailer,
        Kind::DataBlob,
        Kind::Tree,
        Kind::ChunkList,
        Kind::Snapshot,
        Kind::WalRecord,
        Kind::KeyFile,
        Kind::SessionKey,
        Kind::ExportManifest,
        Kind::RunRecord,
    ];

    pub fn to_u8(self) -> u8 {
        match self {
            Kind::Config => 1,
            Kind::Lock => 2,
            Kind::PackTrailer => 3,
            Kind::DataBlob => 4,
            Kind::Tree => 5,
            Kind::ChunkList => 6,
            Kind::Snapshot => 7,
            Kind::WalRecord => 8,
            Kind::KeyFile => 9,
            Kind::SessionKey => 10,
            Kind::ExportManifest => 11,
            Kind::RunRecord => 12,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Config => "config",
            Kind::Lock => "lock",
            Kind::PackTrailer => "pack trailer",
            Kind::DataBlob => "data blob",
            Kind::Tree => "tree",
            Kind::ChunkList => "chunk list",
            Kind::Snapshot => "snapshot",
            Kind::WalRecord => "WAL record",
            Kind::KeyFile => "key file",
            Kind::SessionKey => "session key",
            Kind::ExportManifest => "export manifest",
            Kind::RunRecord => "run record",
        }
    }

    /// Sealed with the index key, which write-only hosts hold: what a writer must read to
    /// join a repository and dedup against it. Everything else holds data or names.
    pub fn uses_index_key(self) -> bool {
        matches!(self, Kind::Config | Kind::Lock | Kind::PackTrailer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_bytes_are_distinct() {
        let set: std::collections::BTreeSet<u8> = Kind::ALL.iter().map(|k| k.to_u8()).collect();
        assert_eq!(set.len(), Kind::ALL.len());
    }
}
