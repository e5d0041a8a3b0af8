//! `restore`: rebuild a snapshot's files in a target directory, every chunk verified, nothing
//! written outside the target.
//!
//! Safety rules (see `docs/cli.md`, "Restore semantics"):
//! - every entry is created, opened or replaced relative to its parent directory's handle,
//!   never through a symlink ([`crate::fs::DirFd`]); metadata is applied through descriptors or
//!   `AT_SYMLINK_NOFOLLOW`;
//! - a file is written under a temporary name in its directory and renamed into place only once
//!   every chunk was written and verified, so an interrupted restore never leaves a full-size
//!   file with missing data under the real name;
//! - what is already in the target is replaced only as the overwrite policy allows; conflicts of
//!   type (file, directory, symlink) never abort the restore.
//!
//! The tree walk ([`walker`]) runs on the calling thread, creates directories and symlinks, and
//! queues files in bounded batches; the batch runner ([`batch`]) restores each batch on a second
//! thread: chunks grouped by pack so every pack is read once, existing target files reused chunk
//! by chunk where their content already matches ([`delta`]). Hard links ([`links`]) are made
//! once their group's first member is in place; FIFOs, sockets and devices ([`special`]) are
//! created like symlinks; owners by name and xattrs are applied as [`attrs`] describes.

mod aside;
mod atomic;
mod attrs;
mod batch;
mod delta;
mod links;
mod live;
mod pitr;
mod special;
mod trial;
mod walker;

pub use atomic::{restore_atomic, AtomicReport};
pub use pitr::{restore_at, snapshot_before, PitrOptions, PitrReport};
pub use trial::{restore_test, RestoreTestOptions, RestoreTestReport};

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::fs::is_root;
use crate::id::SnapshotId;
use crate::ops::select::{restore_origin, Includes};
use crate::ops::Skipped;
use crate::progress::Progress;
use crate::repo::Repository;
use crate::snapshot::Snapshot;

/// What to do with an entry that already exists in the target (restic's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overwrite {
    /// Replace everything (unchanged chunks of existing files are still reused).
    Always,
    /// Replace entries whose size or modification time differ from the snapshot's.
    IfChanged,
    /// Replace files whose modification time is older than the snapshot's.
    IfNewer,
    /// Keep every existing entry; restore only what is missing.
    Never,
}

/// What the restore does to the target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Write the snapshot into the target.
    #[default]
    Write,
    /// Decide everything, change nothing; the report carries the plan.
    DryRun,
    /// Read and verify every selected chunk; write nothing.
    VerifyOnly,
}

#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Restore only matching entries (see [`Includes`]).
    pub include: Vec<String>,
    /// Leave out matching entries and everything below them.
    pub exclude: Vec<String>,
    /// Restore owners; defaults to "when running as root".
    pub owners: Option<bool>,
    /// Drop setuid, setgid and sticky bits.
    pub no_special_bits: bool,
    /// Policy for existing entries; `None` refuses a non-empty target.
    pub overwrite: Option<Overwrite>,
    /// Remove target entries the snapshot does not have.
    pub delete: bool,
    pub mode: Mode,
    /// Keep what is replaced or deleted as `NAME<SUFFIX>` instead of removing it.
    pub backup_suffix: Option<String>,
    /// Restore into a target that running processes hold open.
    pub force: bool,
    /// Rewrite the changed chunks of existing files where they lie instead of writing a new
    /// copy and renaming it over the old one: faster for large files that changed a little,
    /// but a failed or interrupted restore leaves such a file partly rewritten under its real
    /// name. Files with other hard links are still copied.
    pub in_place: bool,
    /// Set (by a signal handler) to stop the restore cleanly.
    pub cancel: Option<Arc<AtomicBool>>,
}

/// The snapshot a restore used.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RestoredSnapshot {
    pub id: String,
    pub time: String,
    pub host: String,
}

/// One step of a restore's plan (reported with [`Mode::DryRun`]).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Planned {
    /// `create`, `replace`, `keep`, `unchanged` or `delete`.
    pub action: &'static str,
    pub kind: &'static str,
    pub path: String,
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RestoreReport {
    pub snapshot: RestoredSnapshot,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Files restored as another link to a file restored before them (same hard-link group).
    pub hardlinks: u64,
    /// FIFOs, sockets and device nodes.
    pub specials: u64,
    pub bytes: u64,
    /// Existing files left as they were because they already matched the snapshot.
    pub unchanged: u64,
    /// Existing entries replaced by the snapshot's.
    pub replaced: u64,
    /// Existing entries kept although the snapshot differs (the policy said so).
    pub kept: u64,
    /// Entries removed because the snapshot does not have them (`--delete`).
    pub deleted: u64,
    /// Chunk bytes read from the repository, and bytes reused from existing target files.
    pub bytes_fetched: u64,
    pub bytes_reused: u64,
    /// Existing files rewritten where they lie (`--in-place`).
    pub in_place: u64,
    /// Files whose every chunk was read and verified (`--verify-only`).
    pub verified: u64,
    /// Entries that could not be restored (damaged or missing data, I/O errors); none of them
    /// was left in the target with wrong content.
    pub failed: Vec<Skipped>,
    /// Entries kept aside (`--backup-existing`), by their new paths.
    pub backups: Vec<String>,
    /// Entries whose extended attributes the target could not take (no xattr support, or not
    /// permitted), and device nodes not created (not root): restored otherwise, not failures.
    pub xattrs_skipped: u64,
    pub devices_skipped: u64,
    /// Things the operator should know (a live target restored with `--force`, the two
    /// counts above).
    pub warnings: Vec<String>,
    /// With [`Mode::DryRun`]: every action the restore would take, in walk order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<Planned>,
    pub duration_ms: u64,
}

pub fn restore(
    repo: &Repository,
    id: &SnapshotId,
    snapshot: &Snapshot,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    if opts.in_place && opts.backup_suffix.is_some() {
        return Err(Error::InvalidArgument(
            "--in-place rewrites the existing files, so it cannot also keep them (--backup-existing)".into(),
        ));
    }
    repo.require_read("restore snapshots")?;
    let _lock = repo.lock_for_reading("restore")?;
    let started = Instant::now();
    let (origin_path, origin) = restore_origin(repo, snapshot)?;
    let includes = Includes::for_origin(&opts.include, &origin_path, "--include")?;
    let excludes = Includes::for_origin(&opts.exclude, &origin_path, "--exclude")?;
    let target = walker::Target::prepare(opts)?;
    let live_warning = live::refuse_live_target(opts, target.is_empty())?;
    progress.phase(if opts.mode == Mode::VerifyOnly { "verify" } else { "restore" }, Some(snapshot.summary.bytes));
    let owner = opts.owners.unwrap_or_else(is_root);
    let r = Restorer {
        repo,
        opts,
        owner,
        names: attrs::owner_names(owner),
        devices: is_root(),
        shortfalls: attrs::Shortfalls::default(),
        progress,
        report: Mutex::new(RestoreReport::default()),
        io: crate::fs::io_pool()?,
    };
    let outcome = walker::run(&r, target, &origin, includes, excludes);
    progress.finish();
    let cancelled = r.cancelled();
    let mut report = r.report.into_inner().unwrap_or_else(|p| p.into_inner());
    report.warnings.extend(live_warning);
    let (xattrs_skipped, devices_skipped, warnings) = r.shortfalls.into_warnings();
    (report.xattrs_skipped, report.devices_skipped) = (xattrs_skipped, devices_skipped);
    report.warnings.extend(warnings);
    report.snapshot = RestoredSnapshot {
        id: id.to_hex(),
        time: crate::time::format_ns(snapshot.time_ns),
        host: snapshot.host.clone(),
    };
    report.duration_ms = started.elapsed().as_millis() as u64;
    report.failed.sort_by(|a, b| a.path.cmp(&b.path));
    let unmatched = outcome?;
    if cancelled {
        return Err(Error::Interrupted {
            what: "restore".into(),
            detail: "every file under its real name is complete; rerun with --overwrite if-changed to finish".into(),
        });
    }
    if !unmatched.is_empty() {
        let list = unmatched.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join(", ");
        return Err(Error::InvalidArgument(format!(
            "--include {list} matched nothing in snapshot {} (patterns are relative to {}, or absolute as `cairn ls` prints them)",
            id.short(),
            String::from_utf8_lossy(&origin_path)
        )));
    }
    Ok(report)
}

/// What the walk and the batches share.
struct Restorer<'a> {
    repo: &'a Repository,
    opts: &'a RestoreOptions,
    /// Restore owners.
    owner: bool,
    /// This system's user and group names (empty unless owners are restored).
    names: crate::fs::OwnerNames,
    /// May create device nodes (root).
    devices: bool,
    shortfalls: attrs::Shortfalls,
    progress: &'a dyn Progress,
    report: Mutex<RestoreReport>,
    /// Creates files and sets metadata: many small synchronous filesystem calls.
    io: rayon::ThreadPool,
}

impl Restorer<'_> {
    fn fail(&self, path: impl Into<String>, reason: impl Into<String>) {
        self.count(|r| r.failed.push(Skipped { path: path.into(), reason: reason.into() }));
    }

    fn count(&self, f: impl FnOnce(&mut RestoreReport)) {
        f(&mut self.report.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn cancelled(&self) -> bool {
        self.opts.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// The mode bits to apply: as recorded, but setuid/setgid only when owners are restored
    /// too (the bits are meant for the snapshot's owner, not for whoever restores), and none of
    /// setuid, setgid and sticky with `--no-special-bits`.
    fn mode_bits(&self, mode: u32) -> u32 {
        if self.opts.no_special_bits {
            mode & 0o777
        } else if !self.owner {
            mode & 0o1777
        } else {
            mode & 0o7777
        }
    }
}
