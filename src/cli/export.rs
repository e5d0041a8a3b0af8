//! `cairn snapshot export|import`: one snapshot as one self-verifying file, and back.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use cairn::error::{exit, Result};
use cairn::ops;
use cairn::repo::export::{open_export, OpenedExport};
use cairn::repo::{Access, InitEncryption, KeySource, SnapshotSpec};
use cairn::time::format_ns;

use super::password::PasswordCache;
use super::render::{bytes, count_of, json};
use super::repo::KdfArgs;
use super::select::SelectArgs;
use super::Context;

#[derive(Args)]
pub struct ExportArgs {
    /// Snapshot id, unique id prefix, or `latest`.
    snapshot: String,
    /// The export file to write (must not exist).
    file: PathBuf,
    /// Encrypt the export with a new key under the password in the first line of FILE
    /// instead of the repository's key (every chunk is re-encrypted): to hand the backup to
    /// someone who must not get this repository's password. Also encrypts the export of an
    /// unencrypted repository.
    #[arg(long, value_name = "FILE")]
    to_password_file: Option<PathBuf>,
    #[command(flatten)]
    kdf: KdfArgs,
    #[command(flatten)]
    select: SelectArgs,
}

#[derive(Args)]
pub struct ImportArgs {
    /// The export file to read.
    file: PathBuf,
    /// Verify the whole file and list its files and sizes; add nothing (needs no repository).
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Read the export's password from this file (env CAIRN_FROM_PASSWORD_FILE). Without any
    /// export password option (or CAIRN_FROM_PASSWORD), the repository's password is used.
    #[arg(long, value_name = "FILE")]
    from_password_file: Option<PathBuf>,
    /// Run this shell command and read the export's password from its output (env
    /// CAIRN_FROM_PASSWORD_COMMAND).
    #[arg(long, value_name = "COMMAND")]
    from_password_command: Option<String>,
    /// Allow importing an encrypted export into an unencrypted repository (its files are
    /// then stored in the clear). Refused without it.
    #[arg(long)]
    allow_unencrypted_destination: bool,
}

pub fn export(ctx: &Context, args: ExportArgs) -> Result<i32> {
    let repo = ctx.open_reading(Access::Read, "export snapshots")?;
    let (id, snap) = repo.resolve_snapshot_matching(&args.snapshot.parse::<SnapshotSpec>()?, &args.select.filter())?;
    let fresh_key = match &args.to_password_file {
        None => None,
        Some(file) => Some(InitEncryption {
            password: PasswordCache::new(Some(file.clone()), None).get("export password: ", true)?,
            kdf: args.kdf.params(),
            master: None,
        }),
    };
    let opts = ops::ExportOptions { fresh_key };
    let report = ops::export(&repo, id, &snap, &args.file, &opts, ctx.progress().as_ref())?;
    if ctx.json {
        json(&report)?;
        return Ok(exit::OK);
    }
    ctx.say(format!(
        "exported snapshot {} ({}, host {}) to {}: {}, {} of files, {} written{}",
        id.short(),
        format_ns(snap.time_ns),
        snap.host,
        args.file.display(),
        count_of(report.files, "file", "files"),
        bytes(report.file_bytes),
        bytes(report.bytes),
        match (report.encrypted, args.to_password_file.is_some()) {
            (true, true) => ", encrypted with a new key (the password of --to-password-file)",
            (true, false) => ", encrypted with this repository's key (same password)",
            (false, _) => ", not encrypted",
        }
    ));
    Ok(exit::OK)
}

/// The password an export opens with: the `--from-password-*` sources if given, else the
/// repository's.
pub fn export_keys(ctx: &Context, file: Option<PathBuf>, command: Option<String>) -> KeySource {
    match PasswordCache::for_source(file, command) {
        Some(source) => source.key_source_asking("export password: "),
        None => ctx.password.key_source_asking("export password: "),
    }
}

/// One file of an export, as `--dry-run --json` lists it.
#[derive(Serialize)]
struct ListedFile {
    path: String,
    size: u64,
    blake3: String,
}

#[derive(Serialize)]
struct DryRun {
    format: String,
    encrypted: bool,
    created: String,
    snapshot: String,
    time: String,
    host: String,
    paths: Vec<String>,
    export_bytes: u64,
    files: Vec<ListedFile>,
}

pub fn import(ctx: &Context, args: ImportArgs) -> Result<i32> {
    let keys = export_keys(ctx, args.from_password_file, args.from_password_command);
    let export = open_export(&args.file, &keys)?;
    if args.dry_run {
        return dry_run(ctx, &export);
    }
    let dst = ctx.open(Access::Write)?;
    let opts = ops::CopyOptions { allow_unencrypted_destination: args.allow_unencrypted_destination };
    let report = ops::import(&export, &dst, &opts, ctx.progress().as_ref())?;
    if ctx.json {
        json(&report)?;
        return Ok(exit::OK);
    }
    let line = match report.snapshots.first() {
        None => format!("snapshot {} is already in the repository; nothing added", export.snapshot_id.short()),
        Some(s) if s.source == s.destination => {
            format!("imported snapshot {} ({})", s.destination.short(), bytes(report.bytes_copied))
        }
        Some(s) => format!(
            "imported snapshot {} as {} (re-encrypted with this repository's key, {})",
            s.source.short(),
            s.destination.short(),
            bytes(report.bytes_copied)
        ),
    };
    ctx.say(line);
    Ok(exit::OK)
}

fn dry_run(ctx: &Context, e: &OpenedExport) -> Result<i32> {
    let c = &e.contents;
    let files: Vec<ListedFile> = c
        .files
        .iter()
        .map(|f| ListedFile {
            path: String::from_utf8_lossy(&f.path).into_owned(),
            size: f.size,
            blake3: f.blake3.iter().map(|b| format!("{b:02x}")).collect(),
        })
        .collect();
    if ctx.json {
        json(&DryRun {
            format: format!("{}.{}", e.header.major, e.header.minor),
            encrypted: e.header.encrypted,
            created: format_ns(e.header.created_ns),
            snapshot: e.snapshot_id.to_hex(),
            time: format_ns(c.snapshot_time_ns),
            host: c.host.clone(),
            paths: c.paths.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect(),
            export_bytes: e.bytes,
            files,
        })?;
        return Ok(exit::OK);
    }
    if !ctx.quiet {
        for f in &files {
            outln!("{:>12}  {}", f.size, f.path)?;
        }
    }
    ctx.say(format!(
        "export verified: snapshot {} ({}, host {}), {}, {}; nothing was added (--dry-run)",
        e.snapshot_id.short(),
        format_ns(c.snapshot_time_ns),
        c.host,
        count_of(files.len() as u64, "file", "files"),
        bytes(files.iter().map(|f| f.size).sum())
    ));
    Ok(exit::OK)
}
