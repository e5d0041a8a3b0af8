//! `cairn status`: one block per source (freshness, failures, restore tests, dedup), the WAL
//! streams (archive lag = recovery point), and the last check.

use clap::Args;

use cairn::error::{exit, Result};
use cairn::ops::status::{LastRun, StatusReport, When};
use cairn::ops::{self};
use cairn::repo::Access;

use super::metrics::{repo_label, MetricsArgs};
use super::render::{bytes, duration_ms, json, plural};
use super::Context;

#[derive(Args)]
pub struct StatusArgs {
    /// Also write every metric of the status to this file (a timer running `cairn status
    /// --metrics-file` keeps ages and lags current between backups).
    #[command(flatten)]
    metrics: MetricsArgs,
}

pub fn run(ctx: &Context, args: StatusArgs) -> Result<i32> {
    let repo = ctx.open_reading(Access::Read, "show status (it reads snapshots)")?;
    let report = ops::status(&repo, &repo_label(ctx))?;
    args.metrics.write(&report.metrics());
    if ctx.json {
        json(&report)?;
    } else {
        print(&report)?;
    }
    Ok(if report.damaged_snapshots > 0 { exit::CORRUPT } else { exit::OK })
}

fn print(r: &StatusReport) -> Result<()> {
    outln!("repository {} at {}", r.repo, r.time)?;
    match &r.last_check {
        Some(c) => outln!("last check   {}", run_line(c))?,
        None => outln!("last check   never")?,
    }
    for s in &r.sources {
        let last = &s.last_snapshot;
        outln!("")?;
        outln!("source {}", s.source)?;
        outln!(
            "  last snapshot   {} {} ({} ago), took {}, added {}",
            &last.id[..8],
            last.finished.time,
            age(&last.finished),
            duration_ms((last.duration_seconds * 1000.0) as u64),
            bytes(last.added_bytes)
        )?;
        match &s.last_failure {
            Some(f) => outln!("  last failure    {} ({} ago): {}", f.finished.time, age(&f.finished), f.detail)?,
            None => outln!("  last failure    none recorded")?,
        }
        outln!("  restorable      {} .. {} ({} snapshots)", s.oldest_snapshot.time, last.started.time, s.snapshots)?;
        match &s.last_restore_test {
            Some(t) => outln!("  restore test    {}", run_line(t))?,
            None => outln!("  restore test    never")?,
        }
        match s.dedup_ratio {
            Some(d) => outln!("  dedup ratio     {d:.2}x")?,
            None => outln!("  dedup ratio     -")?,
        }
    }
    for (source, f) in &r.failing_sources {
        outln!("")?;
        outln!("source {source}")?;
        outln!("  no snapshot; last failure {} ({} ago): {}", f.finished.time, age(&f.finished), f.detail)?;
    }
    for w in &r.wal {
        outln!("")?;
        outln!("wal stream {}", w.stream)?;
        outln!("  newest archived {} (lag {})", w.newest_archived.time, age(&w.newest_archived))?;
        let from = w.recoverable_from.as_ref().map_or("(no snapshot before it)".to_string(), |f| f.time.clone());
        outln!("  recoverable     {from} .. {} ({})", w.recoverable_to.time, plural(w.files, "WAL file"))?;
    }
    Ok(())
}

/// `passed 2026-12-03T10:00:00Z (3 h ago)`, with the reason when it failed.
fn run_line(r: &LastRun) -> String {
    let verdict = if r.success { "passed" } else { "FAILED" };
    let mut line = format!("{verdict} {} ({} ago)", r.finished.time, age(&r.finished));
    if !r.success && !r.detail.is_empty() {
        line.push_str(&format!(": {}", r.detail));
    }
    line
}

fn age(w: &When) -> String {
    let s = w.age_seconds.max(0.0) as i64;
    cairn::time::format_duration_ns(s.saturating_mul(1_000_000_000))
}
