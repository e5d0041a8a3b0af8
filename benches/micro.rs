//! Micro-benchmarks of the building blocks: chunker, BLAKE3, zstd levels, pack write and read,
//! and the RocksDB index (insert and lookup at 1 M and 10 M entries).
//!
//!     cargo bench --bench micro                      # everything (the 10 M index takes ~2 min)
//!     CAIRN_BENCH_INDEX=1000000 cargo bench --bench micro    # index sizes to build, comma-separated
//!     cargo bench --bench micro -- --ceilings FILE   # per-core CPU ceilings on FILE's data (JSON)
//!
//! `--ceilings` is what `benches/compare/compare.py` uses to report how close each cairn row
//! comes to what the machine can do. Results are recorded in `docs/performance.md`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use cairn::backend::{Backend, LocalBackend, PutMode};
use cairn::chunker::ChunkerParams;
use cairn::crypto::Sealer;
use cairn::id::Digest;
use cairn::index::{ChunkIndex, OpenMode, RocksIndex};
use cairn::pack::{decode_blob, encode_blob, parse_pack, BlobEntry, BlobKind, Codec, PackBuilder};
use cairn::{ChunkId, PackId};
use rayon::prelude::*;

fn mb_per_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed().as_secs_f64())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--ceilings") {
        let file = args.get(i + 1).expect("--ceilings FILE");
        ceilings(file);
        return;
    }
    let mut rng = common::Rng::new(7);
    let events = rng.events(256 << 20);
    let params = ChunkerParams::default();
    println!("data: 256 MiB of JSON-like event records; {} threads\n", rayon::current_num_threads());
    println!("| benchmark | result |");
    println!("|---|---|");

    let (cuts, secs) = time(|| params.cut_all(&events));
    println!("| FastCDC 8/32/128 KiB, 1 core | {:.0} MB/s |", mb_per_s(events.len(), secs));
    let chunks: Vec<&[u8]> = cuts.iter().map(|(o, l)| &events[*o..o + l]).collect();
    let (_, secs) = time(|| chunks.iter().map(|c| ChunkId::of(c).as_bytes()[0] as u64).sum::<u64>());
    println!("| BLAKE3 of 32 KiB chunks, 1 core | {:.0} MB/s |", mb_per_s(events.len(), secs));
    let (_, secs) = time(|| chunks.par_iter().map(|c| ChunkId::of(c).as_bytes()[0] as u64).sum::<u64>());
    println!("| BLAKE3 of 32 KiB chunks, all cores | {:.0} MB/s |", mb_per_s(events.len(), secs));
    for level in [1, 2, 3, 4, 6] {
        let (stored, secs) = time(|| chunks.iter().map(|c| encode_blob(c, level).unwrap().bytes.len()).sum::<usize>());
        let (_, all) = time(|| chunks.par_iter().map(|c| encode_blob(c, level).unwrap().bytes.len()).sum::<usize>());
        println!(
            "| zstd level {level} per 32 KiB chunk: ratio {:.3}, 1 core / all cores | {:.0} / {:.0} MB/s |",
            events.len() as f64 / stored as f64,
            mb_per_s(events.len(), secs),
            mb_per_s(events.len(), all)
        );
    }
    packs(&chunks, events.len());
    let sizes = std::env::var("CAIRN_BENCH_INDEX").unwrap_or_else(|_| "1000000,10000000".into());
    for n in sizes.split(',').filter_map(|s| s.trim().parse::<usize>().ok()) {
        index(n);
    }
}

/// Pack write (build, checksum, write + fsync through the local backend) and read (parse the
/// trailer, decode and verify every blob).
fn packs(chunks: &[&[u8]], total: usize) {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::new(dir.path());
    let level = cairn::repo::DEFAULT_COMPRESSION_LEVEL;
    let blobs: Vec<_> = chunks.par_iter().map(|c| (ChunkId::of(c), c.len(), encode_blob(c, level).unwrap())).collect();
    let (keys, secs) = time(|| {
        let mut keys = Vec::new();
        let mut builder = PackBuilder::with_capacity(17 << 20);
        for (i, (id, raw, blob)) in blobs.iter().enumerate() {
            builder.add(*id, BlobKind::Data, *raw as u32, blob);
            if builder.data_len() >= 16 << 20 || i + 1 == blobs.len() {
                let pack = std::mem::replace(&mut builder, PackBuilder::with_capacity(17 << 20))
                    .finish(&Sealer::None)
                    .unwrap();
                let key = format!("pack-{}", pack.id);
                backend.put(&key, &pack.bytes, PutMode::Overwrite).unwrap();
                keys.push(key);
            }
        }
        keys
    });
    let stored: usize = blobs.iter().map(|(_, _, b)| b.bytes.len()).sum();
    println!(
        "| pack write: {} packs of 16 MiB, fsync each (MB/s of packs / of data) | {:.0} / {:.0} MB/s |",
        keys.len(),
        mb_per_s(stored, secs),
        mb_per_s(total, secs)
    );
    let (_, secs) = time(|| {
        keys.par_iter().for_each(|key| {
            let bytes = backend.get(key).unwrap();
            for e in parse_pack(&bytes, &Sealer::None, key).unwrap() {
                let range = e.offset as usize..(e.offset + e.stored_len) as usize;
                decode_blob(&e, &bytes[range], key, &Sealer::None).unwrap();
            }
        })
    });
    println!(
        "| pack read + decode + verify, all cores, page cache warm (MB/s of data) | {:.0} MB/s |",
        mb_per_s(total, secs)
    );
}

/// Builds a RocksDB index of `n` chunk entries the way snapshots do (one write batch per pack
/// of ~500 entries), then times lookups of present and absent ids, one by one and batched.
fn index(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let index = RocksIndex::open(&dir.path().join("index"), OpenMode::Primary).unwrap();
    let id = |i: u64| ChunkId::of(&i.to_le_bytes());
    let per_pack = 500;
    let (_, secs) = time(|| {
        for p in 0..n.div_ceil(per_pack) {
            let pack = PackId(Digest::of(&(p as u64).to_be_bytes()));
            let entries: Vec<BlobEntry> = (p * per_pack..((p + 1) * per_pack).min(n))
                .map(|i| BlobEntry {
                    id: id(i as u64),
                    kind: BlobKind::Data,
                    codec: Codec::Zstd,
                    offset: (i % per_pack) as u32 * 6000,
                    stored_len: 6000,
                    raw_len: 32768,
                })
                .collect();
            index.add_pack(pack, 16 << 20, &entries).unwrap();
        }
        index.persist().unwrap();
    });
    println!("| index insert, {n} entries in batches of {per_pack} | {:.0} k entries/s |", n as f64 / secs / 1e3);
    let probes = 200_000usize;
    let mut rng = common::Rng::new(3);
    let present: Vec<ChunkId> = (0..probes).map(|_| id(rng.next_u64() % n as u64)).collect();
    let absent: Vec<ChunkId> = (0..probes).map(|i| id(n as u64 + i as u64)).collect();
    for (what, ids) in [("present", &present), ("absent", &absent)] {
        let (_, one) = time(|| ids.iter().filter(|i| index.get(i).unwrap().is_some()).count());
        let (_, many) = time(|| ids.chunks(64).map(|c| index.get_many(c).unwrap().len()).sum::<usize>());
        println!(
            "| index lookup at {n} entries, {what} ids: one by one / batches of 64 | {:.2} / {:.2} µs per id |",
            one * 1e6 / probes as f64,
            many * 1e6 / probes as f64
        );
    }
    let on_disk: u64 = walk_bytes(dir.path());
    println!("| index size at {n} entries | {:.0} MB on disk |", on_disk as f64 / 1e6);
}

fn walk_bytes(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk_bytes(&e.path()),
                    _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Per-core throughput of the CPU stages on `file`'s first 256 MiB (page cache warm), as one
/// JSON object: what the write path costs per byte, whatever the disk.
fn ceilings(file: &str) {
    let data = std::fs::read(file).unwrap();
    let data = &data[..data.len().min(256 << 20)];
    let params = ChunkerParams::default();
    let level = cairn::repo::DEFAULT_COMPRESSION_LEVEL;
    let (cuts, chunk_secs) = time(|| params.cut_all(data));
    let chunks: Vec<&[u8]> = cuts.iter().map(|(o, l)| &data[*o..o + l]).collect();
    let (_, hash_secs) = time(|| chunks.iter().map(|c| ChunkId::of(c).as_bytes()[0] as u64).sum::<u64>());
    let (stored, zstd_secs) = time(|| chunks.iter().map(|c| encode_blob(c, level).unwrap().bytes.len()).sum::<usize>());
    let blobs: Vec<_> = chunks.iter().map(|c| encode_blob(c, level).unwrap()).collect();
    let (_, unzstd_secs) = time(|| {
        blobs
            .iter()
            .zip(&chunks)
            .map(|(b, c)| match b.codec {
                Codec::Zstd => zstd::bulk::decompress(&b.bytes, c.len()).unwrap().len(),
                Codec::Raw => b.bytes.len(),
            })
            .sum::<usize>()
    });
    let mb = |secs: f64| mb_per_s(data.len(), secs);
    println!(
        "{{\"bytes\": {}, \"fastcdc_blake3_mb_s\": {:.0}, \"zstd_mb_s\": {:.0}, \"zstd_level\": {level}, \
         \"ratio\": {:.3}, \"write_path_mb_s\": {:.0}, \"unzstd_blake3_mb_s\": {:.0}}}",
        data.len(),
        mb(chunk_secs + hash_secs),
        mb(zstd_secs),
        data.len() as f64 / stored as f64,
        mb(chunk_secs + hash_secs + zstd_secs),
        mb(unzstd_secs + hash_secs),
    );
}
