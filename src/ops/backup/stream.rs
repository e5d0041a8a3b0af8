//! Snapshots of a stream (`snapshot create --stdin`, `--stdin-from-command`): a dump piped in
//! (`pg_dump`, `redis-cli --rdb -`, `mysqldump`) stored as one file, `/NAME`, chunked as it
//! arrives, so a dump never needs a temporary file. Its parent is the newest snapshot of the
//! same host and name, so a dump that changed little costs about what changed.

use std::io::Read;
use std::time::Instant;

use super::{BackupOptions, BackupReport};
use crate::error::{Error, Result};
use crate::pack::BlobKind;
use crate::progress::Progress;
use crate::repo::{FileFailure, LockKind, Repository, WriteSession};
use crate::snapshot::{Node, Snapshot, Summary, Tree};

/// A stream to store as the file `name` (one path component).
pub struct StreamSource<'a> {
    pub name: &'a str,
    pub reader: &'a mut dyn Read,
    /// Called once the stream has ended, before the snapshot is written: its error (the dump
    /// command failed) means no snapshot. The chunks already stored stay unreferenced until
    /// `prune`, like those of any interrupted snapshot.
    pub finished: &'a mut dyn FnMut() -> Result<()>,
}

/// Stores `source` as a snapshot holding the one file `/NAME`; `opts` gives tags, host,
/// parent and time (its paths must be empty).
pub fn backup_stream(
    repo: &Repository,
    opts: &BackupOptions,
    source: StreamSource<'_>,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    check_name(source.name)?;
    if !opts.paths.is_empty() {
        return Err(Error::InvalidArgument("a snapshot of standard input takes no PATH".into()));
    }
    let _lock = repo.lock(LockKind::Shared, "snapshot create")?;
    let started = Instant::now();
    let time_ns = opts.time_ns.unwrap_or_else(crate::time::now_ns);
    let host = opts.host.clone().unwrap_or_else(crate::fs::hostname);
    let paths = vec![format!("/{}", source.name).into_bytes()];
    let parent = match &opts.parent {
        Some(spec) => Some(repo.resolve_snapshot(spec)?.0),
        None => repo.find_parent(&host, &paths)?.map(|(id, _)| id),
    };
    progress.phase("snapshot", None);
    let session = WriteSession::new(repo);
    let (chunks, size) = session.store_stream(source.reader, &|n| progress.add_bytes(n)).map_err(|e| match e {
        FileFailure::Source(e) => Error::Io { context: "cannot read the stream to store".into(), source: e },
        FileFailure::Repo(e) => e,
    })?;
    (source.finished)()?;
    let root = store_root(repo, &session, source.name, session.finish_list(chunks)?, size, time_ns)?;
    session.flush()?;
    let stats = session.stats();
    let summary = Summary {
        files: 1,
        bytes: size,
        files_read: 1,
        bytes_read: size,
        bytes_added: stats.bytes_added,
        bytes_stored: stats.bytes_stored,
        chunks_added: stats.chunks_added,
        packs_written: stats.packs_written,
        duration_ms: started.elapsed().as_millis() as u64,
        ..Summary::default()
    };
    let tool = format!("cairn {}", env!("CARGO_PKG_VERSION"));
    let snapshot = Snapshot { time_ns, host, paths, tags: opts.tags.clone(), root, parent, summary, tool };
    let id = repo.save_snapshot(&snapshot)?;
    repo.remember_own_snapshot(&id, &snapshot);
    progress.finish();
    Ok(BackupReport::of(id, snapshot))
}

/// The root tree: the one file, owned by this process's user, mode 0600, dated now.
fn store_root(
    repo: &Repository,
    session: &WriteSession<'_>,
    name: &str,
    content: crate::snapshot::NodeContent,
    size: u64,
    time_ns: i64,
) -> Result<crate::id::ChunkId> {
    let owners = crate::fs::OwnerNames::load();
    let (uid, gid) = (rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw());
    let mut node = Node::new(name.as_bytes().to_vec(), content);
    node.mode = 0o600;
    (node.uid, node.gid) = (uid, gid);
    (node.user, node.group) = (owners.user(uid), owners.group(gid));
    (node.mtime_ns, node.ctime_ns) = (time_ns, time_ns);
    node.size = size;
    let mut tree = Tree { nodes: vec![node] };
    let bytes = match repo.config().stores_full_metadata() {
        true => tree.encode()?,
        false => tree.encode_as(1)?,
    };
    session.store(BlobKind::Tree, &bytes)
}

/// A stream's name is one path component: it becomes `/NAME` in the snapshot and a file of
/// that name when restored.
fn check_name(name: &str) -> Result<()> {
    match name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        true => Err(Error::InvalidArgument(format!(
            "--stdin-filename {name:?} must be a file name (no '/', not empty, '.' or '..')"
        ))),
        false => Ok(()),
    }
}
