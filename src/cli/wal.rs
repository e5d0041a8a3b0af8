//! `cairn wal push|fetch|list`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use cairn::error::{exit, Result};
use cairn::metrics::{seconds, Sample};
use cairn::ops::wal::{self, DEFAULT_STREAM};
use cairn::repo::Access;

use super::render::{bytes, json, plural};
use super::Context;

#[derive(Subcommand)]
pub enum WalCommand {
    /// Archive a WAL file; usable as PostgreSQL's `archive_command = 'cairn --repo R wal push %p'`.
    /// Exits 0 only once the file is durable. Pushing an identical file again stores nothing;
    /// a different file under an archived name is refused (exit 1) and changes nothing.
    Push {
        /// The file to archive; its name is its key in the stream.
        path: PathBuf,
        #[command(flatten)]
        stream: StreamArg,
        #[command(flatten)]
        metrics: super::metrics::MetricsArgs,
    },
    /// Restore an archived WAL file; usable as `restore_command = 'cairn --repo R wal fetch %f %p'`.
    /// Exits 1 without a message when NAME was never archived (PostgreSQL's end of archive).
    Fetch {
        /// Archived file name.
        name: String,
        /// Where to write it.
        dest: PathBuf,
        #[command(flatten)]
        stream: StreamArg,
    },
    /// List archived WAL files, oldest first.
    List {
        /// Only this stream (default: every stream).
        #[arg(long)]
        stream: Option<String>,
        /// Only files archived at or after this time.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only files archived at or before this time.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
    },
}

#[derive(Args)]
pub struct StreamArg {
    /// WAL stream (one per service or cluster).
    #[arg(long, default_value = DEFAULT_STREAM)]
    stream: String,
}

pub fn run(ctx: &Context, cmd: WalCommand) -> Result<i32> {
    match cmd {
        WalCommand::Push { path, stream, metrics } => push(ctx, &path, &stream.stream, &metrics),
        WalCommand::Fetch { name, dest, stream } => fetch(ctx, &name, &dest, &stream.stream),
        WalCommand::List { stream, since, until } => list(ctx, stream.as_deref(), since, until),
    }
}

fn push(ctx: &Context, path: &std::path::Path, stream: &str, metrics: &super::metrics::MetricsArgs) -> Result<i32> {
    let repo = ctx.open(Access::Write)?;
    let report = wal::push(&repo, path, stream)?;
    // A file archived before says nothing about how fresh the archive is.
    if !report.already_archived {
        let repo_label = super::metrics::repo_label(ctx);
        let l = [("repo", repo_label.as_str()), ("stream", report.stream.as_str())];
        let archived = seconds(report.archived_ns);
        metrics.write(&[
            Sample::new("cairn_wal_last_archive_timestamp_seconds", &l, archived),
            Sample::new(
                "cairn_wal_archive_lag_seconds",
                &l,
                seconds(cairn::time::now_ns().saturating_sub(report.archived_ns)),
            ),
        ]);
    }
    if ctx.json {
        json(&report)?;
    } else if report.already_archived {
        ctx.say(format!(
            "{}/{} was already archived at {}; nothing stored",
            report.stream, report.name, report.archived_at
        ));
    } else {
        ctx.say(format!(
            "archived {}/{} ({}; added {}, {} stored)",
            report.stream,
            report.name,
            bytes(report.size),
            bytes(report.added.bytes_added),
            bytes(report.added.bytes_stored)
        ));
    }
    Ok(exit::OK)
}

fn fetch(ctx: &Context, name: &str, dest: &std::path::Path, stream: &str) -> Result<i32> {
    let repo = ctx.open_reading(Access::Read, "fetch WAL files")?;
    match wal::fetch(&repo, stream, name, dest)? {
        Some(r) => {
            if ctx.json {
                json(&wal::WalEntry::from(&r))?;
            }
            Ok(exit::OK)
        }
        // Never archived: PostgreSQL asks for files past the end of the archive routinely.
        None => Ok(exit::FAILED),
    }
}

fn list(ctx: &Context, stream: Option<&str>, since: Option<String>, until: Option<String>) -> Result<i32> {
    let repo = ctx.open_reading(Access::Read, "list WAL files (their records are sealed)")?;
    let since = since.as_deref().map(cairn::time::parse_timestamp).transpose()?;
    let until = until.as_deref().map(cairn::time::parse_timestamp).transpose()?;
    let entries = wal::list(&repo, stream, since, until)?;
    if ctx.json {
        json(&entries)?;
        return Ok(exit::OK);
    }
    outln!("{:<12}  {:<40}  {:>10}  ARCHIVED", "STREAM", "NAME", "SIZE")?;
    for e in &entries {
        outln!("{:<12}  {:<40}  {:>10}  {}", e.stream, e.name, bytes(e.size), e.archived_at)?;
    }
    ctx.say(plural(entries.len() as u64, "WAL file"));
    Ok(exit::OK)
}
