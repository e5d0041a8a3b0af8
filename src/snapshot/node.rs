//! One directory entry of a tree: name, metadata, change-detection keys and content.
//!
//! The in-memory [`Node`] is the version 2 entry. Version 1 trees decode into it with the
//! version 2 fields empty and `legacy` set (see `tree_v1.rs`), so every reader handles one type.

use serde::{Deserialize, Serialize};

use crate::id::ChunkId;

/// One chunk of a file: its id and plaintext length (offsets are the running sum). A ref whose
/// id is [`ChunkId::ZERO_RUN`] is a run of `len` zero bytes that is not stored: a hole of a
/// sparse file (tree version 2 only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: ChunkId,
    pub len: u32,
}

/// The longest zero run one ref describes; longer holes take several refs.
pub const MAX_ZERO_RUN_BYTES: u32 = 1 << 30;

impl ChunkRef {
    pub fn zero_run(len: u32) -> Self {
        ChunkRef { id: ChunkId::ZERO_RUN, len }
    }

    /// A hole: `len` zero bytes, nothing stored.
    pub fn is_zero_run(&self) -> bool {
        self.id == ChunkId::ZERO_RUN
    }

    /// The stored chunk this ref names, `None` for a zero run.
    pub fn stored_id(&self) -> Option<ChunkId> {
        (!self.is_zero_run()).then_some(self.id)
    }
}

/// Files of more chunks than this keep their chunk list in separate blobs (see
/// [`NodeContent::LargeFile`]).
pub const LIST_PIECE_CHUNKS: usize = 1024;

/// What an entry is, with its content. Variants are append-only (bincode stores the index):
/// the first four are version 1's.
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
    /// shorter), each stored as a [`ChunkList`](super::ChunkList) blob. An unchanged file costs
    /// its directory a few ids instead of its whole list, and a file that grew re-stores only
    /// its last piece.
    LargeFile {
        pieces: Vec<ListPiece>,
    },
    /// A named pipe (version 2).
    Fifo,
    /// A Unix domain socket (version 2). Restored as a socket node nobody listens on.
    Socket,
    /// A character device, with its `st_rdev` (version 2).
    CharDevice {
        rdev: u64,
    },
    /// A block device, with its `st_rdev` (version 2).
    BlockDevice {
        rdev: u64,
    },
}

/// One stored piece of a large file's chunk list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPiece {
    /// Id of the [`ChunkList`](super::ChunkList) blob.
    pub id: ChunkId,
    /// Chunks in the piece.
    pub chunks: u32,
    /// File bytes the piece covers (zero runs included).
    pub bytes: u64,
}

/// Membership of a file in a hard-link group. Entries of one snapshot with equal
/// `(device, Node::inode)` are one file: a restore creates the first and links the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardLink {
    /// `st_dev` of the file when it was read (kept only for files with several links, so that
    /// a device number that changes between boots costs no tree dedup for ordinary files).
    pub device: u64,
    /// `st_nlink` when it was read: links outside the snapshot count too.
    pub links: u32,
}

/// One extended attribute, e.g. `user.origin`, `system.posix_acl_access` (the kernel's binary
/// ACL form), `security.capability`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// One directory entry (tree version 2 layout; fields after `content` are new in version 2).
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
    /// File size in bytes (0 for all but files).
    pub size: u64,
    pub content: NodeContent,
    /// Owner's user name where the system has one for `uid`, else empty.
    pub user: Vec<u8>,
    /// Group name where the system has one for `gid`, else empty.
    pub group: Vec<u8>,
    /// Set for files with more than one link.
    pub hardlink: Option<HardLink>,
    /// Extended attributes (POSIX ACLs and capabilities included), sorted by name, unique.
    pub xattrs: Vec<Xattr>,
    /// Decoded from a version 1 tree: the fields above added in version 2 are unknown, not
    /// empty. Not stored.
    #[serde(skip)]
    pub legacy: bool,
}

impl Node {
    /// An entry with `content` and no metadata: callers set what they know.
    pub fn new(name: Vec<u8>, content: NodeContent) -> Self {
        Node {
            name,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            size: 0,
            content,
            user: Vec::new(),
            group: Vec::new(),
            hardlink: None,
            xattrs: Vec::new(),
            legacy: false,
        }
    }

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
            NodeContent::Fifo => "fifo",
            NodeContent::Socket => "socket",
            NodeContent::CharDevice { .. } => "chardev",
            NodeContent::BlockDevice { .. } => "blockdev",
        }
    }

    pub fn is_file(&self) -> bool {
        matches!(self.content, NodeContent::File { .. } | NodeContent::LargeFile { .. })
    }

    /// FIFO, socket or device node.
    pub fn is_special(&self) -> bool {
        matches!(
            self.content,
            NodeContent::Fifo | NodeContent::Socket | NodeContent::CharDevice { .. } | NodeContent::BlockDevice { .. }
        )
    }

    /// How many chunk refs the file has, zero runs included (0 for other kinds).
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

    /// The hard-link group key `(device, inode)` of a file with several links.
    pub fn link_key(&self) -> Option<(u64, u64)> {
        self.hardlink.filter(|_| self.is_file()).map(|h| (h.device, self.inode))
    }

    /// Whether the version 2 fields hold what only version 2 can store (a version 1 tree
    /// would drop it).
    pub fn has_v2_metadata(&self) -> bool {
        self.hardlink.is_some() || !self.xattrs.is_empty() || self.is_special() || self.has_zero_runs_inline()
    }

    fn has_zero_runs_inline(&self) -> bool {
        matches!(&self.content, NodeContent::File { chunks } if chunks.iter().any(ChunkRef::is_zero_run))
    }

    /// Checks what decoding alone cannot: xattrs sorted and named. `what` names the tree.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !self.xattrs.windows(2).all(|w| w[0].name < w[1].name) || self.xattrs.iter().any(|x| x.name.is_empty()) {
            return Err(format!("entry {:?} has unsorted or unnamed xattrs", self.name_lossy()));
        }
        Ok(())
    }
}
