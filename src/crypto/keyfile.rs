//! Key files (`keys/<id>`): the master key — or a write-only host's keys — wrapped under a
//! key derived from a passphrase with argon2id. Layout (`docs/format.md` §13.2):
//!
//! ```text
//! offset   size  field
//! 0        6     magic "CRNKEY"
//! 6        1     key file version, 1
//! 7        1     class: 1 full, 2 write-only
//! 8        1     KDF: 1 = argon2id, version 0x13
//! 9        4     m, memory in KiB (u32 LE)
//! 13       4     t, passes (u32 LE)
//! 17       4     p, lanes (u32 LE)
//! 21       16    salt
//! 37       8     created, Unix seconds (i64 LE)
//! 45       1     h, host name length;  46: host (UTF-8)
//! 46+h     1     u, user name length;  47+h: user (UTF-8)
//! 47+h+u   rest  suite 1 envelope (frame.rs), kind KeyFile, context = bytes 0 .. 47+h+u,
//!                plaintext: master key (32 bytes) or write-only keys (104 bytes)
//! ```
//!
//! Everything before the envelope is authenticated as its associated data, so the KDF
//! parameters and names cannot be changed without the passphrase. Opening costs exactly one
//! KDF run per key file tried.

use argon2::{Algorithm, Argon2, Params, Version};

use super::frame::{self, KEY_OVERHEAD_BYTES};
use super::keys::{fill_random, MasterKey, SecretKey, WriteOnlyKeys, KEY_BYTES};
use super::Kind;
use crate::error::{Error, Result};

const MAGIC: &[u8; 6] = b"CRNKEY";
pub const KEY_FILE_VERSION: u8 = 1;
const KDF_ARGON2ID: u8 = 1;
const SALT_BYTES: usize = 16;
const FIXED_HEADER_BYTES: usize = 6 + 1 + 1 + 1 + 4 + 4 + 4 + SALT_BYTES + 8;
/// Longest host or user name kept in a key file (longer ones are cut at a char boundary).
const NAME_MAX_BYTES: usize = 255;
/// Bounds a reader accepts, so a hostile key file cannot ask for terabytes or hours.
const KDF_MAX_MEMORY_KIB: u32 = 1 << 20;
const KDF_MAX_PASSES: u32 = 64;
const KDF_MAX_LANES: u32 = 16;

/// argon2id parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub passes: u32,
    pub lanes: u32,
}

impl KdfParams {
    /// ~0.5 s on the project machine (docs/performance.md, "Encryption primitives"); 64 MiB
    /// keeps the peak RSS of a backup under its 128 MiB budget.
    pub const DEFAULT: KdfParams = KdfParams { memory_kib: 64 * 1024, passes: 9, lanes: 1 };
    /// The smallest argon2 accepts: for tests only, never for real key files.
    pub const INSECURE_FAST: KdfParams = KdfParams { memory_kib: 8, passes: 1, lanes: 1 };

    fn argon2(&self) -> Result<Argon2<'static>> {
        let bad = |d: String| Error::corrupt(Kind::KeyFile.name(), d);
        if self.memory_kib > KDF_MAX_MEMORY_KIB || self.passes > KDF_MAX_PASSES || self.lanes > KDF_MAX_LANES {
            return Err(bad(format!("KDF parameters out of range: {self:?}")));
        }
        let params = Params::new(self.memory_kib, self.passes, self.lanes, Some(KEY_BYTES))
            .map_err(|e| bad(format!("KDF parameters {self:?}: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Whether a key file opens the whole repository or only writes to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyClass {
    Full,
    WriteOnly,
}

/// Who made a key file, and when: stored in the clear (authenticated) for `key list`. The
/// caller fills it in (the host name as snapshots record it, the user from the environment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyOwner {
    pub created_s: i64,
    pub host: String,
    pub user: String,
}

/// What `key list` shows; readable without the passphrase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFileMeta {
    pub class: KeyClass,
    pub kdf: KdfParams,
    pub owner: KeyOwner,
}

/// What a key file holds once opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unlocked {
    Full(MasterKey),
    WriteOnly(WriteOnlyKeys),
}

struct Parsed<'a> {
    meta: KeyFileMeta,
    salt: [u8; SALT_BYTES],
    header: &'a [u8],
    sealed: &'a [u8],
}

/// A key file's id: BLAKE3 of its bytes, hex (the name under `keys/`).
pub fn key_file_id(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Writes a full key file for `master`.
pub fn create_full(master: &MasterKey, passphrase: &[u8], kdf: KdfParams, owner: &KeyOwner) -> Result<Vec<u8>> {
    create(KeyClass::Full, master.as_bytes(), passphrase, kdf, owner)
}

/// Writes a write-only key file: it holds no key that opens data or metadata.
pub fn create_write_only(keys: &WriteOnlyKeys, passphrase: &[u8], kdf: KdfParams, owner: &KeyOwner) -> Result<Vec<u8>> {
    let mut payload = keys.encode();
    let out = create(KeyClass::WriteOnly, &payload, passphrase, kdf, owner);
    zeroize::Zeroize::zeroize(&mut payload);
    out
}

fn create(class: KeyClass, payload: &[u8], passphrase: &[u8], kdf: KdfParams, owner: &KeyOwner) -> Result<Vec<u8>> {
    if passphrase.is_empty() {
        return Err(Error::InvalidArgument("an empty password is not allowed".into()));
    }
    let mut salt = [0u8; SALT_BYTES];
    fill_random(&mut salt)?;
    let mut out = Vec::with_capacity(FIXED_HEADER_BYTES + 2 + 2 * NAME_MAX_BYTES + payload.len() + KEY_OVERHEAD_BYTES);
    out.extend_from_slice(MAGIC);
    out.push(KEY_FILE_VERSION);
    out.push(match class {
        KeyClass::Full => 1,
        KeyClass::WriteOnly => 2,
    });
    out.push(KDF_ARGON2ID);
    for v in [kdf.memory_kib, kdf.passes, kdf.lanes] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&salt);
    out.extend_from_slice(&owner.created_s.to_le_bytes());
    for name in [&owner.host, &owner.user] {
        let name = cut(name);
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
    }
    let kek = derive(kdf, passphrase, &salt)?;
    let sealed = frame::seal(&kek, None, Kind::KeyFile, &out, payload)?;
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn cut(name: &str) -> &str {
    let mut end = name.len().min(NAME_MAX_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

#[cfg(test)]
thread_local! {
    /// KDF runs on this thread, so tests can check the cost of a wrong password.
    pub(crate) static KDF_RUNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn derive(kdf: KdfParams, passphrase: &[u8], salt: &[u8; SALT_BYTES]) -> Result<SecretKey> {
    #[cfg(test)]
    KDF_RUNS.with(|c| c.set(c.get() + 1));
    let mut k = [0u8; KEY_BYTES];
    kdf.argon2()?
        .hash_password_into(passphrase, salt, &mut k)
        .map_err(|e| Error::InvalidArgument(format!("cannot derive a key from this password: {e}")))?;
    Ok(SecretKey::from_bytes(k))
}

/// Reads a key file's metadata without the passphrase.
pub fn decode_meta(bytes: &[u8]) -> Result<KeyFileMeta> {
    Ok(parse(bytes)?.meta)
}

fn parse(bytes: &[u8]) -> Result<Parsed<'_>> {
    let what = Kind::KeyFile.name();
    let bad = |d: &str| Error::corrupt(what, d.to_string());
    if bytes.len() < FIXED_HEADER_BYTES || &bytes[..6] != MAGIC {
        return Err(bad("not a cairn key file (too short or wrong magic)"));
    }
    if bytes[6] != KEY_FILE_VERSION {
        return Err(Error::UnsupportedVersion { what: what.into(), found: bytes[6].into(), supported: 1 });
    }
    let class = match bytes[7] {
        1 => KeyClass::Full,
        2 => KeyClass::WriteOnly,
        c => return Err(bad(&format!("unknown key class {c}"))),
    };
    if bytes[8] != KDF_ARGON2ID {
        return Err(bad(&format!("unknown KDF {}", bytes[8])));
    }
    let u32_at = |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    let kdf = KdfParams { memory_kib: u32_at(9), passes: u32_at(13), lanes: u32_at(17) };
    kdf.argon2()?; // bounds only: nothing is allocated until a passphrase is tried
    let mut salt = [0u8; SALT_BYTES];
    salt.copy_from_slice(&bytes[21..37]);
    let mut created = [0u8; 8];
    created.copy_from_slice(&bytes[37..45]);
    let (host, rest) = name_at(bytes, FIXED_HEADER_BYTES)?;
    let (user, header_end) = name_at(bytes, rest)?;
    let payload = match class {
        KeyClass::Full => KEY_BYTES,
        KeyClass::WriteOnly => WriteOnlyKeys::ENCODED_BYTES,
    };
    if bytes.len() != header_end + KEY_OVERHEAD_BYTES + payload {
        return Err(bad(&format!("{} bytes, expected {}", bytes.len(), header_end + KEY_OVERHEAD_BYTES + payload)));
    }
    let meta = KeyFileMeta { class, kdf, owner: KeyOwner { created_s: i64::from_le_bytes(created), host, user } };
    Ok(Parsed { meta, salt, header: &bytes[..header_end], sealed: &bytes[header_end..] })
}

fn name_at(bytes: &[u8], at: usize) -> Result<(String, usize)> {
    let bad = |d: &str| Error::corrupt(Kind::KeyFile.name(), d.to_string());
    let len = *bytes.get(at).ok_or_else(|| bad("truncated before a name"))? as usize;
    let raw = bytes.get(at + 1..at + 1 + len).ok_or_else(|| bad("truncated inside a name"))?;
    let name = std::str::from_utf8(raw).map_err(|_| bad("a name is not UTF-8"))?;
    Ok((name.to_string(), at + 1 + len))
}

/// What opening a key file costs, as argon2's memory × passes: the order in which to try key
/// files, cheapest first, so that a cheap key (a write-only key for `wal push`, made with low
/// `--kdf-*` on purpose) is not tried only after every expensive one has failed. A file that
/// does not parse sorts last.
pub fn kdf_cost(bytes: &[u8]) -> u64 {
    parse(bytes).map_or(u64::MAX, |p| u64::from(p.meta.kdf.memory_kib) * u64::from(p.meta.kdf.passes))
}

/// Opens one key file: one KDF run. A wrong passphrase is `WrongPassword`.
pub fn open(bytes: &[u8], passphrase: &[u8]) -> Result<Unlocked> {
    let p = parse(bytes)?; // refuses hostile KDF parameters before any memory is spent
    let kek = derive(p.meta.kdf, passphrase, &p.salt)?;
    let sealed = frame::parse(p.sealed, Kind::KeyFile)?;
    let mut out = Vec::with_capacity(p.sealed.len());
    frame::open_into(&kek, &sealed, Kind::KeyFile, p.header, &mut out).map_err(|_| Error::WrongPassword)?;
    let unlocked = match p.meta.class {
        KeyClass::Full => {
            let k: [u8; KEY_BYTES] =
                out.as_slice().try_into().map_err(|_| Error::corrupt("key file", "bad key length"))?;
            Unlocked::Full(MasterKey::from_bytes(k))
        }
        KeyClass::WriteOnly => Unlocked::WriteOnly(
            WriteOnlyKeys::decode(&out).ok_or_else(|| Error::corrupt("key file", "bad write-only key length"))?,
        ),
    };
    zeroize::Zeroize::zeroize(&mut out);
    Ok(unlocked)
}

/// Tries each key file (id, bytes) in turn with one KDF run each; the first that opens wins.
/// Damaged key files are passed over; if none opens, the answer is `WrongPassword` (or the
/// first damage, when every file was damaged).
pub fn open_any<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    passphrase: &[u8],
) -> Result<(String, Unlocked)> {
    let (mut wrong, mut damaged) = (0usize, None);
    for (id, bytes) in files {
        match open(bytes, passphrase) {
            Ok(u) => return Ok((id.to_string(), u)),
            Err(Error::WrongPassword) => wrong += 1,
            Err(e) => damaged = damaged.or(Some(e)),
        }
    }
    // With every file damaged there is no password to be wrong about: report the damage.
    match damaged {
        Some(e) if wrong == 0 => Err(e),
        None if wrong == 0 => Err(Error::NoKeys),
        _ => Err(Error::WrongPassword),
    }
}

/// Rewraps a key file under a new passphrase (fresh salt, `kdf` parameters); names and class
/// are kept, the creation time too. The result has a new id; the caller removes the old file
/// after the new one is durable.
pub fn change_passphrase(bytes: &[u8], old: &[u8], new: &[u8], kdf: KdfParams) -> Result<Vec<u8>> {
    let meta = decode_meta(bytes)?;
    match open(bytes, old)? {
        Unlocked::Full(m) => create_full(&m, new, kdf, &meta.owner),
        Unlocked::WriteOnly(w) => create_write_only(&w, new, kdf, &meta.owner),
    }
}

#[cfg(test)]
#[path = "keyfile_tests.rs"]
mod tests;
