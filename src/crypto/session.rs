//! Write-only sessions: a writer that cannot open anything seals with a fresh data key of its
//! own, and seals that key to the repository's X25519 public key (ephemeral-static ECDH, as
//! bupstash does). Only a full key, which derives the repository's X25519 secret, opens it.
//!
//! Session header (`docs/format.md` §13.6), stored by the writer before any object it seals:
//!
//! ```text
//! offset size field
//! 0      1    version, 1
//! 1      32   ephemeral X25519 public key E
//! 33     73   suite 1 envelope of the 32-byte session key, kind SessionKey,
//!             context E | repository public key P,
//!             key = blake3::derive_key(CONTEXT_WRAP, shared | E | P), shared = X25519(e, P)
//! ```
//!
//! The session id is the first 16 bytes of BLAKE3 of the whole header.

use x25519_dalek::{PublicKey, StaticSecret};

use super::frame::{self, SessionId, KEY_OVERHEAD_BYTES, SESSION_ID_BYTES};
use super::keys::{fill_random, SecretKey, KEY_BYTES};
use super::Kind;
use crate::error::{Error, Result};

pub const SESSION_HEADER_VERSION: u8 = 1;
pub const SESSION_HEADER_BYTES: usize = 1 + 32 + KEY_OVERHEAD_BYTES + KEY_BYTES;
const CONTEXT_WRAP: &str = "cairn 2026-12-03 write-only session key wrap v1";

/// A session a write-only host just started: its id, the header to store, and its data key.
#[derive(Debug)]
pub struct NewSession {
    pub id: SessionId,
    pub header: Vec<u8>,
    pub(crate) key: SecretKey,
}

/// The session id of a header's bytes.
pub fn session_id(header: &[u8]) -> SessionId {
    let mut id = [0u8; SESSION_ID_BYTES];
    id.copy_from_slice(&blake3::hash(header).as_bytes()[..SESSION_ID_BYTES]);
    id
}

fn wrap_key(shared: &[u8; 32], ephemeral: &[u8; 32], repo_public: &[u8; 32]) -> SecretKey {
    let mut material = [0u8; 96];
    material[..32].copy_from_slice(shared);
    material[32..64].copy_from_slice(ephemeral);
    material[64..].copy_from_slice(repo_public);
    let k = SecretKey::from_bytes(blake3::derive_key(CONTEXT_WRAP, &material));
    zeroize::Zeroize::zeroize(&mut material);
    k
}

fn wrap_context(ephemeral: &[u8; 32], repo_public: &[u8; 32]) -> [u8; 64] {
    let mut c = [0u8; 64];
    c[..32].copy_from_slice(ephemeral);
    c[32..].copy_from_slice(repo_public);
    c
}

/// Starts a session: a random data key sealed to `repo_public`.
pub fn start(repo_public: &[u8; 32]) -> Result<NewSession> {
    let key = SecretKey::random()?;
    let mut e = [0u8; 32];
    fill_random(&mut e)?;
    let ephemeral = StaticSecret::from(e);
    zeroize::Zeroize::zeroize(&mut e);
    let e_pub = PublicKey::from(&ephemeral).to_bytes();
    let shared = ephemeral.diffie_hellman(&PublicKey::from(*repo_public));
    if !shared.was_contributory() {
        return Err(Error::InvalidArgument("the repository public key is not a valid X25519 key".into()));
    }
    let wrap = wrap_key(shared.as_bytes(), &e_pub, repo_public);
    let mut header = Vec::with_capacity(SESSION_HEADER_BYTES);
    header.push(SESSION_HEADER_VERSION);
    header.extend_from_slice(&e_pub);
    header.extend(frame::seal(&wrap, None, Kind::SessionKey, &wrap_context(&e_pub, repo_public), key.as_bytes())?);
    Ok(NewSession { id: session_id(&header), header, key })
}

/// Opens a session header with the repository's X25519 secret; checks it is the header of
/// session `id`.
pub fn open(repo_secret: &SecretKey, id: &SessionId, header: &[u8]) -> Result<SecretKey> {
    let what = Kind::SessionKey.name();
    if header.len() != SESSION_HEADER_BYTES {
        return Err(Error::corrupt(
            what,
            format!("session header has {} bytes, expected {SESSION_HEADER_BYTES}", header.len()),
        ));
    }
    if header[0] != SESSION_HEADER_VERSION {
        return Err(Error::UnsupportedVersion { what: what.into(), found: header[0].into(), supported: 1 });
    }
    if &session_id(header) != id {
        return Err(Error::corrupt(what, "session header does not match its id"));
    }
    let mut e_pub = [0u8; 32];
    e_pub.copy_from_slice(&header[1..33]);
    let secret = StaticSecret::from(*repo_secret.as_bytes());
    let repo_public = PublicKey::from(&secret).to_bytes();
    let shared = secret.diffie_hellman(&PublicKey::from(e_pub));
    if !shared.was_contributory() {
        return Err(Error::corrupt(what, "ephemeral key is a low-order point"));
    }
    let wrap = wrap_key(shared.as_bytes(), &e_pub, &repo_public);
    let sealed = frame::parse(&header[33..], Kind::SessionKey)?;
    let mut out = Vec::with_capacity(KEY_BYTES + 16);
    frame::open_into(&wrap, &sealed, Kind::SessionKey, &wrap_context(&e_pub, &repo_public), &mut out)?;
    let key: [u8; KEY_BYTES] =
        out.as_slice().try_into().map_err(|_| Error::corrupt(what, "session key is not 32 bytes"))?;
    zeroize::Zeroize::zeroize(&mut out);
    Ok(SecretKey::from_bytes(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    #[test]
    fn full_key_opens_what_a_session_sealed() {
        let full = MasterKey::from_bytes([1; 32]).derive();
        let s = start(&full.repo_public()).unwrap();
        assert_eq!(s.header.len(), SESSION_HEADER_BYTES);
        let key = open(&full.repo_secret, &s.id, &s.header).unwrap();
        assert_eq!(key, s.key);
    }

    #[test]
    fn another_repository_cannot_open_it() {
        let a = MasterKey::from_bytes([1; 32]).derive();
        let b = MasterKey::from_bytes([2; 32]).derive();
        let s = start(&a.repo_public()).unwrap();
        assert!(matches!(open(&b.repo_secret, &s.id, &s.header), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn every_flipped_byte_of_the_header_is_rejected() {
        let full = MasterKey::from_bytes([1; 32]).derive();
        let s = start(&full.repo_public()).unwrap();
        for i in 0..s.header.len() {
            let mut m = s.header.clone();
            m[i] ^= 0x10;
            // Both with the original id and with the changed header's own id.
            assert!(open(&full.repo_secret, &s.id, &m).is_err(), "flip at {i}");
            assert!(open(&full.repo_secret, &session_id(&m), &m).is_err(), "flip at {i} (own id)");
        }
        assert!(open(&full.repo_secret, &s.id, &s.header[..50]).is_err());
    }

    #[test]
    fn low_order_public_keys_are_refused() {
        assert!(start(&[0; 32]).is_err());
        let full = MasterKey::from_bytes([1; 32]).derive();
        let mut h = start(&full.repo_public()).unwrap().header;
        h[1..33].fill(0);
        assert!(open(&full.repo_secret, &session_id(&h), &h).is_err());
    }

    #[test]
    fn sessions_are_fresh() {
        let full = MasterKey::from_bytes([1; 32]).derive();
        let (a, b) = (start(&full.repo_public()).unwrap(), start(&full.repo_public()).unwrap());
        assert_ne!(a.id, b.id);
        assert_ne!(a.key, b.key);
    }
}
