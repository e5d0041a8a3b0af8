//! A directory: its entries sorted by name, each with metadata, change-detection keys and
//! content (chunk list, subtree id or symlink target). Stored as a blob of kind `Tree`, so an
//! unchanged directory encodes to the same bytes and deduplicates for free.

use serde::{Deserialize, Serialize};

use crate::codec::{self, RecordKind};
use crate::error::Result;
use crate::id::ChunkId;

pub const TREE_VERSION: u16 = 1;

/// One chunk of a file: its id and plaintext length (offsets are the running sum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: ChunkId,
    pub len: u32,
}

/// Files of more chunks than this keep their chunk list in separate blobs (see
/// [`NodeContent::LargeFile`]).
pub const LIST_PIECE_CHUNKS: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeContent {
    /// A file's chunks, inline.
    File {
        chunks: Vec<ChunkRef>,
    },
    Dir {
        subtree: ChunkId,
    },
    Symlink {
        target: Vec<u8>,
    },
    /// A large file's chunk list, cut into pieces of [`LIST_PIECE_CHUNKS`] (the last one
    /// shorter), each stored as a [`ChunkList`] blob. An unchanged file costs its directory a
    /// few ids instead of its whole list, and a file that grew re-stores only its last piece.
    LargeFile {
        pieces: Vec<ListPiece>,
    },
}

/// One stored piece of a large file's chunk list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPiece {
    /// Id of the [`ChunkList`] blob.
    pub id: ChunkId,
    /// Chunks in the piece.
    pub chunks: u32,
    /// File bytes the piece covers.
    pub bytes: u64,
}

/// A piece of a large file's chunk list, stored as a blob of kind `Tree`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkList {
    pub chunks: Vec<ChunkRef>,
}

pub const CHUNK_LIST_VERSION: u16 = 1;

impl ChunkList {
    pub fn encode(&self) -> Result<Vec<u8>> {
        codec::seal(RecordKind::ChunkList, CHUNK_LIST_VERSION, self)
    }

    pub fn decode(bytes: &[u8], what: &str) -> Result<Self> {
        codec::unseal(bytes, RecordKind::ChunkList, CHUNK_LIST_VERSION, what)
    }
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// File name bytes (Unix names need not be UTF-8).
    pub name: Vec<u8>,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
    /// Change-detection keys: with `size` and `mtime_ns`, an unchanged tuple means the file is
    /// taken from the parent snapshot without being read.
    pub ctime_ns: i64,
    pub inode: u64,
    /// File size in bytes (0 for directories and symlinks).
    pub size: u64,
    pub content: NodeContent,
}

impl Node {
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.content, NodeContent::Dir { .. })
    }

    pub fn kind_name(&self) -> &'static str {
        match self.content {
            NodeContent::File { .. } | NodeContent::LargeFile { .. } => "file",
            NodeContent::Dir { .. } => "dir",
            NodeContent::Symlink { .. } => "symlink",
        }
    }

    pub fn is_file(&self) -> bool {
        matches!(self.content, NodeContent::File { .. } | NodeContent::LargeFile { .. })
    }

    /// How many chunks the file has (0 for other kinds).
    pub fn chunk_count(&self) -> u64 {
        match &self.content {
            NodeContent::File { chunks } => chunks.len() as u64,
            NodeContent::LargeFile { pieces } => pieces.iter().map(|p| u64::from(p.chunks)).sum(),
            _ => 0,
        }
    }

    pub fn subtree(&self) -> Option<ChunkId> {
        match self.content {
            NodeContent::Dir { subtree } => Some(subtree),
            _ => None,
        }
    }
}

/// A directory's entries, sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Encodes the tree (entries sorted, so equal directories give equal bytes).
    pub fn encode(&mut self) -> Result<Vec<u8>> {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        codec::seal(RecordKind::Tree, TREE_VERSION, self)
    }

    pub fn decode(bytes: &[u8], what: &str) -> Result<Self> {
        let tree: Tree = codec::unseal(bytes, RecordKind::Tree, TREE_VERSION, what)?;
        let sorted = tree.nodes.windows(2).all(|w| w[0].name < w[1].name);
        let names_ok = tree.nodes.iter().all(|n| valid_name(&n.name));
        if !sorted || !names_ok {
            return Err(crate::error::Error::corrupt(what, "entries unsorted, duplicated or badly named"));
        }
        Ok(tree)
    }

    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes.binary_search_by(|n| n.name.as_slice().cmp(name)).ok().map(|i| &self.nodes[i])
    }
}

/// A name a restore may create: no separators, not `.` or `..`, not empty. A hostile tree
/// must not make a restore write outside its target.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}
