//! Chunking: content-defined with FastCDC (v2020), or aligned to fixed offsets for paged files.
//!
//! Content-defined cut points depend only on the bytes since the previous cut, so chunking may
//! restart at any earlier cut point and find the same boundaries: the basis of append-aware
//! backups. The parameters are fixed per repository at `init`; changing them would break
//! deduplication. Aligned cuts ([`Cuts::Aligned`]) are for files made of fixed-size pages that
//! are rewritten in place and never shift (database relation files): there a rewritten page
//! changes exactly one chunk, where content-defined cuts around it may move and change two or
//! three (`docs/chunk-size.md`, "Paged files").

use std::io;

use fastcdc::v2020::{FastCDC, Normalization};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::FileData;

/// The largest `max_bytes` accepted: a quarter of the smallest read window, so that a window
/// always holds several whole chunks.
pub const MAX_CHUNK_BYTES: usize = crate::io::MAX_WINDOW_BYTES / 4;

/// Where a file's chunk boundaries fall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cuts {
    /// FastCDC: boundaries follow the content, so inserted bytes move only nearby cuts.
    ContentDefined,
    /// At every multiple of this many bytes of file offset (see [`ChunkerParams::page_block`]).
    Aligned(u32),
}

/// The page size every aligned block is a multiple of: PostgreSQL's default page, and a
/// multiple of SQLite's, LMDB's and redb's 4 KiB pages.
pub const PAGE_BYTES: u32 = 8 << 10;

/// Chunk size bounds, stored in the repository config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min_bytes: u32,
    pub avg_bytes: u32,
    pub max_bytes: u32,
    /// FastCDC gear seed: 0 (the public tables) unless the repository is encrypted, where it
    /// comes from the key (`docs/format.md` §13.3) and is never stored in the config.
    #[serde(skip)]
    pub seed: u64,
}

impl Default for ChunkerParams {
    /// Chosen from measurements recorded in `docs/chunk-size.md`.
    fn default() -> Self {
        ChunkerParams { min_bytes: 8 << 10, avg_bytes: 32 << 10, max_bytes: 128 << 10, seed: 0 }
    }
}

impl ChunkerParams {
    /// Parameters FastCDC accepts: even sizes within its bounds, min ≤ avg ≤ max.
    pub fn validate(&self) -> Result<()> {
        use fastcdc::v2020 as f;
        let (min, avg, max) = (self.min_bytes as usize, self.avg_bytes as usize, self.max_bytes as usize);
        let ok = (f::MINIMUM_MIN..=f::MINIMUM_MAX).contains(&min)
            && (f::AVERAGE_MIN..=f::AVERAGE_MAX).contains(&avg)
            && (f::MAXIMUM_MIN..=MAX_CHUNK_BYTES).contains(&max)
            && min <= avg
            && avg <= max
            && [min, avg, max].iter().all(|v| v % 2 == 0);
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "chunk sizes min {min}, avg {avg}, max {max} are out of FastCDC's range \
                 (min 64..1 MiB, avg 256..1 MiB, max 1 KiB..1 MiB, even, min <= avg <= max)"
            )))
        }
    }

    /// How much of a file to read at once: eight of the largest chunks (1 MiB by default),
    /// within the bounds `io` allows. Small windows keep each file in flight cheap.
    pub fn window_bytes(&self) -> usize {
        (8 * self.max_bytes as usize)
            .next_multiple_of(64 << 10)
            .clamp(crate::io::MIN_WINDOW_BYTES, crate::io::MAX_WINDOW_BYTES)
    }

    /// The block size of aligned cuts: the average chunk size rounded down to whole
    /// [`PAGE_BYTES`] pages (32 KiB by default), so paged files keep the repository's chunk count.
    pub fn page_block(&self) -> u32 {
        (self.avg_bytes / PAGE_BYTES).max(1) * PAGE_BYTES
    }

    /// Splits an in-memory buffer; returns `(offset, len)` pairs.
    pub fn cut_all(&self, data: &[u8]) -> Vec<(usize, usize)> {
        self.fastcdc(data).map(|c| (c.offset, c.length)).collect()
    }

    fn fastcdc<'a>(&self, data: &'a [u8]) -> FastCDC<'a> {
        // Seed 0 gives fastcdc's unseeded tables, so unencrypted cut points are unchanged.
        FastCDC::with_level_and_seed(
            data,
            self.min_bytes as usize,
            self.avg_bytes as usize,
            self.max_bytes as usize,
            Normalization::Level1,
            self.seed,
        )
    }
}

/// Chunks handed to the sink at once: enough to keep every core busy hashing and compressing,
/// few enough that a huge mapped file does not build a huge list.
pub const BATCH_PIECES: usize = 64;

/// One chunk of a file: its offset in the file and its bytes.
pub struct Piece<'a> {
    pub offset: u64,
    pub data: &'a [u8],
}

/// Chunks `file` from `start` (which must be a cut point, e.g. 0) to the length it had at open,
/// handing batches of consecutive chunks to `sink`. Returns the number of bytes chunked, which
/// is less than `len - start` only when the file shrank while being read.
///
/// Cut points are sequential, but what `sink` does with a window's chunks (hash, compress) is
/// not: with `overlap`, the next window is read and cut while `sink` works on the current one,
/// which costs a second window of memory. Without that overlap a single large file kept both
/// cores busy only 70% of the time.
pub fn chunk_file<E: From<io::Error> + Send>(
    params: &ChunkerParams,
    cuts: Cuts,
    file: &mut FileData,
    start: u64,
    overlap: bool,
    mut sink: impl FnMut(&[Piece<'_>]) -> Result<(), E> + Send,
) -> Result<u64, E> {
    let mut pos = start;
    let mut next = cut_window(params, cuts, file, pos)?;
    while let Some(current) = next {
        let after = pos + current.consumed as u64;
        let feed = |sink: &mut dyn FnMut(&[Piece<'_>]) -> Result<(), E>| -> Result<(), E> {
            for batch in current.cuts.chunks(BATCH_PIECES) {
                let pieces: Vec<Piece<'_>> = batch
                    .iter()
                    .map(|&(offset, len)| Piece {
                        offset: pos + offset as u64,
                        data: &current.window[offset..offset + len],
                    })
                    .collect();
                sink(&pieces)?;
            }
            Ok(())
        };
        if current.last {
            feed(&mut sink)?;
            return Ok(after - start);
        }
        if overlap {
            // The current thread cuts; the feed waits on its deque for an idle thread of the
            // pool to take it. (Handing the feed to a second, per-core pool instead made the
            // waiting thread take whole directories of other work meanwhile, and 100 000 files
            // overflowed its stack.)
            let (cut, fed) = rayon::join(|| cut_window(params, cuts, file, after), || feed(&mut sink));
            fed?;
            file.recycle(current.window);
            next = cut?;
        } else {
            feed(&mut sink)?;
            file.recycle(current.window);
            next = cut_window(params, cuts, file, after)?;
        }
        pos = after;
    }
    Ok(pos - start)
}

/// Chunks a stream as it arrives (standard input, a command's output) with content-defined
/// cuts, the same cuts as [`ChunkerParams::cut_all`] over the whole, handing batches to
/// `sink`; returns the bytes read. Memory: one window.
pub fn chunk_stream<E: From<io::Error>>(
    params: &ChunkerParams,
    reader: &mut dyn io::Read,
    mut sink: impl FnMut(&[Piece<'_>]) -> Result<(), E>,
) -> Result<u64, E> {
    let mut buf = vec![0u8; params.window_bytes()];
    let (mut filled, mut offset, mut eof) = (0usize, 0u64, false);
    loop {
        while filled < buf.len() && !eof {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => eof = true,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if filled == 0 {
            return Ok(offset);
        }
        let cuts = content_cuts(params, &buf[..filled], eof);
        let consumed = cuts.last().map_or(0, |&(o, l)| o + l);
        if consumed == 0 {
            return Err(io::Error::other("chunker made no progress").into());
        }
        for batch in cuts.chunks(BATCH_PIECES) {
            let pieces: Vec<Piece<'_>> =
                batch.iter().map(|&(o, l)| Piece { offset: offset + o as u64, data: &buf[o..o + l] }).collect();
            sink(&pieces)?;
        }
        buf.copy_within(consumed..filled, 0);
        filled -= consumed;
        offset += consumed as u64;
    }
}

/// A window of a file with its chunk boundaries.
struct CutWindow {
    window: crate::io::Window,
    /// (offset in the window, length) of each whole chunk.
    cuts: Vec<(usize, usize)>,
    /// Bytes of the window covered by `cuts`.
    consumed: usize,
    /// Whether the file ends (or shrank) within this window.
    last: bool,
}

/// Reads the window at `pos` (a cut point) and cuts it; `None` at the end of the file, or when
/// it shrank to end before `pos`.
fn cut_window(params: &ChunkerParams, cuts: Cuts, file: &mut FileData, pos: u64) -> io::Result<Option<CutWindow>> {
    let len = file.len();
    if pos >= len {
        return Ok(None);
    }
    let window = file.window(pos)?;
    if window.is_empty() {
        return Ok(None); // shrank underneath us
    }
    let expected = (len - pos).min(file.window_len());
    // A short positional read means the file shrank: what we got is all there is.
    let shrank = !file.is_mapped() && (window.len() as u64) < expected;
    let last = shrank || pos + window.len() as u64 >= len;
    let cuts = match cuts {
        Cuts::ContentDefined => content_cuts(params, &window, last),
        Cuts::Aligned(block) => aligned_cuts(block, pos, window.len(), last),
    };
    let consumed = cuts.last().map_or(0, |&(offset, len)| offset + len);
    if consumed == 0 {
        // Cannot happen with windows larger than max_bytes; guard against a stall anyway.
        return Err(io::Error::other("chunker made no progress"));
    }
    Ok(Some(CutWindow { window, cuts, consumed, last }))
}

/// FastCDC's cuts of a window. A chunk cut only because the window ended is not a real
/// boundary: it is left out, to be re-read at the start of the next window.
fn content_cuts(params: &ChunkerParams, window: &[u8], last: bool) -> Vec<(usize, usize)> {
    let mut cuts = Vec::with_capacity(BATCH_PIECES);
    for c in params.fastcdc(window) {
        if c.offset + c.length == window.len() && !last && c.length < params.max_bytes as usize {
            break;
        }
        cuts.push((c.offset, c.length));
    }
    cuts
}

/// Cuts at every multiple of `block` bytes of file offset, for a window of `len` bytes at file
/// offset `pos`. A piece ending with the window short of a block boundary is left out unless
/// the file ends there.
fn aligned_cuts(block: u32, pos: u64, len: usize, last: bool) -> Vec<(usize, usize)> {
    let block = u64::from(block.max(1));
    let mut cuts = Vec::with_capacity(BATCH_PIECES);
    let mut at = 0u64;
    while at < len as u64 {
        let boundary = (pos + at) / block * block + block;
        let end = (boundary - pos).min(len as u64);
        if end == len as u64 && !last && (pos + end) % block != 0 {
            break;
        }
        cuts.push((at as usize, (end - at) as usize));
        at = end;
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::ReadStrategy;
    use proptest::prelude::*;
    use std::io::Write;

    /// Cuts of `data` as `chunk_file` finds them, reading a file window by window.
    fn windowed_cuts(
        params: &ChunkerParams,
        cuts_by: Cuts,
        data: &[u8],
        strategy: ReadStrategy,
        overlap: bool,
    ) -> Vec<(usize, usize)> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(data).unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH; // "quiet": mapped under Auto
        let mut data = FileData::new(file, data.len() as u64, old, strategy, params.window_bytes()).unwrap();
        let mut cuts = Vec::new();
        let read = chunk_file(params, cuts_by, &mut data, 0, overlap, |pieces: &[Piece<'_>]| {
            cuts.extend(pieces.iter().map(|p| (p.offset as usize, p.data.len())));
            Ok::<(), io::Error>(())
        })
        .unwrap();
        assert_eq!(read, data.len());
        cuts
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// Windows (mapped or copied, overlapped or not) find exactly the cuts of one pass.
        #[test]
        fn windows_cut_like_one_pass(seed in any::<u64>(), len in 0usize..(5 << 20), overlap: bool, copy: bool) {
            let params = ChunkerParams { min_bytes: 2 << 10, avg_bytes: 8 << 10, max_bytes: 64 << 10, seed: 0 };
            let mut state = seed | 1;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            // Random bytes with runs of zeros longer than max_bytes, so that some chunks are
            // cut only by the size limit.
            let mut data = Vec::with_capacity(len);
            while data.len() < len {
                let block = (len - data.len()).min(100 << 10);
                if next() % 4 == 0 {
                    data.resize(data.len() + block, 0);
                } else {
                    data.extend((0..block).map(|_| (next() >> 24) as u8));
                }
            }
            let strategy = if copy { ReadStrategy::Copy } else { ReadStrategy::Auto };
            prop_assert_eq!(windowed_cuts(&params, Cuts::ContentDefined, &data, strategy, overlap), params.cut_all(&data));
            // Aligned cuts: every block whole, at multiples of the block, the last one short.
            let block = params.page_block();
            let want: Vec<(usize, usize)> =
                (0..data.len()).step_by(block as usize).map(|o| (o, (data.len() - o).min(block as usize))).collect();
            prop_assert_eq!(windowed_cuts(&params, Cuts::Aligned(block), &data, strategy, overlap), want);
        }
    }

    /// A stream read in uneven pieces (as a pipe delivers them) is cut exactly as the whole.
    #[test]
    fn streams_cut_like_one_pass() {
        struct Trickle<'a>(&'a [u8], u64);
        impl io::Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                self.1 = self.1.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let n = ((self.1 >> 33) as usize % 70_000 + 1).min(out.len()).min(self.0.len());
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let params = ChunkerParams::default();
        for len in [0, 1, 5000, 3 << 20] {
            let data: Vec<u8> = golden_input().into_iter().cycle().take(len).collect();
            let mut cuts = Vec::new();
            let read = chunk_stream(&params, &mut Trickle(&data, len as u64), |pieces: &[Piece<'_>]| {
                cuts.extend(pieces.iter().map(|p| (p.offset as usize, p.data.len())));
                Ok::<(), io::Error>(())
            })
            .unwrap();
            assert_eq!(read, len as u64);
            assert_eq!(cuts, params.cut_all(&data), "{len} bytes");
        }
    }

    /// From an unaligned offset (a sparse file's data range), the first piece runs to the next
    /// block boundary; a window ending short of a boundary defers the piece unless it is last.
    #[test]
    fn aligned_cuts_follow_file_offsets() {
        assert_eq!(aligned_cuts(8, 5, 20, true), vec![(0, 3), (3, 8), (11, 8), (19, 1)]);
        assert_eq!(aligned_cuts(8, 5, 20, false), vec![(0, 3), (3, 8), (11, 8)]);
        assert_eq!(aligned_cuts(8, 0, 16, false), vec![(0, 8), (8, 8)]);
        assert_eq!(ChunkerParams::default().page_block(), 32 << 10);
        let small = ChunkerParams { min_bytes: 1024, avg_bytes: 4096, max_bytes: 16384, seed: 0 };
        assert_eq!(small.page_block(), PAGE_BYTES);
    }

    /// 1 MiB of a fixed xorshift stream: the input of the golden cut points.
    fn golden_input() -> Vec<u8> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..1 << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect()
    }

    /// Golden cut points with and without a seed: a fastcdc upgrade that moves them (and so
    /// silently breaks dedup against every existing repository) fails here. The seed is the
    /// chunker seed of the golden master key of `docs/format.md` §13.3. Recorded from fastcdc
    /// 5.0.0 on 2026-12-03 (a regression fixture, not an independent derivation).
    #[test]
    fn golden_cut_points_with_and_without_seed() {
        let data = golden_input();
        for (seed, want) in [(0u64, GOLDEN_UNSEEDED), (0x281f_ece5_0a99_fe3c, GOLDEN_SEEDED)] {
            let params = ChunkerParams { seed, ..ChunkerParams::default() };
            let cuts: Vec<usize> = params.cut_all(&data).iter().map(|(o, _)| *o).collect();
            assert_eq!(cuts, want, "seed {seed:#x}");
        }
    }

    const GOLDEN_UNSEEDED: &[usize] = &[
        0, 70291, 95364, 129420, 164760, 220786, 230385, 281244, 329537, 369280, 409358, 471227, 517686, 563645,
        610575, 650591, 686162, 754124, 802095, 867768, 914756, 950593, 983735,
    ];
    const GOLDEN_SEEDED: &[usize] = &[
        0, 38108, 60660, 76945, 113869, 151219, 172988, 188134, 214964, 249772, 289197, 318412, 364089, 418899, 444557,
        479914, 492085, 500285, 534733, 549198, 595765, 633767, 646827, 660725, 680011, 715011, 766988, 803252, 848186,
        922451, 959162, 1036061,
    ];
}
