//! Delta restore against a full restore into an empty directory, through the real binary:
//!
//! * (db) a 1 GiB database file of 8 KiB pages, 2% of the pages rewritten since the snapshot;
//! * (pg) the same file in a PostgreSQL data directory, so cut into aligned 32 KiB blocks;
//! * (segments) a data dir of 24 segments of 32 MiB where the newest one grew by 8 MiB.
//!
//! Each round, interleaved: a full restore into an empty directory; then the target is put
//! back into its "an hour later" state and rolled back with `--overwrite if-changed` (changed
//! files rebuilt under a temporary name, unchanged chunks copied from the old file); then aged
//! again and rolled back with `--in-place` as well (only changed chunks written). The page
//! cache is dropped before every timed step when running as root (cold, as at 3 a.m.). The
//! repository is encrypted (the default), with the tests' password.
//!
//!     cargo bench --bench delta_restore     # ~6 GB under $CAIRN_BENCH_DIR or /var/tmp
//!
//! Results are recorded in `docs/performance.md` ("Delta restore").

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const PAGE: u64 = 8192;
const DB_BYTES: u64 = 1 << 30;
const SEGMENTS: usize = 24;
const SEGMENT_BYTES: usize = 32 << 20;
const ROUNDS: usize = 3;

fn cairn(repo: &Path, args: &[&str]) -> (f64, serde_json::Value) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .envs(common::TEST_ENV)
        .arg("--repo")
        .arg(repo)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(out.status.success(), "cairn {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    (secs, serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null))
}

fn drop_caches() {
    let _ = Command::new("sync").status();
    let _ = fs::write("/proc/sys/vm/drop_caches", "3");
}

struct Case {
    name: &'static str,
    src: PathBuf,
    /// Turns a restored copy into the state "an hour later".
    age: Box<dyn Fn(&Path)>,
    bytes: u64,
}

fn main() {
    let base = std::env::var("CAIRN_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into());
    let dir = tempfile::tempdir_in(base).unwrap();
    let repo = dir.path().join("repo");
    cairn(&repo, &["init"]);
    let mut rng = common::Rng::new(21);

    let db = dir.path().join("db");
    let mut pages = Vec::with_capacity((DB_BYTES / PAGE) as usize);
    for _ in 0..DB_BYTES / PAGE {
        pages.extend_from_slice(&rng.events(PAGE as usize));
    }
    common::write_file(&db.join("base/16384/2619"), &pages);
    // The same file in a PostgreSQL data directory: cut into aligned 32 KiB blocks.
    let pg = dir.path().join("pgdata");
    common::write_file(&pg.join("base/16384/2619"), &pages);
    common::write_file(&pg.join("PG_VERSION"), b"16\n");
    drop(pages);
    let rewritten: Vec<u64> = (0..DB_BYTES / PAGE / 50).map(|_| rng.below(DB_BYTES / PAGE)).collect();
    let new_page = rng.events(PAGE as usize);

    let seg = dir.path().join("segments");
    for i in 0..SEGMENTS {
        common::write_file(&seg.join(format!("{i:08}.log")), &rng.events(SEGMENT_BYTES));
    }
    let growth = rng.events(8 << 20);

    let rewrite = move |t: &Path| {
        let f = fs::OpenOptions::new().write(true).open(t.join("base/16384/2619")).unwrap();
        for p in &rewritten {
            f.write_all_at(&new_page, p * PAGE).unwrap();
        }
    };
    let rewrite = std::rc::Rc::new(rewrite);
    let pg_rewrite = rewrite.clone();
    let cases = vec![
        Case {
            name: "db: 1 GiB file, 2% of 8 KiB pages rewritten (content-defined cuts)",
            src: db,
            bytes: DB_BYTES,
            age: Box::new(move |t: &Path| rewrite(t)),
        },
        Case {
            name: "pg: the same file in a PostgreSQL data dir (aligned 32 KiB blocks)",
            src: pg,
            bytes: DB_BYTES + 3,
            age: Box::new(move |t: &Path| pg_rewrite(t)),
        },
        Case {
            name: "segments: 24 x 32 MiB, the newest grew by 8 MiB",
            src: seg,
            bytes: (SEGMENTS * SEGMENT_BYTES) as u64,
            age: Box::new(move |t: &Path| {
                let f = fs::OpenOptions::new().append(true).open(t.join(format!("{:08}.log", SEGMENTS - 1))).unwrap();
                f.write_all_at(&growth, SEGMENT_BYTES as u64).unwrap();
            }),
        },
    ];
    println!("| case | round | full restore | delta | delta --in-place | speed-up: delta / in place | bytes read: full / delta |");
    println!("|---|---|---|---|---|---|---|");
    for case in &cases {
        let (_, snap) = cairn(&repo, &["snapshot", "create", case.src.to_str().unwrap()]);
        let id = snap["id"].as_str().unwrap().to_string();
        let aged = dir.path().join("aged");
        cairn(&repo, &["restore", &id, "--target", aged.to_str().unwrap()]);
        for round in 0..ROUNDS {
            let full = dir.path().join("full");
            let _ = fs::remove_dir_all(&full);
            drop_caches();
            let (full_s, full_r) = cairn(&repo, &["restore", &id, "--target", full.to_str().unwrap()]);
            let target = aged.to_str().unwrap();
            (case.age)(&aged);
            drop_caches();
            let (delta_s, delta_r) = cairn(&repo, &["restore", &id, "--target", target, "--overwrite", "if-changed"]);
            (case.age)(&aged);
            drop_caches();
            let (in_place_s, in_place_r) =
                cairn(&repo, &["restore", &id, "--target", target, "--overwrite", "if-changed", "--in-place"]);
            let fetched = |r: &serde_json::Value| r["bytes_fetched"].as_u64().unwrap_or(0);
            assert_eq!(fetched(&delta_r), fetched(&in_place_r));
            println!(
                "| {} | {} | {:.2} s | {:.2} s | {:.2} s | {:.1}x / {:.1}x | {} MiB / {} KiB |",
                case.name,
                round + 1,
                full_s,
                delta_s,
                in_place_s,
                full_s / delta_s,
                full_s / in_place_s,
                fetched(&full_r) >> 20,
                fetched(&delta_r) >> 10,
            );
            assert_eq!(fetched(&full_r), case.bytes);
        }
        let _ = fs::remove_dir_all(&aged);
    }
}
