//! `cairn restore`: a snapshot, or a point in time (`--at`).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Args, ValueEnum};

use cairn::error::{exit, redact_urls, Error, Result};
use cairn::ops::{self, restore::Mode, restore::Overwrite, PitrOptions, RestoreOptions, RestoreReport};
use cairn::repo::export::open_export;
use cairn::repo::{Access, SnapshotSpec};

use super::hooks::{around, report as report_hooks, HookArgs, Outcome};
use super::render::{bytes, count, count_of, duration_ms, fold_lines, fold_paths, json};
use super::select::SelectArgs;
use super::Context;

#[derive(Args)]
#[command(after_long_help = "\
A non-empty target needs --overwrite. Every file is written under a temporary name and renamed \
into place only when all its data is written and verified; nothing outside the target is ever \
written (symlinks in the target are replaced, never followed). Interrupted (Ctrl-C, SIGTERM: \
exit 130), the same command with --overwrite if-changed finishes the job. Exit codes: 0 done, \
2 usage, 3 some paths could not be restored (named), 130 interrupted.")]
pub struct RestoreArgs {
    /// Snapshot id, unique id prefix, or `latest` (omit with --at or --from-export).
    #[arg(required_unless_present_any = ["at", "from_export"], conflicts_with_all = ["at", "from_export"])]
    snapshot: Option<String>,
    /// Restore the snapshot of this export file (`snapshot export`), with no repository. The
    /// whole file is verified before anything is written; an encrypted export opens with the
    /// password given as for a repository (--password-file, CAIRN_PASSWORD, ...).
    #[arg(long, value_name = "FILE", conflicts_with = "at")]
    from_export: Option<PathBuf>,
    /// Restore to this instant: the newest snapshot taken at or before it, plus the WAL
    /// archived up to it. RFC 3339, "YYYY-MM-DD HH:MM[:SS]" (UTC unless an offset is given),
    /// or Unix seconds. A PostgreSQL data directory is prepared to recover to exactly then.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Directory to restore into (created if missing; a symlink given here is followed, none
    /// below it is). A snapshot of one path restores that path's contents directly into it,
    /// and the directory takes that path's mode, owner and times; with several paths each
    /// lands under it by its full path.
    #[arg(long, short, value_name = "DIR", required_unless_present = "verify_only")]
    target: Option<PathBuf>,
    /// Restore only matching entries (repeatable). A pattern with a `/` matches the path
    /// relative to the restored root (`base/**`) or, when it starts with `/`, the absolute
    /// path `cairn ls` prints; one without `/` matches any name (`*.conf`). A matching
    /// directory is restored with everything in it. A pattern that matches nothing is an error.
    #[arg(long, value_name = "PATTERN", conflicts_with = "at")]
    include: Vec<String>,
    /// Leave out matching entries and everything below them (repeatable; same patterns as
    /// --include).
    #[arg(long, value_name = "PATTERN", conflicts_with = "at")]
    exclude: Vec<String>,
    /// What to do with entries already in the target: `always` replace them, `if-changed`
    /// replace those whose size or mtime differ, `if-newer` replace files older than the
    /// snapshot's, `never` keep them. Without it a non-empty target is refused. Files that
    /// are replaced keep every chunk that already matches (only the rest is read).
    #[arg(long, value_enum, value_name = "POLICY", conflicts_with = "at")]
    overwrite: Option<OverwriteArg>,
    /// Remove entries of the target that the snapshot does not have (within what
    /// --include/--exclude select): makes the target equal to the snapshot.
    #[arg(long, conflicts_with = "at")]
    delete: bool,
    /// Print what would be created, replaced, kept and deleted, with sizes; change nothing.
    #[arg(long, conflicts_with_all = ["at", "verify_only"])]
    dry_run: bool,
    /// Read and verify every chunk of the selected files without writing anything.
    #[arg(long, conflicts_with = "at")]
    verify_only: bool,
    /// Keep every entry the restore replaces or deletes beside it as NAME.SUFFIX (default
    /// suffix `.cairn-bak-<time>`) instead of removing it; listed in the summary and --json.
    #[arg(long, value_name = "SUFFIX", num_args = 0..=1, default_missing_value = "", conflicts_with = "at")]
    backup_existing: Option<String>,
    /// Restore even though running processes hold files of the target open (their writes to
    /// replaced files would be lost; stop the service first).
    #[arg(long)]
    force: bool,
    /// All or nothing: restore into a staging directory beside the target, and only when every
    /// file is complete and verified swap it with the target in one atomic rename (the old tree
    /// is removed, or kept with --backup-existing). If anything fails the target is untouched.
    /// Replaces the whole target, so it takes no --include/--exclude.
    #[arg(long, conflicts_with_all = ["dry_run", "verify_only", "include", "exclude", "overwrite", "delete", "at"])]
    atomic: bool,
    /// Rewrite only the changed chunks of existing files, where they lie, instead of writing
    /// each replaced file anew and renaming it over the old one: much less written for large
    /// files that changed a little (rolling a database back an hour). The price: a failed or
    /// interrupted restore leaves such files partly rewritten under their real names (rerun to
    /// finish). Files with other hard links, or that cannot be opened for writing, are copied.
    #[arg(long, requires = "overwrite", conflicts_with_all = ["atomic", "backup_existing", "at"])]
    in_place: bool,
    /// Do not restore owners (the default when not running as root).
    #[arg(long)]
    no_owner: bool,
    /// Do not restore setuid, setgid and sticky bits (setuid/setgid are restored only
    /// together with owners, i.e. as root).
    #[arg(long)]
    no_special_bits: bool,
    /// With --at: the WAL stream to recover from.
    #[arg(long, default_value = ops::wal::DEFAULT_STREAM, requires = "at")]
    stream: String,
    /// With --at: write every WAL file of the stream archived up to the time into this
    /// directory, for a service that replays it on start.
    #[arg(long, value_name = "DIR", requires = "at")]
    wal_dir: Option<PathBuf>,
    #[command(flatten)]
    select: SelectArgs,
    /// Stop the service before (`--pre`) and start it after (`--post`, or `--finally` to
    /// start it even when the restore failed).
    #[command(flatten)]
    hooks: HookArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum OverwriteArg {
    Always,
    IfChanged,
    IfNewer,
    Never,
}

impl From<OverwriteArg> for Overwrite {
    fn from(a: OverwriteArg) -> Self {
        match a {
            OverwriteArg::Always => Overwrite::Always,
            OverwriteArg::IfChanged => Overwrite::IfChanged,
            OverwriteArg::IfNewer => Overwrite::IfNewer,
            OverwriteArg::Never => Overwrite::Never,
        }
    }
}

/// A flag that SIGINT and SIGTERM set; a second signal ends the process at once.
pub fn cancel_on_signals() -> Option<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, exit::INTERRUPTED, flag.clone()).ok()?;
        signal_hook::flag::register(sig, flag.clone()).ok()?;
    }
    Some(flag)
}

pub fn run(ctx: &Context, args: RestoreArgs) -> Result<i32> {
    let hooks = args.hooks.hooks()?;
    let env = vec![
        ("CAIRN_COMMAND".to_string(), "restore".to_string()),
        ("CAIRN_REPO".to_string(), ctx.location().map(|l| redact_urls(&l.to_string())).unwrap_or_default()),
        ("CAIRN_TARGET".to_string(), args.target.as_ref().map(|t| t.display().to_string()).unwrap_or_default()),
    ];
    // The restore stops by itself on SIGINT/SIGTERM (exit 130), and the hooks then run.
    let (code, runs) = around(
        &hooks,
        env,
        false,
        || restore(ctx, args),
        |code| Outcome { success: *code == exit::OK, env: vec![("CAIRN_EXIT_CODE".into(), code.to_string())] },
    );
    report_hooks(&runs);
    code
}

fn restore(ctx: &Context, args: RestoreArgs) -> Result<i32> {
    // An export is verified whole and opened as a repository of its own.
    let export = match &args.from_export {
        Some(file) => Some(open_export(file, &ctx.password.key_source_asking("export password: "))?),
        None => None,
    };
    let from_repo;
    let repo = match &export {
        Some(e) => &e.repo,
        None => {
            from_repo = ctx.open_reading(Access::Read, "restore snapshots")?;
            &from_repo
        }
    };
    let progress = ctx.progress();
    let cancel = cancel_on_signals();
    let filter = args.select.filter();
    if let Some(at) = &args.at {
        let target = args.target.clone().ok_or_else(|| Error::InvalidArgument("--at needs --target".into()))?;
        let at_ns = cairn::time::parse_timestamp(at)?;
        let opts = PitrOptions {
            at_ns,
            target: target.clone(),
            stream: args.stream.clone(),
            wal_dir: args.wal_dir.clone(),
            filter,
            fetch_command: fetch_command(ctx)?,
            cancel,
        };
        let report = ops::restore_at(repo, &opts, progress.as_ref())?;
        for w in fold_lines(report.warnings.iter().map(String::as_str)) {
            eprintln!("warning: {w}");
        }
        if ctx.json {
            json(&report)?;
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
                target.display(),
                args.stream,
                cairn::time::format_ns(at_ns)
            ));
        }
        if let Some(dir) = &args.wal_dir {
            ctx.say(format!("wrote {} WAL files to {}", report.wal_files.len(), dir.display()));
        }
        summary(ctx, &report.restore, &target, Mode::Write);
        return Ok(finish(&report.restore));
    }
    let (id, snap) = match &export {
        Some(e) => (e.snapshot_id, e.snapshot.clone()),
        None => {
            let spec = args
                .snapshot
                .as_deref()
                .ok_or_else(|| Error::InvalidArgument("give a snapshot or --at TIME".into()))?;
            repo.resolve_snapshot_matching(&spec.parse::<SnapshotSpec>()?, &filter)?
        }
    };
    let mode = match (args.dry_run, args.verify_only) {
        (true, _) => Mode::DryRun,
        (_, true) => Mode::VerifyOnly,
        _ => Mode::Write,
    };
    let target = args.target.clone().unwrap_or_default();
    let opts = RestoreOptions {
        target: target.clone(),
        include: args.include,
        exclude: args.exclude,
        owners: if args.no_owner { Some(false) } else { None },
        no_special_bits: args.no_special_bits,
        overwrite: args.overwrite.map(Overwrite::from),
        delete: args.delete,
        mode,
        backup_suffix: args.backup_existing.map(|s| match s.as_str() {
            "" => format!(".cairn-bak-{}", cairn::time::compact_now()),
            _ if s.starts_with('.') => s,
            _ => format!(".{s}"),
        }),
        force: args.force,
        in_place: args.in_place,
        cancel,
    };
    if args.atomic {
        return atomic(ctx, repo, &id, &snap, &opts, progress.as_ref());
    }
    let report = ops::restore(repo, &id, &snap, &opts, progress.as_ref())?;
    for w in fold_lines(report.warnings.iter().map(String::as_str)) {
        eprintln!("warning: {w}");
    }
    if ctx.json {
        json(&report)?;
        return Ok(finish(&report));
    }
    if mode == Mode::DryRun && !ctx.quiet {
        for p in &report.plan {
            outln!("{:<9} {:<12} {:>10}  {}", p.action, p.kind, bytes(p.bytes), p.path)?;
        }
    }
    let code = finish(&report);
    summary(ctx, &report, &target, mode);
    Ok(code)
}

fn atomic(
    ctx: &Context,
    repo: &cairn::Repository,
    id: &cairn::SnapshotId,
    snap: &cairn::snapshot::Snapshot,
    opts: &RestoreOptions,
    progress: &dyn cairn::progress::Progress,
) -> Result<i32> {
    let report = ops::restore_atomic(repo, id, snap, opts, progress)?;
    for w in fold_lines(report.restore.warnings.iter().map(String::as_str)) {
        eprintln!("warning: {w}");
    }
    if ctx.json {
        json(&report)?;
        return Ok(finish(&report.restore));
    }
    let code = finish(&report.restore);
    if !report.applied {
        ctx.say(format!(
            "nothing changed in {}: --atomic restores all or nothing, and {} could not be restored (listed above)",
            opts.target.display(),
            count_of(report.restore.failed.len() as u64, "path", "paths")
        ));
        return Ok(code);
    }
    summary(ctx, &report.restore, &opts.target, Mode::Write);
    if let Some(previous) = &report.previous {
        ctx.say(format!("the previous tree is kept at {previous}"));
    }
    Ok(code)
}

/// The summary line(s), after any error lines.
fn summary(ctx: &Context, r: &RestoreReport, target: &std::path::Path, mode: Mode) {
    let s = &r.snapshot;
    let what = format!("snapshot {} ({}, host {})", &s.id[..8.min(s.id.len())], s.time, s.host);
    let mut kinds = vec![
        count_of(r.files, "file", "files"),
        count_of(r.dirs, "dir", "dirs"),
        count_of(r.symlinks, "symlink", "symlinks"),
    ];
    if r.hardlinks > 0 {
        kinds.push(count_of(r.hardlinks, "hard link", "hard links"));
    }
    if r.specials > 0 {
        kinds.push(count_of(r.specials, "special file", "special files"));
    }
    let done = format!("{}, {}", kinds.join(", "), bytes(r.bytes));
    let line = match mode {
        Mode::VerifyOnly => format!(
            "verified {what}: {} read and verified, {} in {}",
            count_of(r.verified, "file", "files"),
            bytes(r.bytes_fetched),
            duration_ms(r.duration_ms)
        ),
        Mode::DryRun => format!("would restore {what} to {}: {done}", target.display()),
        Mode::Write => format!("restored {what} to {}: {done} in {}", target.display(), duration_ms(r.duration_ms)),
    };
    ctx.say(line);
    let mut existing = Vec::new();
    for (n, label) in [(r.unchanged, "unchanged"), (r.replaced, "replaced"), (r.kept, "kept"), (r.deleted, "deleted")] {
        if n > 0 {
            existing.push(format!("{} {label}", count(n)));
        }
    }
    if !existing.is_empty() {
        ctx.say(format!(
            "existing entries: {}; {} read from the repository, {} reused from the target",
            existing.join(", "),
            bytes(r.bytes_fetched),
            bytes(r.bytes_reused)
        ));
    }
    if !r.failed.is_empty() {
        ctx.say(format!(
            "incomplete: {} not restored (listed above)",
            count_of(r.failed.len() as u64, "path", "paths")
        ));
    }
}

/// Reports what could not be restored, before the summary; exit 3 when there is any.
fn finish(report: &RestoreReport) -> i32 {
    for line in fold_paths(report.failed.iter().map(|f| (f.path.as_str(), f.reason.as_str()))) {
        eprintln!("error: not restored: {line}");
    }
    if report.failed.is_empty() {
        exit::OK
    } else {
        exit::PARTIAL
    }
}

/// How a restored PostgreSQL calls back into this cairn and repository.
fn fetch_command(ctx: &Context) -> Result<String> {
    let exe = std::env::current_exe().map_err(|e| Error::io("cannot locate", std::path::Path::new("cairn"), e))?;
    let repo = ctx.location()?.for_callback()?;
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut cmd = format!("{} --repo {}", quote(&exe.display().to_string()), quote(&repo));
    // An encrypted repository's password: the server must find it the same way (a password
    // given only in CAIRN_PASSWORD is not written into the server's config; docs/cli.md).
    if let Some((flag, value)) = ctx.password_callback_option() {
        cmd.push_str(&format!(" {flag} {}", quote(&value)));
    }
    Ok(cmd)
}
