//! `restore-test`: restore a snapshot into a scratch directory, run the service's own
//! validator on it, and record the result in the repository.
//!
//! The scratch directory is on tmpfs (`/dev/shm`) when the snapshot fits there with room to
//! spare, else under the cache directory (or where the caller says). It is private (0700) and
//! removed afterwards unless kept. The result is a run record (`docs/format.md` §14) whatever
//! the outcome: a snapshot that cannot be restored is a failed test, not an error.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{restore, RestoreOptions};
use crate::error::{Error, Result};
use crate::hooks::{Hook, HookRun, Stage};
use crate::id::SnapshotId;
use crate::progress::Progress;
use crate::repo::Repository;
use crate::snapshot::{RunKind, RunRecord, Snapshot};

/// Where tmpfs lives on Linux.
const TMPFS_DIR: &str = "/dev/shm";
/// Free space tmpfs must keep beyond twice the snapshot's size before it is used.
const TMPFS_SPARE_BYTES: u64 = 64 << 20;

#[derive(Clone, Debug)]
pub struct RestoreTestOptions {
    /// The validator, run with `CAIRN_RESTORE_DIR` and the snapshot's id and time set.
    pub verify: Hook,
    pub timeout: Duration,
    /// Where to make the scratch directory; `None`: tmpfs if it fits, else `fallback_dir`.
    pub scratch: Option<PathBuf>,
    pub fallback_dir: PathBuf,
    /// Leave the restored copy in place.
    pub keep: bool,
    /// More environment for the validator (the repository, say).
    pub env: Vec<(String, String)>,
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RestoreTestReport {
    pub success: bool,
    pub snapshot: String,
    pub snapshot_time: String,
    pub source: String,
    /// When the test started.
    pub time: String,
    #[serde(skip)]
    pub time_ns: i64,
    pub duration_ms: u64,
    /// The restored copy (removed afterwards unless `kept`).
    pub restore_dir: String,
    pub tmpfs: bool,
    pub kept: bool,
    pub files: u64,
    pub bytes: u64,
    /// The validator's run; absent when the restore itself failed.
    pub verify: Option<HookRun>,
    /// Why it failed (empty on success).
    pub detail: String,
    /// The run record stored in the repository.
    pub record: String,
}

pub fn restore_test(
    repo: &Repository,
    id: &SnapshotId,
    snap: &Snapshot,
    opts: &RestoreTestOptions,
    progress: &dyn Progress,
) -> Result<RestoreTestReport> {
    repo.require_read("restore snapshots")?;
    let started_ns = crate::time::now_ns();
    let started = Instant::now();
    let (parent, tmpfs) = scratch_parent(opts, snap.summary.bytes)?;
    let scratch = tempfile::Builder::new()
        .prefix("cairn-restore-test-")
        .tempdir_in(&parent)
        .map_err(|e| Error::io("cannot create a scratch directory in", &parent, e))?;
    let target = scratch.path().join("restore");
    let mut report = RestoreTestReport {
        success: false,
        snapshot: id.to_hex(),
        snapshot_time: crate::time::format_ns(snap.time_ns),
        source: snap.source(),
        time: crate::time::format_ns(started_ns),
        time_ns: started_ns,
        duration_ms: 0,
        restore_dir: target.display().to_string(),
        tmpfs,
        kept: opts.keep,
        files: 0,
        bytes: 0,
        verify: None,
        detail: String::new(),
        record: String::new(),
    };
    let outcome = restore_and_verify(repo, id, snap, opts, &target, &mut report, progress);
    if !opts.keep {
        crate::io::make_tree_private(scratch.path());
        // A copy that cannot be removed is left in a private directory; the result stands.
        let _ = scratch.close();
    } else {
        let _ = scratch.keep();
    }
    outcome?;
    report.duration_ms = started.elapsed().as_millis() as u64;
    let record = RunRecord {
        kind: RunKind::RestoreTest,
        success: report.success,
        time_ns: started_ns,
        duration_ms: report.duration_ms,
        ran_on: crate::fs::hostname(),
        host: snap.host.clone(),
        paths: snap.paths.clone(),
        snapshot: Some(*id),
        command: opts.verify.display(),
        exit_code: report.verify.as_ref().and_then(|v| v.exit_code),
        bytes: report.bytes,
        detail: report.detail.clone(),
        tool: format!("cairn {}", env!("CARGO_PKG_VERSION")),
    };
    report.record = repo.save_run(&record)?;
    Ok(report)
}

/// Restores into `target` and runs the validator; a restore that fails makes a failed test
/// (`report.detail` says why), an interruption or a usage error is an error.
fn restore_and_verify(
    repo: &Repository,
    id: &SnapshotId,
    snap: &Snapshot,
    opts: &RestoreTestOptions,
    target: &Path,
    report: &mut RestoreTestReport,
    progress: &dyn Progress,
) -> Result<()> {
    let restore_opts =
        RestoreOptions { target: target.to_path_buf(), cancel: opts.cancel.clone(), ..Default::default() };
    let restored = match restore(repo, id, snap, &restore_opts, progress) {
        Ok(r) => r,
        // Not a verdict on the snapshot: the test did not get to run.
        Err(
            e @ (Error::Interrupted { .. } | Error::InvalidArgument(_) | Error::WriteOnly { .. } | Error::Locked(_)),
        ) => return Err(e),
        Err(e) => {
            report.detail = format!("restore failed: {e}");
            return Ok(());
        }
    };
    (report.files, report.bytes) = (restored.files, restored.bytes);
    if let Some(first) = restored.failed.first() {
        report.detail =
            format!("{} paths could not be restored, first {}: {}", restored.failed.len(), first.path, first.reason);
        return Ok(());
    }
    let mut env = opts.env.clone();
    env.extend([
        ("CAIRN_RESTORE_DIR".to_string(), target.display().to_string()),
        ("CAIRN_SNAPSHOT_ID".to_string(), id.to_hex()),
        ("CAIRN_SNAPSHOT_TIME".to_string(), crate::time::format_ns(snap.time_ns)),
        ("CAIRN_SNAPSHOT_HOST".to_string(), snap.host.clone()),
        ("CAIRN_SNAPSHOT_PATHS".to_string(), snap.paths_lossy().join("\n")),
    ]);
    let run = opts.verify.run(Stage::Verify, &env, opts.timeout);
    report.success = run.ok();
    if !run.ok() {
        report.detail = run.failure();
    }
    report.verify = Some(run);
    Ok(())
}

/// The directory to make the scratch directory in, and whether it is tmpfs.
fn scratch_parent(opts: &RestoreTestOptions, bytes: u64) -> Result<(PathBuf, bool)> {
    if let Some(dir) = &opts.scratch {
        return Ok((dir.clone(), false));
    }
    let need = bytes.saturating_mul(2).saturating_add(TMPFS_SPARE_BYTES);
    if let Ok(st) = rustix::fs::statvfs(TMPFS_DIR) {
        if st.f_bavail.saturating_mul(st.f_frsize) >= need {
            return Ok((PathBuf::from(TMPFS_DIR), true));
        }
    }
    crate::io::create_private_dir_all(&opts.fallback_dir)
        .map_err(|e| Error::io("cannot create", &opts.fallback_dir, e))?;
    Ok((opts.fallback_dir.clone(), false))
}
