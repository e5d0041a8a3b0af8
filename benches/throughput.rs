//! Throughput of each pipeline stage and of whole snapshots and restores, in MB/s.
//!
//! `cargo bench --bench throughput` (CAIRN_BENCH_MB sets the corpus size, default 512;
//! CAIRN_BENCH_ENCRYPTION=none for an unencrypted repository, else encrypted with the
//! cheapest KDF: one KDF run per open is not what this measures).
//! Results and the machine they came from are recorded in `docs/performance.md`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use cairn::chunker::ChunkerParams;
use cairn::ops::{self, BackupOptions, RestoreOptions};
use cairn::pack::encode_blob;
use cairn::progress::NoProgress;
use cairn::repo::{Access, IndexKind, InitOptions, Repository, SnapshotSpec};
use cairn::ChunkId;
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
    let mb: usize = std::env::var("CAIRN_BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
    let mut rng = common::Rng::new(42);
    let events = rng.events(mb << 20);
    let random = rng.bytes(64 << 20);
    let params = ChunkerParams::default();
    println!(
        "corpus: {mb} MiB of JSON-like event records, 64 MiB of random bytes; {} threads",
        rayon::current_num_threads()
    );
    println!("| stage | MB/s |");
    println!("|---|---|");

    let (cuts, secs) = time(|| params.cut_all(&events));
    println!("| FastCDC chunking (1 core) | {:.0} |", mb_per_s(events.len(), secs));
    let (_, secs) = time(|| cuts.iter().fold(0u8, |acc, (o, l)| acc ^ ChunkId::of(&events[*o..o + l]).as_bytes()[0]));
    println!("| BLAKE3 of chunks (1 core) | {:.0} |", mb_per_s(events.len(), secs));
    let (_, secs) =
        time(|| cuts.par_iter().map(|(o, l)| ChunkId::of(&events[*o..o + l]).as_bytes()[0]).reduce(|| 0, |a, b| a ^ b));
    println!("| BLAKE3 of chunks (all cores) | {:.0} |", mb_per_s(events.len(), secs));
    for level in [1, 3, 6] {
        let (stored, secs) = time(|| {
            cuts.par_iter().map(|(o, l)| encode_blob(&events[*o..o + l], level).unwrap().bytes.len()).sum::<usize>()
        });
        println!(
            "| zstd level {level} (all cores, ratio {:.2}) | {:.0} |",
            events.len() as f64 / stored as f64,
            mb_per_s(events.len(), secs)
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (i, part) in events.chunks(64 << 20).enumerate() {
        common::write_file(&data.join(format!("seg-{i:04}.log")), part);
    }
    common::write_file(&data.join("random.bin"), &random);
    let total = events.len() + random.len();
    let repo_path = dir.path().join("repo");
    let encrypted = std::env::var("CAIRN_BENCH_ENCRYPTION").map_or(true, |v| v != "none");
    println!("encryption: {}", if encrypted { "aes-256-gcm" } else { "none" });
    let encryption = if encrypted { common::test_encryption() } else { None };
    Repository::init_local(&repo_path, &InitOptions { encryption, ..InitOptions::default() }).unwrap();
    let keys = common::test_keys();
    let repo = Repository::open_local_with(&repo_path, Access::Write, IndexKind::Persistent, &keys).unwrap();
    let opts = BackupOptions { paths: vec![data.clone()], ..Default::default() };
    let (report, secs) = time(|| ops::backup(&repo, &opts, &NoProgress).unwrap());
    println!(
        "| snapshot create, first (page cache warm; {} stored) | {:.0} |",
        report.snapshot.summary.bytes_stored,
        mb_per_s(total, secs)
    );
    let (_, secs) = time(|| ops::backup(&repo, &opts, &NoProgress).unwrap());
    println!("| snapshot create, unchanged ({:.3} s) | - |", secs);
    drop(repo);
    let repo = Repository::open_local_with(&repo_path, Access::Read, IndexKind::Persistent, &keys).unwrap();
    let (id, snap) = repo.resolve_snapshot(&SnapshotSpec::Latest).unwrap();
    let target = dir.path().join("restored");
    let ropts = RestoreOptions { target, ..Default::default() };
    let (_, secs) = time(|| ops::restore(&repo, &id, &snap, &ropts, &NoProgress).unwrap());
    println!("| restore | {:.0} |", mb_per_s(total, secs));
    drop(repo);
    let audit = Repository::open_local_for_audit(&repo_path, IndexKind::Persistent, &keys).unwrap();
    let copts = ops::CheckOptions { read_data: ops::ReadData::All };
    let (report, secs) = time(|| ops::check(&audit, &copts, &NoProgress).unwrap());
    assert!(report.findings.is_empty());
    println!(
        "| repo check --read-data ({} MB of packs read) | {:.0} (of packs), {:.0} (of data) |",
        report.stats.bytes_read / 1_000_000,
        mb_per_s(report.stats.bytes_read as usize, secs),
        mb_per_s(total, secs)
    );
    let copts = ops::CheckOptions::default();
    let (_, secs) = time(|| ops::check(&audit, &copts, &NoProgress).unwrap());
    println!("| repo check, structural ({secs:.3} s) | - |");
}
