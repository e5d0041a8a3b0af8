//! `repo copy`: copy snapshots and WAL from one repository to another, sending only what the
//! destination lacks — the daily off-site copy of an hourly local repository, and the
//! migration of an unencrypted repository's history into an encrypted one.
//!
//! Two ways to copy, chosen by the keys of the two sides (`docs/security.md`, "Copying and
//! migrating"):
//!
//! - **Same ids** (`same_ids`): both unencrypted, or both encrypted with the same master key
//!   (a twin made with `init --from-key-export`). Chunk, tree and snapshot ids are equal on
//!   both sides, so objects keep their ids; between twins sealed blobs and objects are copied
//!   as they are, without sealing again.
//! - **Re-encrypt** (`rekey`): different keys, unencrypted → encrypted, or encrypted →
//!   unencrypted (only when asked). Chunk ids are keyed, so every source id is mapped to the
//!   destination's id of the same plaintext (the source's chunk boundaries are kept), trees and
//!   chunk lists are rewritten bottom-up with mapped ids and sealed with the destination's key.
//!
//! Either way, each snapshot's blobs are flushed before its object is written, so the
//! destination never holds a snapshot with missing parts, and a rerun copies nothing twice.

mod export;
mod identity;
mod rekey;
mod run;
mod same_ids;

pub use export::{export, import, ExportOptions, ExportReport};
pub use run::{copy, copy_with, CopiedSnapshot, CopyMode, CopyOptions, CopyReport};
