//! `snapshot create`: walk paths, store what changed, write trees and the snapshot last.
//!
//! Files whose size, mtime, ctime and inode match the parent snapshot's entry are taken from
//! it without being opened. Others are chunked (FastCDC), hashed (BLAKE3) and handed to the
//! write session, which stores only chunks the repository lacks. Entries that vanish or cannot
//! be read are reported and left out; the snapshot is still written (exit code 3 in the CLI).
//!
//! The walk (`walk.rs`) names every entry relative to its directory's descriptor and never
//! follows a symlink; below [`walk::PARALLEL_DEPTH`] levels it continues iteratively
//! (`deep.rs`), so no directory depth can exhaust a thread's stack or `PATH_MAX`.

mod consistent;
mod deep;
mod dry;
mod exclude;
mod failure;
mod file;
mod files_from;
mod paged;
mod redis;
mod stream;
mod walk;

pub use consistent::{Check, Draft, Gate, DEFAULT_ATTEMPTS};
pub use dry::{dry_run, DryRunReport};
pub use exclude::{parse_size, read_pattern_file, TagFile, CACHEDIR_SIGNATURE, CACHEDIR_TAG};
pub use failure::failure_record;
pub use files_from::{read_path_list, PathList};
pub use redis::{RedisSource, DEFAULT_REDIS_TIMEOUT};
pub use stream::{backup_stream, StreamSource};

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::io::ReadStrategy;
use crate::ops::Skipped;
use crate::progress::Progress;
use crate::repo::{LockKind, Repository, SnapshotSpec, WriteSession};
use crate::snapshot::{Snapshot, Summary};
use walk::Archiver;

#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    pub tags: Vec<String>,
    /// Defaults to this machine's host name.
    pub host: Option<String>,
    /// Defaults to the newest snapshot with the same host and paths.
    pub parent: Option<SnapshotSpec>,
    /// Read every file even if it looks unchanged.
    pub force_read: bool,
    pub read_strategy: ReadStrategy,
    /// Record the path of every file whose data was read (for tests and audits).
    pub record_reads: bool,
    /// Entries left out of the snapshot.
    pub excludes: Excludes,
    /// Name every excluded entry in [`BackupReport::excluded_paths`] (they are always counted).
    pub list_excluded: bool,
    /// Files (by name, or by absolute path for patterns with a `/`) that are only ever
    /// appended to: when one grew since the parent, only its new part is read, after its last
    /// stored chunk is re-hashed to prove the old content is unchanged. See `docs/design.md`.
    pub append_only: Vec<String>,
    /// Files (patterns as for `append_only`) made of fixed-size pages rewritten in place, such
    /// as SQLite or redb databases: cut into aligned blocks of whole pages rather than by
    /// content. PostgreSQL relation files are recognised without a pattern (`paged.rs`).
    pub paged: Vec<String>,
    /// Record this time instead of now (importing old backups; tests).
    pub time_ns: Option<i64>,
    /// Take an online base backup of the PostgreSQL cluster at this connection string: the
    /// single path must be its data directory (see `docs/pitr.md`).
    pub postgres: Option<String>,
    /// Take a consistent snapshot of the Redis server's data directory (the single path): a
    /// fresh RDB, or exactly the files its AOF manifest names (see `docs/services.md`).
    pub redis: Option<RedisSource>,
    /// Run this command before and after reading; its output must not change (see
    /// `consistent.rs`).
    pub consistent_with: Option<Gate>,
    /// How many times to take a snapshot whose data moved while read; 0: [`DEFAULT_ATTEMPTS`].
    pub attempts: u32,
}

/// What a snapshot leaves out. Paths are absolute and symlink-resolved.
#[derive(Clone, Debug, Default)]
pub struct Excludes {
    /// Entries skipped entirely.
    pub paths: Vec<PathBuf>,
    /// Directories kept, but empty.
    pub contents_of: Vec<PathBuf>,
    /// Names skipped wherever they appear, by prefix.
    pub name_prefixes: Vec<String>,
    /// `--exclude` patterns (rules in `exclude.rs` and `docs/cli.md`).
    pub patterns: Vec<String>,
    /// `--iexclude` patterns: the same, ignoring case.
    pub ignore_case_patterns: Vec<String>,
    /// Directories holding one of these files keep only that file (`--exclude-if-present`).
    pub if_present: Vec<TagFile>,
    /// Directories tagged per the Cache Directory Tagging spec keep only `CACHEDIR.TAG`.
    pub caches: bool,
    /// Regular files larger than this many bytes are left out.
    pub larger_than: Option<u64>,
    /// Directories on another device than their backed-up path are kept empty.
    pub one_file_system: bool,
}

impl Excludes {
    pub(crate) fn skips(&self, path: &Path, name: &[u8]) -> bool {
        self.paths.iter().any(|p| p == path)
            || self.name_prefixes.iter().any(|p| name.starts_with(p.as_bytes()))
            || path.parent().is_some_and(|parent| self.contents_of.iter().any(|d| d == parent))
    }
}

/// Files added to a directory of the snapshot once everything in it has been read, such as
/// PostgreSQL's `backup_label`, which exists only after `pg_backup_stop`.
pub struct LateFiles<'a> {
    /// The directory (absolute, symlink-resolved) the files go into.
    pub dir: PathBuf,
    /// Produces (name, content) pairs; called once, after the directory's entries are read.
    pub produce: &'a (dyn Fn() -> Result<Vec<(String, Vec<u8>)>> + Sync),
}

#[derive(Clone, Debug, Serialize)]
pub struct BackupReport {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    pub skipped: Vec<Skipped>,
    /// Files whose size or mtime differed after reading from before (stored as read), sorted.
    pub changed_while_reading: Vec<String>,
    /// Entries listed in their directory but gone when cairn came to read them, sorted. Not a
    /// failure: the snapshot holds the directory as it was after they went.
    pub vanished: Vec<String>,
    /// With `record_reads`: every file whose data was read.
    pub read_paths: Vec<String>,
    /// Files read only from their last chunk on, as append-only files that grew.
    pub appended_files: u64,
    /// Files read and cut into aligned blocks of pages (PostgreSQL relation files, `paged`).
    pub paged_files: u64,
    /// FIFOs, sockets and device nodes stored (not counted in the snapshot's summary, whose
    /// record predates them).
    pub special_files: u64,
    /// Entries whose xattrs, hard links or holes were not stored because the repository has
    /// format version 1 (its trees cannot hold them); see `docs/format.md`.
    pub metadata_not_stored: u64,
    /// Entries the walk saw and left out by the exclusion rules (not counting what an
    /// excluded directory holds, which is never listed).
    pub excluded: u64,
    /// With `list_excluded`: each of them, sorted, with the rule that left it out.
    pub excluded_paths: Vec<Skipped>,
    /// What a service adapter wants the operator to know (a torn AOF tail).
    pub warnings: Vec<String>,
    /// The attempt that was consistent (1 unless the data moved while read; see `consistent.rs`).
    pub attempts: u32,
    /// Why each earlier attempt was discarded, in order.
    pub discarded: Vec<String>,
}

pub fn backup(repo: &Repository, opts: &BackupOptions, progress: &dyn Progress) -> Result<BackupReport> {
    if opts.postgres.is_some() && opts.redis.is_some() {
        return Err(Error::InvalidArgument("--postgres and --redis cannot be combined".into()));
    }
    consistent::with_attempts(opts, |_, last, checks| match (&opts.postgres, &opts.redis) {
        (Some(conninfo), _) => postgres_base_backup(repo, opts, conninfo, checks, progress),
        (None, Some(source)) => redis::snapshot(repo, opts, source, checks, last, progress),
        (None, None) => backup_checked(repo, opts, None, checks, progress),
    })
}

/// A snapshot of a running PostgreSQL data directory between `pg_backup_start` and
/// `pg_backup_stop`, leaving out what PostgreSQL documents as excludable and adding the
/// `backup_label` (and `tablespace_map`) that `pg_backup_stop` returns.
fn postgres_base_backup(
    repo: &Repository,
    opts: &BackupOptions,
    conninfo: &str,
    checks: &[Check<'_>],
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let [pgdata] = canonical_paths(&opts.paths)?.try_into().map_err(|_| {
        Error::InvalidArgument("--postgres takes exactly one path: the cluster's data directory".into())
    })?;
    if !crate::pg::is_data_directory(&pgdata) {
        return Err(Error::InvalidArgument(format!("{} is not a PostgreSQL data directory", pgdata.display())));
    }
    let label = format!("cairn {}", crate::time::format_ns(crate::time::now_ns()));
    let mut session = crate::pg::BaseBackup::start(conninfo, &label)?;
    let served = session.data_directory()?;
    if std::fs::canonicalize(&served).ok().as_deref() != Some(pgdata.as_path()) {
        return Err(Error::InvalidArgument(format!(
            "the PostgreSQL server at {conninfo:?} serves {served}, not {}",
            pgdata.display()
        )));
    }
    let mut opts = opts.clone();
    opts.excludes.contents_of.extend(crate::pg::EXCLUDED_CONTENTS.iter().map(|d| pgdata.join(d)));
    opts.excludes.paths.extend(crate::pg::EXCLUDED_FILES.iter().map(|f| pgdata.join(f)));
    opts.excludes.name_prefixes.extend(crate::pg::EXCLUDED_NAME_PREFIXES.iter().map(|p| p.to_string()));
    let session = Mutex::new(Some(session));
    let produce = || -> Result<Vec<(String, Vec<u8>)>> {
        let backup = session.lock().unwrap_or_else(|p| p.into_inner()).take();
        let label = backup.ok_or_else(|| Error::Internal("base backup already stopped".into()))?.stop()?;
        let mut files = vec![("backup_label".to_string(), label.label)];
        files.extend(label.tablespace_map.map(|m| ("tablespace_map".to_string(), m)));
        Ok(files)
    };
    let late = LateFiles { dir: pgdata, produce: &produce };
    backup_checked(repo, &opts, Some(&late), checks, progress)
}

/// [`backup`] with files added late to one directory (see [`LateFiles`]).
pub fn backup_with(
    repo: &Repository,
    opts: &BackupOptions,
    late: Option<&LateFiles<'_>>,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    backup_checked(repo, opts, late, &[], progress)
}

/// [`backup_with`], running `checks` once every file is stored and before the snapshot record
/// is written: a failing check leaves no snapshot.
pub fn backup_checked(
    repo: &Repository,
    opts: &BackupOptions,
    late: Option<&LateFiles<'_>>,
    checks: &[Check<'_>],
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let _lock = repo.lock(LockKind::Shared, "snapshot create")?;
    let started = Instant::now();
    let time_ns = opts.time_ns.unwrap_or_else(crate::time::now_ns);
    let paths = canonical_paths(&opts.paths)?;
    let path_bytes: Vec<Vec<u8>> = paths.iter().map(|p| p.as_os_str().as_bytes().to_vec()).collect();
    let host = opts.host.clone().unwrap_or_else(crate::fs::hostname);
    let parent = match &opts.parent {
        Some(spec) => Some(repo.resolve_snapshot(spec)?),
        None => repo.find_parent(&host, &path_bytes)?,
    };
    let parent_root = match &parent {
        // A write-only host's cache may have lost the tree: it reads everything instead.
        Some((_, snap)) if !opts.force_read && repo.is_write_only() => repo.load_tree(&snap.root).ok(),
        Some((_, snap)) if !opts.force_read => Some(repo.load_tree(&snap.root)?),
        _ => None,
    };
    progress.phase("snapshot", None);
    let session = WriteSession::new(repo);
    let append = match opts.append_only.is_empty() {
        true => None,
        false => Some(crate::ops::select::Includes::for_origin(&opts.append_only, b"/", "--append-only")?),
    };
    let paged = paged::PagedFiles::new(&opts.paged, &repo.config().chunker)?;
    let filter = exclude::Filter::new(&opts.excludes, &paths)?;
    let archiver = Archiver {
        filter,
        repo,
        session: &session,
        opts,
        late,
        append,
        paged,
        progress,
        counters: Counters::default(),
        log: Log::default(),
        owners: crate::fs::OwnerNames::load(),
        full_metadata: repo.config().stores_full_metadata(),
    };
    let root = crate::fs::io_pool()?.install(|| archiver.synthetic_root(&paths, parent_root.as_ref()))?;
    session.flush()?;
    let mut warnings = Vec::new();
    for check in checks {
        warnings.extend(check(&Draft { repo, root })?);
    }
    let stats = session.stats();
    let c = &archiver.counters;
    let archiver_appended = c.appended.load(Ordering::Relaxed);
    let special_files = c.specials.load(Ordering::Relaxed);
    let metadata_not_stored = c.metadata_dropped.load(Ordering::Relaxed);
    let excluded = c.excluded.load(Ordering::Relaxed);
    let log = archiver.log.into_inner();
    let summary = Summary {
        files: c.files.load(Ordering::Relaxed),
        dirs: c.dirs.load(Ordering::Relaxed),
        symlinks: c.symlinks.load(Ordering::Relaxed),
        bytes: c.bytes.load(Ordering::Relaxed),
        files_read: c.files_read.load(Ordering::Relaxed),
        bytes_read: c.bytes_read.load(Ordering::Relaxed),
        bytes_added: stats.bytes_added,
        bytes_stored: stats.bytes_stored,
        chunks_added: stats.chunks_added,
        packs_written: stats.packs_written,
        skipped: log.skipped.len() as u64,
        duration_ms: started.elapsed().as_millis() as u64,
    };
    let snapshot = Snapshot {
        time_ns,
        host,
        paths: path_bytes,
        tags: opts.tags.clone(),
        root,
        parent: parent.map(|(id, _)| id),
        summary,
        tool: format!("cairn {}", env!("CARGO_PKG_VERSION")),
    };
    let id = repo.save_snapshot(&snapshot)?;
    repo.remember_own_snapshot(&id, &snapshot);
    progress.finish();
    let mut read_paths = log.read_paths;
    read_paths.sort();
    let mut excluded_paths = log.excluded;
    excluded_paths.sort_by(|a, b| a.path.cmp(&b.path));
    let (mut changed, mut vanished) = (log.changed, log.vanished);
    changed.sort();
    vanished.sort();
    Ok(BackupReport {
        id,
        snapshot,
        skipped: log.skipped,
        changed_while_reading: changed,
        vanished,
        read_paths,
        appended_files: archiver_appended,
        paged_files: c.paged.load(Ordering::Relaxed),
        special_files,
        metadata_not_stored,
        excluded,
        excluded_paths,
        warnings,
        attempts: 1,
        discarded: Vec::new(),
    })
}

impl BackupReport {
    /// The report of a snapshot that read no tree (a stream): nothing skipped or excluded.
    pub(crate) fn of(id: SnapshotId, snapshot: Snapshot) -> Self {
        BackupReport {
            id,
            snapshot,
            skipped: Vec::new(),
            changed_while_reading: Vec::new(),
            vanished: Vec::new(),
            warnings: Vec::new(),
            attempts: 1,
            discarded: Vec::new(),
            read_paths: Vec::new(),
            appended_files: 0,
            paged_files: 0,
            special_files: 0,
            metadata_not_stored: 0,
            excluded: 0,
            excluded_paths: Vec::new(),
        }
    }
}

/// Absolute, symlink-resolved, deduplicated paths; paths inside another given path are dropped.
fn canonical_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Err(Error::InvalidArgument("no path given to back up".into()));
    }
    let mut out: Vec<PathBuf> = paths
        .iter()
        .map(|p| {
            std::fs::canonicalize(p).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Error::InvalidArgument(format!("path {} does not exist", p.display())),
                _ => Error::io("cannot access", p, e),
            })
        })
        .collect::<Result<_>>()?;
    out.sort();
    out.dedup();
    let all = out.clone();
    out.retain(|p| !all.iter().any(|q| q != p && p.starts_with(q)));
    Ok(out)
}

#[derive(Default)]
struct Counters {
    files: AtomicU64,
    dirs: AtomicU64,
    symlinks: AtomicU64,
    bytes: AtomicU64,
    files_read: AtomicU64,
    bytes_read: AtomicU64,
    /// Files read only from their last chunk on (append-only and grown).
    appended: AtomicU64,
    /// Files read with aligned cuts.
    paged: AtomicU64,
    specials: AtomicU64,
    /// See [`BackupReport::metadata_not_stored`].
    metadata_dropped: AtomicU64,
    /// See [`BackupReport::excluded`].
    excluded: AtomicU64,
}

#[derive(Default)]
struct Log(Mutex<LogInner>);

#[derive(Default)]
struct LogInner {
    skipped: Vec<Skipped>,
    vanished: Vec<String>,
    changed: Vec<String>,
    read_paths: Vec<String>,
    excluded: Vec<Skipped>,
}

impl Log {
    fn with(&self, f: impl FnOnce(&mut LogInner)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }
    pub(crate) fn skip(&self, path: &Path, reason: impl std::fmt::Display) {
        self.with(|l| l.skipped.push(Skipped { path: path.display().to_string(), reason: reason.to_string() }));
    }
    /// An entry that could not be listed, opened or read: one that no longer exists vanished
    /// between the listing and the read (a service's temp file, a deleted segment), which is
    /// what a snapshot of a live directory must expect, so it is counted, not skipped.
    pub(crate) fn unreadable(&self, path: &Path, e: &io::Error) {
        match e.kind() {
            io::ErrorKind::NotFound => self.with(|l| l.vanished.push(path.display().to_string())),
            _ => self.skip(path, e),
        }
    }
    fn into_inner(self) -> LogInner {
        self.0.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}
