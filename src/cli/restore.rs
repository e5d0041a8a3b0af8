//! `cairn restore`.

use std::path::PathBuf;

use clap::Args;

use cairn::error::{exit, Result};
use cairn::ops::{self, RestoreOptions};
use cairn::repo::{Access, SnapshotSpec};

use super::render::{bytes, count, duration_ms, json};
use super::Context;

#[derive(Args)]
pub struct RestoreArgs {
    /// Snapshot id, unique id prefix, or `latest`.
    snapshot: String,
    /// Directory to restore into (created if missing). A snapshot of one path restores that
    /// path's contents directly into it; with several paths each lands under it by its full path.
    #[arg(long, short, value_name = "DIR")]
    target: PathBuf,
    /// Restore only matching entries (repeatable). A pattern with a `/` matches the path
    /// relative to the restored root (`base/**`), one without matches any name (`*.conf`).
    /// A matching directory is restored with everything in it.
    #[arg(long, value_name = "PATTERN")]
    include: Vec<String>,
}

pub fn run(ctx: &Context, args: RestoreArgs) -> Result<i32> {
    let repo = ctx.open(Access::Read)?;
    let (id, snap) = repo.resolve_snapshot(&args.snapshot.parse::<SnapshotSpec>()?)?;
    let opts = RestoreOptions {
        target: args.target.clone(),
        include: args.include,
        owners: None,
    };
    let progress = ctx.progress();
    let report = ops::restore(&repo, &snap, &opts, progress.as_ref())?;
    for f in &report.failed {
        eprintln!("error: not restored: {}: {}", f.path, f.reason);
    }
    if ctx.json {
        json(&report);
    } else {
        ctx.say(format!(
            "restored snapshot {} to {}: {} files, {} dirs, {} symlinks, {} in {}",
            id.short(),
            args.target.display(),
            count(report.files),
            count(report.dirs),
            count(report.symlinks),
            bytes(report.bytes),
            duration_ms(report.duration_ms)
        ));
    }
    if report.failed.is_empty() {
        Ok(exit::OK)
    } else {
        eprintln!(
            "error: {} files could not be restored (listed above)",
            report.failed.len()
        );
        Ok(exit::PARTIAL)
    }
}
