//! `restore --atomic`: all or nothing for a service's data directory.
//!
//! The snapshot is restored into a staging directory beside the target (same parent, so same
//! filesystem), every chunk verified as always. Only when that restore is complete is the
//! staging directory swapped with the target in one `renameat2(RENAME_EXCHANGE)`: at every
//! instant, the target path names either the old tree or the new one, never a mix, whatever
//! is killed when. The old tree then sits at the staging name and is removed (or kept as
//! `TARGET<SUFFIX>` with `--backup-existing`). If anything fails, the staging directory is
//! removed and the target is untouched. A staging directory left by a killed run (its process
//! is gone) is removed by the next atomic restore of that target.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{live, restore, Mode, Overwrite, RestoreOptions, RestoreReport};
use crate::error::{Error, Result};
use crate::fs::{DirFd, Occupant};
use crate::id::SnapshotId;
use crate::progress::Progress;
use crate::repo::Repository;
use crate::snapshot::Snapshot;

/// What an atomic restore did.
#[derive(Debug, Serialize)]
pub struct AtomicReport {
    #[serde(flatten)]
    pub restore: RestoreReport,
    /// Whether the restored tree replaced the target. False when any path failed: then the
    /// target was left as it was.
    pub applied: bool,
    /// Where the replaced tree was kept (`--backup-existing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

const STAGING_MARK: &str = ".cairn-atomic-";

/// Restores `snapshot` as a whole new `opts.target` (see the module doc).
pub fn restore_atomic(
    repo: &Repository,
    id: &SnapshotId,
    snapshot: &Snapshot,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<AtomicReport> {
    repo.require_read("restore snapshots")?;
    if opts.mode != Mode::Write {
        return Err(Error::InvalidArgument(
            "--atomic restores; it does not combine with --dry-run or --verify-only".into(),
        ));
    }
    if !opts.include.is_empty() || !opts.exclude.is_empty() {
        return Err(Error::InvalidArgument(
            "--atomic replaces the whole target, so it does not combine with --include or --exclude".into(),
        ));
    }
    let (parent_path, name) = split_target(&opts.target)?;
    let parent = DirFd::open_path(&parent_path).map_err(|e| Error::io("cannot open", &parent_path, e))?;
    let existing = match parent.occupant(&name).map_err(|e| Error::io("cannot inspect", &opts.target, e))? {
        None => false,
        Some(Occupant::Dir) => true,
        Some(other) => {
            return Err(Error::Conflict(format!(
                "{} is a {}, not a directory: --atomic replaces a directory",
                opts.target.display(),
                other.kind_name()
            )))
        }
    };
    let live_warning = if existing { live::refuse_live_target(opts, false)? } else { None };
    remove_abandoned_staging(&parent, &name);
    let staging = staging_name(&name);
    parent
        .make_dir(&staging)
        .map_err(|e| Error::io("cannot create", &parent_path.join(OsStr::from_bytes(&staging)), e))?;
    let staged = RestoreOptions {
        target: parent_path.join(OsStr::from_bytes(&staging)),
        overwrite: Some(Overwrite::Always),
        delete: false,
        backup_suffix: None,
        force: true,
        ..opts.clone()
    };
    let outcome = restore(repo, id, snapshot, &staged, progress);
    let mut report = match outcome {
        Ok(r) if r.failed.is_empty() => r,
        other => {
            // Nothing of the staging tree may stay: the target is as it was.
            let _ = parent.remove_all(&staging);
            let mut r = other?;
            r.warnings.extend(live_warning);
            return Ok(AtomicReport { restore: r, applied: false, previous: None });
        }
    };
    report.warnings.extend(live_warning);
    let previous = swap_in(&parent, &parent_path, &name, &staging, existing, opts.backup_suffix.as_deref())?;
    Ok(AtomicReport { restore: report, applied: true, previous })
}

/// Puts the staged tree at `name`: exchanged with the old tree (then removed or kept), or
/// renamed into place where there was none. The parent directory is synced, so the swap
/// survives a crash.
fn swap_in(
    parent: &DirFd,
    parent_path: &Path,
    name: &[u8],
    staging: &[u8],
    existing: bool,
    keep_suffix: Option<&str>,
) -> Result<Option<String>> {
    let target = parent_path.join(OsStr::from_bytes(name));
    if !existing {
        parent
            .rename_noreplace(staging, name)
            .map_err(|e| Error::io("cannot move the restored tree to", &target, e))?;
        parent.sync().map_err(|e| Error::io("cannot sync", parent_path, e))?;
        return Ok(None);
    }
    parent.exchange(staging, name).map_err(|e| Error::io("cannot swap the restored tree into", &target, e))?;
    parent.sync().map_err(|e| Error::io("cannot sync", parent_path, e))?;
    // `staging` now names the old tree.
    match keep_suffix {
        Some(suffix) => {
            let mut kept = name.to_vec();
            kept.extend_from_slice(suffix.as_bytes());
            let kept_path = parent_path.join(OsStr::from_bytes(&kept));
            parent
                .rename_noreplace(staging, &kept)
                .map_err(|e| Error::io("cannot keep the previous tree as", &kept_path, e))?;
            Ok(Some(kept_path.display().to_string()))
        }
        None => {
            parent.remove_all(staging).map_err(|e| Error::io("cannot remove the previous tree of", &target, e))?;
            Ok(None)
        }
    }
}

fn split_target(target: &Path) -> Result<(PathBuf, Vec<u8>)> {
    let absolute = std::path::absolute(target).map_err(|e| Error::io("cannot resolve", target, e))?;
    match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => Ok((parent.to_path_buf(), name.as_bytes().to_vec())),
        _ => Err(Error::InvalidArgument(format!(
            "--atomic needs a target below some directory, not {}",
            target.display()
        ))),
    }
}

/// `.NAME.cairn-atomic-PID`: hidden, beside the target, naming the process that owns it.
fn staging_name(name: &[u8]) -> Vec<u8> {
    let mut s = b".".to_vec();
    s.extend_from_slice(name);
    s.extend_from_slice(format!("{STAGING_MARK}{}", std::process::id()).as_bytes());
    s
}

/// Removes staging directories of `name` whose process is gone (a killed atomic restore).
fn remove_abandoned_staging(parent: &DirFd, name: &[u8]) {
    let mut prefix = b".".to_vec();
    prefix.extend_from_slice(name);
    prefix.extend_from_slice(STAGING_MARK.as_bytes());
    for entry in parent.names().unwrap_or_default() {
        let Some(pid) = entry.strip_prefix(prefix.as_slice()).and_then(|p| std::str::from_utf8(p).ok()) else {
            continue;
        };
        let alive = pid.parse::<u32>().is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = parent.remove_all(&entry);
        }
    }
}
