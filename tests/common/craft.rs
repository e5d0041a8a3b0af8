//! Repositories built directly with the library's encoders, for shapes a real directory walk
//! would not (or could not quickly) produce: trees 100,000 levels deep, file entries that
//! disagree with their chunks.

use std::path::PathBuf;

use cairn::pack::BlobKind;
use cairn::repo::{Access, IndexKind, InitOptions, Repository, WriteSession};
use cairn::snapshot::{ChunkRef, Node, NodeContent, Snapshot, Summary, Tree};
use cairn::{ChunkId, SnapshotId};

/// A local repository in a temporary directory.
pub struct Crafted {
    pub dir: tempfile::TempDir,
}

impl Crafted {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Repository::init_local(&dir.path().join("repo"), &InitOptions::default()).unwrap();
        Crafted { dir }
    }

    /// Opens it with the persistent index the binary uses (drop it before running the
    /// binary: one process writes the index at a time).
    pub fn open(&self) -> Repository {
        Repository::open_local(&self.path(), Access::Write, IndexKind::Persistent).unwrap()
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// A fresh empty directory beside the repository.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// Writes a snapshot of `root` taken at `time_s`, of the one path `/data`.
    pub fn save(repo: &Repository, root: ChunkId, time_s: i64) -> SnapshotId {
        let snap = Snapshot {
            time_ns: time_s * 1_000_000_000,
            host: "crafted".into(),
            paths: vec![b"/data".to_vec()],
            tags: Vec::new(),
            root,
            parent: None,
            summary: Summary::default(),
            tool: "cairn tests".into(),
        };
        repo.save_snapshot(&snap).unwrap()
    }
}

pub fn node(name: &[u8], size: u64, content: NodeContent) -> Node {
    let mode = if matches!(content, NodeContent::Dir { .. }) { 0o755 } else { 0o644 };
    Node {
        mode,
        mtime_ns: 1_600_000_000_000_000_000,
        ctime_ns: 1_600_000_000_000_000_000,
        size,
        ..Node::new(name.to_vec(), content)
    }
}

pub fn dir(name: &[u8], subtree: ChunkId) -> Node {
    node(name, 0, NodeContent::Dir { subtree })
}

/// A file entry holding `data` as one chunk (stored), declaring `size` bytes.
pub fn file(session: &WriteSession, name: &[u8], data: &[u8], size: u64) -> Node {
    let id = session.store(BlobKind::Data, data).unwrap();
    node(name, size, NodeContent::File { chunks: vec![ChunkRef { id, len: data.len() as u32 }] })
}

pub fn store_tree(session: &WriteSession, nodes: Vec<Node>) -> ChunkId {
    session.store(BlobKind::Tree, &Tree { nodes }.encode().unwrap()).unwrap()
}

/// Stores a chain of `depth` directories named `d` under a root holding `data/` (so the
/// snapshot's one path is `/data`); the deepest holds the file `leaf` with `leaf_data`.
/// Written bottom-up, as a backup would. Returns the root tree.
pub fn deep_chain(session: &WriteSession, depth: usize, leaf_data: &[u8]) -> ChunkId {
    let leaf = file(session, b"leaf", leaf_data, leaf_data.len() as u64);
    let mut id = store_tree(session, vec![leaf]);
    for _ in 0..depth {
        id = store_tree(session, vec![dir(b"d", id)]);
    }
    store_tree(session, vec![dir(b"data", id)])
}

/// The path of the leaf of [`deep_chain`] in the snapshot.
pub fn deep_leaf_path(depth: usize) -> String {
    format!("/data{}/leaf", "/d".repeat(depth))
}
