//! Append-aware incremental snapshots: a data dir of 24 × 256 MiB segments whose active
//! segment grew by 8 MiB. Cost must follow the 8 MiB, not the file or the directory.
//! `cargo bench --bench append` (CAIRN_BENCH_SEGMENTS, CAIRN_BENCH_SEGMENT_MIB to resize).
//! The page cache is dropped before each timed step when running as root.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use cairn::ops::{self, BackupOptions};
use cairn::progress::NoProgress;
use cairn::repo::{Access, IndexKind, InitOptions, Repository};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn drop_caches() -> bool {
    std::process::Command::new("sync").status().is_ok() && std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn snapshot(repo_path: &Path, data: &Path, append_only: bool) -> (f64, ops::BackupReport) {
    drop_caches();
    let t = Instant::now();
    let repo = Repository::open_local(repo_path, Access::Write, IndexKind::Persistent).unwrap();
    let opts = BackupOptions {
        paths: vec![data.to_path_buf()],
        append_only: if append_only { vec!["*.log".into()] } else { vec![] },
        ..Default::default()
    };
    let r = ops::backup(&repo, &opts, &NoProgress).unwrap();
    (t.elapsed().as_secs_f64(), r)
}

fn main() {
    let segments = env("CAIRN_BENCH_SEGMENTS", 24);
    let seg_mib = env("CAIRN_BENCH_SEGMENT_MIB", 256);
    let dir = tempfile::tempdir_in(std::env::var("CAIRN_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into())).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut rng = common::Rng::new(24);
    for i in 0..segments {
        // The last one is the active segment, half full.
        let len = if i + 1 == segments { seg_mib << 19 } else { seg_mib << 20 };
        let mut f = std::fs::File::create(data.join(format!("seg-{i:04}.log"))).unwrap();
        let mut left = len;
        while left > 0 {
            let n = left.min(64 << 20);
            f.write_all(&rng.events(n)).unwrap();
            left -= n;
        }
    }
    let repo_path = dir.path().join("repo");
    Repository::init_local(&repo_path, &InitOptions::default()).unwrap();
    let total = (segments * seg_mib) as f64 - seg_mib as f64 / 2.0;
    let (secs, _) = snapshot(&repo_path, &data, true);
    println!("data dir: {segments} segments of {seg_mib} MiB ({total:.0} MiB); page cache dropped: {}", drop_caches());
    println!("| step | time | bytes read | files read |");
    println!("|---|---|---|---|");
    println!("| first snapshot | {secs:.2} s ({:.0} MB/s) | all | all |", total * 1.048576 / secs);
    let active = data.join(format!("seg-{:04}.log", segments - 1));
    let grow = |rng: &mut common::Rng| {
        let mut f = std::fs::OpenOptions::new().append(true).open(&active).unwrap();
        f.write_all(&rng.events(8 << 20)).unwrap();
        f.sync_all().unwrap();
    };
    let row = |name: &str, secs: f64, r: &ops::BackupReport| {
        let s = &r.snapshot.summary;
        println!("| {name} | {secs:.3} s | {:.1} MiB | {} |", s.bytes_read as f64 / (1 << 20) as f64, s.files_read);
    };
    grow(&mut rng);
    let (secs, r) = snapshot(&repo_path, &data, true);
    row("active grew 8 MiB, --append-only '*.log'", secs, &r);
    grow(&mut rng);
    let (secs, r) = snapshot(&repo_path, &data, false);
    row("active grew 8 MiB, no append-only (full read of the active file)", secs, &r);
    let (secs, r) = snapshot(&repo_path, &data, true);
    row("unchanged", secs, &r);
}
