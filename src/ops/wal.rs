//! WAL archiving: `wal push` (PostgreSQL's `archive_command`), `wal fetch`
//! (`restore_command`) and `wal list`.
//!
//! A push stores the file's chunks like any snapshot data, flushes them (durable), and only
//! then writes the catalog record with put-if-absent, so a record never references missing
//! data and a name is archived exactly once. Pushing an identical file again stores nothing;
//! a different file under an archived name is refused and changes nothing.

use std::path::Path;

use serde::Serialize;

use crate::backend::{PutMode, PutOutcome};
use crate::error::{Error, Result};
use crate::io::ReadStrategy;
use crate::repo::{hash_file, FileFailure, FileList, LockKind, PushedWal, Repository, SessionStats, WriteSession};
use crate::snapshot::WalRecord;

/// The stream WAL goes to when none is named.
pub const DEFAULT_STREAM: &str = "default";

#[derive(Clone, Debug, Serialize)]
pub struct PushReport {
    pub stream: String,
    pub name: String,
    pub size: u64,
    pub archived_at: String,
    /// The same, in nanoseconds since the epoch (for metrics).
    #[serde(skip)]
    pub archived_ns: i64,
    /// The same file was archived before; nothing was stored.
    pub already_archived: bool,
    pub added: SessionStats,
}

/// Archives the file at `path` into `stream`. Returns only once file and record are durable.
pub fn push(repo: &Repository, path: &Path, stream: &str) -> Result<PushReport> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::InvalidArgument(format!("{} names no file", path.display())))?;
    crate::repo::check_wal_names(stream, &name)?;
    let report = |r: &WalRecord, already, added| PushReport {
        stream: r.stream.clone(),
        name: r.name.clone(),
        size: r.size,
        archived_at: crate::time::format_ns(r.archived_ns),
        archived_ns: r.archived_ns,
        already_archived: already,
        added,
    };
    let _lock = repo.lock(LockKind::Shared, "wal push")?;
    let key = repo.wal_object_key(stream, &name);
    if repo.is_write_only() {
        if repo.backend().size(&key)?.is_some() {
            return pushed_before(repo, &key, path, stream, &name);
        }
    } else if let Some(existing) = repo.find_wal(stream, &name)? {
        same_or_conflict(repo, &existing, path)?;
        return Ok(report(&existing, true, SessionStats::default()));
    }
    let session = WriteSession::new(repo);
    let stored = session.store_file(path, ReadStrategy::Copy, FileList::flat(), &|_| {}).map_err(|e| match e {
        FileFailure::Source(e) => Error::io("cannot read", path, e),
        FileFailure::Repo(e) => e,
    })?;
    session.flush()?;
    let record = WalRecord {
        stream: stream.to_string(),
        name: name.clone(),
        size: stored.bytes,
        chunks: stored.chunks.into_flat(),
        archived_ns: crate::time::now_ns(),
        mtime_ns: stored.meta.mtime_ns,
        host: crate::fs::hostname(),
    };
    let pushed =
        PushedWal { digest: repo.wal_digest(&record.chunks), archived_ns: record.archived_ns, size: record.size };
    // Before the record: a crash after it still leaves this host able to recognise a retry.
    repo.remember_own_wal(&key, &pushed);
    match repo.backend().put(&key, &repo.encode_wal(&key, &record)?, PutMode::IfAbsent)? {
        PutOutcome::Written => Ok(report(&record, false, session.stats())),
        PutOutcome::AlreadyExists if repo.is_write_only() => {
            // Another push won the race; what it stored cannot be compared.
            repo.forget_own_wal(&key);
            Err(archived_unreadable(stream, &name))
        }
        PutOutcome::AlreadyExists => {
            // Another push of the same name won the race.
            let existing =
                repo.find_wal(stream, &name)?.ok_or_else(|| Error::not_found(format!("WAL record {stream}/{name}")))?;
            same_or_conflict(repo, &existing, path)?;
            Ok(report(&existing, true, session.stats()))
        }
    }
}

/// A write-only key cannot open the record already archived under a name. A repeated push
/// of the file this host remembers pushing (same keyed digest of its chunk list) is "already
/// archived"; anything else is refused, since it cannot tell a different file (a conflict)
/// from the same one (docs/security.md, "Write-only hosts").
fn pushed_before(repo: &Repository, key: &str, path: &Path, stream: &str, name: &str) -> Result<PushReport> {
    let (_, chunks) = hash_file(repo, path).map_err(|e| Error::io("cannot read", path, e))?;
    match repo.own_pushed_wal(key) {
        Some(p) if p.digest == repo.wal_digest(&chunks) => Ok(PushReport {
            stream: stream.to_string(),
            name: name.to_string(),
            size: p.size,
            archived_at: crate::time::format_ns(p.archived_ns),
            archived_ns: p.archived_ns,
            already_archived: true,
            added: SessionStats::default(),
        }),
        _ => Err(archived_unreadable(stream, name)),
    }
}

fn archived_unreadable(stream: &str, name: &str) -> Error {
    Error::WriteOnly {
        action: format!(
            "compare WAL file {stream}/{name} with the copy already archived under that name; \
             check that copy with a full key (`cairn wal fetch`)"
        ),
    }
}

fn same_or_conflict(repo: &Repository, existing: &WalRecord, path: &Path) -> Result<()> {
    let (_, chunks) = hash_file(repo, path).map_err(|e| Error::io("cannot read", path, e))?;
    if chunks == existing.chunks {
        Ok(())
    } else {
        Err(Error::Conflict(format!(
            "WAL file {}/{} was already archived at {} with different content; refusing to replace it",
            existing.stream,
            existing.name,
            crate::time::format_ns(existing.archived_ns)
        )))
    }
}

/// Writes the archived file `stream`/`name` to `dest`, every chunk verified; the file appears
/// complete or not at all. `None` when it was never archived.
pub fn fetch(repo: &Repository, stream: &str, name: &str, dest: &Path) -> Result<Option<WalRecord>> {
    repo.require_read("fetch WAL files")?;
    let Some(record) = repo.find_wal(stream, name)? else {
        return Ok(None);
    };
    repo.write_wal_file(&record, dest)?;
    Ok(Some(record))
}

/// One line of `wal list`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct WalEntry {
    pub stream: String,
    pub name: String,
    pub size: u64,
    pub archived_at: String,
    #[serde(skip)]
    pub archived_ns: i64,
}

impl From<&WalRecord> for WalEntry {
    fn from(r: &WalRecord) -> Self {
        WalEntry {
            stream: r.stream.clone(),
            name: r.name.clone(),
            size: r.size,
            archived_at: crate::time::format_ns(r.archived_ns),
            archived_ns: r.archived_ns,
        }
    }
}

/// Archived files of `stream` (or every stream) within `[since, until]`, oldest first.
pub fn list(
    repo: &Repository,
    stream: Option<&str>,
    since_ns: Option<i64>,
    until_ns: Option<i64>,
) -> Result<Vec<WalEntry>> {
    repo.require_read("list WAL files (their records are sealed)")?;
    let mut entries = Vec::new();
    repo.for_each_wal(stream, &mut |r| {
        if since_ns.is_none_or(|s| r.archived_ns >= s) && until_ns.is_none_or(|u| r.archived_ns <= u) {
            entries.push(WalEntry::from(&r));
        }
        Ok(())
    })?;
    entries.sort_by(|a, b| (a.archived_ns, &a.name).cmp(&(b.archived_ns, &b.name)));
    Ok(entries)
}
