//! `cairn run SOURCE...` / `cairn run --all`: for each repository of the plan, its hooks
//! around its sources; for each source, its hooks around its snapshot, then its retention;
//! then the repository's prune and check where a source asks for them. A failing source does
//! not stop the next one; the exit code is the worst of all (see [`worse`]).

use clap::Args;
use serde::Serialize;

use cairn::config::{Loaded, RepositoryRun};
use cairn::error::{exit, redact_urls, Error, Result};
use cairn::hooks::{HookRun, Hooks};
use cairn::ops::{self, CheckOptions, PruneOptions, Severity};
use cairn::repo::Access;

use std::sync::atomic::{AtomicBool, Ordering};

use super::hooks::{around, around_within, report as report_hooks, stop_flag, Outcome, Outer};
use super::settings::Globals;
use super::Context;

#[derive(Args)]
pub struct RunArgs {
    /// Sources to run, as named in the configuration file's [sources.NAME] tables.
    #[arg(value_name = "SOURCE", required_unless_present = "all", conflicts_with = "all")]
    sources: Vec<String>,
    /// Run every configured source (in alphabetical order).
    #[arg(long)]
    all: bool,
    /// Print what would run; run no hook and open no repository.
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Name every excluded entry on stderr.
    #[arg(long, short = 'v')]
    verbose: bool,
}

/// What one source's run did.
#[derive(Serialize, Default)]
pub struct SourceResult {
    pub source: String,
    pub repository: String,
    pub exit_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_added: Option<u64>,
    pub skipped_files: usize,
    /// Snapshots the retention removed, and how many of this source's it kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forgotten: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal_forgotten: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub hooks: Vec<HookRun>,
}

/// What a repository's part of the run did after its sources.
#[derive(Serialize, Default)]
pub struct RepositoryResult {
    pub repository: String,
    pub exit_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pruned_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_damage: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub hooks: Vec<HookRun>,
}

#[derive(Serialize, Default)]
struct RunReport {
    sources: Vec<SourceResult>,
    repositories: Vec<RepositoryResult>,
    exit_code: i32,
}

/// The worse of two exit codes: success, then "finished, some files skipped" (3), then any
/// failure; between two failures, the higher code.
pub fn worse(a: i32, b: i32) -> i32 {
    let rank = |c: i32| match c {
        exit::OK => 0,
        exit::PARTIAL => 1,
        _ => 2,
    };
    if (rank(b), b) > (rank(a), a) {
        b
    } else {
        a
    }
}

pub fn run(g: &Globals, args: RunArgs) -> Result<i32> {
    let loaded = g.config.as_ref().ok_or_else(|| {
        Error::InvalidArgument(
            "`cairn run` needs a configuration file: give --config FILE, set CAIRN_CONFIG, or write \
             ~/.config/cairn/config.toml (see docs/config.md)"
                .to_string(),
        )
    })?;
    let plan = cairn::config::plan(&loaded.config, &args.sources, args.all, g.repo.as_deref())
        .map_err(|problem| loaded.error(&problem))?;
    if plan.is_empty() {
        return Err(loaded.error("no sources are configured: add a [sources.NAME] table"));
    }
    if args.dry_run {
        return super::run_plan::print(g, loaded, &plan);
    }
    let mut report = RunReport::default();
    // A signal between steps stops the run there (the repository's hooks still run); one
    // during a snapshot ends the process after the source's and the repository's on-failure
    // and finally hooks (see `hooks::around_within`).
    let stop = stop_flag();
    for group in &plan {
        let (sources, repo) = run_repository(g, loaded, group, args.verbose, &stop);
        report.sources.extend(sources);
        report.repositories.push(repo);
    }
    let codes = report.sources.iter().map(|s| s.exit_code).chain(report.repositories.iter().map(|r| r.exit_code));
    report.exit_code = codes.fold(exit::OK, worse);
    render(g, &report)?;
    Ok(report.exit_code)
}

/// One repository: its hooks around its sources and their maintenance.
fn run_repository(
    g: &Globals,
    loaded: &Loaded,
    group: &RepositoryRun,
    verbose: bool,
    stop: &AtomicBool,
) -> (Vec<SourceResult>, RepositoryResult) {
    let mut repo = RepositoryResult { repository: group.repository.clone(), ..Default::default() };
    let failed_all = |e: &Error| -> Vec<SourceResult> {
        group.sources.iter().map(|s| failed(s, &group.repository, e, Vec::new())).collect()
    };
    let ctx = match g.context_for(&group.repository) {
        Ok(ctx) => ctx,
        Err(e) => return (failed_all(&e), repo),
    };
    let hooks = loaded.config.repositories.get(&group.repository).map(|r| r.hooks.hooks());
    let hooks = match hooks.transpose() {
        Ok(h) => h.unwrap_or_default(),
        Err(e) => return (failed_all(&e), repo),
    };
    let env = vec![
        ("CAIRN_COMMAND".to_string(), "run".to_string()),
        ("CAIRN_REPO".to_string(), ctx.location().map(|l| redact_urls(&l.to_string())).unwrap_or_default()),
        ("CAIRN_REPOSITORY".to_string(), group.repository.clone()),
        ("CAIRN_SOURCES".to_string(), group.sources.join("\n")),
    ];
    let mut sources = Vec::new();
    let outer = Outer { hooks: hooks.clone(), env: env.clone() };
    let interrupted = Error::Interrupted { what: "cairn run".into(), detail: "stopped by a signal".into() };
    let (result, runs) = around(
        &hooks,
        env,
        false,
        || {
            for name in &group.sources {
                sources.push(match stop.load(Ordering::SeqCst) {
                    true => failed(name, &group.repository, &interrupted, Vec::new()),
                    false => run_source(&ctx, loaded, &group.repository, name, verbose, &outer),
                });
            }
            if !stop.load(Ordering::SeqCst) {
                maintain(&ctx, group, &mut repo);
            }
            Ok(sources.iter().map(|s| s.exit_code).fold(repo.exit_code, worse))
        },
        |code| Outcome {
            success: matches!(*code, exit::OK | exit::PARTIAL),
            env: vec![("CAIRN_EXIT_CODE".into(), code.to_string())],
        },
    );
    report_hooks(&runs);
    repo.hooks = runs;
    if let Err(e) = result {
        if sources.is_empty() {
            sources = failed_all(&e);
        }
        repo.exit_code = worse(repo.exit_code, e.exit_code());
        repo.error = Some(e.to_string());
    }
    (sources, repo)
}

fn failed(source: &str, repository: &str, e: &Error, hooks: Vec<HookRun>) -> SourceResult {
    SourceResult {
        source: source.to_string(),
        repository: repository.to_string(),
        exit_code: e.exit_code(),
        error: Some(e.to_string()),
        hooks,
        ..Default::default()
    }
}

/// One source: its hooks around its snapshot, then its retention.
fn run_source(
    ctx: &Context,
    loaded: &Loaded,
    repository: &str,
    name: &str,
    verbose: bool,
    outer: &Outer,
) -> SourceResult {
    let Some(source) = loaded.config.sources.get(name) else {
        return failed(name, repository, &Error::Internal(format!("source {name} left the plan")), Vec::new());
    };
    let prepared = source.hooks.hooks().and_then(|h| Ok((h, source.backup_options(name)?)));
    let (hooks, mut opts): (Hooks, ops::BackupOptions) = match prepared {
        Ok(p) => p,
        Err(e) => return failed(name, repository, &e, Vec::new()),
    };
    opts.list_excluded = verbose;
    let env = vec![
        ("CAIRN_COMMAND".to_string(), "run".to_string()),
        ("CAIRN_SOURCE".to_string(), name.to_string()),
        ("CAIRN_REPO".to_string(), ctx.location().map(|l| redact_urls(&l.to_string())).unwrap_or_default()),
        ("CAIRN_PATHS".to_string(), opts.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join("\n")),
    ];
    let (report, runs) = around_within(
        &hooks,
        env,
        true,
        Some(outer),
        || {
            let repo = ctx.open(Access::Write)?;
            ops::backup(&repo, &opts, ctx.progress().as_ref())
        },
        super::snapshot::snapshot_outcome,
    );
    report_hooks(&runs);
    let report = match report {
        Ok(r) => r,
        Err(e) => return failed(name, repository, &e, runs),
    };
    super::snapshot::warn(&report, verbose);
    let mut result = SourceResult {
        source: name.to_string(),
        repository: repository.to_string(),
        exit_code: if report.skipped.is_empty() { exit::OK } else { exit::PARTIAL },
        snapshot: Some(report.id.to_hex()),
        bytes_added: Some(report.snapshot.summary.bytes_added),
        skipped_files: report.skipped.len(),
        hooks: runs,
        ..Default::default()
    };
    if let Some(forget) = loaded.config.forget_options(name) {
        match ctx.open_to_reclaim().and_then(|repo| ops::forget(&repo, &forget)) {
            Ok(f) => {
                result.forgotten = Some(f.forgotten());
                result.kept = Some(f.snapshots.len() - f.forgotten());
                result.wal_forgotten = Some(f.wal_forgotten.len());
            }
            Err(e) => {
                result.exit_code = worse(result.exit_code, e.exit_code());
                result.error = Some(format!("retention: {e}"));
            }
        }
    }
    result
}

/// `prune`, then `repo check`, when a source of the group asks for them.
fn maintain(ctx: &Context, group: &RepositoryRun, out: &mut RepositoryResult) {
    if group.prune {
        let pruned =
            ctx.open_to_reclaim().and_then(|repo| ops::prune(&repo, &PruneOptions::default(), ctx.progress().as_ref()));
        match pruned {
            Ok(plan) => out.pruned_bytes = Some(plan.freed_bytes),
            Err(e) => {
                out.exit_code = worse(out.exit_code, e.exit_code());
                out.error = Some(format!("prune: {e}"));
                return;
            }
        }
    }
    if let Some(read_data) = group.check {
        let checked = ctx
            .location()
            .and_then(|loc| ctx.connect().audit(&loc))
            .and_then(|audit| ops::check(&audit, &CheckOptions { read_data }, ctx.progress().as_ref()));
        match checked {
            Ok(report) => {
                let damage: Vec<_> = report.findings.iter().filter(|f| f.severity == Severity::Damage).collect();
                for f in &damage {
                    eprintln!("damage: {}: {}", f.object, f.problem);
                }
                out.check_damage = Some(damage.len());
                if !damage.is_empty() {
                    out.exit_code = worse(out.exit_code, exit::DAMAGE_FOUND);
                }
            }
            Err(e) => {
                out.exit_code = worse(out.exit_code, e.exit_code());
                out.error = Some(format!("check: {e}"));
            }
        }
    }
}

fn render(g: &Globals, report: &RunReport) -> Result<()> {
    if g.json {
        return super::render::json(report);
    }
    for s in &report.sources {
        let line = source_line(s);
        // Failures are shown even with --quiet: they are what a cron mail must carry.
        if s.exit_code != exit::OK {
            eprintln!("{line}");
        } else if !g.quiet {
            outln!("{line}")?;
        }
    }
    for r in &report.repositories {
        let mut parts = Vec::new();
        if let Some(b) = r.pruned_bytes {
            parts.push(format!("pruned, {} freed", super::render::bytes(b)));
        }
        if let Some(d) = r.check_damage {
            parts.push(if d == 0 { "checked: no damage".to_string() } else { format!("checked: {d} damage findings") });
        }
        if let Some(e) = &r.error {
            eprintln!("{}: failed: {e}", r.repository);
        } else if !parts.is_empty() && !g.quiet {
            outln!("{}: {}", r.repository, parts.join("; "))?;
        }
    }
    Ok(())
}

/// `pg: snapshot 1a2b3c4d, added 12 MiB; forgot 2, kept 7` or `pg: failed: …`.
fn source_line(s: &SourceResult) -> String {
    let mut line = format!("{}:", s.source);
    if let Some(id) = &s.snapshot {
        let added = super::render::bytes(s.bytes_added.unwrap_or(0));
        line.push_str(&format!(" snapshot {}, added {added}", &id[..8.min(id.len())]));
        if s.skipped_files > 0 {
            line.push_str(&format!(", {} files skipped", s.skipped_files));
        }
    }
    if let (Some(f), Some(k)) = (s.forgotten, s.kept) {
        line.push_str(&format!("; forgot {f}, kept {k}"));
        if let Some(w) = s.wal_forgotten.filter(|w| *w > 0) {
            line.push_str(&format!(", {w} WAL files forgotten"));
        }
    }
    if let Some(e) = &s.error {
        line.push_str(&format!(" failed: {e}"));
    }
    line
}
