//! The command line: clap types, and one module per command group that turns arguments into
//! options, calls the library, and renders the report. No repository logic lives here.

mod browse;
mod lifecycle;
mod progress;
mod render;
mod repo;
mod restore;
mod snapshot;
mod wal;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use cairn::error::{Error, Result};
use cairn::repo::{Access, IndexKind, Repository};

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Incremental, deduplicating snapshots of service data directories",
    long_about = "cairn keeps incremental, deduplicated snapshots of data directories (segment logs, \
                  WAL, embedded databases) in a repository, and restores them byte for byte.\n\n\
                  The repository comes from --repo or the CAIRN_REPO environment variable.\n\
                  Exit codes: 0 ok, 1 failed, 2 usage, 3 finished but some files were skipped, \
                  10 no repository, 11 locked, 12 unsupported format version, 13 corrupt repository."
)]
pub struct Cli {
    /// Repository location: a local directory.
    #[arg(long, short = 'r', global = true, env = "CAIRN_REPO", value_name = "PATH")]
    repo: Option<PathBuf>,
    /// Print results as JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// No progress bar and no summary line (errors and warnings still go to stderr).
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Seconds to wait for a conflicting lock (a running prune) before giving up with exit 11.
    #[arg(long, global = true, default_value_t = 60, value_name = "SECS")]
    lock_wait: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new, empty repository.
    Init(repo::InitArgs),
    /// Create, list, show and compare snapshots.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// List the files of a snapshot, recursively.
    Ls(browse::LsArgs),
    /// Restore a snapshot into a directory.
    Restore(restore::RestoreArgs),
    /// Remove snapshots (and WAL) by a retention policy.
    Forget(lifecycle::ForgetArgs),
    /// Delete data no snapshot or WAL record references.
    Prune(lifecycle::PruneArgs),
    /// Archive and fetch WAL files (PostgreSQL's archive_command / restore_command).
    #[command(subcommand)]
    Wal(wal::WalCommand),
    /// Inspect and maintain the repository.
    #[command(subcommand)]
    Repo(repo::RepoCommand),
}

/// Global options every command sees.
pub struct Context {
    repo: Option<PathBuf>,
    lock_wait: u64,
    pub json: bool,
    pub quiet: bool,
}

impl Context {
    pub fn repo_path(&self) -> Result<&PathBuf> {
        self.repo
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("no repository given: use --repo PATH or set CAIRN_REPO".to_string()))
    }

    pub fn open(&self, access: Access) -> Result<Repository> {
        let mut repo = Repository::open_local(self.repo_path()?, access, IndexKind::Persistent)?;
        repo.set_lock_wait(std::time::Duration::from_secs(self.lock_wait));
        Ok(repo)
    }

    pub fn progress(&self) -> Box<dyn cairn::progress::Progress> {
        progress::reporter(self.quiet || self.json)
    }

    /// Prints a human line unless quiet or JSON.
    pub fn say(&self, line: impl AsRef<str>) {
        if !self.quiet && !self.json {
            println!("{}", line.as_ref());
        }
    }
}

/// Runs the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    let ctx = Context { repo: cli.repo, lock_wait: cli.lock_wait, json: cli.json, quiet: cli.quiet };
    match cli.command {
        Command::Init(args) => repo::init(&ctx, args),
        Command::Snapshot(cmd) => snapshot::run(&ctx, cmd),
        Command::Ls(args) => browse::ls(&ctx, args),
        Command::Restore(args) => restore::run(&ctx, args),
        Command::Forget(args) => lifecycle::forget(&ctx, args),
        Command::Prune(args) => lifecycle::prune(&ctx, args),
        Command::Wal(cmd) => wal::run(&ctx, cmd),
        Command::Repo(cmd) => repo::run(&ctx, cmd),
    }
}
