//! Data directories are read while their service writes them: files that grow, shrink or
//! vanish during a snapshot must never crash it, and what is stored must be what was read.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use cairn::repo::IndexKind;
use common::{write_file, Rng, TestRepo};

#[test]
fn files_growing_shrinking_and_vanishing_during_a_snapshot() {
    let repo = TestRepo::new(IndexKind::Persistent);
    let data = repo.dir.path().join("live");
    let mut rng = Rng::new(3);
    write_file(&data.join("growing.wal"), &rng.bytes(8 << 20));
    write_file(&data.join("shrinking.db"), &rng.bytes(24 << 20));
    for i in 0..200 {
        write_file(&data.join(format!("churn/{i}.tmp")), &rng.bytes(10_000));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = [0, 1, 2]
        .into_iter()
        .map(|role| {
            let (stop, data) = (stop.clone(), data.clone());
            thread::spawn(move || {
                let mut rng = Rng::new(100 + role);
                let mut rounds = 0u64;
                while !stop.load(Ordering::Relaxed) || rounds < 20 {
                    rounds += 1;
                    match role {
                        0 => {
                            let mut f = OpenOptions::new().append(true).open(data.join("growing.wal")).unwrap();
                            f.write_all(&rng.bytes(256 << 10)).unwrap();
                        }
                        1 => {
                            let f = OpenOptions::new().write(true).open(data.join("shrinking.db")).unwrap();
                            let len = f.metadata().unwrap().len();
                            f.set_len(len.saturating_sub(1 << 20).max(1 << 20)).unwrap();
                        }
                        _ => {
                            let i = rng.below(200);
                            let _ = fs::remove_file(data.join(format!("churn/{i}.tmp")));
                        }
                    }
                    thread::sleep(std::time::Duration::from_millis(2));
                }
            })
        })
        .collect();
    let mut reports = Vec::new();
    for _ in 0..3 {
        reports.push(repo.snapshot(&[&data]));
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    // Every snapshot was written; vanished files were skipped with a reason, never fatal.
    for r in &reports {
        for s in &r.skipped {
            assert!(s.path.contains("churn/"), "unexpected skip: {s:?}");
        }
    }
    // A final quiet snapshot restores exactly.
    let final_report = repo.snapshot(&[&data]);
    assert!(final_report.skipped.is_empty());
    let target = repo.dir.path().join("restored");
    let restored = repo.restore_latest(&target);
    assert!(restored.failed.is_empty(), "{:?}", restored.failed);
    common::assert_same_tree(&data, &target);
}

/// Issue #19: a file deleted between the directory listing and its read made a good snapshot
/// exit 3. It is now counted as vanished (named with --verbose) and the exit is 0.
#[test]
fn files_that_vanish_before_being_read_are_counted_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, data) = (dir.path().join("repo"), dir.path().join("data"));
    let limit = std::time::Duration::from_secs(120);
    assert_eq!(common::cli::cairn(&repo, &["init"], limit).code, 0);
    write_file(&data.join("steady.db"), b"steady\n");
    fs::create_dir_all(data.join("tmp")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Creates and deletes temp files as fast as it can, as a service's temp files come and go.
    let churn = {
        let (stop, tmp) = (stop.clone(), data.join("tmp"));
        thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let _ = fs::write(tmp.join(format!("temp-{}.rdb", i % 400)), b"half-written");
                let _ = fs::remove_file(tmp.join(format!("temp-{}.rdb", (i + 200) % 400)));
            }
        })
    };
    let mut vanished_seen = 0;
    for _ in 0..40 {
        let ran =
            common::cli::cairn(&repo, &["snapshot", "create", "--json", "--verbose", data.to_str().unwrap()], limit);
        assert_eq!(ran.code, 0, "a vanished file is not a failure: {}", ran.show());
        let out: serde_json::Value = serde_json::from_str(&ran.stdout()).unwrap();
        assert_eq!(out["skipped"].as_array().unwrap().len(), 0, "{}", ran.show());
        let paths = out["vanished_paths"].as_array().map(Vec::len).unwrap_or(0);
        assert_eq!(out["vanished"].as_u64().unwrap() as usize, paths, "--verbose names every vanished entry");
        if paths > 0 {
            assert!(ran.stderr.contains("vanished "), "{}", ran.show());
            vanished_seen += 1;
            if vanished_seen == 3 {
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    assert!(vanished_seen > 0, "no file vanished between listing and reading in 40 snapshots");
}

/// A file rewritten in place while read keeps its size: it used to be stored without a word.
/// Its mtime after reading differs, so it is named as changed while being read.
#[test]
fn a_file_rewritten_in_place_while_read_is_named_as_changed() {
    use std::os::unix::fs::FileExt;
    let repo = TestRepo::new(IndexKind::Persistent);
    let data = repo.dir.path().join("live");
    write_file(&data.join("pages.db"), &Rng::new(9).bytes(48 << 20));
    write_file(&data.join("quiet.db"), b"quiet\n");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, path) = (stop.clone(), data.join("pages.db"));
        thread::spawn(move || {
            let f = OpenOptions::new().write(true).open(path).unwrap();
            let mut rng = Rng::new(10);
            while !stop.load(Ordering::Relaxed) {
                f.write_all_at(&rng.bytes(4096), rng.below(48 << 8) * 4096).unwrap();
                thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let mut named = false;
    for _ in 0..5 {
        let opened = repo.open(cairn::repo::Access::Write);
        let opts = cairn::ops::BackupOptions { paths: vec![data.clone()], force_read: true, ..Default::default() };
        let report = cairn::ops::backup(&opened, &opts, &cairn::progress::NoProgress).unwrap();
        assert!(report.skipped.is_empty(), "{:?}", report.skipped);
        assert!(!report.changed_while_reading.iter().any(|p| p.ends_with("quiet.db")));
        if report.changed_while_reading.iter().any(|p| p.ends_with("pages.db")) {
            named = true;
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(named, "pages.db was rewritten during every read but never named as changed");
}
