//! A repository holding more than 5 million chunks, and the peak memory of the real binary on
//! it: the index must stay on disk (RocksDB with a bounded cache), never in memory.
//!
//!     cargo bench --bench big_repo          # ~15 GB of disk under $CAIRN_BENCH_DIR or /var/tmp
//!
//! How the repository is built: `init --chunk-kib 1` (chunks of 256 B..4 KiB, ~1 KiB on
//! average) and a first snapshot of 100 files × 64 MiB of generated event records, all
//! distinct, which gives ~5.5 million chunks (1.2 KiB on average) (the same count at the default
//! 32 KiB chunks would need ~170 GB of data). Then, each with peak RSS from `/usr/bin/time`:
//! a snapshot of 256 MiB of new data (every chunk looked up in the 5.5 M-entry index), an
//! unchanged re-snapshot, a restore of the whole 6.4 GB snapshot, and a structural check. The
//! run fails if any step exceeds 300 MiB. Results are recorded in `docs/performance.md`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;

const FILES: usize = 100;
const FILE_BYTES: usize = 64 << 20;
const LIMIT_MIB: f64 = 300.0;

/// Runs the binary under `/usr/bin/time`; returns (seconds, peak RSS in MiB, stdout).
fn cairn(repo: &Path, args: &[&str]) -> (f64, f64, String) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%e %M", env!("CARGO_BIN_EXE_cairn"), "--repo"])
        .arg(repo)
        .args(args)
        .output()
        .expect("run /usr/bin/time (Debian package `time`)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cairn {args:?} failed: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    let mut fields = last.split_whitespace();
    let secs: f64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let kib: f64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (secs, kib / 1024.0, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn main() {
    let base = std::env::var("CAIRN_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into());
    let dir = tempfile::tempdir_in(base).unwrap();
    let (data, fresh, repo, target) =
        (dir.path().join("data"), dir.path().join("fresh"), dir.path().join("repo"), dir.path().join("restored"));
    let mut rng = common::Rng::new(5);
    for i in 0..FILES {
        common::write_file(&data.join(format!("seg-{i:03}.log")), &rng.events(FILE_BYTES));
    }
    common::write_file(&fresh.join("new.log"), &rng.events(256 << 20));
    cairn(&repo, &["init", "--chunk-kib", "1"]);
    println!("| step | time | peak RSS |");
    println!("|---|---|---|");
    let mut worst: f64 = 0.0;
    let mut row = |what: &str, (secs, mib, _): (f64, f64, String)| {
        println!("| {what} | {secs:.1} s | {mib:.0} MiB |");
        worst = worst.max(mib);
    };
    let first = cairn(&repo, &["snapshot", "create", "--json", data.to_str().unwrap()]);
    let summary: serde_json::Value = serde_json::from_str(&first.2).unwrap();
    let chunks = summary["summary"]["chunks_added"].as_u64().unwrap();
    assert!(chunks >= 5_000_000, "only {chunks} chunks");
    row(&format!("first snapshot: {} MiB into {chunks} chunks", (FILES * FILE_BYTES) >> 20), first);
    row(
        "snapshot of 256 MiB of new data (lookups in the full index)",
        cairn(&repo, &["snapshot", "create", fresh.to_str().unwrap()]),
    );
    row("unchanged re-snapshot of the big tree", cairn(&repo, &["snapshot", "create", data.to_str().unwrap()]));
    let list = cairn(&repo, &["snapshot", "list", "--json"]).2;
    let snaps: serde_json::Value = serde_json::from_str(&list).unwrap();
    let big = snaps.as_array().unwrap().iter().rev().find(|s| s["summary"]["files"].as_u64() == Some(FILES as u64));
    let big = big.expect("the big snapshot is listed")["id"].as_str().unwrap().to_string();
    row(
        &format!("restore of the {} MiB snapshot", (FILES * FILE_BYTES) >> 20),
        cairn(&repo, &["restore", &big, "--target", target.to_str().unwrap()]),
    );
    row("repo check (structural)", cairn(&repo, &["repo", "check"]));
    let index_bytes = walk_bytes(&repo.join("index"));
    println!("\nindex on disk: {} MB; peak RSS of any step: {worst:.0} MiB", index_bytes / 1_000_000);
    assert!(worst < LIMIT_MIB, "a step used {worst:.0} MiB, over the {LIMIT_MIB} MiB bound");
}

fn walk_bytes(p: &Path) -> u64 {
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
