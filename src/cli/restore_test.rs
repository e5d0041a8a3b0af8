//! `cairn restore-test`: restore a snapshot into a scratch directory, run a validator on it,
//! and record pass or fail in the repository.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use cairn::error::{exit, Error, Result};
use cairn::hooks::Hook;
use cairn::ops::status::{restore_test_samples, LastRun};
use cairn::ops::{self, RestoreTestOptions, RestoreTestReport};
use cairn::repo::{default_cache_dir, Access, SnapshotSpec};

use super::metrics::{repo_label, MetricsArgs};
use super::render::{bytes, duration_ms, json, plural};
use super::select::SelectArgs;
use super::Context;

#[derive(Args)]
#[command(after_long_help = "\
The validator sees CAIRN_RESTORE_DIR (the restored copy), CAIRN_SNAPSHOT_ID, CAIRN_SNAPSHOT_TIME, \
CAIRN_SNAPSHOT_HOST, CAIRN_SNAPSHOT_PATHS and CAIRN_REPO. Examples: \
--verify 'redis-check-rdb $CAIRN_RESTORE_DIR/dump.rdb' --hook-shell; \
--verify 'pg_verifybackup ...'. The result is stored in the repository (`snapshot show`, \
`cairn status`). Exit codes: 0 passed, 1 failed (the snapshot could not be restored, or the \
validator failed or timed out), 130 interrupted.")]
pub struct RestoreTestArgs {
    /// Snapshot id, unique id prefix, or `latest` (omit with --at).
    #[arg(required_unless_present = "at", conflicts_with = "at")]
    snapshot: Option<String>,
    /// Test the newest snapshot taken at or before this time.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// The validator to run on the restored copy: words split like a shell's, run without one
    /// (see --hook-shell).
    #[arg(long, value_name = "CMD")]
    verify: String,
    /// Run the --verify CMD with `sh -c` (pipes, redirections, $CAIRN_RESTORE_DIR).
    #[arg(long)]
    hook_shell: bool,
    /// Kill the validator (and everything it started) after SECS: the test fails.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    verify_timeout: u64,
    /// Keep the restored copy (its path is printed) instead of deleting it.
    #[arg(long)]
    keep: bool,
    /// Make the scratch directory in DIR. Default: /dev/shm when the snapshot fits there
    /// twice over plus 64 MiB, else the cache directory.
    #[arg(long, value_name = "DIR")]
    scratch: Option<PathBuf>,
    #[command(flatten)]
    select: SelectArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
}

pub fn run(ctx: &Context, args: RestoreTestArgs) -> Result<i32> {
    let repo = ctx.open_reading(Access::Read, "restore snapshots")?;
    let filter = args.select.filter();
    let (id, snap) = match (&args.at, &args.snapshot) {
        (Some(at), _) => ops::restore::snapshot_before(&repo, cairn::time::parse_timestamp(at)?, &filter)?,
        (None, Some(spec)) => repo.resolve_snapshot_matching(&spec.parse::<SnapshotSpec>()?, &filter)?,
        (None, None) => return Err(Error::InvalidArgument("give a snapshot or --at TIME".into())),
    };
    let verify = if args.hook_shell { Hook::shell(&args.verify) } else { Hook::argv(&args.verify)? };
    let fallback = ctx.connect().cache_dir.clone().unwrap_or_else(default_cache_dir).join("restore-tests");
    let opts = RestoreTestOptions {
        verify,
        timeout: Duration::from_secs(args.verify_timeout),
        scratch: args.scratch.clone(),
        fallback_dir: fallback,
        keep: args.keep,
        env: vec![("CAIRN_REPO".into(), repo_label(ctx))],
        cancel: super::restore::cancel_on_signals(),
    };
    let progress = ctx.progress();
    let report = ops::restore_test(&repo, &id, &snap, &opts, progress.as_ref())?;
    args.metrics.write(&samples(ctx, &report));
    if ctx.json {
        json(&report)?;
    } else {
        print(ctx, &report);
    }
    Ok(if report.success { exit::OK } else { exit::FAILED })
}

fn samples(ctx: &Context, r: &RestoreTestReport) -> Vec<cairn::metrics::Sample> {
    let now = cairn::time::now_ns();
    let end = r.time_ns.saturating_add(r.duration_ms as i64 * 1_000_000);
    let run = LastRun {
        success: r.success,
        finished: ops::status::When::at(end, now),
        duration_seconds: r.duration_ms as f64 / 1000.0,
        snapshot: Some(r.snapshot.clone()),
        command: String::new(),
        bytes: r.bytes,
        detail: r.detail.clone(),
    };
    restore_test_samples(&repo_label(ctx), &r.source, &run)
}

fn print(ctx: &Context, r: &RestoreTestReport) {
    let what = format!("snapshot {} ({}, {})", &r.snapshot[..8], r.snapshot_time, r.source);
    let place = if r.tmpfs { " on tmpfs" } else { "" };
    if r.success {
        ctx.say(format!(
            "restore test passed: {what}: {}, {} restored{place} and verified in {}",
            plural(r.files, "file"),
            bytes(r.bytes),
            duration_ms(r.duration_ms)
        ));
    } else {
        eprintln!("error: restore test failed: {what}: {}", r.detail);
    }
    if r.kept {
        ctx.say(format!("the restored copy is kept at {}", r.restore_dir));
    }
}
