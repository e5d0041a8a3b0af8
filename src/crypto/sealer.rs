//! The one interface packs, snapshots and the repository use: seal or open an object of a
//! given kind and identity. They never see a key.
//!
//! Three sealers: `None` (unencrypted repositories: bytes pass through, ids are plain
//! BLAKE3), `Full` (a full key: seals with the seal key, opens everything, including what
//! write-only sessions sealed), and `WriteOnly` (seals with its session key; opens only what
//! the index key covers: config, locks, pack trailers).

use std::sync::{Arc, Mutex};

use super::frame::{self, SessionId, KEY_OVERHEAD_BYTES, SESSION_OVERHEAD_BYTES};
use super::keyfile::Unlocked;
use super::keys::{FullKeys, MasterKey, SecretKey, WriteOnlyKeys};
use super::session::{self, NewSession};
use super::Kind;
use crate::error::{Error, Result};

/// Fetches a session header by id (from wherever the repository stores them).
pub type SessionLoader = Arc<dyn Fn(&SessionId) -> Result<Vec<u8>> + Send + Sync>;

/// Opened session keys kept at once; a restore touches few sessions at a time, and memory
/// must not grow with the number of sessions in the repository.
const SESSION_CACHE_ENTRIES: usize = 64;

pub enum Sealer {
    None,
    Full(Box<FullSealer>),
    WriteOnly(Box<WriteOnlySealer>),
}

pub struct FullSealer {
    keys: FullKeys,
    loader: Option<SessionLoader>,
    sessions: Mutex<Vec<(SessionId, SecretKey)>>,
}

pub struct WriteOnlySealer {
    keys: WriteOnlyKeys,
    session: NewSession,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sealer::None => "Sealer::None",
            Sealer::Full(_) => "Sealer::Full",
            Sealer::WriteOnly(_) => "Sealer::WriteOnly",
        })
    }
}

impl Sealer {
    /// A full key; objects sealed by write-only sessions fail to open (no loader).
    pub fn full(master: &MasterKey) -> Sealer {
        Self::full_with_sessions(master, None)
    }

    /// A full key that opens write-only sessions' objects, fetching headers with `loader`.
    pub fn full_with_sessions(master: &MasterKey, loader: Option<SessionLoader>) -> Sealer {
        Sealer::Full(Box::new(FullSealer { keys: master.derive(), loader, sessions: Mutex::new(Vec::new()) }))
    }

    /// The sealer of what a key file held: full, or write-only with a fresh session.
    pub fn from_unlocked(unlocked: Unlocked, loader: Option<SessionLoader>) -> Result<Sealer> {
        match unlocked {
            Unlocked::Full(master) => Ok(Self::full_with_sessions(&master, loader)),
            Unlocked::WriteOnly(keys) => Self::write_only(keys),
        }
    }

    /// A write-only key, with a fresh session. Store `session_header()` before the first
    /// object this sealer seals.
    pub fn write_only(keys: WriteOnlyKeys) -> Result<Sealer> {
        let session = session::start(&keys.repo_public)?;
        Ok(Sealer::WriteOnly(Box::new(WriteOnlySealer { keys, session })))
    }

    pub fn is_encrypted(&self) -> bool {
        !matches!(self, Sealer::None)
    }

    /// Whether this sealer can open data and metadata (false for write-only keys).
    pub fn can_read(&self) -> bool {
        !matches!(self, Sealer::WriteOnly(_))
    }

    /// A write-only sealer's session: its id and the header bytes to store.
    pub fn session_header(&self) -> Option<(SessionId, &[u8])> {
        match self {
            Sealer::WriteOnly(w) => Some((w.session.id, &w.session.header)),
            _ => None,
        }
    }

    /// The id of a plaintext chunk: keyed BLAKE3 when encrypted, plain BLAKE3 otherwise.
    pub fn chunk_id(&self, plaintext: &[u8]) -> [u8; 32] {
        match self {
            Sealer::None => *blake3::hash(plaintext).as_bytes(),
            Sealer::Full(f) => f.keys.id.chunk_id(plaintext),
            Sealer::WriteOnly(w) => w.keys.id.chunk_id(plaintext),
        }
    }

    /// [`Sealer::chunk_id`] as a typed id (chunks, trees, chunk lists).
    pub fn id_of(&self, plaintext: &[u8]) -> crate::id::ChunkId {
        crate::id::ChunkId(crate::id::Digest(self.chunk_id(plaintext)))
    }

    /// The FastCDC seed (`with_level_and_seed`); 0, fastcdc's "unseeded", when unencrypted.
    pub fn chunker_seed(&self) -> u64 {
        match self {
            Sealer::None => 0,
            Sealer::Full(f) => f.keys.chunker_seed,
            Sealer::WriteOnly(w) => w.keys.chunker_seed,
        }
    }

    /// Bytes `seal` adds to a plaintext of `kind`.
    pub fn overhead(&self, kind: Kind) -> usize {
        match self {
            Sealer::None => 0,
            Sealer::WriteOnly(_) if !kind.uses_index_key() => SESSION_OVERHEAD_BYTES,
            _ => KEY_OVERHEAD_BYTES,
        }
    }

    /// Seals `plaintext` as an object of `kind` named by `context` (its id; a blob's pack id
    /// followed by its id). Opening needs the same kind and context.
    pub fn seal(&self, kind: Kind, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        match self {
            Sealer::None => Ok(plaintext.to_vec()),
            Sealer::Full(f) => {
                let key = if kind.uses_index_key() { &f.keys.index } else { &f.keys.seal };
                frame::seal(key, None, kind, context, plaintext)
            }
            Sealer::WriteOnly(w) if kind.uses_index_key() => frame::seal(&w.keys.index, None, kind, context, plaintext),
            Sealer::WriteOnly(w) => frame::seal(&w.session.key, Some(&w.session.id), kind, context, plaintext),
        }
    }

    pub fn open(&self, kind: Kind, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open_into(kind, context, sealed, &mut out)?;
        Ok(out)
    }

    /// Opens into a reused buffer (cleared first).
    pub fn open_into(&self, kind: Kind, context: &[u8], sealed: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let f = match self {
            Sealer::None => {
                out.clear();
                out.extend_from_slice(sealed);
                return Ok(());
            }
            Sealer::WriteOnly(w) if kind.uses_index_key() => {
                return frame::open_into(&w.keys.index, &index_frame(sealed, kind)?, kind, context, out);
            }
            Sealer::WriteOnly(_) => {
                return Err(Error::WriteOnly { action: format!("open a {}", kind.name()) });
            }
            Sealer::Full(f) => f,
        };
        if kind.uses_index_key() {
            return frame::open_into(&f.keys.index, &index_frame(sealed, kind)?, kind, context, out);
        }
        let parsed = frame::parse(sealed, kind)?;
        match parsed.session {
            None => frame::open_into(&f.keys.seal, &parsed, kind, context, out),
            Some(id) => frame::open_into(&f.session_key(&id)?, &parsed, kind, context, out),
        }
    }
}

/// Index-key objects are never sealed by a session.
fn index_frame(sealed: &[u8], kind: Kind) -> Result<frame::Frame<'_>> {
    let parsed = frame::parse(sealed, kind)?;
    if parsed.session.is_some() {
        return Err(Error::corrupt(kind.name(), "sealed with a session key, but it must use the index key"));
    }
    Ok(parsed)
}

impl FullSealer {
    fn session_key(&self, id: &SessionId) -> Result<SecretKey> {
        // A poisoned lock only means another thread panicked mid-insert; the cache is advisory.
        if let Some((_, k)) = self.sessions.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|(s, _)| s == id) {
            return Ok(k.clone());
        }
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let loader = self
            .loader
            .as_ref()
            .ok_or_else(|| Error::not_found(format!("write-only session {hex} (no session loader)")))?;
        let key = session::open(&self.keys.repo_secret, id, &loader(id)?)?;
        let mut cache = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= SESSION_CACHE_ENTRIES {
            cache.remove(0);
        }
        cache.push((*id, key.clone()));
        Ok(key)
    }
}

#[cfg(test)]
#[path = "sealer_tests.rs"]
mod tests;
