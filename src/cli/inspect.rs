//! `cairn dump`, `cairn find` and `cairn stats`: reading snapshots without restoring them.

use std::io::Write;

use clap::Args;
use serde::Serialize;

use cairn::error::{exit, Result};
use cairn::id::SnapshotId;
use cairn::ops;
use cairn::repo::{Access, Repository, SnapshotSpec};
use cairn::snapshot::Snapshot;

use super::render::{bytes, count, json, plural, stdout_error};
use super::select::SelectArgs;
use super::Context;

#[derive(Args)]
pub struct DumpArgs {
    /// Snapshot id, unique id prefix, or `latest`.
    snapshot: String,
    /// The file: an absolute path as `cairn ls` prints it, or one relative to the snapshot's
    /// path.
    path: String,
    #[command(flatten)]
    select: SelectArgs,
}

#[derive(Args)]
pub struct FindArgs {
    /// Name patterns ('*.conf', matched against every entry's name) or path patterns with a
    /// '/' ('/etc/**/*.conf', matched against the absolute path); '**' spans directories.
    #[arg(required = true, value_name = "PATTERN")]
    patterns: Vec<String>,
    /// Search only this snapshot (id, prefix or `latest`; repeatable). Default: every snapshot
    /// the --host/--tag/--path selection matches, oldest first.
    #[arg(long = "snapshot", short = 's', value_name = "ID")]
    snapshots: Vec<String>,
    #[command(flatten)]
    select: SelectArgs,
}

#[derive(Args)]
pub struct StatsArgs {
    /// Snapshots to measure (ids, prefixes or `latest`). Default: every snapshot the
    /// --host/--tag/--path selection matches.
    #[arg(value_name = "ID")]
    snapshots: Vec<String>,
    #[command(flatten)]
    select: SelectArgs,
}

/// `cairn dump`: the file's bytes on stdout, nothing else (errors on stderr).
pub fn dump(ctx: &Context, args: DumpArgs) -> Result<i32> {
    let repo = ctx.open_reading(Access::Read, "read a snapshot's files")?;
    let (_, snap) = repo.resolve_snapshot_matching(&args.snapshot.parse::<SnapshotSpec>()?, &args.select.filter())?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    ops::dump(&repo, &snap, &args.path, &mut |data| out.write_all(data).map_err(stdout_error))?;
    out.flush().map_err(stdout_error)?;
    Ok(exit::OK)
}

#[derive(Serialize)]
struct FoundView<'a> {
    snapshot: String,
    time: String,
    host: &'a str,
    #[serde(flatten)]
    entry: ops::LsEntry,
}

pub fn find(ctx: &Context, args: FindArgs) -> Result<i32> {
    let patterns = ops::find_patterns(&args.patterns)?;
    let repo = ctx.open_reading(Access::Read, "search snapshots")?;
    let (snapshots, damaged) = chosen(&repo, &args.snapshots, &args.select)?;
    let mut found = Vec::new();
    let mut hits = 0u64;
    ops::find(&repo, &snapshots, &patterns, &mut |id, snap, entry| {
        hits += 1;
        if ctx.json {
            found.push(FoundView {
                snapshot: id.to_hex(),
                time: cairn::time::format_ns_secs(snap.time_ns),
                host: snapshots.iter().find(|(i, _)| i == id).map_or("", |(_, s)| s.host.as_str()),
                entry,
            });
            return Ok(());
        }
        outln!(
            "{}  {}  {:>10}  {}  {}",
            id.short(),
            cairn::time::format_ns_secs(snap.time_ns),
            bytes(entry.size),
            entry.mtime,
            entry.path
        )
    })?;
    if ctx.json {
        json(&found)?;
    } else {
        ctx.say(format!("{} in {}", plural(hits, "match"), plural(snapshots.len() as u64, "snapshot")));
    }
    Ok(if damaged { exit::CORRUPT } else { exit::OK })
}

#[derive(Serialize)]
struct StatsView {
    #[serde(flatten)]
    stats: ops::stats::Stats,
    dedup_ratio: f64,
    compression_ratio: f64,
}

pub fn stats(ctx: &Context, args: StatsArgs) -> Result<i32> {
    let repo = ctx.open_reading(Access::Read, "measure snapshots")?;
    let (snapshots, damaged) = chosen(&repo, &args.snapshots, &args.select)?;
    let stats = ops::stats::stats(&repo, &snapshots)?;
    let view = StatsView { dedup_ratio: stats.dedup_ratio(), compression_ratio: stats.compression_ratio(), stats };
    if ctx.json {
        json(&view)?;
    } else {
        let s = &view.stats;
        outln!("snapshots        {}", count(s.snapshots))?;
        outln!("restore size     {} in {}", bytes(s.restore_bytes), plural(s.files, "file"))?;
        outln!("unique data      {} in {}", bytes(s.unique_bytes), plural(s.unique_chunks, "chunk"))?;
        outln!(
            "stored           {} of data, {} of trees and lists",
            bytes(s.stored_bytes),
            bytes(s.metadata_stored_bytes)
        )?;
        outln!("deduplication    {:.2}x (restore size / unique data)", view.dedup_ratio)?;
        outln!("compression      {:.2}x (unique data / stored)", view.compression_ratio)?;
    }
    Ok(if damaged { exit::CORRUPT } else { exit::OK })
}

/// The snapshots named by `specs`, or (none named) every snapshot `select` matches, oldest
/// first; and whether some snapshot record could not be read (named on stderr).
fn chosen(repo: &Repository, specs: &[String], select: &SelectArgs) -> Result<(Vec<(SnapshotId, Snapshot)>, bool)> {
    let filter = select.filter();
    if !specs.is_empty() {
        let picked = specs
            .iter()
            .map(|s| repo.resolve_snapshot_matching(&s.parse::<SnapshotSpec>()?, &filter))
            .collect::<Result<_>>()?;
        return Ok((picked, false));
    }
    let mut all = Vec::new();
    let mut damaged = false;
    for (id, snap) in repo.snapshots()? {
        match snap {
            Ok(s) if filter.matches(&s) => all.push((id, s)),
            Ok(_) => {}
            Err(e) => {
                damaged = true;
                eprintln!("error: {e}");
            }
        }
    }
    all.sort_by_key(|(_, s)| s.time_ns);
    Ok((all, damaged))
}
