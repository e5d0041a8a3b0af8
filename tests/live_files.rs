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
