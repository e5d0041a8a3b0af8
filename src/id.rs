//! Typed 32-byte identifiers (BLAKE3 digests) and their hex form.
//!
//! Every object in a repository is named by the BLAKE3 hash of its bytes: chunks by their
//! plaintext, packs and snapshots by their encoded bytes. Ids print as 64 lowercase hex digits;
//! `FromStr` accepts exactly that. Unique-prefix lookup for snapshots lives in `repo`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Length of every id in bytes.
pub const ID_BYTES: usize = 32;

/// The raw 32 bytes shared by all id types.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct Digest(pub [u8; ID_BYTES]);

impl Digest {
    /// BLAKE3 of `data`.
    pub fn of(data: &[u8]) -> Self {
        Digest(*blake3::hash(data).as_bytes())
    }

    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(ID_BYTES * 2);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        s
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != ID_BYTES * 2 {
            return None;
        }
        let mut out = [0u8; ID_BYTES];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
        }
        Some(Digest(out))
    }

    pub fn from_slice(s: &[u8]) -> Option<Self> {
        <[u8; ID_BYTES]>::try_from(s).ok().map(Digest)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// True when `s` is a non-empty string of hex digits (a candidate id prefix).
pub fn is_hex_prefix(s: &str) -> bool {
    !s.is_empty() && s.len() <= ID_BYTES * 2 && s.bytes().all(|c| hex_val(c).is_some())
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
        pub struct $name(pub Digest);

        impl $name {
            pub fn to_hex(&self) -> String {
                self.0.to_hex()
            }
            /// The first 8 hex digits, for humans.
            pub fn short(&self) -> String {
                let mut s = self.0.to_hex();
                s.truncate(8);
                s
            }
            pub fn as_bytes(&self) -> &[u8; ID_BYTES] {
                &self.0 .0
            }
            pub fn from_slice(s: &[u8]) -> Option<Self> {
                Digest::from_slice(s).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Digest::from_hex(s).map($name).ok_or_else(|| {
                    Error::InvalidArgument(format!("{} id {s:?} is not 64 hex digits", $what))
                })
            }
        }
    };
}

typed_id!(
    /// BLAKE3 of a blob's plaintext: file data chunks and serialized trees alike.
    ChunkId,
    "chunk"
);
typed_id!(
    /// BLAKE3 of a pack file's complete bytes.
    PackId,
    "pack"
);
typed_id!(
    /// BLAKE3 of a snapshot object's encoded bytes.
    SnapshotId,
    "snapshot"
);

impl ChunkId {
    /// Names no blob (no data hashes to all zero bits): marks a run of zero bytes (a hole) in
    /// a file's chunk list, stored without data (tree version 2).
    pub const ZERO_RUN: ChunkId = ChunkId(Digest([0; ID_BYTES]));

    pub fn of(data: &[u8]) -> Self {
        ChunkId(Digest::of(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let id = ChunkId::of(b"hello");
        let parsed: ChunkId = id.to_hex().parse().unwrap();
        assert_eq!(id, parsed);
        assert_eq!(id.short().len(), 8);
    }

    #[test]
    fn rejects_bad_hex() {
        assert!("zz".parse::<PackId>().is_err());
        assert!("ab".repeat(33).parse::<PackId>().is_err());
        assert!(is_hex_prefix("3fa2"));
        assert!(!is_hex_prefix("latest"));
    }
}
