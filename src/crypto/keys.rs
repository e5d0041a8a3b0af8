//! Key material: the random master key and the subkeys derived from it.
//!
//! Every subkey is `blake3::derive_key(CONTEXT, master)` with its own context string
//! (`docs/format.md` §13.3), so learning one subkey reveals nothing about the others or the
//! master key. The contexts are part of the format: changing one changes every id and
//! ciphertext, which the golden vectors in the tests catch.
//!
//! Secrets are zeroed when dropped and never printed (`Debug` shows a fingerprint only).

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroize;

use crate::error::{Error, Result};

/// Bytes in every symmetric key and in the master key.
pub const KEY_BYTES: usize = 32;

/// Derivation contexts: globally unique, application-specific, hard-coded (BLAKE3's rules).
pub(crate) const CONTEXT_SEAL: &str = "cairn 2026-12-03 seal key (data and metadata AEAD) v1";
pub(crate) const CONTEXT_INDEX: &str = "cairn 2026-12-03 index key (config, locks, pack trailers AEAD) v1";
pub(crate) const CONTEXT_ID: &str = "cairn 2026-12-03 chunk id key v1";
pub(crate) const CONTEXT_CHUNKER: &str = "cairn 2026-12-03 chunker seed v1";
pub(crate) const CONTEXT_REPO_SECRET: &str = "cairn 2026-12-03 repository x25519 secret v1";

/// Fills `buf` from the operating system's random source (ring's `SystemRandom`: getrandom(2)).
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    SystemRandom::new().fill(buf).map_err(|_| Error::Io {
        context: "reading the system random source".into(),
        source: std::io::Error::other("getrandom failed"),
    })
}

/// A 256-bit secret: zeroed on drop, shown only as a fingerprint.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; KEY_BYTES]);

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        SecretKey(bytes)
    }

    /// A fresh key from the system random source.
    pub fn random() -> Result<Self> {
        let mut k = [0u8; KEY_BYTES];
        fill_random(&mut k)?;
        Ok(SecretKey(k))
    }

    pub fn as_bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }

    /// First 8 bytes of BLAKE3 of the key, hex: names a key without revealing it.
    pub fn fingerprint(&self) -> String {
        hex8(blake3::hash(&self.0).as_bytes())
    }

    fn derive(&self, context: &str) -> SecretKey {
        SecretKey(blake3::derive_key(context, &self.0))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.fingerprint())
    }
}

pub(crate) fn hex8(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The repository's master key: random, stored only wrapped in key files (or on paper).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MasterKey(SecretKey);

impl MasterKey {
    pub fn generate() -> Result<Self> {
        Ok(MasterKey(SecretKey::random()?))
    }

    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        MasterKey(SecretKey(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; KEY_BYTES] {
        self.0.as_bytes()
    }

    pub fn fingerprint(&self) -> String {
        self.0.fingerprint()
    }

    /// Every subkey of a full (read and write) key.
    pub fn derive(&self) -> FullKeys {
        FullKeys {
            seal: self.0.derive(CONTEXT_SEAL),
            index: self.0.derive(CONTEXT_INDEX),
            id: IdKey(self.0.derive(CONTEXT_ID)),
            chunker_seed: chunker_seed(&self.0),
            repo_secret: self.0.derive(CONTEXT_REPO_SECRET),
        }
    }
}

fn chunker_seed(master: &SecretKey) -> u64 {
    let k = master.derive(CONTEXT_CHUNKER);
    let mut first = [0u8; 8];
    first.copy_from_slice(&k.as_bytes()[..8]);
    // fastcdc treats seed 0 as "no seed"; a derived 0 (chance 2^-64) would merely mean the
    // public gear table, so it is not special-cased.
    u64::from_le_bytes(first)
}

/// 16 bytes that tell whether a key belongs to a repository (stored in its config's
/// `encryption` feature): `blake3::keyed_hash(index key, "cairn key check")`, truncated.
fn key_check(index: &SecretKey) -> [u8; 16] {
    let mut c = [0u8; 16];
    c.copy_from_slice(&blake3::keyed_hash(index.as_bytes(), b"cairn key check").as_bytes()[..16]);
    c
}

/// The key of chunk ids: `blake3::keyed_hash(id key, plaintext)` in encrypted repositories.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct IdKey(pub(crate) SecretKey);

impl IdKey {
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        IdKey(SecretKey(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; KEY_BYTES] {
        self.0.as_bytes()
    }

    /// The id of a plaintext chunk: 32 bytes that reveal nothing about it without this key.
    pub fn chunk_id(&self, plaintext: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(self.0.as_bytes(), plaintext).as_bytes()
    }
}

/// The subkeys of a full key. Held in memory only; derived from the master key on open.
#[derive(Clone, Debug)]
pub struct FullKeys {
    /// AEAD key of every data and metadata object (blobs, trees, snapshots, WAL records).
    pub(crate) seal: SecretKey,
    /// AEAD key of what a write-only host must also read: config, locks, pack trailers.
    pub(crate) index: SecretKey,
    pub id: IdKey,
    /// The FastCDC gear seed (`with_level_and_seed`): cut points reveal nothing.
    pub chunker_seed: u64,
    /// The repository's X25519 secret; write-only hosts hold only its public half.
    pub(crate) repo_secret: SecretKey,
}

impl FullKeys {
    /// The repository's X25519 public key, to which write-only sessions seal their keys.
    pub fn repo_public(&self) -> [u8; 32] {
        let secret = x25519_dalek::StaticSecret::from(*self.repo_secret.as_bytes());
        x25519_dalek::PublicKey::from(&secret).to_bytes()
    }

    /// The repository's key check (`docs/format.md` §13.1); equal for its full and
    /// write-only keys.
    pub fn key_check(&self) -> [u8; 16] {
        key_check(&self.index)
    }

    /// What a write-only key file carries: no key that opens anything but config, locks and
    /// pack trailers.
    pub fn write_only(&self) -> WriteOnlyKeys {
        WriteOnlyKeys {
            repo_public: self.repo_public(),
            index: self.index.clone(),
            id: self.id.clone(),
            chunker_seed: self.chunker_seed,
        }
    }

    /// Fingerprints of each subkey (and the public key), for golden tests and `key list`.
    pub fn fingerprints(&self) -> [(&'static str, String); 5] {
        [
            ("seal", self.seal.fingerprint()),
            ("index", self.index.fingerprint()),
            ("id", self.id.0.fingerprint()),
            ("chunker_seed", format!("{:016x}", self.chunker_seed)),
            ("repo_public", hex8(&self.repo_public())),
        ]
    }
}

/// The keys of a write-only host: it can seal new objects and dedup, but open nothing that
/// holds data or names (`docs/security.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOnlyKeys {
    pub repo_public: [u8; 32],
    pub(crate) index: SecretKey,
    pub id: IdKey,
    pub chunker_seed: u64,
}

impl WriteOnlyKeys {
    pub fn key_check(&self) -> [u8; 16] {
        key_check(&self.index)
    }

    pub(crate) const ENCODED_BYTES: usize = 32 + KEY_BYTES + KEY_BYTES + 8;

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::ENCODED_BYTES);
        v.extend_from_slice(&self.repo_public);
        v.extend_from_slice(self.index.as_bytes());
        v.extend_from_slice(self.id.as_bytes());
        v.extend_from_slice(&self.chunker_seed.to_le_bytes());
        v
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != Self::ENCODED_BYTES {
            return None;
        }
        let key = |r: std::ops::Range<usize>| -> [u8; 32] {
            let mut k = [0u8; 32];
            k.copy_from_slice(&b[r]);
            k
        };
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&b[96..104]);
        Some(WriteOnlyKeys {
            repo_public: key(0..32),
            index: SecretKey(key(32..64)),
            id: IdKey(SecretKey(key(64..96))),
            chunker_seed: u64::from_le_bytes(seed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed_master() -> MasterKey {
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = i as u8;
        }
        MasterKey::from_bytes(k)
    }

    /// Golden vectors: a BLAKE3, x25519-dalek or context change that alters derivation (and so
    /// every id and ciphertext in existing repositories) fails here.
    #[test]
    fn golden_subkeys_and_keyed_chunk_id() {
        let keys = fixed_master().derive();
        let got: Vec<(&str, String)> = keys.fingerprints().into_iter().collect();
        let want = GOLDEN_FINGERPRINTS;
        for ((name, fp), (wname, wfp)) in got.iter().zip(want.iter()) {
            assert_eq!((*name, fp.as_str()), (*wname, *wfp), "subkey {name} changed");
        }
        let id = keys.id.chunk_id(b"cairn golden chunk");
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, GOLDEN_CHUNK_ID);
        assert_ne!(&id, blake3::hash(b"cairn golden chunk").as_bytes(), "keyed id must differ from plain id");
    }

    const GOLDEN_FINGERPRINTS: [(&str, &str); 5] = [
        ("seal", "b741e53843b13e3e"),
        ("index", "779457e9af81471b"),
        ("id", "b1f2f9b83317f7f4"),
        ("chunker_seed", "281fece50a99fe3c"),
        ("repo_public", "8c0b31a1a90a5dcd"),
    ];
    const GOLDEN_CHUNK_ID: &str = "7478158040f123ed4c6c86a295c140ddd62c94c38738df9382fbdcbca7f832bd";

    #[test]
    fn subkeys_are_distinct_and_depend_on_the_master() {
        let a = fixed_master().derive();
        let b = MasterKey::from_bytes([9; 32]).derive();
        let fps: std::collections::BTreeSet<String> = a.fingerprints().iter().map(|(_, f)| f.clone()).collect();
        assert_eq!(fps.len(), 5);
        assert_ne!(a.fingerprints(), b.fingerprints());
    }

    #[test]
    fn write_only_keys_round_trip_and_hold_no_full_secret() {
        let full = fixed_master().derive();
        let wo = full.write_only();
        let enc = wo.encode();
        assert_eq!(WriteOnlyKeys::decode(&enc), Some(wo.clone()));
        assert_eq!(wo.key_check(), full.key_check());
        assert_ne!(MasterKey::from_bytes([9; 32]).derive().key_check(), full.key_check());
        for secret in [fixed_master().as_bytes(), full.seal.as_bytes(), full.repo_secret.as_bytes()] {
            assert!(!enc.windows(32).any(|w| w == secret), "write-only keys leak a full secret");
        }
        assert_eq!(WriteOnlyKeys::decode(&enc[1..]), None);
    }

    #[test]
    fn debug_never_prints_key_bytes() {
        let k = SecretKey::from_bytes([0xab; 32]);
        assert!(!format!("{k:?}").contains("abab"));
    }

    #[test]
    fn random_keys_differ() {
        assert_ne!(SecretKey::random().unwrap(), SecretKey::random().unwrap());
    }
}
