//! `cairn snapshot create|list|show|diff` (and the `tag` subcommand, in `tag.rs`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use cairn::error::{exit, redact_urls, Result};
use cairn::hooks::HookRun;
use cairn::ops::{self, BackupOptions, Change, Skipped};
use cairn::repo::{Access, SnapshotSpec};
use cairn::snapshot::{Snapshot, Summary};
use cairn::time::format_ns;
use cairn::SnapshotId;

use super::hooks::{around, report as report_hooks, HookArgs, Outcome};
use super::render::{bytes, count, duration_ms, fold_paths, json, plural};
use super::select::SelectArgs;
use super::Context;

#[derive(Subcommand)]
pub enum SnapshotCommand {
    /// Back up PATHs into a new snapshot. Files unchanged since the parent snapshot (same
    /// size, mtime, ctime and inode) are not read again.
    Create(CreateArgs),
    /// List snapshots, oldest first.
    List(ListArgs),
    /// Show one snapshot in detail.
    Show {
        /// Snapshot id, unique id prefix, or `latest`.
        snapshot: String,
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Add, remove or replace the tags of snapshots. Each changed snapshot gets a new id
    /// (printed as old -> new): snapshot ids name their content.
    Tag(super::tag::TagArgs),
    /// Show what changed between two snapshots.
    Diff {
        /// Older snapshot (id, prefix or `latest`).
        a: String,
        /// Newer snapshot (id, prefix or `latest`).
        b: String,
        #[command(flatten)]
        select: SelectArgs,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    /// Files or directories to back up.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Host name to record (default: this machine's).
    #[arg(long)]
    host: Option<String>,
    /// Compare against this snapshot instead of the newest one with the same host and paths.
    #[arg(long, value_name = "SNAPSHOT")]
    parent: Option<String>,
    /// Read every file, even those that look unchanged; also accept a --time in the future.
    #[arg(long)]
    force: bool,
    /// Online base backup of a running PostgreSQL: connect with CONNINFO (e.g.
    /// "host=/run/postgresql user=postgres"), wrap the snapshot of the data directory PATH in
    /// pg_backup_start/pg_backup_stop and store backup_label in it. WAL must be archived with
    /// `cairn wal push` for the snapshot to be restorable.
    #[arg(long, value_name = "CONNINFO")]
    postgres: Option<String>,
    /// Treat matching files (a name pattern like '*.log', or a path pattern with '/') as
    /// append-only: one that grew since the parent is read only from its last chunk on, after
    /// that chunk is re-hashed to prove the old content unchanged (repeatable). Only for files
    /// that are never rewritten in place (segment logs, WAL): only the old tail is re-hashed,
    /// so a change further back in a file that also grew would be missed.
    #[arg(long, value_name = "PATTERN")]
    append_only: Vec<String>,
    /// Record this time as the snapshot's instead of now (e.g. when importing old backups).
    /// RFC 3339 (`2026-12-03T10:00:00Z`, `2026-12-03T11:00:00+01:00`), "YYYY-MM-DD HH:MM[:SS]"
    /// (UTC) or Unix seconds (`1764756000`).
    #[arg(long, value_name = "TIME")]
    time: Option<String>,
    #[command(flatten)]
    hooks: HookArgs,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    select: SelectArgs,
}

/// A snapshot as JSON shows it.
#[derive(Serialize)]
pub struct SnapshotView {
    id: String,
    time: String,
    host: String,
    paths: Vec<String>,
    tags: Vec<String>,
    parent: Option<String>,
    root: String,
    summary: Summary,
    tool: String,
}

pub fn view(id: &SnapshotId, s: &Snapshot) -> SnapshotView {
    SnapshotView {
        id: id.to_hex(),
        time: format_ns(s.time_ns),
        host: s.host.clone(),
        paths: s.paths_lossy(),
        tags: s.tags.clone(),
        parent: s.parent.map(|p| p.to_hex()),
        root: s.root.to_hex(),
        summary: s.summary.clone(),
        tool: s.tool.clone(),
    }
}

pub fn run(ctx: &Context, cmd: SnapshotCommand) -> Result<i32> {
    match cmd {
        SnapshotCommand::Create(args) => create(ctx, args),
        SnapshotCommand::List(args) => list(ctx, args),
        SnapshotCommand::Show { snapshot, select } => show(ctx, &snapshot, &select),
        SnapshotCommand::Diff { a, b, select } => diff(ctx, &a, &b, &select),
        SnapshotCommand::Tag(args) => super::tag::run(ctx, args),
    }
}

#[derive(Serialize)]
struct CreateOutput {
    #[serde(flatten)]
    snapshot: SnapshotView,
    skipped: Vec<Skipped>,
    changed_while_reading: Vec<String>,
    hooks: Vec<HookRun>,
    special_files: u64,
    metadata_not_stored: u64,
}

fn create(ctx: &Context, args: CreateArgs) -> Result<i32> {
    let hooks = args.hooks.hooks()?;
    let env = vec![
        ("CAIRN_COMMAND".to_string(), "snapshot create".to_string()),
        ("CAIRN_REPO".to_string(), ctx.location().map(|l| redact_urls(&l.to_string())).unwrap_or_default()),
        ("CAIRN_PATHS".to_string(), args.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join("\n")),
    ];
    let (report, runs) = around(
        &hooks,
        env,
        true,
        || create_snapshot(ctx, args),
        |r| Outcome {
            // A snapshot written without some unreadable files (exit 3) is still a snapshot.
            success: true,
            env: vec![
                ("CAIRN_SNAPSHOT_ID".into(), r.id.to_hex()),
                ("CAIRN_BYTES_ADDED".into(), r.snapshot.summary.bytes_added.to_string()),
                ("CAIRN_FILES".into(), r.snapshot.summary.files.to_string()),
            ],
        },
    );
    report_hooks(&runs);
    let report = report?;
    for line in fold_paths(report.skipped.iter().map(|s| (s.path.as_str(), s.reason.as_str()))) {
        eprintln!("warning: skipped {line}");
    }
    for p in &report.changed_while_reading {
        eprintln!("warning: {p} changed size while being read; stored as read");
    }
    if report.metadata_not_stored > 0 {
        eprintln!(
            "warning: {} entries have extended attributes or hard links that this format version 1 \
             repository cannot store; `cairn repo copy` into a new repository keeps them from the next snapshot on",
            count(report.metadata_not_stored)
        );
    }
    let s = &report.snapshot.summary;
    if ctx.json {
        json(&CreateOutput {
            snapshot: view(&report.id, &report.snapshot),
            skipped: report.skipped.clone(),
            changed_while_reading: report.changed_while_reading.clone(),
            special_files: report.special_files,
            metadata_not_stored: report.metadata_not_stored,
            hooks: runs,
        })?;
    } else {
        let parent = report.snapshot.parent.map(|p| format!(" (parent {})", p.short())).unwrap_or_default();
        ctx.say(format!("snapshot {} saved{parent}", report.id.short()));
        ctx.say(summary_line(s));
    }
    Ok(if report.skipped.is_empty() { exit::OK } else { exit::PARTIAL })
}

fn create_snapshot(ctx: &Context, args: CreateArgs) -> Result<ops::BackupReport> {
    let repo = ctx.open(Access::Write)?;
    let opts = BackupOptions {
        paths: args.paths,
        tags: args.tags,
        host: args.host,
        parent: args.parent.as_deref().map(str::parse).transpose()?,
        force_read: args.force,
        postgres: args.postgres,
        append_only: args.append_only,
        time_ns: args.time.as_deref().map(|t| snapshot_time(t, args.force)).transpose()?,
        ..Default::default()
    };
    let progress = ctx.progress();
    ops::backup(&repo, &opts, progress.as_ref())
}

/// How far ahead of this machine's clock `--time` may be without `--force` (clock skew).
const FUTURE_SLACK_NS: i64 = 60_000_000_000;

/// Parses `--time`, refusing a time more than a minute ahead unless forced: the newest
/// snapshot is `latest` and the parent of the next, so a mistyped year would stay there.
fn snapshot_time(text: &str, force: bool) -> Result<i64> {
    let t = cairn::time::parse_timestamp(text)?;
    let now = cairn::time::now_ns();
    if !force && t > now.saturating_add(FUTURE_SLACK_NS) {
        return Err(cairn::error::Error::InvalidArgument(format!(
            "--time {} is in the future (now {}): it would stay `latest`; pass --force if you mean it",
            format_ns(t),
            cairn::time::format_ns_secs(now)
        )));
    }
    Ok(t)
}

/// `processed 12,431 files, 8.1 GiB in 0:42; added 131 MiB (52 MiB stored)`.
pub fn summary_line(s: &Summary) -> String {
    format!(
        "processed {}, {} in {}; added {} ({} stored)",
        plural(s.files, "file"),
        bytes(s.bytes),
        duration_ms(s.duration_ms),
        bytes(s.bytes_added),
        bytes(s.bytes_stored)
    )
}

fn list(ctx: &Context, args: ListArgs) -> Result<i32> {
    // Snapshot records (time, host, paths, tags) are sealed with keys it does not hold.
    let repo =
        ctx.open_reading(Access::Read, "list snapshots (their records are sealed; list them with a full key)")?;
    let filter = args.select.filter();
    let mut rows = Vec::new();
    let mut damaged = false;
    for (id, snap) in repo.snapshots()? {
        match snap {
            Ok(s) => {
                if filter.matches(&s) {
                    rows.push((id, s));
                }
            }
            Err(e) => {
                damaged = true;
                eprintln!("error: {e}");
            }
        }
    }
    if ctx.json {
        json(&rows.iter().map(|(id, s)| view(id, s)).collect::<Vec<_>>())?;
    } else {
        outln!(
            "{:<8}  {:<20}  {:<12}  {:>9}  {:>9}  {:>9}  {:<12}  PATHS",
            "ID",
            "TIME",
            "HOST",
            "FILES",
            "SIZE",
            "ADDED",
            "TAGS"
        )?;
        for (id, s) in &rows {
            outln!(
                "{:<8}  {:<20}  {:<12}  {:>9}  {:>9}  {:>9}  {:<12}  {}",
                id.short(),
                cairn::time::format_ns_secs(s.time_ns),
                s.host,
                count(s.summary.files),
                bytes(s.summary.bytes),
                bytes(s.summary.bytes_added),
                s.tags.join(","),
                s.paths_lossy().join(" ")
            )?;
        }
        ctx.say(plural(rows.len() as u64, "snapshot"));
    }
    Ok(if damaged { exit::CORRUPT } else { exit::OK })
}

fn show(ctx: &Context, spec: &str, select: &SelectArgs) -> Result<i32> {
    let repo = ctx.open_reading(Access::Read, "show snapshots")?;
    let (id, s) = repo.resolve_snapshot_matching(&spec.parse::<SnapshotSpec>()?, &select.filter())?;
    if ctx.json {
        json(&view(&id, &s))?;
        return Ok(exit::OK);
    }
    let sum = &s.summary;
    outln!("snapshot     {id}")?;
    outln!("time         {}", format_ns(s.time_ns))?;
    outln!("host         {}", s.host)?;
    outln!("paths        {}", s.paths_lossy().join(" "))?;
    outln!("tags         {}", s.tags.join(", "))?;
    outln!("parent       {}", s.parent.map(|p| p.to_hex()).unwrap_or_else(|| "none".into()))?;
    outln!("root tree    {}", s.root)?;
    outln!("files        {} ({}, {})", count(sum.files), plural(sum.dirs, "dir"), plural(sum.symlinks, "symlink"))?;
    outln!("size         {}", bytes(sum.bytes))?;
    outln!("read         {} in {}", bytes(sum.bytes_read), plural(sum.files_read, "file"))?;
    outln!("added        {} in {}", bytes(sum.bytes_added), plural(sum.chunks_added, "chunk"))?;
    outln!("stored       {} in {}", bytes(sum.bytes_stored), plural(sum.packs_written, "pack"))?;
    outln!("skipped      {}", count(sum.skipped))?;
    outln!("duration     {}", duration_ms(sum.duration_ms))?;
    outln!("written by   {}", s.tool)?;
    Ok(exit::OK)
}

fn diff(ctx: &Context, a: &str, b: &str, select: &SelectArgs) -> Result<i32> {
    let repo = ctx.open_reading(Access::Read, "compare snapshots")?;
    let filter = select.filter();
    let (_, sa) = repo.resolve_snapshot_matching(&a.parse::<SnapshotSpec>()?, &filter)?;
    let (_, sb) = repo.resolve_snapshot_matching(&b.parse::<SnapshotSpec>()?, &filter)?;
    let mut entries = Vec::new();
    ops::diff(&repo, &sa, &sb, &mut |e| entries.push(e))?;
    if ctx.json {
        json(&entries)?;
        return Ok(exit::OK);
    }
    let (mut added, mut removed, mut modified) = (0, 0, 0);
    for e in &entries {
        let (mark, size) = match e.change {
            Change::Added => {
                added += 1;
                ("+", bytes(e.size_after.unwrap_or(0)))
            }
            Change::Removed => {
                removed += 1;
                ("-", bytes(e.size_before.unwrap_or(0)))
            }
            Change::Modified => {
                modified += 1;
                ("M", format!("{} -> {}", bytes(e.size_before.unwrap_or(0)), bytes(e.size_after.unwrap_or(0))))
            }
            Change::Metadata => {
                modified += 1;
                ("U", bytes(e.size_after.unwrap_or(0)))
            }
        };
        let kind = if e.kind == "dir" { "/" } else { "" };
        outln!("{mark}  {}{kind}  {size}", e.path)?;
    }
    ctx.say(format!("{added} added, {removed} removed, {modified} modified"));
    Ok(exit::OK)
}
