//! What a reader checks of a file entry before it trusts it: the entry must agree with itself.
//!
//! A tree's checksum proves only that its bytes are the ones written, not that a writer (or
//! someone crafting a repository) made them consistent. These rules catch what the decoder
//! cannot (see `docs/format.md`, "Validation rules"):
//! * every chunk is 1 ..= [`MAX_CHUNK_BYTES`] long;
//! * an inline file's chunk lengths add up to its declared size;
//! * a large file's pieces' byte counts add up to its size, and each piece's byte count is
//!   possible for its chunk count (a chunk holds at least a byte);
//! * a loaded piece holds exactly the chunks and bytes its entry declares.
//!
//! Nothing is allocated from a declared count: readers size their buffers from what they
//! loaded, so a hostile count costs nothing. (Pieces of any number of chunks are valid: 1024
//! is how cairn cuts lists, not a rule.)

use crate::snapshot::{ChunkList, ChunkRef, ListPiece, Node, NodeContent};

/// No chunk is longer than this: no blob decompresses to more (the pack's own bound), and the
/// chunker's largest chunk is far below it.
pub const MAX_CHUNK_BYTES: u32 = 512 << 20;

/// Checks each chunk's length and returns their sum.
pub fn chunk_bytes(chunks: &[ChunkRef]) -> Result<u64, String> {
    let mut sum = 0u64;
    for (i, c) in chunks.iter().enumerate() {
        if c.len == 0 || c.len > MAX_CHUNK_BYTES {
            return Err(format!("chunk {} of {} ({}) has length {}", i + 1, chunks.len(), c.id.short(), c.len));
        }
        sum += u64::from(c.len);
    }
    Ok(sum)
}

impl Node {
    /// Why the entry's content disagrees with its declared size, if it does. Needs nothing but
    /// the entry (a large file's pieces are checked against their declared counts here, and
    /// against their loaded lists by [`ListPiece::check_list`]).
    pub fn content_problem(&self) -> Option<String> {
        let held = match &self.content {
            NodeContent::File { chunks } => match chunk_bytes(chunks) {
                Ok(sum) => sum,
                Err(why) => return Some(why),
            },
            NodeContent::LargeFile { pieces } => match pieces_bytes(pieces) {
                Ok(sum) => sum,
                Err(why) => return Some(why),
            },
            NodeContent::Dir { .. } | NodeContent::Symlink { .. } => return None,
        };
        (held != self.size).then(|| format!("declares {} bytes, its chunks hold {held}", self.size))
    }
}

/// Checks each piece's declared counts against each other (every chunk holds 1 to
/// [`MAX_CHUNK_BYTES`] bytes) and returns the bytes they cover.
fn pieces_bytes(pieces: &[ListPiece]) -> Result<u64, String> {
    let mut sum = 0u64;
    for (i, p) in pieces.iter().enumerate() {
        let chunks = u64::from(p.chunks);
        if p.bytes < chunks || p.bytes > chunks * u64::from(MAX_CHUNK_BYTES) {
            return Err(format!("chunk-list piece {} declares {} bytes in {} chunks", i + 1, p.bytes, p.chunks));
        }
        sum = sum.saturating_add(p.bytes);
    }
    Ok(sum)
}

impl ListPiece {
    /// Why the loaded `list` disagrees with this entry, if it does.
    pub fn check_list(&self, list: &ChunkList) -> Option<String> {
        if list.chunks.len() != self.chunks as usize {
            return Some(format!("declares {} chunks, holds {}", self.chunks, list.chunks.len()));
        }
        match chunk_bytes(&list.chunks) {
            Err(why) => Some(why),
            Ok(sum) if sum != self.bytes => Some(format!("declares {} bytes, its chunks hold {sum}", self.bytes)),
            Ok(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ChunkId;

    fn file(size: u64, lens: &[u32]) -> Node {
        let chunks = lens.iter().map(|l| ChunkRef { id: ChunkId::of(&l.to_le_bytes()), len: *l }).collect();
        Node {
            name: b"f".to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            size,
            content: NodeContent::File { chunks },
        }
    }

    fn large(size: u64, pieces: &[(u32, u64)]) -> Node {
        let pieces = pieces.iter().map(|(c, b)| ListPiece { id: ChunkId::of(b"p"), chunks: *c, bytes: *b }).collect();
        Node { content: NodeContent::LargeFile { pieces }, ..file(size, &[]) }
    }

    #[test]
    fn sizes_must_match_chunk_lengths() {
        assert_eq!(file(10, &[4, 6]).content_problem(), None);
        assert_eq!(file(0, &[]).content_problem(), None);
        assert!(file(2, &[6]).content_problem().unwrap().contains("declares 2 bytes"));
        assert!(file(1 << 40, &[5]).content_problem().is_some());
        assert!(file(0, &[0]).content_problem().unwrap().contains("length 0"));
        assert!(file(u64::from(u32::MAX), &[u32::MAX]).content_problem().is_some());
    }

    #[test]
    fn large_file_pieces_are_checked_before_loading() {
        assert_eq!(large(3000, &[(1024, 2000), (10, 1000)]).content_problem(), None);
        assert_eq!(large(5000, &[(2000, 5000)]).content_problem(), None);
        assert_eq!(large(0, &[]).content_problem(), None);
        assert!(large(5, &[(u32::MAX, 5)]).content_problem().unwrap().contains("4294967295 chunks"));
        assert!(large(3, &[(2, 1), (1, 2)]).content_problem().is_some());
        assert!(large(3001, &[(1024, 2000), (10, 1000)]).content_problem().is_some());
        assert!(large(u64::MAX, &[(1, u64::MAX)]).content_problem().is_some());
    }

    #[test]
    fn a_piece_must_hold_what_it_declares() {
        let list = ChunkList { chunks: vec![ChunkRef { id: ChunkId::of(b"a"), len: 7 }; 3] };
        let piece = |chunks, bytes| ListPiece { id: ChunkId::of(b"p"), chunks, bytes };
        assert_eq!(piece(3, 21).check_list(&list), None);
        assert!(piece(4, 21).check_list(&list).unwrap().contains("declares 4 chunks, holds 3"));
        assert!(piece(3, 20).check_list(&list).is_some());
    }
}
