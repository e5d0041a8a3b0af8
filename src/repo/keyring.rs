//! Managing the key files of an encrypted repository (`cairn key …`): list, add, remove,
//! change a passphrase, export the master key on paper and import it back.
//!
//! Invariants: a new key file is durable before an old one is removed (`passwd`), and the
//! last full key file is never removed, so the repository never loses its last way in.

use std::sync::Arc;

use serde::Serialize;

use crate::backend::Backend;
use crate::crypto::{self, KdfParams, KeyClass, MasterKey, Password};
use crate::error::{Error, Result};
use crate::repo::config::Config;
use crate::repo::keys::{decode_params, encryption_of, key_files, key_owner, store_key_file};
use crate::repo::layout::{key_file_key, CONFIG_KEY};
use crate::repo::Repository;

/// One line of `key list`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: String,
    /// `full` or `write-only`; `damaged` when the file cannot be parsed.
    pub class: String,
    pub created: String,
    pub host: String,
    pub user: String,
    pub kdf_memory_kib: u32,
    pub kdf_passes: u32,
    /// The key file this command was opened with.
    pub current: bool,
}

impl Repository {
    fn unlocked_master(&self, action: &str) -> Result<(&str, &MasterKey)> {
        let key = self.key.as_ref().ok_or_else(|| {
            Error::InvalidArgument(format!("the repository is not encrypted: there are no keys to {action}"))
        })?;
        let master = key.master.as_ref().ok_or_else(|| Error::WriteOnly { action: action.to_string() })?;
        Ok((&key.id, master))
    }

    /// The config's key check (`docs/format.md` §13.1): 16 bytes that name the master key
    /// without revealing it, equal exactly for repositories sharing a master key (twins made
    /// with `init --from-key-export`). `None` when the repository is not encrypted.
    pub fn key_check(&self) -> Result<Option<[u8; 16]>> {
        match encryption_of(&self.config) {
            Some(params) if self.sealer.is_encrypted() => decode_params(params).map(Some),
            _ => Ok(None),
        }
    }

    /// Every key file, readable without a passphrase.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let current = self.key.as_ref().map(|k| k.id.as_str());
        Ok(key_files(self.backend.as_ref())?
            .into_iter()
            .map(|(id, bytes)| {
                let meta = crypto::decode_meta(&bytes);
                let current = current == Some(id.as_str());
                match meta {
                    Ok(m) => KeyInfo {
                        id,
                        class: if m.class == KeyClass::Full { "full" } else { "write-only" }.into(),
                        created: crate::time::format_ns(m.owner.created_s.saturating_mul(1_000_000_000)),
                        host: m.owner.host,
                        user: m.owner.user,
                        kdf_memory_kib: m.kdf.memory_kib,
                        kdf_passes: m.kdf.passes,
                        current,
                    },
                    Err(e) => KeyInfo {
                        id,
                        class: "damaged".into(),
                        created: String::new(),
                        host: e.to_string(),
                        user: String::new(),
                        kdf_memory_kib: 0,
                        kdf_passes: 0,
                        current,
                    },
                }
            })
            .collect())
    }

    /// Adds a key file of `class` under `password`; returns its id. Only a full key adds
    /// keys: a write-only host must not mint keys of any class (docs/security.md).
    pub fn add_key(&self, password: &Password, kdf: KdfParams, class: KeyClass) -> Result<String> {
        let (_, master) = self.unlocked_master("add a key")?;
        let bytes = match class {
            KeyClass::Full => crypto::create_full(master, password.as_bytes(), kdf, &key_owner())?,
            // Holds the public key, index key, id key and chunker seed: nothing that opens
            // data or metadata (format §13.2, class 2).
            KeyClass::WriteOnly => {
                crypto::create_write_only(&master.derive().write_only(), password.as_bytes(), kdf, &key_owner())?
            }
        };
        store_key_file(&self.backend, &bytes)
    }

    /// Rewraps the key file this command was opened with under `password` (a new file with
    /// a new id, written before the old one is removed); returns the new id.
    pub fn change_password(&self, password: &Password, kdf: KdfParams) -> Result<String> {
        let (old, master) = self.unlocked_master("change a password")?;
        let old_bytes = self.backend.get(&key_file_key(old))?;
        let owner = crypto::decode_meta(&old_bytes)?.owner;
        let new = store_key_file(&self.backend, &crypto::create_full(master, password.as_bytes(), kdf, &owner)?)?;
        if new != old {
            self.backend.delete(&key_file_key(old))?;
        }
        Ok(new)
    }

    /// Removes key file `id` (a unique prefix will do); the last full key file is refused.
    pub fn remove_key(&self, prefix: &str) -> Result<String> {
        self.unlocked_master("remove a key")?;
        let files = key_files(self.backend.as_ref())?;
        let matches: Vec<&(String, Vec<u8>)> = files.iter().filter(|(id, _)| id.starts_with(prefix)).collect();
        let (id, _) = match matches.as_slice() {
            [one] => *one,
            [] => return Err(Error::not_found(format!("key {prefix}"))),
            _ => return Err(Error::Ambiguous { what: "key id".into(), prefix: prefix.into(), count: matches.len() }),
        };
        let full = |b: &[u8]| crypto::decode_meta(b).is_ok_and(|m| m.class == KeyClass::Full);
        let other_full = files.iter().any(|(other, b)| other != id && full(b));
        if !other_full {
            return Err(Error::Conflict(format!(
                "key {} is the last full key of the repository; add another (`cairn key add`) before removing it",
                &id[..12]
            )));
        }
        self.backend.delete(&key_file_key(id))?;
        Ok(id.clone())
    }

    /// The master key in its paper form (`docs/format.md` §13.7).
    pub fn export_paper_key(&self) -> Result<String> {
        let (_, master) = self.unlocked_master("export the master key")?;
        Ok(crypto::export_paper_key(master))
    }
}

/// Restores access to an encrypted repository from its paper key: checks the key against the
/// config's key check and writes a new full key file under `password`. Needs no other key.
pub fn import_paper_key(
    backend: &Arc<dyn Backend>,
    paper: &str,
    password: &Password,
    kdf: KdfParams,
) -> Result<String> {
    let master = crypto::import_paper_key(paper)?;
    let outer = Config::decode(&backend.get(CONFIG_KEY)?)?;
    let params = encryption_of(&outer)
        .ok_or_else(|| Error::InvalidArgument("the repository is not encrypted: it has no key to import".into()))?;
    if decode_params(params)? != master.derive().key_check() {
        return Err(Error::WrongPassword);
    }
    store_key_file(backend, &crypto::create_full(&master, password.as_bytes(), kdf, &key_owner())?)
}
