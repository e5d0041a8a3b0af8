//! What a reader checks of a file entry before it trusts it: the entry must agree with itself.
//!
//! A tree's checksum proves only that its bytes are the ones written, not that a writer (or
//! someone crafting a repository) made them consistent. These rules catch what the decoder
//! cannot (see `docs/format.md`, "Validation rules"):
//! * every chunk is 1 ..= [`MAX_CHUNK_BYTES`] long, every zero run (a hole, nothing stored)
//!   1 ..= [`MAX_ZERO_RUN_BYTES`];
//! * an inline file's chunk lengths add up to its declared size;
//! * a large file's pieces' byte counts add up to its size, and each piece's byte count is
//!   possible for its chunk count (a chunk holds at least a byte);
//! * a loaded piece holds exactly the chunks and bytes its entry declares.
//!
//! Nothing is allocated from a declared count: readers size their buffers from what they
//! loaded, so a hostile count costs nothing. (Pieces of any number of chunks are valid: 1024
//! is how cairn cuts lists, not a rule.)

use crate::snapshot::{ChunkList, ChunkRef, ListPiece, Node, NodeContent, MAX_ZERO_RUN_BYTES};

/// No chunk is longer than this: no blob decompresses to more (the pack's own bound), and the
/// chunker's largest chunk is far below it.
pub const MAX_CHUNK_BYTES: u32 = 512 << 20;

/// The most bytes one ref may cover: a zero run may be longer than any stored chunk.
const MAX_REF_BYTES: u32 = if MAX_ZERO_RUN_BYTES > MAX_CHUNK_BYTES { MAX_ZERO_RUN_BYTES } else { MAX_CHUNK_BYTES };

/// Checks each chunk's length and returns their sum.
pub fn chunk_bytes(chunks: &[ChunkRef]) -> Result<u64, String> {
    let mut sum = 0u64;
    for (i, c) in chunks.iter().enumerate() {
        let max = if c.is_zero_run() { MAX_ZERO_RUN_BYTES } else { MAX_CHUNK_BYTES };
        if c.len == 0 || c.len > max {
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
            _ => return None, // directories, symlinks and special files have no content
        };
        (held != self.size).then(|| format!("declares {} bytes, its chunks hold {held}", self.size))
    }
}

/// Checks each piece's declared counts against each other (every ref covers 1 to
/// `MAX_REF_BYTES` bytes) and returns the bytes they cover.
fn pieces_bytes(pieces: &[ListPiece]) -> Result<u64, String> {
    let mut sum = 0u64;
    for (i, p) in pieces.iter().enumerate() {
        let chunks = u64::from(p.chunks);
        if p.bytes < chunks || p.bytes > chunks * u64::from(MAX_REF_BYTES) {
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
        Node { size, ..Node::new(b"f".to_vec(), NodeContent::File { chunks }) }
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
    fn a_zero_run_may_exceed_a_chunk_but_not_its_own_bound() {
        let run = |len| Node {
            size: u64::from(len),
            ..Node::new(b"f".to_vec(), NodeContent::File { chunks: vec![ChunkRef::zero_run(len)] })
        };
        assert_eq!(run(MAX_ZERO_RUN_BYTES).content_problem(), None);
        assert!(run(MAX_ZERO_RUN_BYTES + 1).content_problem().is_some());
        assert!(run(0).content_problem().is_some());
        assert!(file(u64::from(MAX_ZERO_RUN_BYTES), &[MAX_ZERO_RUN_BYTES]).content_problem().is_some());
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
