//! The content digest of every regular file of a snapshot: what an export's manifest lists,
//! and how an import proves every inner object sound (each blob is verified against its id
//! while read, and each file's BLAKE3 against the manifest).

use super::format::FileEntry;
use crate::error::Result;
use crate::id::ChunkId;
use crate::repo::Repository;

/// Zeros hashed at a time for a zero run (a hole) of a sparse file.
const ZERO_BLOCK_BYTES: usize = 64 << 10;

impl Repository {
    /// Every regular file below tree `root`: path (names joined by `/`), size and the BLAKE3
    /// of its content, sorted by path. Reads and verifies every tree and chunk it names. Walks
    /// with an explicit stack, so no depth of tree exhausts the program's stack.
    pub fn file_digests(&self, root: &ChunkId) -> Result<Vec<FileEntry>> {
        let mut out = Vec::new();
        let mut stack: Vec<(Vec<u8>, ChunkId)> = vec![(Vec::new(), *root)];
        while let Some((prefix, id)) = stack.pop() {
            for node in self.load_tree(&id)?.nodes {
                let mut path = prefix.clone();
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(&node.name);
                if let Some(sub) = node.subtree() {
                    stack.push((path, sub));
                } else if node.is_file() {
                    let blake3 = self.content_hash(&node)?;
                    out.push(FileEntry { path, size: node.size, blake3 });
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// BLAKE3 of one file's content, read chunk by chunk (holes as zeros).
    fn content_hash(&self, node: &crate::snapshot::Node) -> Result<[u8; 32]> {
        let mut hasher = blake3::Hasher::new();
        let zeros = [0u8; ZERO_BLOCK_BYTES];
        for c in self.file_chunks(node)? {
            match c.stored_id() {
                Some(id) => {
                    hasher.update(&self.read_blob(&id)?);
                }
                None => {
                    let mut left = c.len as usize;
                    while left > 0 {
                        let n = left.min(ZERO_BLOCK_BYTES);
                        hasher.update(&zeros[..n]);
                        left -= n;
                    }
                }
            }
        }
        Ok(*hasher.finalize().as_bytes())
    }
}
