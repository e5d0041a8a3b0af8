//! Encryption at rest: keys, the AEAD envelope, keyed chunk ids, key files, write-only
//! sessions, paper keys and password sources. The layer beside `codec`: packs, snapshots and
//! the repository seal and open through [`Sealer`] and never see a key.
//!
//! Every primitive comes from a well-kept crate: AES-256-GCM and the system random source
//! from `ring`, BLAKE3 (`blake3`) for keyed ids and key derivation, argon2id (`argon2`) for
//! passphrases, X25519 (`x25519-dalek`) for write-only sessions. The format is normative in
//! `docs/format.md` §13; the threat model is `docs/security.md`.

mod frame;
mod keyfile;
mod keys;
mod kind;
mod paper;
mod password;
mod sealer;
mod session;

pub use frame::{
    inspect as inspect_envelope, SessionId, KEY_OVERHEAD_BYTES, SESSION_OVERHEAD_BYTES, SUITE_KEY, SUITE_SESSION,
};
pub use keyfile::{
    change_passphrase, create_full, create_write_only, decode_meta, kdf_cost, key_file_id, open as open_key_file,
    open_any, KdfParams, KeyClass, KeyFileMeta, KeyOwner, Unlocked, KEY_FILE_VERSION,
};
pub use keys::{fill_random, FullKeys, IdKey, MasterKey, SecretKey, WriteOnlyKeys, KEY_BYTES};
pub use kind::Kind;
pub use paper::{export as export_paper_key, import as import_paper_key};
pub use password::{
    prompt_tty, read_file as read_password_file, run_command as run_password_command, Password, PasswordSources,
    ENV_PASSWORD, ENV_PASSWORD_COMMAND, ENV_PASSWORD_FILE, PASSWORD_COMMAND_TIMEOUT,
};
pub use sealer::{FullSealer, Sealer, SessionLoader, WriteOnlySealer};
pub use session::{session_id, SESSION_HEADER_BYTES};
