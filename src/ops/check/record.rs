//! The run record of a `repo check`: pass or fail, when, and what it read, so `cairn status`
//! can say when the repository was last checked and how.

use crate::error::Result;
use crate::ops::check::{CheckOptions, CheckReport, ReadData, Severity};
use crate::repo::Repository;
use crate::snapshot::{RunKind, RunRecord};

/// `structural`, `read-data`, `read-data 10%`, `read-data 3/7`.
pub fn mode_name(read_data: ReadData) -> String {
    match read_data {
        ReadData::None => "structural".into(),
        ReadData::All => "read-data".into(),
        ReadData::Percent(p) => format!("read-data {p}%"),
        ReadData::Slice { k, of } => format!("read-data {k}/{of}"),
    }
}

/// The record of a check that started at `started_ns` and produced `report`.
pub fn check_record(report: &CheckReport, opts: &CheckOptions, started_ns: i64) -> RunRecord {
    let damage = report.findings.iter().filter(|f| f.severity == Severity::Damage).count();
    let s = &report.stats;
    let mut detail = format!(
        "{} snapshots, {} trees, {} packs; {} packs read ({} bytes, {} blobs verified)",
        s.snapshots, s.trees, s.packs, s.packs_read, s.bytes_read, s.blobs_verified
    );
    if let Some(first) = report.findings.iter().find(|f| f.severity == Severity::Damage) {
        detail = format!("{damage} damage findings, first: {}: {}; {detail}", first.object, first.problem);
    }
    RunRecord {
        kind: RunKind::Check,
        success: damage == 0,
        time_ns: started_ns,
        duration_ms: report.duration_ms,
        ran_on: crate::fs::hostname(),
        host: String::new(),
        paths: Vec::new(),
        snapshot: None,
        command: mode_name(opts.read_data),
        exit_code: None,
        bytes: s.bytes_read,
        detail,
        tool: format!("cairn {}", env!("CARGO_PKG_VERSION")),
    }
}

/// Stores the record of a finished check in the repository it checked.
pub fn record_check(
    repo: &Repository,
    report: &CheckReport,
    opts: &CheckOptions,
    started_ns: i64,
) -> Result<RunRecord> {
    let record = check_record(report, opts, started_ns);
    repo.save_run(&record)?;
    Ok(record)
}
