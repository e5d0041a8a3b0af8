//! `cairn restore`: a snapshot, or a point in time (`--at`).

use std::path::PathBuf;

use clap::Args;

use cairn::error::{exit, Error, Result};
use cairn::ops::{self, PitrOptions, RestoreOptions, RestoreReport};
use cairn::repo::{Access, SnapshotSpec};

use super::render::{bytes, count, count_of, duration_ms, fold_lines, fold_paths, json};
use super::Context;

#[derive(Args)]
pub struct RestoreArgs {
    /// Snapshot id, unique id prefix, or `latest` (omit with --at).
    #[arg(required_unless_present = "at", conflicts_with = "at")]
    snapshot: Option<String>,
    /// Restore to this instant: the newest snapshot taken at or before it, plus the WAL
    /// archived up to it. RFC 3339, "YYYY-MM-DD HH:MM[:SS]" (UTC unless an offset is given),
    /// or Unix seconds. A PostgreSQL data directory is prepared to recover to exactly then.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Directory to restore into (created if missing). A snapshot of one path restores that
    /// path's contents directly into it; with several paths each lands under it by its full path.
    #[arg(long, short, value_name = "DIR")]
    target: PathBuf,
    /// Restore only matching entries (repeatable). A pattern with a `/` matches the path
    /// relative to the restored root (`base/**`), one without matches any name (`*.conf`).
    /// A matching directory is restored with everything in it.
    #[arg(long, value_name = "PATTERN", conflicts_with = "at")]
    include: Vec<String>,
    /// With --at: the WAL stream to recover from.
    #[arg(long, default_value = ops::wal::DEFAULT_STREAM, requires = "at")]
    stream: String,
    /// With --at: write every WAL file of the stream archived up to the time into this
    /// directory, for a service that replays it on start.
    #[arg(long, value_name = "DIR", requires = "at")]
    wal_dir: Option<PathBuf>,
    /// With --at: only consider snapshots with this tag.
    #[arg(long, requires = "at")]
    tag: Option<String>,
    /// With --at: only consider snapshots of this host.
    #[arg(long, requires = "at")]
    host: Option<String>,
}

pub fn run(ctx: &Context, args: RestoreArgs) -> Result<i32> {
    let repo = ctx.open(Access::Read)?;
    let progress = ctx.progress();
    let report = match (&args.at, &args.snapshot) {
        (Some(at), _) => {
            let at_ns = cairn::time::parse_timestamp(at)?;
            let opts = PitrOptions {
                at_ns,
                target: args.target.clone(),
                stream: args.stream.clone(),
                wal_dir: args.wal_dir.clone(),
                tag: args.tag.clone(),
                host: args.host.clone(),
                fetch_command: fetch_command(ctx)?,
            };
            let report = ops::restore_at(&repo, &opts, progress.as_ref())?;
            for w in fold_lines(report.warnings.iter().map(String::as_str)) {
                eprintln!("warning: {w}");
            }
            if ctx.json {
                json(&report);
                return Ok(finish(&report.restore));
            }
            ctx.say(format!(
                "snapshot {} ({}) is the newest at or before {at}",
                &report.snapshot[..8],
                report.snapshot_time
            ));
            if report.postgres {
                ctx.say(format!(
                    "PostgreSQL data directory prepared: start the server on {} and it replays WAL from stream {:?} to {}",
                    args.target.display(),
                    args.stream,
                    cairn::time::format_ns(at_ns)
                ));
            }
            if let Some(dir) = &args.wal_dir {
                ctx.say(format!("wrote {} WAL files to {}", report.wal_files.len(), dir.display()));
            }
            report.restore
        }
        (None, Some(spec)) => {
            let (_, snap) = repo.resolve_snapshot(&spec.parse::<SnapshotSpec>()?)?;
            let opts = RestoreOptions { target: args.target.clone(), include: args.include, owners: None };
            let report = ops::restore(&repo, &snap, &opts, progress.as_ref())?;
            if ctx.json {
                json(&report);
                return Ok(finish(&report));
            }
            report
        }
        (None, None) => return Err(Error::InvalidArgument("give a snapshot or --at TIME".into())),
    };
    ctx.say(format!(
        "restored to {}: {} files, {} dirs, {} symlinks, {} in {}",
        args.target.display(),
        count(report.files),
        count(report.dirs),
        count(report.symlinks),
        bytes(report.bytes),
        duration_ms(report.duration_ms)
    ));
    Ok(finish(&report))
}

/// Reports files that could not be restored; exit 3 when there are any.
fn finish(report: &RestoreReport) -> i32 {
    for line in fold_paths(report.failed.iter().map(|f| (f.path.as_str(), f.reason.as_str()))) {
        eprintln!("error: not restored: {line}");
    }
    if report.failed.is_empty() {
        exit::OK
    } else {
        let failed = count_of(report.failed.len() as u64, "path", "paths");
        eprintln!("error: {failed} could not be restored (listed above)");
        exit::PARTIAL
    }
}

/// How a restored PostgreSQL calls back into this cairn and repository.
fn fetch_command(ctx: &Context) -> Result<String> {
    let exe = std::env::current_exe().map_err(|e| Error::io("cannot locate", std::path::Path::new("cairn"), e))?;
    let repo = ctx.location()?.for_callback()?;
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    Ok(format!("{} --repo {}", quote(&exe.display().to_string()), quote(&repo)))
}
