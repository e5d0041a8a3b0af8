//! A write-only host's own last snapshots, kept on its own disk (`docs/security.md`,
//! "Write-only hosts"). The host cannot open what it sealed into the repository, so for
//! change detection it keeps in its local cache what it wrote there:
//!
//! ```text
//! <cache>/<repository id>/write-only/          mode 0700
//!   last/<64 hex>   snapshot id (32 bytes) ‖ the snapshot record (§8), plaintext;
//!                   the name is the keyed id of the snapshot's host and paths
//!   blobs/<64 hex>  each tree and chunk-list piece of those snapshots, plaintext
//!   wal/<64 hex>    a WAL file this host pushed: keyed digest of its chunk list (32),
//!                   archived-at ns (i64), size (u64); the name is BLAKE3 of its object key
//! ```
//!
//! Invariants: everything read back is checked (a blob against its keyed id, a record by
//! decoding); a missing or damaged entry costs reading files again, never a wrong snapshot.
//! After each snapshot the blobs no `last/` snapshot references are deleted (unless younger
//! than [`SWEEP_MIN_AGE`], which keeps a concurrent run's), so the cache holds about one
//! snapshot's metadata per host and paths. The cache holds names of the host's own files in
//! the clear: what the host could read anyway, as of its last backup.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::crypto::Sealer;
use crate::error::{Error, Result};
use crate::id::{ChunkId, SnapshotId};
use crate::snapshot::{NodeContent, Snapshot, Tree};

/// Unreferenced blobs younger than this are kept: another run may be writing them.
const SWEEP_MIN_AGE: Duration = Duration::from_secs(3600);
/// How long a pushed WAL file is remembered: a repeated push (PostgreSQL retrying after a
/// crash) comes within minutes.
const WAL_MEMORY: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a write-only host remembers of a WAL file it pushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PushedWal {
    /// Keyed digest of the file's chunk list.
    pub digest: [u8; 32],
    pub archived_ns: i64,
    pub size: u64,
}

/// The local cache of one repository's write-only host.
#[derive(Debug)]
pub(crate) struct OwnCache {
    dir: PathBuf,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl OwnCache {
    pub(crate) fn new(dir: PathBuf) -> Self {
        OwnCache { dir }
    }

    fn blob_path(&self, id: &ChunkId) -> PathBuf {
        self.dir.join("blobs").join(id.to_hex())
    }

    /// The name of the `last/` entry of snapshots of `host` and `paths`: keyed, like every
    /// other name cairn derives from plaintext.
    fn last_path(&self, sealer: &Sealer, host: &str, paths: &[Vec<u8>]) -> PathBuf {
        let mut key = b"cairn own last snapshot\0".to_vec();
        key.extend_from_slice(host.as_bytes());
        for p in paths {
            key.push(0);
            key.extend_from_slice(p);
        }
        self.dir.join("last").join(hex(&sealer.chunk_id(&key)))
    }

    /// Keeps a tree or chunk-list blob (already present: nothing to do).
    pub(crate) fn put_blob(&self, id: &ChunkId, bytes: &[u8]) -> Result<()> {
        let path = self.blob_path(id);
        if path.exists() {
            return Ok(());
        }
        write_replacing(&path, bytes)
    }

    /// A blob kept earlier, checked against its id.
    pub(crate) fn get_blob(&self, id: &ChunkId, sealer: &Sealer) -> Result<Vec<u8>> {
        let path = self.blob_path(id);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::not_found(format!("tree {id} in the write-only cache {}", self.dir.display())))
            }
            Err(e) => return Err(Error::io("cannot read", &path, e)),
        };
        if sealer.id_of(&bytes) != *id {
            return Err(Error::corrupt(format!("cached tree {id}"), "content does not match its id"));
        }
        Ok(bytes)
    }

    /// The last snapshot of `host` and `paths` this host wrote, if the cache still has it.
    pub(crate) fn last(&self, sealer: &Sealer, host: &str, paths: &[Vec<u8>]) -> Option<(SnapshotId, Snapshot)> {
        let bytes = fs::read(self.last_path(sealer, host, paths)).ok()?;
        let (id, record) = bytes.split_at_checked(32)?;
        let id = SnapshotId(crate::id::Digest(id.try_into().ok()?));
        let snap = Snapshot::decode(record, "cached snapshot").ok()?;
        (snap.host == host && snap.paths == paths).then_some((id, snap))
    }

    /// Records `snapshot` (saved as `id`) as the last of its host and paths, then deletes
    /// the blobs no last snapshot references.
    pub(crate) fn remember(&self, sealer: &Sealer, id: &SnapshotId, snapshot: &Snapshot) -> Result<()> {
        let mut bytes = id.as_bytes().to_vec();
        bytes.extend(snapshot.encode()?);
        write_replacing(&self.last_path(sealer, &snapshot.host, &snapshot.paths), &bytes)?;
        self.sweep(sealer)
    }

    fn wal_path(&self, object_key: &str) -> PathBuf {
        self.dir.join("wal").join(blake3::hash(object_key.as_bytes()).to_hex().as_str())
    }

    /// Remembers a WAL file about to be archived under `object_key`; forgets those pushed
    /// more than [`WAL_MEMORY`] ago.
    pub(crate) fn remember_wal(&self, object_key: &str, pushed: &PushedWal) -> Result<()> {
        let mut bytes = pushed.digest.to_vec();
        bytes.extend_from_slice(&pushed.archived_ns.to_le_bytes());
        bytes.extend_from_slice(&pushed.size.to_le_bytes());
        write_replacing(&self.wal_path(object_key), &bytes)?;
        for entry in read_dir(&self.dir.join("wal"))? {
            let old =
                entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().unwrap_or_default() > WAL_MEMORY);
            if old {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    pub(crate) fn forget_wal(&self, object_key: &str) {
        let _ = fs::remove_file(self.wal_path(object_key));
    }

    /// What this host remembers pushing under `object_key`.
    pub(crate) fn pushed_wal(&self, object_key: &str) -> Option<PushedWal> {
        let b = fs::read(self.wal_path(object_key)).ok()?;
        if b.len() != 48 {
            return None;
        }
        Some(PushedWal {
            digest: b[..32].try_into().ok()?,
            archived_ns: i64::from_le_bytes(b[32..40].try_into().ok()?),
            size: u64::from_le_bytes(b[40..48].try_into().ok()?),
        })
    }

    /// Deletes unreferenced blobs older than [`SWEEP_MIN_AGE`].
    fn sweep(&self, sealer: &Sealer) -> Result<()> {
        let mut keep = HashSet::new();
        for entry in read_dir(&self.dir.join("last"))? {
            let Ok(bytes) = fs::read(entry.path()) else { continue };
            let Some(snap) = bytes.get(32..).and_then(|r| Snapshot::decode(r, "cached snapshot").ok()) else {
                continue;
            };
            self.mark(sealer, snap.root, &mut keep);
        }
        for entry in read_dir(&self.dir.join("blobs"))? {
            let name = entry.file_name();
            let referenced = name.to_str().and_then(|n| n.parse::<ChunkId>().ok()).is_some_and(|id| keep.contains(&id));
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or_default() > SWEEP_MIN_AGE);
            if !referenced && old {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// Adds `root` and every tree and chunk-list piece below it that the cache holds.
    fn mark(&self, sealer: &Sealer, root: ChunkId, keep: &mut HashSet<ChunkId>) {
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            if !keep.insert(id) {
                continue;
            }
            let Some(tree) = self.get_blob(&id, sealer).ok().and_then(|b| Tree::decode(&b, "cached tree").ok()) else {
                continue;
            };
            for node in &tree.nodes {
                match &node.content {
                    NodeContent::Dir { subtree } => stack.push(*subtree),
                    NodeContent::LargeFile { pieces } => keep.extend(pieces.iter().map(|p| p.id)),
                    _ => {}
                }
            }
        }
    }
}

/// Entries of `dir`; none when it does not exist yet.
fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    match fs::read_dir(dir) {
        Ok(d) => Ok(d.filter_map(|e| e.ok()).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("cannot list", dir, e)),
    }
}

/// Writes `path` whole (temporary file, rename), creating private directories. No fsync: a
/// cache entry lost in a crash costs a re-read, and one torn is caught by its check.
fn write_replacing(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::io::create_private_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io("cannot create a file in", dir, e))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| Error::io("cannot write", tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io("cannot rename into", path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use crate::snapshot::{Node, Summary};

    fn setup() -> (tempfile::TempDir, OwnCache, Sealer) {
        let dir = tempfile::tempdir().unwrap();
        let cache = OwnCache::new(dir.path().join("write-only"));
        (dir, cache, Sealer::write_only(MasterKey::from_bytes([5; 32]).derive().write_only()).unwrap())
    }

    fn snapshot(root: ChunkId) -> Snapshot {
        Snapshot {
            time_ns: 1,
            host: "h".into(),
            paths: vec![b"/srv".to_vec()],
            tags: Vec::new(),
            root,
            parent: None,
            summary: Summary::default(),
            tool: "t".into(),
        }
    }

    #[test]
    fn blobs_and_the_last_snapshot_come_back_checked() {
        let (_d, cache, sealer) = setup();
        let mut tree = Tree { nodes: vec![Node::new(b"f".to_vec(), NodeContent::File { chunks: Vec::new() })] };
        let bytes = tree.encode().unwrap();
        let id = sealer.id_of(&bytes);
        cache.put_blob(&id, &bytes).unwrap();
        assert_eq!(cache.get_blob(&id, &sealer).unwrap(), bytes);
        // A damaged entry is refused, never used.
        fs::write(cache.blob_path(&id), b"other bytes").unwrap();
        assert!(matches!(cache.get_blob(&id, &sealer), Err(Error::Corrupt { .. })));
        let missing = sealer.id_of(b"never stored");
        assert!(cache.get_blob(&missing, &sealer).unwrap_err().is_not_found());

        let snap_id = SnapshotId(crate::id::Digest([9; 32]));
        assert_eq!(cache.last(&sealer, "h", &[b"/srv".to_vec()]), None);
        cache.remember(&sealer, &snap_id, &snapshot(id)).unwrap();
        assert_eq!(cache.last(&sealer, "h", &[b"/srv".to_vec()]), Some((snap_id, snapshot(id))));
        assert_eq!(cache.last(&sealer, "other host", &[b"/srv".to_vec()]), None);
    }

    #[test]
    fn a_pushed_wal_file_is_remembered_and_forgotten() {
        let (_d, cache, _) = setup();
        let p = PushedWal { digest: [3; 32], archived_ns: 7, size: 11 };
        assert_eq!(cache.pushed_wal("wal/a/b"), None);
        cache.remember_wal("wal/a/b", &p).unwrap();
        assert_eq!(cache.pushed_wal("wal/a/b"), Some(p));
        assert_eq!(cache.pushed_wal("wal/a/c"), None);
        cache.forget_wal("wal/a/b");
        assert_eq!(cache.pushed_wal("wal/a/b"), None);
    }
}
