//! What the average chunk size costs on the two kinds of data cairn is for, to choose the
//! repository default (recorded in `docs/chunk-size.md`).
//!
//! (a) append-only segments: 4 × 32 MiB of event records, then 6 "hours" each appending 8 MiB
//!     (the active segment grows, full ones are sealed);
//! (b) a 128 MiB database-like file of 8 KiB pages, then 3 "hours" each rewriting 2% of the
//!     pages in place.
//! For each size: bytes stored by the first snapshot, the hourly growth, chunks (index
//! entries) and first-snapshot throughput. `cargo bench --bench chunk_size`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use cairn::chunker::ChunkerParams;
use cairn::ops::{self, BackupOptions};
use cairn::progress::NoProgress;
use cairn::repo::{Access, IndexKind, InitOptions, Repository};

const SEGMENT: usize = 32 << 20;
const PAGE: usize = 8192;

struct Outcome {
    first_stored: u64,
    hourly_growth: Vec<u64>,
    chunks: u64,
    first_mb_s: f64,
}

fn snapshot(repo_path: &Path, data: &Path) -> Snap {
    let repo = Repository::open_local(repo_path, Access::Write, IndexKind::Memory).unwrap();
    let t = Instant::now();
    let opts = BackupOptions { paths: vec![data.to_path_buf()], ..Default::default() };
    let r = ops::backup(&repo, &opts, &NoProgress).unwrap();
    let s = r.snapshot.summary;
    (s.bytes_stored, s.chunks_added, s.bytes_read as f64 / 1e6 / t.elapsed().as_secs_f64())
}

/// (bytes stored, chunks added, MB/s) of one snapshot.
type Snap = (u64, u64, f64);

fn run(avg: u32, scenario: &dyn Fn(&Path, &mut dyn FnMut() -> Snap)) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let repo_path = dir.path().join("repo");
    let chunker = ChunkerParams { min_bytes: avg / 4, avg_bytes: avg, max_bytes: avg * 4, seed: 0 };
    Repository::init_local(&repo_path, &InitOptions { chunker, ..Default::default() }).unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    let mut results = Vec::new();
    scenario(&data, &mut || {
        let r = snapshot(&repo_path, &data);
        results.push(r);
        r
    });
    Outcome {
        first_stored: results[0].0,
        hourly_growth: results[1..].iter().map(|r| r.0).collect(),
        chunks: results.iter().map(|r| r.1).sum(),
        first_mb_s: results[0].2,
    }
}

fn segments(data: &Path, snap: &mut dyn FnMut() -> Snap) {
    let mut rng = common::Rng::new(5);
    for i in 0..4 {
        fs::write(data.join(format!("seg-{i}")), rng.events(SEGMENT)).unwrap();
    }
    let (mut active, mut len) = (4, 0usize);
    snap();
    for _ in 0..6 {
        let mut left = 8 << 20;
        while left > 0 {
            let n = left.min(SEGMENT - len);
            let mut f = OpenOptions::new().create(true).append(true).open(data.join(format!("seg-{active}"))).unwrap();
            f.write_all(&rng.events(n)).unwrap();
            left -= n;
            len += n;
            if len == SEGMENT {
                active += 1;
                len = 0;
            }
        }
        snap();
    }
}

fn database(data: &Path, snap: &mut dyn FnMut() -> Snap) {
    let mut rng = common::Rng::new(9);
    let pages = (128 << 20) / PAGE;
    let file = data.join("table.db");
    fs::write(&file, rng.events(pages * PAGE)).unwrap();
    snap();
    let f = OpenOptions::new().write(true).open(&file).unwrap();
    for _ in 0..3 {
        for _ in 0..pages / 50 {
            let p = rng.below(pages as u64);
            f.write_all_at(&rng.events(PAGE), p * PAGE as u64).unwrap();
        }
        f.sync_all().unwrap();
        snap();
    }
}

fn main() {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!("| avg chunk | (a) first stored MiB | (a) mean hourly MiB (8 MiB appended) | (a) chunks | (a) MB/s | (b) first stored MiB | (b) mean hourly MiB (2% of pages) | (b) chunks |");
    println!("|---|---|---|---|---|---|---|---|");
    for avg in [16u32 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 1 << 20] {
        let a = run(avg, &segments);
        let b = run(avg, &database);
        let mean = |v: &[u64]| mib(v.iter().sum::<u64>()) / v.len() as f64;
        println!(
            "| {} KiB | {:.1} | {:.2} | {} | {:.0} | {:.1} | {:.2} | {} |",
            avg >> 10,
            mib(a.first_stored),
            mean(&a.hourly_growth),
            a.chunks,
            a.first_mb_s,
            mib(b.first_stored),
            mean(&b.hourly_growth),
            b.chunks
        );
    }
}
