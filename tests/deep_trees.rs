//! Trees deeper than any stack: `repo check` (structural and read-data), `ls`, `snapshot
//! diff`, `forget --prune` and `repo copy` walk them without recursion. The repositories are
//! built with the library's encoders (a chain of directories, written bottom-up as a backup
//! would), then the real binary is run on them, and the library's walks are run on a thread
//! whose stack is far too small for a walk that recurses once per level.

mod common;

use std::time::Duration;

use cairn::ops::{self, PruneOptions};
use cairn::progress::NoProgress;
use cairn::repo::{SnapshotSpec, WriteSession};
use cairn::SnapshotId;
use common::cli::cairn;
use common::craft::{deep_chain, deep_leaf_path, Crafted};

/// Deep enough that a walk recursing once per level overflows: `repo check` did at 1,500
/// levels, and the walks below overflow [`SMALL_STACK_BYTES`] long before. (At 100,000 levels
/// each command took 8-15 s on the 2-core test machine, so this stays at 10,000; `ls` prints
/// every level's full path, so its output grows with the square of the depth: 100 MB here.)
const DEPTH: usize = 10_000;
/// Stack of the thread the library walks run on: a recursive walk needs several hundred bytes
/// a level, so 10,000 levels need megabytes.
const SMALL_STACK_BYTES: usize = 512 << 10;
const LIMIT: Duration = Duration::from_secs(300);

/// Two snapshots of a chain of [`DEPTH`] directories whose leaf changed between them.
fn two_deep_snapshots() -> (Crafted, SnapshotId, SnapshotId) {
    let c = Crafted::new();
    let (older, newer) = {
        let repo = c.open();
        let session = WriteSession::new(&repo);
        let a = deep_chain(&session, DEPTH, b"the leaf, before");
        let b = deep_chain(&session, DEPTH, b"the leaf, after!");
        session.flush().unwrap();
        (Crafted::save(&repo, a, 1_700_000_000), Crafted::save(&repo, b, 1_700_003_600))
    };
    (c, older, newer)
}

#[test]
fn a_deep_tree_checks_lists_diffs_and_prunes_through_the_binary() {
    let (c, older, newer) = two_deep_snapshots();
    let repo = c.path();
    for mode in [&["repo", "check"][..], &["repo", "check", "--read-data"]] {
        let ran = cairn(&repo, mode, LIMIT);
        assert_eq!(ran.code, 0, "{mode:?}: {}", ran.show());
        assert!(ran.stdout().contains("no problems found"), "{mode:?}: {}", ran.show());
    }

    let ran = cairn(&repo, &["ls", &newer.to_hex()], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    // `/data`, then each `d` one level deeper than the last, then the leaf.
    let mut lines = 0usize;
    let mut last = String::new();
    for (i, line) in ran.stdout_lines().enumerate() {
        let path = line.split_whitespace().last().unwrap().trim_end_matches('/').to_string();
        if i <= DEPTH {
            assert_eq!(path.len(), "/data".len() + 2 * i, "line {i} out of walk order");
        }
        lines += 1;
        last = path;
    }
    assert_eq!(lines, DEPTH + 2);
    assert_eq!(last, deep_leaf_path(DEPTH));

    let ran = cairn(&repo, &["snapshot", "diff", &older.to_hex(), &newer.to_hex()], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    let changed: Vec<String> = ran.stdout_lines().filter(|l| l.starts_with("M ")).collect();
    assert_eq!(changed.len(), 1, "{}", ran.show());
    assert!(changed[0].contains(&format!("{}  ", deep_leaf_path(DEPTH))), "{}", ran.show());

    let ran = cairn(&repo, &["forget", "--keep-last", "1", "--prune"], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    let ran = cairn(&repo, &["repo", "check", "--read-data"], LIMIT);
    assert_eq!(ran.code, 0, "after prune: {}", ran.show());
    let ran = cairn(&repo, &["snapshot", "list"], LIMIT);
    assert!(ran.stdout().contains(&newer.to_hex()[..8]), "{}", ran.show());
    assert!(!ran.stdout().contains(&older.to_hex()[..8]), "{}", ran.show());
}

/// Runs `f` on a thread with a [`SMALL_STACK_BYTES`] stack.
fn on_small_stack(f: impl FnOnce() + Send) {
    std::thread::scope(|s| {
        std::thread::Builder::new().stack_size(SMALL_STACK_BYTES).spawn_scoped(s, f).unwrap().join().unwrap();
    });
}

#[test]
fn library_walks_of_a_deep_tree_need_no_more_stack_than_a_shallow_one() {
    let (c, older, newer) = two_deep_snapshots();
    let copy = Crafted::new();
    // Into an encrypted repository the copy rewrites every tree (the re-encrypting walk).
    let encrypted = common::TestRepo::new(cairn::repo::IndexKind::Persistent);
    on_small_stack(|| {
        let repo = c.open();
        let (_, a) = repo.resolve_snapshot(&SnapshotSpec::Prefix(older.to_hex())).unwrap();
        let (_, b) = repo.resolve_snapshot(&SnapshotSpec::Prefix(newer.to_hex())).unwrap();
        let mut listed = 0;
        ops::ls(&repo, &b, None, &mut |_| {
            listed += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(listed, DEPTH + 2);
        let mut changed = Vec::new();
        ops::diff(&repo, &a, &b, &mut |e| changed.push(e.path)).unwrap();
        assert_eq!(changed, vec![deep_leaf_path(DEPTH)]);
        let dst = copy.open();
        let report = ops::copy(&repo, &dst, &NoProgress).unwrap();
        assert_eq!(report.snapshots_copied, 2);
        let report = ops::copy(&repo, &encrypted.open(cairn::repo::Access::Write), &NoProgress).unwrap();
        assert_eq!((report.mode, report.snapshots_copied), (ops::CopyMode::Reencrypt, 2));
        let plan = ops::prune(&repo, &PruneOptions::default(), &NoProgress).unwrap();
        assert_eq!(plan.snapshots, 2);
        assert!(plan.delete.is_empty() && plan.repack.is_empty(), "{plan:?}");
    });
    for repo in [copy.path(), encrypted.path()] {
        let ran = cairn(&repo, &["repo", "check", "--read-data"], LIMIT);
        assert_eq!(ran.code, 0, "the copy: {}", ran.show());
    }
}
