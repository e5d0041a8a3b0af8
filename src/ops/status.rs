//! `cairn status`: per source, how fresh and how proven its backups are, from what the
//! repository holds (snapshots, run records, the WAL catalog), and the same as metrics.
//!
//! A source is what `snapshot create` groups parents by: host and paths. Snapshots are read
//! one at a time and folded into one aggregate per source, so memory grows with the number of
//! sources, not snapshots. Every time is also given in seconds since the epoch at millisecond
//! precision ([`crate::metrics::seconds`]), the numbers `--metrics-file` writes.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::Result;
use crate::metrics::{seconds, Sample};
use crate::repo::Repository;
use crate::snapshot::{source_name, RunKind, RunRecord, Snapshot};
use crate::time::format_ns;

/// A point in time, readable and as a number.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct When {
    pub time: String,
    pub timestamp_seconds: f64,
    /// Seconds between then and the report's time.
    pub age_seconds: f64,
}

impl When {
    pub fn at(ns: i64, now_ns: i64) -> When {
        When { time: format_ns(ns), timestamp_seconds: seconds(ns), age_seconds: seconds(now_ns.saturating_sub(ns)) }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct LastSnapshot {
    pub id: String,
    /// When it started.
    pub started: When,
    /// When it finished: the "last success" time.
    pub finished: When,
    pub duration_seconds: f64,
    pub added_bytes: u64,
    pub stored_bytes: u64,
    pub size_bytes: u64,
    pub files: u64,
}

/// A restore test, check or failed snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct LastRun {
    pub success: bool,
    /// When it finished.
    pub finished: When,
    pub duration_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    pub command: String,
    /// Bytes restored (restore test) or read from packs (check).
    pub bytes: u64,
    pub detail: String,
}

impl LastRun {
    pub fn of(r: &RunRecord, now_ns: i64) -> LastRun {
        LastRun {
            success: r.success,
            finished: When::at(r.end_ns(), now_ns),
            duration_seconds: r.duration_ms as f64 / 1000.0,
            snapshot: r.snapshot.map(|s| s.to_hex()),
            command: r.command.clone(),
            bytes: r.bytes,
            detail: r.detail.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SourceStatus {
    pub source: String,
    pub host: String,
    pub paths: Vec<String>,
    pub snapshots: u64,
    pub last_snapshot: LastSnapshot,
    pub last_failure: Option<LastRun>,
    /// Restorable from the oldest snapshot to the newest.
    pub oldest_snapshot: When,
    pub last_restore_test: Option<LastRun>,
    /// Bytes of every snapshot of the source over the bytes they added (before compression):
    /// how many times over deduplication stores the data.
    pub dedup_ratio: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WalStatus {
    pub stream: String,
    pub files: u64,
    pub oldest_archived: When,
    /// The newest archived file; its age is the archive lag (the recovery point).
    pub newest_archived: When,
    pub lag_seconds: f64,
    /// `restore --at` reaches from the oldest snapshot to the newest archived WAL file.
    pub recoverable_from: Option<When>,
    pub recoverable_to: When,
}

#[derive(Clone, Debug, Serialize)]
pub struct StatusReport {
    pub repo: String,
    pub time: String,
    pub sources: Vec<SourceStatus>,
    /// Failed snapshots of sources that have no snapshot yet.
    pub failing_sources: Vec<(String, LastRun)>,
    pub wal: Vec<WalStatus>,
    pub last_check: Option<LastRun>,
    /// Snapshots that could not be read (named by `repo check`).
    pub damaged_snapshots: u64,
}

/// One source's snapshots, folded.
struct Fold {
    host: String,
    paths: Vec<Vec<u8>>,
    count: u64,
    newest: (String, Snapshot),
    oldest_ns: i64,
    bytes: u128,
    added: u128,
}

/// Reads what the repository knows about every source; `repo` names it in the report.
pub fn status(repo: &Repository, repo_name: &str) -> Result<StatusReport> {
    repo.require_read("show status (it reads snapshots and run records)")?;
    let now_ns = crate::time::now_ns();
    let (folds, damaged) = fold_snapshots(repo)?;
    let tests = newest_per_source(repo.runs(RunKind::RestoreTest)?.records);
    let mut failures = newest_per_source(repo.runs(RunKind::SnapshotFailure)?.records);
    let last_check = repo.runs(RunKind::Check)?.records.last().map(|r| LastRun::of(r, now_ns));
    let oldest_any = folds.values().map(|f| f.oldest_ns).min();
    let mut sources = Vec::new();
    for (name, f) in folds {
        let (id, s) = &f.newest;
        let end = s.time_ns.saturating_add(s.summary.duration_ms as i64 * 1_000_000);
        sources.push(SourceStatus {
            host: f.host.clone(),
            paths: f.paths.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect(),
            snapshots: f.count,
            last_snapshot: LastSnapshot {
                id: id.clone(),
                started: When::at(s.time_ns, now_ns),
                finished: When::at(end, now_ns),
                duration_seconds: s.summary.duration_ms as f64 / 1000.0,
                added_bytes: s.summary.bytes_added,
                stored_bytes: s.summary.bytes_stored,
                size_bytes: s.summary.bytes,
                files: s.summary.files,
            },
            last_failure: failures.remove(&name).map(|r| LastRun::of(&r, now_ns)),
            oldest_snapshot: When::at(f.oldest_ns, now_ns),
            last_restore_test: tests.get(&name).map(|r| LastRun::of(r, now_ns)),
            dedup_ratio: (f.added > 0).then(|| (f.bytes as f64 / f.added as f64 * 1000.0).round() / 1000.0),
            source: name,
        });
    }
    let failing_sources = failures.into_iter().map(|(n, r)| (n, LastRun::of(&r, now_ns))).collect();
    Ok(StatusReport {
        repo: repo_name.to_string(),
        time: format_ns(now_ns),
        sources,
        failing_sources,
        wal: wal_status(repo, now_ns, oldest_any)?,
        last_check,
        damaged_snapshots: damaged,
    })
}

fn fold_snapshots(repo: &Repository) -> Result<(BTreeMap<String, Fold>, u64)> {
    let mut folds: BTreeMap<String, Fold> = BTreeMap::new();
    let mut damaged = 0;
    for id in repo.snapshot_ids()? {
        let s = match repo.load_snapshot(&id) {
            Ok(s) => s,
            Err(e) if e.is_not_found() => continue, // forgotten since the listing
            Err(_) => {
                damaged += 1;
                continue;
            }
        };
        let f = folds.entry(s.source()).or_insert_with(|| Fold {
            host: s.host.clone(),
            paths: s.paths.clone(),
            count: 0,
            newest: (id.to_hex(), s.clone()),
            oldest_ns: s.time_ns,
            bytes: 0,
            added: 0,
        });
        f.count += 1;
        f.oldest_ns = f.oldest_ns.min(s.time_ns);
        f.bytes += u128::from(s.summary.bytes);
        f.added += u128::from(s.summary.bytes_added);
        if s.time_ns > f.newest.1.time_ns {
            f.newest = (id.to_hex(), s);
        }
    }
    Ok((folds, damaged))
}

/// The newest record of each source.
fn newest_per_source(records: Vec<RunRecord>) -> BTreeMap<String, RunRecord> {
    let mut out = BTreeMap::new();
    // `runs` returns them oldest first: later ones replace earlier ones.
    for r in records {
        out.insert(source_name(&r.host, &r.paths), r);
    }
    out
}

fn wal_status(repo: &Repository, now_ns: i64, oldest_snapshot_ns: Option<i64>) -> Result<Vec<WalStatus>> {
    let mut streams: BTreeMap<String, (u64, i64, i64)> = BTreeMap::new();
    repo.for_each_wal(None, &mut |r| {
        let e = streams.entry(r.stream.clone()).or_insert((0, r.archived_ns, r.archived_ns));
        e.0 += 1;
        e.1 = e.1.min(r.archived_ns);
        e.2 = e.2.max(r.archived_ns);
        Ok(())
    })?;
    Ok(streams
        .into_iter()
        .map(|(stream, (files, oldest, newest))| WalStatus {
            stream,
            files,
            oldest_archived: When::at(oldest, now_ns),
            newest_archived: When::at(newest, now_ns),
            lag_seconds: seconds(now_ns.saturating_sub(newest)),
            recoverable_from: oldest_snapshot_ns.filter(|o| *o <= newest).map(|o| When::at(o, now_ns)),
            recoverable_to: When::at(newest, now_ns),
        })
        .collect())
}

impl StatusReport {
    /// Every metric the report holds, labelled with `repo`.
    pub fn metrics(&self) -> Vec<Sample> {
        let repo = self.repo.as_str();
        let mut out = Vec::new();
        for s in &self.sources {
            let l = [("repo", repo), ("source", s.source.as_str())];
            let last = &s.last_snapshot;
            out.push(Sample::new("cairn_snapshot_last_success_timestamp_seconds", &l, last.finished.timestamp_seconds));
            out.push(Sample::new("cairn_snapshot_duration_seconds", &l, last.duration_seconds));
            out.push(Sample::new("cairn_snapshot_added_bytes", &l, last.added_bytes as f64));
            out.push(Sample::new("cairn_snapshot_size_bytes", &l, last.size_bytes as f64));
            out.push(Sample::new("cairn_snapshots", &l, s.snapshots as f64));
            out.push(Sample::new("cairn_snapshot_oldest_timestamp_seconds", &l, s.oldest_snapshot.timestamp_seconds));
            if let Some(r) = &s.dedup_ratio {
                out.push(Sample::new("cairn_dedup_ratio", &l, *r));
            }
            if let Some(f) = &s.last_failure {
                out.push(Sample::new(
                    "cairn_snapshot_last_failure_timestamp_seconds",
                    &l,
                    f.finished.timestamp_seconds,
                ));
            }
            if let Some(t) = &s.last_restore_test {
                out.extend(restore_test_samples(repo, &s.source, t));
            }
        }
        for (source, f) in &self.failing_sources {
            let l = [("repo", repo), ("source", source.as_str())];
            out.push(Sample::new("cairn_snapshot_last_failure_timestamp_seconds", &l, f.finished.timestamp_seconds));
        }
        for w in &self.wal {
            let l = [("repo", repo), ("stream", w.stream.as_str())];
            out.push(Sample::new("cairn_wal_last_archive_timestamp_seconds", &l, w.newest_archived.timestamp_seconds));
            out.push(Sample::new("cairn_wal_archive_lag_seconds", &l, w.lag_seconds));
            out.push(Sample::new("cairn_wal_files", &l, w.files as f64));
        }
        if let Some(c) = &self.last_check {
            out.extend(check_samples(repo, c));
        }
        out
    }
}

/// The samples of one restore test of `source`.
pub fn restore_test_samples(repo: &str, source: &str, t: &LastRun) -> Vec<Sample> {
    let l = [("repo", repo), ("source", source)];
    vec![
        Sample::new("cairn_restore_test_success", &l, if t.success { 1.0 } else { 0.0 }),
        Sample::new("cairn_restore_test_last_timestamp_seconds", &l, t.finished.timestamp_seconds),
        Sample::new("cairn_restore_test_duration_seconds", &l, t.duration_seconds),
    ]
}

/// The samples of one check.
pub fn check_samples(repo: &str, c: &LastRun) -> Vec<Sample> {
    let l = [("repo", repo)];
    vec![
        Sample::new("cairn_check_success", &l, if c.success { 1.0 } else { 0.0 }),
        Sample::new("cairn_check_last_timestamp_seconds", &l, c.finished.timestamp_seconds),
        Sample::new("cairn_check_duration_seconds", &l, c.duration_seconds),
        Sample::new("cairn_check_read_bytes", &l, c.bytes as f64),
    ]
}
