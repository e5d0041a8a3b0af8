//! The command line: clap types, and one module per command group that turns arguments into
//! options, calls the library, and renders the report. No repository logic lives here.

/// `println!` that returns a `Result` instead of panicking when stdout is closed; see
/// [`render::out`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::render::out(format_args!($($arg)*))
    };
}

mod browse;
mod export;
mod generate;
mod hooks;
mod inspect;
mod key;
mod lifecycle;
mod metrics;
mod password;
mod progress;
mod render;
mod repo;
mod restore;
mod restore_test;
mod run;
mod run_plan;
mod select;
mod settings;
mod snapshot;
mod status;
mod stream;
mod tag;
mod wal;

use std::path::PathBuf;

pub use render::is_closed_stdout;

use clap::{Parser, Subcommand};

use cairn::error::{exit, Error, Result};
use cairn::repo::{Access, Connect, RepoLocation, Repository, S3Options};

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Incremental, deduplicating snapshots of service data directories",
    long_about = "cairn keeps incremental, deduplicated snapshots of data directories (segment logs, \
                  WAL, embedded databases) in a repository, and restores them byte for byte.\n\n\
                  The repository comes from --repo or the CAIRN_REPO environment variable, or from the \
                  configuration file (--config, CAIRN_CONFIG, ~/.config/cairn/config.toml; see `cairn run`).\n\
                  Exit codes: 0 ok, 1 failed, 2 usage, 3 finished but some files were skipped, 4 damage found by repo check, \
                  10 no repository, 11 locked, 12 unsupported format version, 13 corrupt repository, \
                  14 write-only key.\n\
                  restic's and borg's command names `backup` (`create`), `snapshots` (`list`) and `check` \
                  also work.\n\n\
                  Encrypted repositories (the default) take their password from --password-file / \
                  CAIRN_PASSWORD_FILE, --password-command / CAIRN_PASSWORD_COMMAND, CAIRN_PASSWORD \
                  (least safe), or a prompt on the terminal. A wrong password exits 1."
)]
pub struct Cli {
    /// Configuration file: named repositories and sources (see docs/config.md). Default:
    /// $XDG_CONFIG_HOME/cairn/config.toml (~/.config/cairn/config.toml) when it exists.
    #[arg(long, global = true, env = "CAIRN_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// A repository named in the configuration file (the default when it names exactly one),
    /// or a location: a local directory, or s3://BUCKET/PREFIX for S3-compatible object
    /// storage (credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION, AWS_ENDPOINT_URL, or the --s3-* options).
    #[arg(long, short = 'r', global = true, env = "CAIRN_REPO", value_name = "NAME|PATH|URL")]
    repo: Option<String>,
    /// Where object-store repositories keep their local index cache.
    #[arg(long, global = true, env = "CAIRN_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// S3 endpoint URL (path-style addressing; http:// allowed, e.g. for a loopback server).
    #[arg(long, global = true, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, global = true, value_name = "REGION")]
    s3_region: Option<String>,
    /// S3 access key id.
    #[arg(long, global = true, value_name = "KEY")]
    s3_access_key_id: Option<String>,
    /// S3 secret access key (prefer the environment: command lines are visible to others).
    #[arg(long, global = true, value_name = "SECRET")]
    s3_secret_access_key: Option<String>,
    /// Read the repository password from the first line of this file (env
    /// CAIRN_PASSWORD_FILE).
    #[arg(long, global = true, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Run this shell command and read the repository password from its output, e.g. a
    /// password manager (env CAIRN_PASSWORD_COMMAND).
    #[arg(long, global = true, value_name = "COMMAND")]
    password_command: Option<String>,
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
    /// Snapshot the sources named in the configuration file, apply their retention, then
    /// prune and check where configured (see docs/config.md).
    Run(run::RunArgs),
    /// Create a new, empty repository.
    Init(repo::InitArgs),
    /// Create, list, show and compare snapshots.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// List the files of a snapshot, recursively.
    Ls(browse::LsArgs),
    /// Write one file of a snapshot to stdout (verified), e.g. `cairn dump latest app.toml`.
    Dump(inspect::DumpArgs),
    /// Find files by name or path pattern in snapshots (which snapshots hold a file, and its
    /// size and time in each).
    Find(inspect::FindArgs),
    /// Show what snapshots hold and cost: restore size, unique and stored bytes, and the
    /// deduplication and compression ratios.
    Stats(inspect::StatsArgs),
    /// Restore a snapshot, or the state at a point in time (--at), into a directory.
    Restore(restore::RestoreArgs),
    /// Restore a snapshot into a scratch directory, run a validator on it, and record the
    /// result in the repository.
    RestoreTest(restore_test::RestoreTestArgs),
    /// Per source: last snapshot and its age, failures, restore tests, WAL lag, last check.
    Status(status::StatusArgs),
    /// Remove the snapshots named (forget ID...), or those a retention policy does not keep (and WAL).
    Forget(lifecycle::ForgetArgs),
    /// Delete data no snapshot or WAL record references.
    Prune(lifecycle::PruneArgs),
    /// Archive and fetch WAL files (PostgreSQL's archive_command / restore_command).
    #[command(subcommand)]
    Wal(wal::WalCommand),
    /// Manage the key files of an encrypted repository.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Inspect and maintain the repository.
    #[command(subcommand)]
    Repo(repo::RepoCommand),
    /// Print a shell completion script (bash, zsh or fish) to stdout.
    Completions(generate::CompletionsArgs),
    /// Print the man page (roff) to stdout.
    Man,
    /// restic's and borg's names for cairn's commands, so their users' habits work: `backup`
    /// (borg `create`) is `snapshot create`, `snapshots` (borg `list`) is `snapshot list`,
    /// `check` is `repo check`. Hidden from the command list.
    #[command(hide = true, alias = "create")]
    Backup(Box<snapshot::CreateArgs>),
    #[command(hide = true, alias = "list")]
    Snapshots(snapshot::ListArgs),
    #[command(hide = true)]
    Check(repo::CheckArgs),
}

/// Global options every command sees.
pub struct Context {
    repo: Option<String>,
    connect: Connect,
    password: std::sync::Arc<password::PasswordCache>,
    pub json: bool,
    pub quiet: bool,
}

impl Context {
    pub fn location(&self) -> Result<RepoLocation> {
        self.repo.as_deref().map(RepoLocation::parse).ok_or_else(|| {
            Error::InvalidArgument(
                "no repository given: use --repo NAME|PATH|s3://BUCKET/PREFIX, set CAIRN_REPO, or configure \
                 exactly one repository in the configuration file"
                    .to_string(),
            )
        })
    }

    pub fn connect(&self) -> &Connect {
        &self.connect
    }

    /// See [`password::PasswordCache::callback_option`].
    pub fn password_callback_option(&self) -> Option<(&'static str, String)> {
        self.password.callback_option()
    }

    /// The password of this run (asked for once); `confirm` asks twice at a prompt.
    pub fn password(&self, prompt: &str, confirm: bool) -> Result<cairn::crypto::Password> {
        self.password.get(prompt, confirm)
    }

    pub fn open(&self, access: Access) -> Result<Repository> {
        self.connect.open(&self.location()?, access)
    }

    /// [`Context::open`] for a command that reads data or metadata: with a write-only key,
    /// `this is a write-only key: it cannot <action>` (exit 14) before anything else runs.
    pub fn open_reading(&self, access: Access, action: &str) -> Result<Repository> {
        let repo = self.open(access)?;
        repo.require_read(action)?;
        Ok(repo)
    }

    /// [`Context::open`] for writing, for a command that frees space (see
    /// `Connect::open_to_reclaim`).
    pub fn open_to_reclaim(&self) -> Result<Repository> {
        self.connect.open_to_reclaim(&self.location()?)
    }

    pub fn progress(&self) -> Box<dyn cairn::progress::Progress> {
        progress::reporter(self.quiet || self.json)
    }

    /// Prints a human line unless quiet or JSON.
    pub fn say(&self, line: impl AsRef<str>) {
        if !self.quiet && !self.json {
            // A closed stdout is noticed by the command's next listing line, or not at all.
            let _ = outln!("{}", line.as_ref());
        }
    }
}

#[cfg(feature = "s3")]
fn s3_options(cli: &Cli) -> S3Options {
    S3Options {
        endpoint: cli.s3_endpoint.clone(),
        region: cli.s3_region.clone(),
        access_key_id: cli.s3_access_key_id.clone(),
        secret_access_key: cli.s3_secret_access_key.clone(),
    }
}

#[cfg(not(feature = "s3"))]
fn s3_options(_cli: &Cli) -> S3Options {
    S3Options::default()
}

/// The global options and the configuration file; read only by commands that use them, so a
/// broken file does not hide `completions` or `man`.
fn globals(cli: Cli) -> Result<(settings::Globals, Command)> {
    let globals = settings::Globals {
        s3: s3_options(&cli),
        repo: cli.repo,
        cache_dir: cli.cache_dir,
        password_file: cli.password_file,
        password_command: cli.password_command,
        json: cli.json,
        quiet: cli.quiet,
        lock_wait: cli.lock_wait,
        config: cairn::config::Loaded::find(cli.config.as_deref())?,
    };
    Ok((globals, cli.command))
}

/// Runs the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Completions(args) => return generate::completions(args),
        Command::Man => return generate::man(),
        _ => {}
    }
    let (globals, command) = globals(cli)?;
    if let Command::Run(args) = command {
        return run::run(&globals, args);
    }
    let ctx = globals.context()?;
    match command {
        Command::Init(args) => repo::init(&ctx, args),
        Command::Snapshot(cmd) => snapshot::run(&ctx, cmd),
        Command::Ls(args) => browse::ls(&ctx, args),
        Command::Dump(args) => inspect::dump(&ctx, args),
        Command::Find(args) => inspect::find(&ctx, args),
        Command::Stats(args) => inspect::stats(&ctx, args),
        Command::Restore(args) => restore::run(&ctx, args),
        Command::RestoreTest(args) => restore_test::run(&ctx, args),
        Command::Status(args) => status::run(&ctx, args),
        Command::Forget(args) => lifecycle::forget(&ctx, args),
        Command::Prune(args) => lifecycle::prune(&ctx, args),
        Command::Wal(cmd) => wal::run(&ctx, cmd),
        Command::Key(cmd) => key::run(&ctx, cmd),
        Command::Repo(cmd) => repo::run(&ctx, cmd),
        Command::Backup(args) => snapshot::run(&ctx, snapshot::SnapshotCommand::Create(args)),
        Command::Snapshots(args) => snapshot::run(&ctx, snapshot::SnapshotCommand::List(args)),
        Command::Check(args) => repo::run(&ctx, repo::RepoCommand::Check(args)),
        // Handled above, before a repository is chosen.
        Command::Run(_) | Command::Completions(_) | Command::Man => Ok(exit::OK),
    }
}
