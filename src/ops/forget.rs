//! `forget`: which snapshots a retention policy keeps, and (with `keep_wal_within`) which WAL
//! records a point-in-time window still needs. Planned first, then applied; `--dry-run`
//! prints the plan.
//!
//! Semantics (restic/borg style, buckets in UTC):
//! * snapshots are grouped by host and paths; each group is decided on its own;
//! * `keep_last N` keeps the N newest; `keep_{hourly,daily,weekly,monthly,yearly} N` walk the
//!   group from newest to oldest and keep the newest snapshot of each of the N most recent
//!   hours/days/ISO weeks/months/years that have one;
//! * `keep_within D` keeps every snapshot taken within D of the group's newest snapshot;
//! * a snapshot is kept if any rule keeps it; every rule that keeps it is reported;
//! * with `keep_wal_within W`, the newest snapshot taken at or before `now - W` is kept as
//!   the base of the window, and WAL records are kept when archived after that base or while a
//!   kept snapshot was being taken (a base backup needs that WAL); all others are forgotten.

use std::collections::BTreeMap;

use chrono::{Datelike, TimeZone, Timelike, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::repo::{wal_key, LockKind, Repository, SnapshotSpec};
use crate::snapshot::Snapshot;

/// Slack after a snapshot's end within which archived WAL still belongs to it.
const WAL_AFTER_SNAPSHOT_NS: i64 = 60_000_000_000;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeepPolicy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    /// Nanoseconds.
    pub within_ns: Option<i64>,
}

impl KeepPolicy {
    pub fn is_empty(&self) -> bool {
        *self == KeepPolicy::default()
    }
}

#[derive(Clone, Debug, Default)]
pub struct ForgetOptions {
    pub policy: KeepPolicy,
    pub host: Option<String>,
    pub tag: Option<String>,
    /// Only snapshots that include this path.
    pub path: Option<String>,
    /// Point-in-time window to keep restorable, in nanoseconds before now.
    pub keep_wal_within_ns: Option<i64>,
    /// Only WAL records of this stream are planned (kept or forgotten); `None`: every stream.
    /// A source's window says nothing about another service's WAL.
    pub wal_stream: Option<String>,
    pub dry_run: bool,
    /// "Now" for the WAL window (tests pin it).
    pub now_ns: Option<i64>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Decision {
    pub id: String,
    pub time: String,
    pub host: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub keep: bool,
    /// The rules that keep it (empty when it is forgotten).
    pub reasons: Vec<String>,
}

impl Decision {
    /// The decision on snapshot `id`: kept by `reasons`, forgotten when there are none.
    fn new(id: &SnapshotId, s: &Snapshot, reasons: Vec<String>) -> Self {
        Decision {
            id: id.to_hex(),
            time: crate::time::format_ns(s.time_ns),
            host: s.host.clone(),
            paths: s.paths_lossy(),
            tags: s.tags.clone(),
            keep: !reasons.is_empty(),
            reasons,
        }
    }
}

#[derive(Clone, Debug, Serialize, Default)]
pub struct ForgetReport {
    pub snapshots: Vec<Decision>,
    pub wal_forgotten: Vec<String>,
    pub wal_kept: u64,
    pub dry_run: bool,
}

impl ForgetReport {
    pub fn forgotten(&self) -> usize {
        self.snapshots.iter().filter(|d| !d.keep).count()
    }
}

pub fn forget(repo: &Repository, opts: &ForgetOptions) -> Result<ForgetReport> {
    repo.require_read("forget snapshots (a retention policy reads their times, hosts and tags)")?;
    if opts.policy.is_empty() && opts.keep_wal_within_ns.is_none() {
        return Err(Error::InvalidArgument("no --keep-* rule given; refusing to forget every snapshot".to_string()));
    }
    let _lock = repo.lock(LockKind::Shared, "forget")?;
    let mut snaps: Vec<(SnapshotId, Snapshot)> = Vec::new();
    for id in repo.snapshot_ids()? {
        let s = repo.load_snapshot(&id)?;
        let path_ok = opts.path.as_ref().is_none_or(|p| s.paths.iter().any(|q| q == p.as_bytes()));
        if opts.host.as_ref().is_none_or(|h| &s.host == h)
            && opts.tag.as_ref().is_none_or(|t| s.tags.contains(t))
            && path_ok
        {
            snaps.push((id, s));
        }
    }
    snaps.sort_by(|a, b| b.1.time_ns.cmp(&a.1.time_ns).then(a.0.cmp(&b.0)));
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); snaps.len()];
    let mut groups: BTreeMap<(String, Vec<Vec<u8>>), Vec<usize>> = BTreeMap::new();
    for (i, (_, s)) in snaps.iter().enumerate() {
        groups.entry((s.host.clone(), s.paths.clone())).or_default().push(i);
    }
    if !opts.policy.is_empty() {
        for members in groups.values() {
            apply_policy(&opts.policy, &snaps, members, &mut reasons);
        }
    } else {
        // Only a WAL window: every snapshot stays.
        for r in reasons.iter_mut() {
            r.push("no snapshot rule".to_string());
        }
    }
    let mut report = ForgetReport { dry_run: opts.dry_run, ..Default::default() };
    if let Some(window) = opts.keep_wal_within_ns {
        let now = opts.now_ns.unwrap_or_else(crate::time::now_ns);
        plan_wal(repo, &snaps, &mut reasons, now - window, opts.wal_stream.as_deref(), &mut report)?;
    }
    for ((id, s), why) in snaps.iter().zip(reasons) {
        report.snapshots.push(Decision::new(id, s, why));
    }
    report.snapshots.reverse(); // oldest first
    if !opts.dry_run {
        for d in report.snapshots.iter().filter(|d| !d.keep) {
            let id: SnapshotId = d.id.parse()?;
            repo.backend().delete(&crate::repo::snapshot_key(&id))?;
        }
        for key in &report.wal_forgotten {
            let (stream, name) = key.split_once('/').unwrap_or(("", key));
            repo.backend().delete(&repo.wal_object_key(stream, name))?;
        }
    }
    Ok(report)
}

/// `forget ID...`: removes exactly the snapshots named (ids, unique prefixes or `latest`),
/// nothing else and no WAL. Every name is resolved before anything is removed, so a typo or an
/// ambiguous prefix removes nothing. A snapshot named twice is removed once.
pub fn forget_ids(repo: &Repository, specs: &[SnapshotSpec], dry_run: bool) -> Result<ForgetReport> {
    repo.require_read("forget snapshots (naming one means reading its record)")?;
    let _lock = repo.lock(LockKind::Shared, "forget")?;
    let mut chosen: Vec<(SnapshotId, Snapshot)> = Vec::new();
    for spec in specs {
        let (id, s) = repo.resolve_snapshot(spec)?;
        if !chosen.iter().any(|(c, _)| *c == id) {
            chosen.push((id, s));
        }
    }
    chosen.sort_by(|a, b| a.1.time_ns.cmp(&b.1.time_ns).then(a.0.cmp(&b.0)));
    let mut report = ForgetReport { dry_run, ..Default::default() };
    for (id, s) in &chosen {
        report.snapshots.push(Decision::new(id, s, Vec::new()));
        if !dry_run {
            repo.backend().delete(&crate::repo::snapshot_key(id))?;
        }
    }
    Ok(report)
}

/// Marks, in `reasons`, the members (newest first) of one group that the policy keeps.
fn apply_policy(p: &KeepPolicy, snaps: &[(SnapshotId, Snapshot)], members: &[usize], reasons: &mut [Vec<String>]) {
    let time = |i: usize| Utc.timestamp_nanos(snaps[i].1.time_ns);
    for (n, &i) in members.iter().enumerate() {
        if (n as u32) < p.last {
            reasons[i].push(format!("last {}", p.last));
        }
    }
    type Bucket = fn(&chrono::DateTime<Utc>) -> (i32, u32, u32);
    let rules: [(&str, u32, Bucket); 5] = [
        ("hourly", p.hourly, |t| (t.year(), t.ordinal(), t.hour())),
        ("daily", p.daily, |t| (t.year(), t.ordinal(), 0)),
        ("weekly", p.weekly, |t| (t.iso_week().year(), t.iso_week().week(), 0)),
        ("monthly", p.monthly, |t| (t.year(), t.month(), 0)),
        ("yearly", p.yearly, |t| (t.year(), 0, 0)),
    ];
    for (name, count, bucket) in rules {
        let mut last_bucket = None;
        let mut kept = 0;
        for &i in members {
            if kept >= count {
                break;
            }
            let b = bucket(&time(i));
            if last_bucket != Some(b) {
                last_bucket = Some(b);
                kept += 1;
                reasons[i].push(format!("{name} {count}"));
            }
        }
    }
    if let (Some(within), Some(&newest)) = (p.within_ns, members.first()) {
        let since = snaps[newest].1.time_ns - within;
        for &i in members {
            if snaps[i].1.time_ns >= since {
                reasons[i].push(format!("within {}", crate::time::format_duration_ns(within)));
            }
        }
    }
}

/// Keeps the base snapshot of the WAL window and decides which WAL records go.
fn plan_wal(
    repo: &Repository,
    snaps: &[(SnapshotId, Snapshot)],
    reasons: &mut [Vec<String>],
    window_start: i64,
    stream: Option<&str>,
    report: &mut ForgetReport,
) -> Result<()> {
    if snaps.is_empty() {
        return Ok(());
    }
    // Newest snapshot at or before the window's start, else the oldest one.
    let base = snaps.iter().position(|(_, s)| s.time_ns <= window_start).unwrap_or(snaps.len() - 1);
    reasons[base].push("base of the WAL window".to_string());
    let base_time = snaps[base].1.time_ns;
    let spans: Vec<(i64, i64)> = snaps
        .iter()
        .zip(reasons.iter())
        .filter(|(_, r)| !r.is_empty())
        .map(|((_, s), _)| (s.time_ns, s.time_ns + s.summary.duration_ms as i64 * 1_000_000 + WAL_AFTER_SNAPSHOT_NS))
        .collect();
    repo.for_each_wal(stream, &mut |r| {
        let t = r.archived_ns;
        if t >= base_time || spans.iter().any(|(a, b)| (*a..=*b).contains(&t)) {
            report.wal_kept += 1;
        } else {
            report.wal_forgotten.push(wal_key(&r.stream, &r.name)[crate::repo::WAL_DIR.len()..].to_string());
        }
        Ok(())
    })?;
    report.wal_forgotten.sort();
    Ok(())
}
