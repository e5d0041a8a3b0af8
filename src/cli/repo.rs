//! `cairn init` and `cairn repo info|repair`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use cairn::chunker::ChunkerParams;
use cairn::error::{exit, Result};
use cairn::repo::{Access, InitEncryption, InitOptions};

use cairn::ops::{self, CheckOptions, ReadData, Severity};

use super::password::PasswordCache;
use super::render::{bytes, count, count_of, duration_ms, json, plural};
use super::Context;

#[derive(Args)]
pub struct InitArgs {
    /// zstd compression level for stored chunks (0 = store uncompressed; higher levels store
    /// less and write more slowly).
    #[arg(long, default_value_t = cairn::repo::DEFAULT_COMPRESSION_LEVEL, value_parser = clap::value_parser!(i32).range(0..=22))]
    compression: i32,
    /// Average chunk size in KiB (min is a quarter, max four times). Fixed for the
    /// repository's life: changing it would break deduplication.
    #[arg(long, default_value_t = 32, value_name = "KIB")]
    chunk_kib: u32,
    /// Target pack size in MiB.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024), value_name = "MIB")]
    pack_mib: u32,
    /// `aes-256-gcm` (the default: data, names and metadata encrypted, see docs/security.md)
    /// or `none` (plaintext: anyone who can read the repository can read the backups).
    #[arg(long, default_value = "aes-256-gcm", value_parser = ["aes-256-gcm", "none"], value_name = "MODE")]
    encryption: String,
    /// Use the master key of this paper key (`cairn key export` of another repository): the
    /// two repositories then share their keys.
    #[arg(long, value_name = "FILE", conflicts_with = "encryption")]
    from_key_export: Option<std::path::PathBuf>,
    #[command(flatten)]
    kdf: KdfArgs,
}

/// The cost of turning a password into a key (argon2id), recorded in the key file. Every
/// command that opens the repository pays it once per key file tried.
#[derive(Args)]
pub struct KdfArgs {
    /// argon2id memory in KiB (8 .. 1048576; default 64 MiB, about 0.5 s with the default
    /// passes on the project machine). Lower only for tests or very small machines.
    #[arg(long, env = "CAIRN_KDF_MEMORY_KIB", default_value_t = 65536,
          value_parser = clap::value_parser!(u32).range(8..=1_048_576), value_name = "KIB")]
    kdf_memory_kib: u32,
    /// argon2id passes (1 .. 64).
    #[arg(long, env = "CAIRN_KDF_PASSES", default_value_t = 9,
          value_parser = clap::value_parser!(u32).range(1..=64), value_name = "N")]
    kdf_passes: u32,
}

impl KdfArgs {
    pub fn params(&self) -> cairn::crypto::KdfParams {
        cairn::crypto::KdfParams { memory_kib: self.kdf_memory_kib, passes: self.kdf_passes, lanes: 1 }
    }
}

#[derive(Args)]
pub struct CopyArgs {
    /// The source repository (path or s3:// URL).
    #[arg(long, value_name = "PATH|URL")]
    from: String,
    /// Read the source repository's password from this file (env
    /// CAIRN_FROM_PASSWORD_FILE). Without any source password option (or CAIRN_FROM_PASSWORD),
    /// the source is opened with this repository's password.
    #[arg(long, value_name = "FILE")]
    from_password_file: Option<PathBuf>,
    /// Run this shell command and read the source repository's password from its output (env
    /// CAIRN_FROM_PASSWORD_COMMAND).
    #[arg(long, value_name = "COMMAND")]
    from_password_command: Option<String>,
    /// Allow copying an encrypted repository into an unencrypted one: every file, name and
    /// tag is then stored in the clear. Refused without it.
    #[arg(long)]
    allow_unencrypted_destination: bool,
}

#[derive(Subcommand)]
pub enum RepoCommand {
    /// Audit the repository and name what any damage affects. Exit 0 when clean, 4 when
    /// damage was found, 1/10 when the check could not run.
    Check(CheckArgs),
    /// Copy snapshots and WAL from another repository into this one (--repo), sending only
    /// what this one lacks: e.g. a daily off-site copy of an hourly local repository.
    ///
    /// Between repositories with the same master key (a twin made with `init
    /// --from-key-export`) sealed data is copied as it is; with different keys, or from an
    /// unencrypted repository into an encrypted one (the migration path), everything is
    /// re-encrypted with this repository's key and snapshots get new ids.
    Copy(CopyArgs),
    /// Show the repository's configuration and size.
    Info,
    /// Repair derived data.
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Remove locks left by processes that are gone (detected automatically on this host) or
    /// not refreshed for 30 minutes; with --all, every lock.
    Unlock {
        /// Remove every lock. Make sure no cairn process uses the repository first.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Args)]
pub struct CheckArgs {
    /// Also read every pack and verify every chunk against its hash.
    #[arg(long)]
    read_data: bool,
    /// Read only part of the packs: `N%` (a random share) or `K/M` (a fixed slice; 1/7 … 7/7
    /// on successive days cover every pack).
    #[arg(long, value_name = "SUBSET", conflicts_with = "read_data")]
    read_data_subset: Option<String>,
    #[command(flatten)]
    metrics: super::metrics::MetricsArgs,
}

#[derive(Subcommand)]
pub enum RepairCommand {
    /// Rebuild the chunk index from the pack trailers.
    Index,
}

#[derive(Serialize)]
struct InfoView {
    location: String,
    id: String,
    format_version: u16,
    /// `aes-256-gcm` or `none`.
    encryption: &'static str,
    created: String,
    chunker: ChunkerParams,
    compression_level: i32,
    pack_target_bytes: u32,
    packs: u64,
    pack_bytes: u64,
    snapshots: u64,
    index: String,
    /// Every lock, with why it blocks nobody where it does not (expired, dated in the future).
    locks: Vec<String>,
}

pub fn init(ctx: &Context, args: InitArgs) -> Result<i32> {
    let location = ctx.location()?;
    let avg = args.chunk_kib.saturating_mul(1024);
    let opts = InitOptions {
        chunker: ChunkerParams { min_bytes: avg / 4, avg_bytes: avg, max_bytes: avg.saturating_mul(4), seed: 0 },
        compression_level: args.compression,
        pack_target_bytes: args.pack_mib << 20,
        encryption: match args.encryption.as_str() {
            "none" => None,
            _ => Some(InitEncryption {
                master: match &args.from_key_export {
                    Some(f) => Some(cairn::crypto::import_paper_key(
                        &std::fs::read_to_string(f).map_err(|e| cairn::error::Error::io("cannot read", f, e))?,
                    )?),
                    None => None,
                },
                password: ctx.password("password for the new repository: ", true)?,
                kdf: args.kdf.params(),
            }),
        },
    };
    opts.chunker.validate()?;
    let config = ctx.connect().init(&location, &opts)?;
    // Create the index now so the layout is complete.
    drop(ctx.open(Access::Write)?);
    if ctx.json {
        json(&serde_json::json!({ "location": location.to_string(), "id": config.id.0.to_hex() }))?;
    } else {
        ctx.say(format!("created repository {} at {location}", &config.id.0.to_hex()[..8]));
    }
    Ok(exit::OK)
}

pub fn run(ctx: &Context, cmd: RepoCommand) -> Result<i32> {
    match cmd {
        RepoCommand::Check(args) => check(ctx, args),
        RepoCommand::Copy(args) => copy(ctx, args),
        RepoCommand::Info => info(ctx),
        RepoCommand::Unlock { all } => unlock(ctx, all),
        RepoCommand::Repair(RepairCommand::Index) => repair_index(ctx),
    }
}

fn info(ctx: &Context) -> Result<i32> {
    let repo = ctx.open(Access::Read)?;
    let c = repo.config();
    let packs = repo.list_packs()?;
    let view = InfoView {
        location: repo.location(),
        id: c.id.0.to_hex(),
        format_version: c.format_version,
        encryption: if repo.is_encrypted() { "aes-256-gcm" } else { "none" },
        created: cairn::time::format_ns(c.created_ns),
        chunker: c.chunker,
        compression_level: c.compression_level,
        pack_target_bytes: c.pack_target_bytes,
        packs: packs.len() as u64,
        pack_bytes: packs.iter().map(|(_, s)| s).sum(),
        snapshots: repo.snapshot_ids()?.len() as u64,
        index: repo.index().describe(),
        locks: repo.describe_locks()?,
    };
    if ctx.json {
        json(&view)?;
    } else {
        outln!("repository   {}", view.location)?;
        outln!("id           {}", view.id)?;
        outln!("format       version {}", view.format_version)?;
        outln!("encryption   {}", view.encryption)?;
        outln!("created      {}", view.created)?;
        outln!(
            "chunks       FastCDC min {} / avg {} / max {}",
            bytes(u64::from(c.chunker.min_bytes)),
            bytes(u64::from(c.chunker.avg_bytes)),
            bytes(u64::from(c.chunker.max_bytes))
        )?;
        outln!("compression  zstd level {}", view.compression_level)?;
        outln!(
            "packs        {} ({}), target {}",
            count(view.packs),
            bytes(view.pack_bytes),
            bytes(u64::from(view.pack_target_bytes))
        )?;
        outln!("snapshots    {}", count(view.snapshots))?;
        outln!("index        {}", view.index)?;
        for l in &view.locks {
            outln!("lock         {l}")?;
        }
    }
    Ok(exit::OK)
}

fn repair_index(ctx: &Context) -> Result<i32> {
    let report = ctx.connect().repair_index(&ctx.location()?)?;
    if ctx.json {
        json(&report)?;
    } else {
        ctx.say(format!("rebuilt the index from {}", plural(report.packs_added, "pack")));
    }
    Ok(exit::OK)
}

fn check(ctx: &Context, args: CheckArgs) -> Result<i32> {
    let read_data = match (&args.read_data_subset, args.read_data) {
        (Some(subset), _) => subset.parse::<ReadData>()?,
        (None, true) => ReadData::All,
        (None, false) => ReadData::None,
    };
    let audit = ctx.connect().audit(&ctx.location()?)?;
    let progress = ctx.progress();
    let started_ns = cairn::time::now_ns();
    let opts = CheckOptions { read_data };
    let report = ops::check(&audit, &opts, progress.as_ref())?;
    record_check(ctx, &audit.repo, &report, &opts, started_ns, &args.metrics);
    if ctx.json {
        json(&report)?;
    } else {
        for f in &report.findings {
            let prefix = if f.severity == Severity::Warning { "warning: " } else { "" };
            if f.affects.is_empty() {
                outln!("{prefix}{}: {}", f.object, f.problem)?;
            }
            for a in &f.affects {
                let what = match (a.path.is_empty(), a.bytes) {
                    (true, _) => format!("snapshot {} (lost)", &a.snapshot[..8]),
                    (false, Some((from, to))) => {
                        format!("snapshot {} ({}) {} bytes {from}..{to}", &a.snapshot[..8], a.time, a.path)
                    }
                    (false, None) => {
                        format!("snapshot {} ({}) {}", &a.snapshot[..8], a.time, a.path)
                    }
                };
                outln!("{prefix}{}: {} — affects {what}", f.object, f.problem)?;
            }
        }
        let s = &report.stats;
        let damage = report.findings.iter().filter(|f| f.severity == Severity::Damage).count();
        let warnings = report.findings.len() - damage;
        let read = if s.packs_read > 0 {
            format!(
                "; read {} in {}, verified {}",
                bytes(s.bytes_read),
                plural(s.packs_read, "pack"),
                plural(s.blobs_verified, "blob")
            )
        } else {
            String::new()
        };
        ctx.say(format!(
            "checked {}, {}, {} ({}), {}, {}{read} in {}",
            plural(s.snapshots, "snapshot"),
            plural(s.trees, "tree"),
            plural(s.files, "file"),
            plural(s.chunk_refs, "chunk reference"),
            plural(s.packs, "pack"),
            plural(s.index_entries, "index entry"),
            duration_ms(report.duration_ms)
        ));
        let n = |k: usize, one: &str, many: &str| count_of(k as u64, one, many);
        ctx.say(match (damage, warnings) {
            (0, 0) => "no problems found".to_string(),
            (0, w) => format!("no damage found ({})", n(w, "warning", "warnings")),
            (d, w) => format!("DAMAGE FOUND: {} ({})", n(d, "problem", "problems"), n(w, "warning", "warnings")),
        });
    }
    Ok(if report.damage_found() { exit::DAMAGE_FOUND } else { exit::OK })
}

/// Stores the check's run record (for `cairn status`) and writes its metrics. A record that
/// cannot be stored is a warning: the check's own verdict stands.
fn record_check(
    ctx: &Context,
    repo: &cairn::Repository,
    report: &ops::CheckReport,
    opts: &CheckOptions,
    started_ns: i64,
    metrics: &super::metrics::MetricsArgs,
) {
    let record = ops::check::check_record(report, opts, started_ns);
    if let Err(e) = repo.save_run(&record) {
        eprintln!("warning: the check's result was not recorded in the repository: {e}");
    }
    let run = ops::status::LastRun::of(&record, cairn::time::now_ns());
    metrics.write(&ops::status::check_samples(&super::metrics::repo_label(ctx), &run));
}

fn unlock(ctx: &Context, all: bool) -> Result<i32> {
    let repo = ctx.open(Access::Read)?;
    let removed = repo.unlock(all)?;
    if ctx.json {
        json(&removed)?;
    } else {
        for r in &removed {
            ctx.say(format!("removed {r}"));
        }
        ctx.say(format!("{} locks removed", removed.len()));
    }
    Ok(exit::OK)
}

fn copy(ctx: &Context, args: CopyArgs) -> Result<i32> {
    let mut connect = ctx.connect().clone();
    if let Some(source) = PasswordCache::for_source(args.from_password_file, args.from_password_command) {
        connect.keys = source.key_source_asking("source repository password: ");
    }
    let src = connect.open(&cairn::repo::RepoLocation::parse(&args.from), Access::Read)?;
    src.require_read("copy from this repository")?;
    let dst = ctx.open(Access::Write)?;
    let opts = ops::CopyOptions { allow_unencrypted_destination: args.allow_unencrypted_destination };
    let report = ops::copy_with(&src, &dst, &opts, ctx.progress().as_ref())?;
    if ctx.json {
        json(&report)?;
        return Ok(exit::OK);
    }
    for s in &report.snapshots {
        match s.source == s.destination {
            true => ctx.say(format!("snapshot {} copied", s.source.short())),
            false => ctx.say(format!("snapshot {} copied as {}", s.source.short(), s.destination.short())),
        }
    }
    ctx.say(format!(
        "copied {} ({} already there) and {} ({} already there): {}, {}{}",
        plural(report.snapshots_copied, "snapshot"),
        count(report.snapshots_present),
        plural(report.wal_copied, "WAL file"),
        count(report.wal_present),
        plural(report.blobs_copied, "blob"),
        bytes(report.bytes_copied),
        match report.mode {
            ops::CopyMode::Reencrypt => ", re-encrypted",
            ops::CopyMode::SameKey => ", sealed data copied as it is (same master key)",
            ops::CopyMode::Unencrypted => "",
        }
    ));
    Ok(exit::OK)
}
