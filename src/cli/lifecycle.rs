//! `cairn forget` and `cairn prune`.

use clap::Args;

use cairn::error::{exit, Result};
use cairn::ops::{self, ForgetOptions, KeepPolicy, PruneOptions};
use cairn::repo::SnapshotSpec;

use cairn::metrics::{seconds, Sample};

use super::metrics::{repo_label, MetricsArgs};
use super::render::{bytes, count, json, plural};
use super::Context;

#[derive(Args)]
pub struct ForgetArgs {
    /// Remove exactly these snapshots (ids, unique id prefixes, or `latest`) instead of
    /// applying a retention policy. Cannot be combined with --keep-*, --host, --tag or --path.
    #[arg(value_name = "SNAPSHOT", conflicts_with_all = [
        "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly",
        "keep_within", "keep_wal_within", "stream", "host", "tag", "path",
    ])]
    snapshots: Vec<String>,
    /// Keep the N newest snapshots.
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_last: u32,
    /// Keep the newest snapshot of each of the N most recent hours that have one (UTC).
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_hourly: u32,
    /// … of each of the N most recent days (UTC).
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_daily: u32,
    /// … of each of the N most recent ISO weeks.
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_weekly: u32,
    /// … of each of the N most recent months.
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_monthly: u32,
    /// … of each of the N most recent years.
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_yearly: u32,
    /// Keep every snapshot taken within DURATION (e.g. 36h, 14d) of the group's newest one.
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<String>,
    /// Keep point-in-time restore possible to any second within DURATION before now: keeps
    /// the snapshot before the window and the WAL after it; forgets WAL no kept snapshot can use.
    #[arg(long, value_name = "DURATION")]
    keep_wal_within: Option<String>,
    /// With --keep-wal-within: decide only the WAL of this stream (default: every stream).
    #[arg(long, value_name = "STREAM", requires = "keep_wal_within")]
    stream: Option<String>,
    /// Only snapshots of this host.
    #[arg(long)]
    host: Option<String>,
    /// Only snapshots with this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Only snapshots of this (absolute) path.
    #[arg(long)]
    path: Option<String>,
    /// Print what would be forgotten; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Run `prune` afterwards.
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    metrics: MetricsArgs,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Print the plan; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Repack a pack when more than this percentage of it is unused.
    #[arg(long, default_value_t = 10.0, value_name = "PERCENT")]
    max_unused: f64,
    #[command(flatten)]
    metrics: MetricsArgs,
}

pub fn forget(ctx: &Context, args: ForgetArgs) -> Result<i32> {
    if !args.snapshots.is_empty() {
        return forget_ids(ctx, args);
    }
    let parse = |d: &Option<String>| d.as_deref().map(cairn::time::parse_duration).transpose();
    let opts = ForgetOptions {
        policy: KeepPolicy {
            last: args.keep_last,
            hourly: args.keep_hourly,
            daily: args.keep_daily,
            weekly: args.keep_weekly,
            monthly: args.keep_monthly,
            yearly: args.keep_yearly,
            within_ns: parse(&args.keep_within)?,
        },
        host: args.host,
        tag: args.tag,
        path: args.path,
        keep_wal_within_ns: parse(&args.keep_wal_within)?,
        wal_stream: args.stream,
        dry_run: args.dry_run,
        now_ns: None,
    };
    let repo = ctx.open_to_reclaim()?;
    let report = ops::forget(&repo, &opts)?;
    let prune = prune_after(ctx, &repo, args.prune && !args.dry_run)?;
    if !args.dry_run {
        args.metrics.write(&lifecycle_samples(ctx, Some(report.forgotten() as u64), prune.as_ref()));
    }
    if ctx.json {
        json(&serde_json::json!({ "forget": report, "prune": prune }))?;
        return Ok(exit::OK);
    }
    for d in &report.snapshots {
        let verdict = if d.keep { "keep  " } else { "remove" };
        let why = if d.keep { d.reasons.join(", ") } else { String::new() };
        outln!("{verdict}  {}  {}  {}  {}  {why}", &d.id[..8], d.time, d.host, d.paths.join(" "))?;
    }
    for w in &report.wal_forgotten {
        outln!("remove  WAL {w}")?;
    }
    let verb = if report.dry_run { "would remove" } else { "removed" };
    let kept = match report.wal_kept {
        0 => String::new(),
        n => format!(", kept {}", plural(n, "WAL file")),
    };
    ctx.say(format!(
        "{verb} {} of {} and {}{kept}",
        count(report.forgotten() as u64),
        plural(report.snapshots.len() as u64, "snapshot"),
        plural(report.wal_forgotten.len() as u64, "WAL file"),
    ));
    if let Some(p) = &prune {
        print_prune(ctx, p);
    }
    Ok(exit::OK)
}

/// `--prune` after a forget: a prune report, or `None` when not asked (or a dry run).
fn prune_after(ctx: &Context, repo: &cairn::Repository, asked: bool) -> Result<Option<ops::PrunePlan>> {
    match asked {
        true => Ok(Some(ops::prune(repo, &PruneOptions::default(), ctx.progress().as_ref())?)),
        false => Ok(None),
    }
}

/// `forget ID...`: the named snapshots go, nothing else.
fn forget_ids(ctx: &Context, args: ForgetArgs) -> Result<i32> {
    let specs = args.snapshots.iter().map(|s| s.parse::<SnapshotSpec>()).collect::<Result<Vec<_>>>()?;
    let repo = ctx.open_to_reclaim()?;
    let report = ops::forget_ids(&repo, &specs, args.dry_run)?;
    let prune = prune_after(ctx, &repo, args.prune && !args.dry_run)?;
    if !args.dry_run {
        args.metrics.write(&lifecycle_samples(ctx, Some(report.snapshots.len() as u64), prune.as_ref()));
    }
    if ctx.json {
        json(&serde_json::json!({ "forget": report, "prune": prune }))?;
        return Ok(exit::OK);
    }
    for d in &report.snapshots {
        outln!("remove  {}  {}  {}  {}", &d.id[..8], d.time, d.host, d.paths.join(" "))?;
    }
    let verb = if report.dry_run { "would remove" } else { "removed" };
    ctx.say(format!("{verb} {}", plural(report.snapshots.len() as u64, "snapshot")));
    if let Some(p) = &prune {
        print_prune(ctx, p);
    }
    Ok(exit::OK)
}

pub fn prune(ctx: &Context, args: PruneArgs) -> Result<i32> {
    let repo = ctx.open_to_reclaim()?;
    let opts = PruneOptions { max_unused_percent: args.max_unused, dry_run: args.dry_run };
    let plan = ops::prune(&repo, &opts, ctx.progress().as_ref())?;
    if !args.dry_run {
        args.metrics.write(&lifecycle_samples(ctx, None, Some(&plan)));
    }
    if ctx.json {
        json(&plan)?;
    } else {
        print_prune(ctx, &plan);
    }
    Ok(exit::OK)
}

/// The samples of a forget (`removed` snapshots) and of a prune, each when it ran.
fn lifecycle_samples(ctx: &Context, removed: Option<u64>, prune: Option<&ops::PrunePlan>) -> Vec<Sample> {
    let repo = repo_label(ctx);
    let l = [("repo", repo.as_str())];
    let now = seconds(cairn::time::now_ns());
    let mut out = Vec::new();
    if let Some(n) = removed {
        out.push(Sample::new("cairn_forget_last_timestamp_seconds", &l, now));
        out.push(Sample::new("cairn_forget_removed_snapshots", &l, n as f64));
    }
    if let Some(p) = prune {
        out.push(Sample::new("cairn_prune_last_timestamp_seconds", &l, now));
        out.push(Sample::new("cairn_prune_freed_bytes", &l, p.freed_bytes as f64));
    }
    out
}

fn print_prune(ctx: &Context, p: &ops::PrunePlan) {
    ctx.say(format!(
        "marked the data of {} and {}; {} hold {} ({} used, {} unused)",
        plural(p.snapshots, "snapshot"),
        plural(p.wal_records, "WAL file"),
        plural(p.packs, "pack"),
        bytes(p.pack_bytes),
        bytes(p.used_bytes),
        bytes(p.unused_bytes)
    ));
    let removed = p.temporary_files.len() - p.temporary_kept.len();
    let (delete, repack, remove) =
        if p.dry_run { ("would delete", "repack", "remove") } else { ("deleted", "repacked", "removed") };
    // Freed counts whole packs (their headers and trailers too), so it can exceed "unused".
    ctx.say(format!(
        "{delete} {}, {repack} {} ({} copied), {remove} {}: {} freed",
        plural(p.delete.len() as u64, "unused pack"),
        plural(p.repack.len() as u64, "pack"),
        bytes(p.repack_bytes),
        plural(removed as u64, "temporary file"),
        bytes(p.freed_bytes)
    ));
    if !p.temporary_kept.is_empty() {
        ctx.say(format!(
            "kept {} younger than an hour: they may be writes still in progress",
            plural(p.temporary_kept.len() as u64, "temporary file")
        ));
    }
    if let Some(why) = &p.repack_stopped {
        eprintln!("warning: repacked {} of {} packs: {why}", p.repacked, p.repack.len());
    }
}
