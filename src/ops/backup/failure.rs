//! The record of a `snapshot create` that failed: a successful run leaves its snapshot, a
//! failed one leaves this, so `cairn status` and the metrics can show the failure.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::snapshot::{RunKind, RunRecord};

/// The failure record of a snapshot of `paths` on `host` (this machine's when `None`) that
/// started at `started_ns` and failed with `error`. Paths are resolved as the snapshot would
/// have resolved them, where they still can be, so the record joins its source.
pub fn failure_record(host: Option<&str>, paths: &[PathBuf], started_ns: i64, error: &str) -> RunRecord {
    let resolved = match super::canonical_paths(paths) {
        Ok(p) => p,
        Err(_) => paths.iter().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())).collect(),
    };
    let now = crate::time::now_ns();
    RunRecord {
        kind: RunKind::SnapshotFailure,
        success: false,
        time_ns: started_ns,
        duration_ms: u64::try_from(now.saturating_sub(started_ns) / 1_000_000).unwrap_or(0),
        ran_on: crate::fs::hostname(),
        host: host.map_or_else(crate::fs::hostname, str::to_string),
        paths: resolved.iter().map(|p| p.as_os_str().as_bytes().to_vec()).collect(),
        snapshot: None,
        command: "snapshot create".into(),
        exit_code: None,
        bytes: 0,
        detail: error.to_string(),
        tool: format!("cairn {}", env!("CARGO_PKG_VERSION")),
    }
    .bounded()
}
