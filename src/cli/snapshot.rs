//! `cairn snapshot create|list|show|diff` (`tag` in `tag.rs`, `export` and `import` in `export.rs`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use cairn::error::{exit, redact_urls, Result};
use cairn::hooks::HookRun;
use cairn::ops::status::LastRun;
use cairn::ops::{self, BackupOptions, Change, Skipped};
use cairn::repo::{Access, SnapshotSpec};
use cairn::snapshot::{Snapshot, Summary};
use cairn::time::format_ns;
use cairn::SnapshotId;

use super::hooks::{around, report as report_hooks, HookArgs, Outcome};
use super::metrics::{repo_label, MetricsArgs};
use super::render::{bytes, count, duration_ms, fold_paths, json, plural};
use super::select::SelectArgs;
use super::Context;

#[derive(Subcommand)]
pub enum SnapshotCommand {
    /// Back up PATHs into a new snapshot. Files unchanged since the parent snapshot (same
    /// size, mtime, ctime and inode) are not read again.
    // Boxed: its many options would make every other variant as large.
    Create(Box<CreateArgs>),
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
    /// Write one snapshot to FILE as a single self-verifying export (encrypted with the
    /// repository's key when the repository is encrypted): to move a service's state between
    /// machines or hand over a backup. Read back with `snapshot import` or `restore --from-export`.
    Export(super::export::ExportArgs),
    /// Verify an export file as a whole, then add its snapshot to this repository (--dry-run:
    /// verify and list its files, add nothing). A damaged export adds nothing.
    Import(super::export::ImportArgs),
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
    /// Files or directories to back up (with --stdin-from-command: the command and its
    /// arguments, after `--`).
    #[arg(
        value_name = "PATH",
        required_unless_present_any = ["files_from", "files_from_verbatim", "files_from_raw", "stdin"]
    )]
    paths: Vec<PathBuf>,
    /// Store standard input as one file, /NAME (see --stdin-filename), instead of PATHs:
    /// `pg_dump app | cairn snapshot create --stdin --stdin-filename app.sql`. A pipe hides the
    /// dump's exit status from cairn: prefer --stdin-from-command.
    #[arg(long, conflicts_with_all = ["stdin_from_command", "postgres", "redis", "consistent_with", "dry_run", "files_from", "files_from_verbatim", "files_from_raw"])]
    stdin: bool,
    /// Run the command given as the PATH arguments (`-- pg_dump app`) and store its standard
    /// output as one file, /NAME; if the command fails (non-zero exit), no snapshot is saved.
    #[arg(long, conflicts_with_all = ["postgres", "redis", "consistent_with", "dry_run", "files_from", "files_from_verbatim", "files_from_raw"])]
    stdin_from_command: bool,
    /// The file name standard input is stored under (one path component).
    #[arg(long, value_name = "NAME", default_value = "stdin")]
    stdin_filename: String,
    /// Also back up the paths listed in FILE, one per line ('#' comments and blank lines
    /// ignored; repeatable).
    #[arg(long, value_name = "FILE")]
    files_from: Vec<PathBuf>,
    /// Like --files-from, every non-empty line taken literally (repeatable).
    #[arg(long, value_name = "FILE")]
    files_from_verbatim: Vec<PathBuf>,
    /// Like --files-from, paths separated by NUL bytes as `find -print0` writes them
    /// (repeatable).
    #[arg(long, value_name = "FILE")]
    files_from_raw: Vec<PathBuf>,
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
    /// Consistent snapshot of a running Redis whose data directory (CONFIG GET dir) is PATH:
    /// a fresh BGSAVE's dump.rdb, or with appendonly yes exactly the files the AOF manifest
    /// names, retried when a rewrite moved them. URL: redis://[user:password@]host:port,
    /// unix:///path/to.sock or a socket path. Temp files are never stored.
    #[arg(long, value_name = "URL", conflicts_with = "postgres")]
    redis: Option<String>,
    /// Read the Redis AUTH password from FILE (first line) instead of the URL.
    #[arg(long, value_name = "FILE", requires = "redis")]
    redis_password_file: Option<PathBuf>,
    /// How long to wait for a BGSAVE or a running AOF rewrite to finish.
    #[arg(long, value_name = "SECS", default_value_t = 600, requires = "redis")]
    redis_timeout: u64,
    /// Run CMD before reading the data and again after; if its standard output (a generation,
    /// an offset) differs, the snapshot is discarded and taken again (see --attempts). Split
    /// like the hooks (see --hook-shell), limited by --hook-timeout.
    #[arg(long, value_name = "CMD")]
    consistent_with: Option<String>,
    /// How many times to take a snapshot whose data moved while it was read (--redis,
    /// --consistent-with) before failing without one.
    #[arg(long, value_name = "N", default_value_t = cairn::ops::DEFAULT_ATTEMPTS, value_parser = clap::value_parser!(u32).range(1..=100))]
    attempts: u32,
    /// Treat matching files (a name pattern like '*.log', or a path pattern with '/') as
    /// append-only: one that grew since the parent is read only from its last chunk on, after
    /// that chunk is re-hashed to prove the old content unchanged (repeatable). Only for files
    /// that are never rewritten in place (segment logs, WAL): only the old tail is re-hashed,
    /// so a change further back in a file that also grew would be missed.
    #[arg(long, value_name = "PATTERN")]
    append_only: Vec<String>,
    /// Treat matching files (patterns as for --append-only) as arrays of pages rewritten in
    /// place, such as SQLite, LMDB or redb databases: cut them into aligned 32 KiB blocks, so
    /// that a rewritten page costs one chunk (repeatable). PostgreSQL relation files in a data
    /// directory are recognised without this.
    #[arg(long, value_name = "PATTERN")]
    paged: Vec<String>,
    /// Record this time as the snapshot's instead of now (e.g. when importing old backups).
    /// RFC 3339 (`2026-12-03T10:00:00Z`, `2026-12-03T11:00:00+01:00`), "YYYY-MM-DD HH:MM[:SS]"
    /// (UTC) or Unix seconds (`1764756000`).
    #[arg(long, value_name = "TIME")]
    time: Option<String>,
    #[command(flatten)]
    excludes: ExcludeArgs,
    /// Name every excluded entry on stderr (and, with --dry-run, every file on stdout).
    #[arg(long, short = 'v')]
    verbose: bool,
    /// Walk the paths with the exclusion rules and print what would be stored (files, bytes);
    /// read no file data, run no hooks, write nothing to the repository.
    #[arg(long, short = 'n', conflicts_with_all = ["postgres", "redis", "consistent_with"])]
    dry_run: bool,
    #[command(flatten)]
    hooks: HookArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
}

/// What `snapshot create` leaves out (pattern rules in `cairn help snapshot create`).
#[derive(Args)]
pub struct ExcludeArgs {
    /// Leave out entries matching PATTERN (repeatable). Without '/', it matches a name
    /// anywhere ('*.tmp'); starting with '/', the absolute path ('/var/lib/x/cache'); any other
    /// '/' anchors it at each backed-up path ('logs/*.gz'). '*' and '?' stay within one name,
    /// '**' spans directories; an excluded directory leaves out all it holds.
    #[arg(long = "exclude", short = 'e', value_name = "PATTERN")]
    exclude: Vec<String>,
    /// Like --exclude, ignoring case (repeatable).
    #[arg(long = "iexclude", value_name = "PATTERN")]
    iexclude: Vec<String>,
    /// Read --exclude patterns from FILE: one per line, '#' comments and blank lines ignored
    /// (repeatable).
    #[arg(long = "exclude-file", value_name = "FILE")]
    exclude_file: Vec<PathBuf>,
    /// Keep a directory holding a file named NAME but leave out everything else in it; with
    /// NAME:HEADER, only if that file starts with HEADER (repeatable).
    #[arg(long = "exclude-if-present", value_name = "NAME[:HEADER]")]
    exclude_if_present: Vec<String>,
    /// Leave out the contents of cache directories tagged with a valid CACHEDIR.TAG
    /// (https://bford.info/cachedir/); the tag itself is kept.
    #[arg(long)]
    exclude_caches: bool,
    /// Leave out regular files larger than SIZE (bytes, or with K, M, G, T: powers of 1024).
    #[arg(long, value_name = "SIZE")]
    exclude_larger_than: Option<String>,
    /// Do not descend into directories on another file system than their backed-up path
    /// (mount points are kept, empty).
    #[arg(long, short = 'x')]
    one_file_system: bool,
}

impl ExcludeArgs {
    fn excludes(&self) -> Result<ops::Excludes> {
        let mut patterns = self.exclude.clone();
        for file in &self.exclude_file {
            patterns.extend(ops::read_pattern_file(file)?);
        }
        let excludes = ops::Excludes {
            patterns,
            ignore_case_patterns: self.iexclude.clone(),
            if_present: self.exclude_if_present.iter().map(|s| ops::TagFile::parse(s)).collect::<Result<_>>()?,
            caches: self.exclude_caches,
            larger_than: self.exclude_larger_than.as_deref().map(ops::parse_size).transpose()?,
            one_file_system: self.one_file_system,
            ..Default::default()
        };
        excludes.validate()?;
        Ok(excludes)
    }
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
        SnapshotCommand::Create(args) => create(ctx, *args),
        SnapshotCommand::List(args) => list(ctx, args),
        SnapshotCommand::Show { snapshot, select } => show(ctx, &snapshot, &select),
        SnapshotCommand::Diff { a, b, select } => diff(ctx, &a, &b, &select),
        SnapshotCommand::Tag(args) => super::tag::run(ctx, args),
        SnapshotCommand::Export(args) => super::export::export(ctx, args),
        SnapshotCommand::Import(args) => super::export::import(ctx, args),
    }
}

/// `snapshot show --json`: the snapshot and its restore tests, oldest first.
#[derive(Serialize)]
struct ShowOutput {
    #[serde(flatten)]
    snapshot: SnapshotView,
    restore_tests: Vec<LastRun>,
}

#[derive(Serialize)]
struct CreateOutput {
    #[serde(flatten)]
    snapshot: SnapshotView,
    skipped: Vec<Skipped>,
    changed_while_reading: Vec<String>,
    /// How many files changed while being read (named in `changed_while_reading`).
    changed: u64,
    /// Entries gone between listing and reading: counted, not a failure.
    vanished: u64,
    /// With --verbose: each of them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    vanished_paths: Vec<String>,
    /// What a service adapter or --consistent-with wants the operator to know.
    warnings: Vec<String>,
    /// How many times the snapshot was taken before its data was consistent (1 normally).
    attempts: u32,
    /// Why each earlier attempt was discarded.
    discarded_attempts: Vec<String>,
    hooks: Vec<HookRun>,
    /// Append-only files read from their last chunk on.
    appended_files: u64,
    /// Files cut into aligned blocks of pages.
    paged_files: u64,
    special_files: u64,
    metadata_not_stored: u64,
    excluded: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    excluded_paths: Vec<Skipped>,
}

/// The given paths and those of the --files-from lists.
fn all_paths(args: &CreateArgs) -> Result<Vec<PathBuf>> {
    let mut paths = args.paths.clone();
    let lists = [
        (&args.files_from, ops::PathList::Lines),
        (&args.files_from_verbatim, ops::PathList::Verbatim),
        (&args.files_from_raw, ops::PathList::Raw),
    ];
    for (files, form) in lists {
        for file in files {
            paths.extend(ops::read_path_list(file, form)?);
        }
    }
    Ok(paths)
}

fn create(ctx: &Context, mut args: CreateArgs) -> Result<i32> {
    args.paths = all_paths(&args)?;
    if args.dry_run {
        return dry_run(ctx, args);
    }
    let hooks = args.hooks.hooks()?;
    let verbose = args.verbose;
    let started_ns = cairn::time::now_ns();
    let (metrics, host, paths) = (args.metrics.clone(), args.host.clone(), args.paths.clone());
    let env = vec![
        ("CAIRN_COMMAND".to_string(), "snapshot create".to_string()),
        ("CAIRN_REPO".to_string(), ctx.location().map(|l| redact_urls(&l.to_string())).unwrap_or_default()),
        ("CAIRN_PATHS".to_string(), args.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join("\n")),
    ];
    let (report, runs) = around(&hooks, env, true, || create_snapshot(ctx, args), snapshot_outcome);
    report_hooks(&runs);
    let report = match report {
        Ok(r) => r,
        // A key that may not do what was asked is a refusal, not a failed backup.
        Err(e @ cairn::Error::WriteOnly { .. }) => return Err(e),
        Err(e) => {
            record_failure(ctx, &metrics, host.as_deref(), &paths, started_ns, &e);
            return Err(e);
        }
    };
    metrics.write(&success_samples(ctx, &report.snapshot));
    warn(&report, verbose);
    let s = &report.snapshot.summary;
    if ctx.json {
        json(&CreateOutput {
            snapshot: view(&report.id, &report.snapshot),
            skipped: report.skipped.clone(),
            changed_while_reading: report.changed_while_reading.clone(),
            changed: report.changed_while_reading.len() as u64,
            vanished: report.vanished.len() as u64,
            vanished_paths: if verbose { report.vanished.clone() } else { Vec::new() },
            warnings: report.warnings.clone(),
            attempts: report.attempts,
            discarded_attempts: report.discarded.clone(),
            appended_files: report.appended_files,
            paged_files: report.paged_files,
            special_files: report.special_files,
            metadata_not_stored: report.metadata_not_stored,
            excluded: report.excluded,
            excluded_paths: report.excluded_paths.clone(),
            hooks: runs,
        })?;
    } else {
        let parent = report.snapshot.parent.map(|p| format!(" (parent {})", p.short())).unwrap_or_default();
        ctx.say(format!("snapshot {} saved{parent}", report.id.short()));
        ctx.say(summary_line(s));
        if report.attempts > 1 {
            ctx.say(format!("consistent on attempt {} (the data moved during the earlier ones)", report.attempts));
        }
        if report.excluded > 0 {
            ctx.say(format!("excluded {}", plural(report.excluded, "entry")));
        }
        if !report.vanished.is_empty() {
            let hint = if verbose { "" } else { " (--verbose names them)" };
            ctx.say(format!("{} vanished before being read{hint}", plural(report.vanished.len() as u64, "entry")));
        }
        if !report.changed_while_reading.is_empty() {
            ctx.say(format!("{} changed while being read", plural(report.changed_while_reading.len() as u64, "file")));
        }
    }
    Ok(if report.skipped.is_empty() { exit::OK } else { exit::PARTIAL })
}

/// What the post and finally hooks of a snapshot hear (`snapshot create` and `run`). A
/// snapshot written without some unreadable files (exit 3) is still a snapshot.
pub fn snapshot_outcome(r: &ops::BackupReport) -> Outcome {
    Outcome {
        success: true,
        env: vec![
            ("CAIRN_SNAPSHOT_ID".into(), r.id.to_hex()),
            ("CAIRN_BYTES_ADDED".into(), r.snapshot.summary.bytes_added.to_string()),
            ("CAIRN_FILES".into(), r.snapshot.summary.files.to_string()),
        ],
    }
}

/// Names on stderr what a snapshot left out or stored as it changed (`snapshot create` and
/// `run`).
pub fn warn(report: &ops::BackupReport, verbose: bool) {
    for line in fold_paths(report.skipped.iter().map(|s| (s.path.as_str(), s.reason.as_str()))) {
        eprintln!("warning: skipped {line}");
    }
    for p in &report.changed_while_reading {
        eprintln!("warning: {p} changed while being read (its size or mtime differed afterwards); stored as read");
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if report.metadata_not_stored > 0 {
        eprintln!(
            "warning: {} entries have extended attributes or hard links that this format version 1 \
             repository cannot store; `cairn repo copy` into a new repository keeps them from the next snapshot on",
            count(report.metadata_not_stored)
        );
    }
    if verbose {
        for why in &report.discarded {
            eprintln!("attempt discarded: {why}");
        }
        for e in &report.excluded_paths {
            eprintln!("excluded {} ({})", e.path, e.reason);
        }
        for p in &report.vanished {
            eprintln!("vanished {p} (gone before it could be read; not a failure)");
        }
    }
}

/// Records a failed snapshot: in the repository when it can be reached (for `cairn status`),
/// and in the metrics file. Neither failing changes the command's one-line error.
fn record_failure(
    ctx: &Context,
    metrics: &MetricsArgs,
    host: Option<&str>,
    paths: &[PathBuf],
    started_ns: i64,
    e: &cairn::Error,
) {
    let record = ops::backup::failure_record(host, paths, started_ns, &redact_urls(&e.to_string()));
    // Unreachable (missing, network down, locked): the error already says so, in one line;
    // the failure then lives in the metrics file alone.
    let _ = ctx.open(Access::Write).and_then(|repo| repo.save_run(&record));
    let source = cairn::snapshot::source_name(&record.host, &record.paths);
    let label = repo_label(ctx);
    let l = [("repo", label.as_str()), ("source", source.as_str())];
    let end = cairn::metrics::seconds(record.end_ns());
    metrics.write(&[cairn::metrics::Sample::new("cairn_snapshot_last_failure_timestamp_seconds", &l, end)]);
}

/// What a successful snapshot tells the metrics: the same numbers `cairn status` computes
/// from the snapshot record.
fn success_samples(ctx: &Context, s: &Snapshot) -> Vec<cairn::metrics::Sample> {
    use cairn::metrics::{seconds, Sample};
    let (label, source) = (repo_label(ctx), s.source());
    let l = [("repo", label.as_str()), ("source", source.as_str())];
    let end = s.time_ns.saturating_add(s.summary.duration_ms as i64 * 1_000_000);
    vec![
        Sample::new("cairn_snapshot_last_success_timestamp_seconds", &l, seconds(end)),
        Sample::new("cairn_snapshot_duration_seconds", &l, s.summary.duration_ms as f64 / 1000.0),
        Sample::new("cairn_snapshot_added_bytes", &l, s.summary.bytes_added as f64),
        Sample::new("cairn_snapshot_size_bytes", &l, s.summary.bytes as f64),
    ]
}

/// `snapshot create --dry-run`: needs no repository at all.
fn dry_run(ctx: &Context, args: CreateArgs) -> Result<i32> {
    let opts = BackupOptions {
        paths: args.paths,
        excludes: args.excludes.excludes()?,
        list_excluded: args.verbose,
        ..Default::default()
    };
    let report = ops::dry_run(&opts)?;
    for line in fold_paths(report.skipped.iter().map(|s| (s.path.as_str(), s.reason.as_str()))) {
        eprintln!("warning: cannot read {line}");
    }
    for e in &report.excluded_paths {
        eprintln!("excluded {} ({})", e.path, e.reason);
    }
    if ctx.json {
        json(&report)?;
    } else {
        for (path, size) in &report.file_paths {
            outln!("{path}  {}", bytes(*size))?;
        }
        ctx.say(format!(
            "would store {}, {} in {} and {}; excluded {} (dry run: nothing written)",
            plural(report.files, "file"),
            bytes(report.bytes),
            plural(report.dirs, "directory"),
            plural(report.others, "other entry"),
            plural(report.excluded, "entry"),
        ));
    }
    Ok(if report.skipped.is_empty() { exit::OK } else { exit::PARTIAL })
}

fn create_snapshot(ctx: &Context, args: CreateArgs) -> Result<ops::BackupReport> {
    if args.stdin || args.stdin_from_command {
        return create_from_stream(ctx, args);
    }
    // Bad patterns and sizes are usage errors, found before the repository is opened.
    let excludes = args.excludes.excludes()?;
    let consistent_with = match &args.consistent_with {
        Some(line) => Some(ops::Gate { command: args.hooks.command(line)?, timeout: args.hooks.timeout() }),
        None => None,
    };
    let redis = match args.redis {
        Some(url) => Some(ops::RedisSource {
            url,
            password: args.redis_password_file.as_deref().map(read_password_file).transpose()?,
            timeout: std::time::Duration::from_secs(args.redis_timeout),
        }),
        None => None,
    };
    let repo = ctx.open(Access::Write)?;
    let opts = BackupOptions {
        excludes,
        list_excluded: args.verbose,
        paths: args.paths,
        tags: args.tags,
        host: args.host,
        parent: args.parent.as_deref().map(str::parse).transpose()?,
        force_read: args.force,
        postgres: args.postgres,
        redis,
        consistent_with,
        attempts: args.attempts,
        append_only: args.append_only,
        paged: args.paged,
        time_ns: args.time.as_deref().map(|t| snapshot_time(t, args.force)).transpose()?,
        ..Default::default()
    };
    let progress = ctx.progress();
    ops::backup(&repo, &opts, progress.as_ref())
}

/// `--stdin` / `--stdin-from-command`: one file from a stream.
fn create_from_stream(ctx: &Context, args: CreateArgs) -> Result<ops::BackupReport> {
    let time_ns = args.time.as_deref().map(|t| snapshot_time(t, args.force)).transpose()?;
    let parent = args.parent.as_deref().map(str::parse).transpose()?;
    let mut command = match args.stdin_from_command {
        true => Some(super::stream::spawn(&args.paths)?),
        false => None,
    };
    let mut output = command.as_mut().and_then(|c| c.stdout.take());
    let repo = ctx.open(Access::Write)?;
    let opts = BackupOptions { tags: args.tags, host: args.host, parent, time_ns, ..Default::default() };
    let progress = ctx.progress();
    let stdin = std::io::stdin();
    let mut stdin = stdin.lock();
    let reader: &mut dyn std::io::Read = match output.as_mut() {
        Some(out) => out,
        None => &mut stdin,
    };
    let argv = args.paths.clone();
    let mut finished = || command.as_mut().map_or(Ok(()), |c| super::stream::wait(c, &argv));
    let source = ops::StreamSource { name: &args.stdin_filename, reader, finished: &mut finished };
    ops::backup_stream(&repo, &opts, source, progress.as_ref())
}

/// The first line of a password file, without its line end.
fn read_password_file(path: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| cairn::error::Error::io("cannot read", path, e))?;
    Ok(text.lines().next().unwrap_or_default().to_string())
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
    let now = cairn::time::now_ns();
    let tests: Vec<LastRun> = repo
        .runs(cairn::snapshot::RunKind::RestoreTest)?
        .records
        .iter()
        .filter(|r| r.snapshot == Some(id))
        .map(|r| LastRun::of(r, now))
        .collect();
    if ctx.json {
        json(&ShowOutput { snapshot: view(&id, &s), restore_tests: tests })?;
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
    if tests.is_empty() {
        outln!("restore test never")?;
    }
    for t in &tests {
        let verdict = if t.success { "passed" } else { "FAILED" };
        let why = if t.success { String::new() } else { format!(": {}", t.detail) };
        outln!("restore test {verdict} {} ({}){why}", t.finished.time, t.command)?;
    }
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
