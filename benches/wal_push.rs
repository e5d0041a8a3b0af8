//! Latency of `cairn wal push` of a 16 MiB WAL segment, as PostgreSQL's archive_command runs
//! it: a whole process (start, open the repository and index, chunk, store, fsync, record).
//! `cargo bench --bench wal_push`; results in `docs/performance.md`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Instant;

const SEGMENT: usize = 16 << 20;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let cairn = env!("CARGO_BIN_EXE_cairn");
    let run = |args: &[&str]| {
        let o = Command::new(cairn).arg("--repo").arg(&repo).args(args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run(&["init"]);
    // A repository that already holds data (about 40 packs), so opening it is not free.
    let mut rng = common::Rng::new(1);
    let data = dir.path().join("data");
    for i in 0..4 {
        common::write_file(&data.join(format!("seg-{i}")), &rng.bytes(160 << 20));
    }
    run(&["snapshot", "create", "--quiet", data.to_str().unwrap()]);
    let wal = dir.path().join("pg_wal");
    let mut times = Vec::new();
    for i in 0..20 {
        // PostgreSQL WAL: records (compressible) up to the switch point, zeros after it.
        let mut seg = rng.events(SEGMENT * 3 / 4);
        seg.resize(SEGMENT, 0);
        let path = wal.join(format!("0000000100000000000000{i:02X}"));
        common::write_file(&path, &seg);
        let t = Instant::now();
        run(&["wal", "push", "--quiet", path.to_str().unwrap()]);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "wal push of a 16 MiB segment (20 runs, process start to exit): min {:.0} ms, median {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        times[0],
        times[times.len() / 2],
        times[times.len() * 9 / 10],
        times[times.len() - 1]
    );
}
