//! The keys of an encrypted repository: the master key and its first key file at `init`,
//! unlocking at open (one KDF run per key file tried), and the sealed config
//! (`docs/format.md` §13.1-13.2). Nothing else in `repo` sees a key: it holds a [`Sealer`].
//!
//! The config of an encrypted repository is a version 2 config record whose only meaningful
//! field is the `encryption` feature. Its params are the 20 bytes of §13.1 followed by the
//! sealed real config (kind config, index key, context `config`); the other outer fields are
//! fixed placeholders. An older cairn therefore refuses it by the feature's name (exit 12).

use std::sync::Arc;

use crate::backend::{Backend, PutMode, PutOutcome};
use crate::codec;
use crate::crypto::{self, KdfParams, KeyOwner, Kind, MasterKey, Password, PasswordSources, Sealer, SessionLoader};
use crate::error::{Error, Result};
use crate::repo::config::{Config, Feature, RepoId, ENCRYPTION_FEATURE};
use crate::repo::layout::{key_file_key, session_key, CONFIG_KEY, KEYS_DIR};

/// Bytes of the `encryption` feature's own params (§13.1), before the sealed config.
pub const ENCRYPTION_PARAMS_BYTES: usize = 20;
const PARAMS_VERSION: u8 = 1;
const SUITE_SET: u8 = 1;
const ID_FUNCTION: u8 = 1;

/// Where the password of an encrypted repository comes from when it is opened.
pub type PasswordFn = Arc<dyn Fn() -> Result<Password> + Send + Sync>;

/// The password an open may use; asked for only when the repository is encrypted.
#[derive(Clone, Default)]
pub struct KeySource {
    password: Option<PasswordFn>,
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.password.is_some() { "KeySource(password)" } else { "KeySource(none)" })
    }
}

impl KeySource {
    /// A fixed password (library users and tests).
    pub fn password(password: &str) -> Self {
        let p = Password::new(password.to_string());
        Self::from_fn(Arc::new(move || Ok(p.clone())))
    }

    pub fn from_fn(f: PasswordFn) -> Self {
        KeySource { password: Some(f) }
    }

    /// `CAIRN_PASSWORD_FILE`, `CAIRN_PASSWORD_COMMAND`, then `CAIRN_PASSWORD`; never a prompt.
    pub fn from_env() -> Self {
        Self::from_fn(Arc::new(|| PasswordSources::from_env(None, None).resolve(no_password)))
    }

    fn get(&self) -> Result<Password> {
        match &self.password {
            Some(f) => f(),
            None => no_password(),
        }
    }
}

fn no_password() -> Result<Password> {
    Err(Error::InvalidArgument(
        "the repository is encrypted: give its password with --password-file, --password-command, \
         CAIRN_PASSWORD_FILE, CAIRN_PASSWORD_COMMAND or CAIRN_PASSWORD, or run on a terminal"
            .into(),
    ))
}

/// How `init` encrypts a new repository.
#[derive(Clone)]
pub struct InitEncryption {
    pub password: Password,
    pub kdf: KdfParams,
    /// The master key to use (`init --from-key-export`); a fresh random one when `None`.
    pub master: Option<MasterKey>,
}

impl std::fmt::Debug for InitEncryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InitEncryption {{ kdf: {:?} }}", self.kdf)
    }
}

/// Who made a key file: this host and user, now.
pub fn key_owner() -> KeyOwner {
    KeyOwner {
        created_s: crate::time::now_ns() / 1_000_000_000,
        host: crate::fs::hostname(),
        user: std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_default(),
    }
}

fn encode_params(key_check: [u8; 16]) -> [u8; ENCRYPTION_PARAMS_BYTES] {
    let mut p = [0u8; ENCRYPTION_PARAMS_BYTES];
    p[..4].copy_from_slice(&[PARAMS_VERSION, SUITE_SET, ID_FUNCTION, crypto::KEY_FILE_VERSION]);
    p[4..].copy_from_slice(&key_check);
    p
}

/// The key check of a config's `encryption` params, after checking the versions they name.
pub(crate) fn decode_params(params: &[u8]) -> Result<[u8; 16]> {
    const WHAT: &str = "repository config";
    if params.len() < ENCRYPTION_PARAMS_BYTES {
        return Err(Error::corrupt(WHAT, "encryption parameters are truncated"));
    }
    let known = [PARAMS_VERSION, SUITE_SET, ID_FUNCTION, crypto::KEY_FILE_VERSION];
    if let Some(i) = (0..4).find(|&i| params[i] != known[i]) {
        let what = ["encryption parameters", "AEAD suite set", "id function", "key file"][i];
        return Err(Error::UnsupportedVersion {
            what: format!("repository config ({what})"),
            found: u32::from(params[i]),
            supported: u32::from(known[i]),
        });
    }
    let mut check = [0u8; 16];
    check.copy_from_slice(&params[4..ENCRYPTION_PARAMS_BYTES]);
    Ok(check)
}

/// A full key's sealer that opens write-only sessions' objects from `sessions/`.
fn full_sealer(backend: &Arc<dyn Backend>, master: &MasterKey) -> Sealer {
    let b = Arc::clone(backend);
    // A missing header is damage, not an object that is gone: every object of its session
    // is unreadable (and "not found" would let a listing skip a snapshot as forgotten).
    let loader: SessionLoader = Arc::new(move |id| {
        let key = session_key(id);
        b.get(&key).map_err(|e| match e {
            Error::NotFound { .. } => Error::corrupt("write-only session header", format!("{key} is missing")),
            other => other,
        })
    });
    Sealer::full_with_sessions(master, Some(loader))
}

/// Creates the master key (unless given) and its first key file; returns the sealer and the
/// `encryption` params of the config.
pub(crate) fn init_keys(backend: &Arc<dyn Backend>, enc: &InitEncryption) -> Result<(Sealer, Vec<u8>)> {
    let master = match &enc.master {
        Some(m) => m.clone(),
        None => MasterKey::generate()?,
    };
    let params = encode_params(master.derive().key_check()).to_vec();
    store_key_file(backend, &crypto::create_full(&master, enc.password.as_bytes(), enc.kdf, &key_owner())?)?;
    Ok((full_sealer(backend, &master), params))
}

/// Stores a key file under its id; returns the id.
pub fn store_key_file(backend: &Arc<dyn Backend>, bytes: &[u8]) -> Result<String> {
    let id = crypto::key_file_id(bytes);
    match backend.put(&key_file_key(&id), bytes, PutMode::IfAbsent)? {
        PutOutcome::Written | PutOutcome::AlreadyExists => Ok(id),
    }
}

/// Every key file: (id, bytes).
pub fn key_files(backend: &dyn Backend) -> Result<Vec<(String, Vec<u8>)>> {
    let mut keys = Vec::new();
    backend.list(KEYS_DIR, &mut |obj| {
        keys.push(obj.key);
        Ok(())
    })?;
    keys.sort();
    let mut files = Vec::with_capacity(keys.len());
    for key in keys {
        let bytes = backend.get(&key)?;
        files.push((key[KEYS_DIR.len()..].to_string(), bytes));
    }
    Ok(files)
}

/// The key file an open used, and the master key it held (none for a write-only key).
#[derive(Clone, Debug)]
pub struct UnlockedKey {
    pub id: String,
    pub(crate) master: Option<MasterKey>,
}

/// Opens the repository's keys with the password from `keys`: one KDF run per key file
/// tried, cheapest first (see [`crypto::kdf_cost`]). `check` is the config's key check, when
/// the config could be read.
pub(crate) fn unlock(
    backend: &Arc<dyn Backend>,
    check: Option<[u8; 16]>,
    keys: &KeySource,
) -> Result<(Sealer, UnlockedKey)> {
    let mut files = key_files(backend.as_ref())?;
    if files.is_empty() {
        return Err(Error::NoKeys);
    }
    cheapest_first(&mut files);
    let password = keys.get()?;
    let (id, unlocked) = open_matching(&files, password.as_bytes(), check)?;
    match unlocked {
        crypto::Unlocked::Full(m) => Ok((full_sealer(backend, &m), UnlockedKey { id, master: Some(m) })),
        crypto::Unlocked::WriteOnly(w) => Ok((Sealer::write_only(w)?, UnlockedKey { id, master: None })),
    }
}

/// Orders key files by what opening each costs, cheapest first: a wrong guess at a cheap key
/// costs little, while a cheap key tried after an expensive one pays for both.
fn cheapest_first(files: &mut [(String, Vec<u8>)]) {
    files.sort_by_key(|(_, bytes)| crypto::kdf_cost(bytes));
}

/// The first key file that opens with `password` and whose key matches the config's `check`
/// (when known). A key file that opens but holds another key is passed over, not fatal: an
/// encrypted `init` interrupted on object storage leaves its key file behind (nothing removes
/// objects there without a config to say they are orphans), and the next `init` under the same
/// password must not be shadowed by it. A key file copied in from another repository opens
/// with its password but is no key of this one: when nothing else opens, the same answer as a
/// wrong password.
fn open_matching(
    files: &[(String, Vec<u8>)],
    password: &[u8],
    check: Option<[u8; 16]>,
) -> Result<(String, crypto::Unlocked)> {
    let mut rest = files;
    loop {
        let (id, unlocked) = match crypto::open_any(rest.iter().map(|(id, b)| (id.as_str(), b.as_slice())), password) {
            Ok(found) => found,
            Err(_) if rest.len() < files.len() => return Err(Error::WrongPassword),
            Err(e) => return Err(e),
        };
        let key_check = match &unlocked {
            crypto::Unlocked::Full(m) => m.derive().key_check(),
            crypto::Unlocked::WriteOnly(w) => w.key_check(),
        };
        if check.is_none_or(|c| c == key_check) {
            return Ok((id, unlocked));
        }
        let at = rest.iter().position(|(i, _)| *i == id).map_or(rest.len(), |i| i + 1);
        rest = &rest[at..];
    }
}

/// The outer config of an encrypted repository, holding `sealed` after its params. It keeps
/// the random repository id in the clear: it names the index cache of object-store
/// repositories and says nothing about the data.
fn outer_config(id: RepoId, params: &[u8], sealed: &[u8]) -> Config {
    let mut all = params.to_vec();
    all.extend_from_slice(sealed);
    let mut outer = crate::repo::open::placeholder_config();
    outer.id = id;
    outer.features = vec![Feature { name: ENCRYPTION_FEATURE.into(), params: all }];
    outer
}

/// The config record of an encrypted repository.
pub(crate) fn seal_config(config: &Config, sealer: &Sealer, params: &[u8]) -> Result<Vec<u8>> {
    let mut inner = config.clone();
    inner.features.retain(|f| f.name != ENCRYPTION_FEATURE);
    inner.features.push(Feature { name: ENCRYPTION_FEATURE.into(), params: params.to_vec() });
    inner.features.sort_by(|a, b| a.name.cmp(&b.name));
    let sealed = sealer.seal(Kind::Config, CONFIG_KEY.as_bytes(), &codec::to_bytes(&inner)?)?;
    outer_config(config.id, params, &sealed).encode()
}

/// The `encryption` params of a decoded (outer) config, if it names the feature.
pub(crate) fn encryption_of(outer: &Config) -> Option<&[u8]> {
    outer.features.iter().find(|f| f.name == ENCRYPTION_FEATURE).map(|f| f.params.as_slice())
}

/// Opens the sealed real config inside an encrypted repository's outer config.
fn open_config(outer: &Config, sealer: &Sealer) -> Result<Config> {
    const WHAT: &str = "repository config";
    let all = encryption_of(outer).ok_or_else(|| Error::corrupt(WHAT, "encryption feature missing"))?;
    let (params, sealed) = all.split_at(ENCRYPTION_PARAMS_BYTES.min(all.len()));
    let plain =
        sealer.open(Kind::Config, CONFIG_KEY.as_bytes(), sealed).map_err(|e| Error::corrupt(WHAT, e.to_string()))?;
    let mut inner: Config = codec::from_bytes(&plain, WHAT)?;
    inner.format_version = outer.format_version;
    inner.validate()?;
    if inner.id != outer.id {
        return Err(Error::corrupt(WHAT, "sealed config names another repository id"));
    }
    if encryption_of(&inner) != Some(params) {
        return Err(Error::corrupt(WHAT, "sealed config does not match its encryption parameters"));
    }
    Ok(inner)
}

/// Reads the config with `keys` when the repository is encrypted: the real config and the
/// sealer of its objects (`Sealer::None` for an unencrypted repository). The chunker seed is
/// set from the key.
pub(crate) fn load_config(
    backend: &Arc<dyn Backend>,
    keys: &KeySource,
) -> Result<(Config, Sealer, Option<UnlockedKey>)> {
    let outer = match backend.get(CONFIG_KEY) {
        Ok(bytes) => Config::decode(&bytes)?,
        Err(e) if e.is_not_found() => return Err(Error::NotARepository { path: backend.location() }),
        Err(e) => return Err(e),
    };
    let Some(params) = encryption_of(&outer) else {
        // A config swapped for an unencrypted one would make this cairn write new data in
        // the clear into an encrypted repository: key files betray it.
        if !key_files(backend.as_ref())?.is_empty() {
            return Err(Error::corrupt(
                "repository config",
                "it says the repository is not encrypted, but keys/ holds key files (a replaced config?)",
            ));
        }
        return Ok((outer, Sealer::None, None));
    };
    let (sealer, key) = unlock(backend, Some(decode_params(params)?), keys)?;
    let mut config = open_config(&outer, &sealer)?;
    config.chunker.seed = sealer.chunker_seed();
    Ok((config, sealer, Some(key)))
}

/// As [`load_config`] for `repo check`: a damaged config is returned as an error beside a
/// placeholder, and the keys are still unlocked when key files exist, so the audit can go on.
pub(crate) fn load_config_for_audit(
    backend: &Arc<dyn Backend>,
    keys: &KeySource,
) -> Result<(Config, Option<Error>, Sealer)> {
    let outer = match backend.get(CONFIG_KEY) {
        Err(Error::NotFound { .. }) => return Err(Error::NotARepository { path: backend.location() }),
        other => other.and_then(|b| Config::decode(&b)),
    };
    let has_keys = || -> Result<bool> { Ok(!key_files(backend.as_ref())?.is_empty()) };
    let (outer, error) = match outer {
        Ok(c) => (Some(c), None),
        Err(e) => (None, Some(e)),
    };
    let params = outer.as_ref().and_then(encryption_of);
    let encrypted = params.is_some();
    let sealer = match (params, &outer) {
        (Some(p), _) => unlock(backend, Some(decode_params(p)?), keys)?.0,
        (None, None) if has_keys()? => unlock(backend, None, keys)?.0,
        _ => Sealer::None,
    };
    let placeholder = || {
        let mut c = crate::repo::open::placeholder_config();
        c.chunker.seed = sealer.chunker_seed();
        c
    };
    match (outer, encrypted) {
        (Some(o), true) => match open_config(&o, &sealer) {
            Ok(mut c) => {
                c.chunker.seed = sealer.chunker_seed();
                Ok((c, None, sealer))
            }
            Err(e) => Ok((placeholder(), Some(e), sealer)),
        },
        (Some(o), false) => Ok((o, None, sealer)),
        (None, _) => Ok((placeholder(), error, sealer)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{KdfParams, KeyOwner, MasterKey};

    /// Two key files of one master key under one password: the cheaper one is opened, though
    /// listed second, and a file that does not parse goes last.
    #[test]
    fn key_files_are_tried_cheapest_first() {
        let owner = KeyOwner { created_s: 1_764_000_000, host: "h".into(), user: "u".into() };
        let master = MasterKey::from_bytes([7; 32]);
        let fast = KdfParams::INSECURE_FAST;
        let slower = KdfParams { memory_kib: fast.memory_kib * 8, passes: fast.passes + 1, ..fast };
        let expensive = crypto::create_full(&master, b"pw", slower, &owner).unwrap();
        let cheap = crypto::create_full(&master, b"pw", fast, &owner).unwrap();
        let mut files =
            vec![("junk".to_string(), b"not a key".to_vec()), ("expensive".into(), expensive), ("cheap".into(), cheap)];
        cheapest_first(&mut files);
        let order: Vec<&str> = files.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(order, ["cheap", "expensive", "junk"]);
        let (id, _) = open_matching(&files, b"pw", None).unwrap();
        assert_eq!(id, "cheap");
    }
}
