//! The AEAD envelope every sealed object is wrapped in (`docs/format.md` §13.4).
//!
//! ```text
//! suite 1, sealed with a repository key:   01 | salt (24) | ciphertext | tag (16)
//! suite 2, sealed with a session key:      02 | session id (16) | salt (24) | ciphertext | tag (16)
//! ```
//!
//! The cipher is AES-256-GCM (ring). Each object gets its own key,
//! `blake3::keyed_hash(key, salt)` with a fresh random 192-bit salt, and GCM's 96-bit nonce is
//! zero: a key is used for exactly one message, so no nonce can repeat however many objects a
//! repository holds (a 192-bit salt collides with chance < 2^-96 after 2^48 objects).
//! Associated data is `suite | kind | session id (suite 2) | context`, binding each ciphertext
//! to its kind and identity (the caller's context: an object's id, a blob's pack and id).

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

use super::keys::{fill_random, SecretKey};
use super::Kind;
use crate::error::{Error, Result};

/// Suite byte of objects sealed with a key derived from the master key (or a passphrase).
pub const SUITE_KEY: u8 = 1;
/// Suite byte of objects sealed by a write-only session with its own data key.
pub const SUITE_SESSION: u8 = 2;
pub const SALT_BYTES: usize = 24;
pub const TAG_BYTES: usize = 16;
pub const SESSION_ID_BYTES: usize = 16;
/// Bytes a suite 1 envelope adds to its plaintext.
pub const KEY_OVERHEAD_BYTES: usize = 1 + SALT_BYTES + TAG_BYTES;
/// Bytes a suite 2 envelope adds to its plaintext.
pub const SESSION_OVERHEAD_BYTES: usize = 1 + SESSION_ID_BYTES + SALT_BYTES + TAG_BYTES;

/// A write-only session's id: the first 16 bytes of BLAKE3 of its session header.
pub type SessionId = [u8; SESSION_ID_BYTES];

/// A parsed envelope; `body` is ciphertext followed by the tag.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub session: Option<SessionId>,
    pub salt: [u8; SALT_BYTES],
    pub body: &'a [u8],
}

impl Frame<'_> {
    fn suite(&self) -> u8 {
        if self.session.is_some() {
            SUITE_SESSION
        } else {
            SUITE_KEY
        }
    }
}

/// Splits an envelope into its fields, checking lengths only (no key needed).
pub fn parse(bytes: &[u8], kind: Kind) -> Result<Frame<'_>> {
    let short = || Error::corrupt(kind.name(), format!("sealed object of {} bytes is too short", bytes.len()));
    let (&suite, rest) = bytes.split_first().ok_or_else(short)?;
    let (session, rest) = match suite {
        SUITE_KEY => (None, rest),
        SUITE_SESSION => {
            let (id, rest) = rest.split_at_checked(SESSION_ID_BYTES).ok_or_else(short)?;
            (Some(id.try_into().map_err(|_| short())?), rest)
        }
        other => return Err(Error::corrupt(kind.name(), format!("unknown encryption suite {other}"))),
    };
    let (salt, body) = rest.split_at_checked(SALT_BYTES).ok_or_else(short)?;
    if body.len() < TAG_BYTES {
        return Err(short());
    }
    Ok(Frame { session, salt: salt.try_into().map_err(|_| short())?, body })
}

/// An envelope's session (if any) and ciphertext length, checked without a key (fuzzing,
/// `repo check` diagnostics).
pub fn inspect(bytes: &[u8], kind: Kind) -> Result<(Option<SessionId>, usize)> {
    parse(bytes, kind).map(|f| (f.session, f.body.len() - TAG_BYTES))
}

fn object_key(key: &SecretKey, salt: &[u8; SALT_BYTES]) -> LessSafeKey {
    let k = SecretKey::from_bytes(*blake3::keyed_hash(key.as_bytes(), salt).as_bytes());
    // A 32-byte key is always accepted by AES-256-GCM.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, k.as_bytes()).expect("AES-256 takes 32-byte keys"))
}

fn associated_data(suite: u8, kind: Kind, session: Option<&SessionId>, context: &[u8]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(2 + SESSION_ID_BYTES + context.len());
    ad.push(suite);
    ad.push(kind.to_u8());
    if let Some(id) = session {
        ad.extend_from_slice(id);
    }
    ad.extend_from_slice(context);
    ad
}

/// Seals `plaintext` under `key` with a fresh random salt.
pub fn seal(
    key: &SecretKey,
    session: Option<&SessionId>,
    kind: Kind,
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let mut salt = [0u8; SALT_BYTES];
    fill_random(&mut salt)?;
    Ok(seal_with_salt(key, session, kind, context, plaintext, &salt))
}

/// Seals with a given salt. Only `seal` (random salt) may be used for real objects; tests use
/// this for golden vectors.
pub(crate) fn seal_with_salt(
    key: &SecretKey,
    session: Option<&SessionId>,
    kind: Kind,
    context: &[u8],
    plaintext: &[u8],
    salt: &[u8; SALT_BYTES],
) -> Vec<u8> {
    let suite = if session.is_some() { SUITE_SESSION } else { SUITE_KEY };
    let mut out = Vec::with_capacity(plaintext.len() + SESSION_OVERHEAD_BYTES);
    out.push(suite);
    if let Some(id) = session {
        out.extend_from_slice(id);
    }
    out.extend_from_slice(salt);
    let header = out.len();
    out.extend_from_slice(plaintext);
    let ad = associated_data(suite, kind, session, context);
    let tag = object_key(key, salt)
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key([0; 12]), Aad::from(&ad), &mut out[header..])
        // ring fails only for plaintexts over 64 GiB; objects are bounded far below that.
        .expect("AES-GCM seals messages under 64 GiB");
    out.extend_from_slice(tag.as_ref());
    out
}

/// Opens a parsed envelope into `out` (cleared first), checking the tag against the
/// associated data. Any mismatch — key, kind, context, a changed byte — is one error.
pub fn open_into(key: &SecretKey, frame: &Frame<'_>, kind: Kind, context: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    out.extend_from_slice(frame.body);
    let ad = associated_data(frame.suite(), kind, frame.session.as_ref(), context);
    let n = object_key(key, &frame.salt)
        .open_in_place(Nonce::assume_unique_for_key([0; 12]), Aad::from(&ad), out)
        .map_err(|_| {
            Error::corrupt(kind.name(), "authentication failed (wrong key, or the bytes were changed or moved)")
        })?
        .len();
    out.truncate(n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::from_bytes([7; 32])
    }

    fn open(sealed: &[u8], kind: Kind, ctx: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        open_into(&key(), &parse(sealed, kind)?, kind, ctx, &mut out)?;
        Ok(out)
    }

    #[test]
    fn round_trip_and_overhead() {
        for len in [0usize, 1, 15, 16, 17, 4096, 100_000] {
            let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let s = seal(&key(), None, Kind::DataBlob, b"ctx", &pt).unwrap();
            assert_eq!(s.len(), pt.len() + KEY_OVERHEAD_BYTES);
            assert_eq!(open(&s, Kind::DataBlob, b"ctx").unwrap(), pt);
            let id = [5u8; 16];
            let s = seal(&key(), Some(&id), Kind::Tree, b"ctx", &pt).unwrap();
            assert_eq!(s.len(), pt.len() + SESSION_OVERHEAD_BYTES);
            assert_eq!(parse(&s, Kind::Tree).unwrap().session, Some(id));
        }
    }

    #[test]
    fn every_flipped_byte_is_rejected() {
        let s = seal(&key(), None, Kind::Snapshot, b"id", b"a small snapshot record").unwrap();
        for i in 0..s.len() {
            for bit in [0x01u8, 0x80] {
                let mut m = s.clone();
                m[i] ^= bit;
                assert!(open(&m, Kind::Snapshot, b"id").is_err(), "flip at {i} accepted");
            }
        }
    }

    #[test]
    fn kind_context_and_key_are_bound() {
        let s = seal(&key(), None, Kind::DataBlob, b"pack1blob1", b"data").unwrap();
        assert!(open(&s, Kind::Tree, b"pack1blob1").is_err());
        assert!(open(&s, Kind::DataBlob, b"pack2blob1").is_err());
        assert!(open(&s, Kind::DataBlob, b"").is_err());
        let mut out = Vec::new();
        let other = SecretKey::from_bytes([8; 32]);
        let err = open_into(&other, &parse(&s, Kind::DataBlob).unwrap(), Kind::DataBlob, b"pack1blob1", &mut out);
        assert!(matches!(err, Err(Error::Corrupt { .. })));
    }

    #[test]
    fn truncated_and_unknown_suites_are_corrupt_not_panics() {
        let s = seal(&key(), Some(&[1; 16]), Kind::Lock, b"", b"x").unwrap();
        for n in 0..s.len() {
            assert!(matches!(open(&s[..n], Kind::Lock, b""), Err(Error::Corrupt { .. })), "prefix {n}");
        }
        let mut m = s.clone();
        m[0] = 3;
        let err = open(&m, Kind::Lock, b"").unwrap_err().to_string();
        assert!(err.contains("unknown encryption suite 3"), "{err}");
    }

    #[test]
    fn salts_never_repeat_over_many_seals() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20_000 {
            let s = seal(&key(), None, Kind::DataBlob, b"", b"same plaintext").unwrap();
            assert!(seen.insert(s[1..1 + SALT_BYTES].to_vec()), "salt repeated");
        }
    }

    /// Golden ciphertext: pins the cipher, the per-object key derivation and the layout.
    #[test]
    fn golden_ciphertext() {
        let s = seal_with_salt(&key(), None, Kind::Snapshot, b"golden id", b"golden plaintext", &[3; SALT_BYTES]);
        let hex: String = s.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, GOLDEN);
    }

    const GOLDEN: &str =
        "010303030303030303030303030303030303030303030303036d801483f8289f1547c7cba07c778d84d3244ba5f243920997765cc409fc58c1";
}
