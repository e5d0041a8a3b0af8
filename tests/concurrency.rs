//! Regression tests for races between processes sharing a repository, each reduced to one
//! deterministic order of events (the soak test, `soak.rs`, runs them for real, at random).

mod common;

use std::fs;

use cairn::ops::{self, CheckOptions, Severity};
use cairn::progress::NoProgress;
use cairn::repo::{Access, IndexKind, Repository};
use common::{generate_tree, TestRepo};

/// Two writers of the same paths: the other one's snapshot, published after this process
/// synced its index, is this one's parent; its trees are in packs this process does not know.
#[test]
fn a_writer_reads_a_tree_published_after_it_synced() {
    let repo = TestRepo::new(IndexKind::Memory);
    let src = repo.dir.path().join("src");
    generate_tree(&src, 1, 50_000);
    let early = repo.open(Access::Write);
    let other = repo.snapshot(&[&src]);
    let tree = early.load_tree(&other.snapshot.root).expect("a second look finds the tree");
    assert!(!tree.nodes.is_empty());
}

/// A snapshot written while `repo check` runs names trees in packs the audit did not sync.
#[test]
fn check_beside_a_writer_reports_no_damage() {
    let repo = TestRepo::new(IndexKind::Memory);
    let src = repo.dir.path().join("src");
    generate_tree(&src, 2, 50_000);
    repo.snapshot(&[&src]);
    let audit = Repository::open_local_for_audit(&repo.path(), IndexKind::Memory, &repo.keys()).unwrap();
    generate_tree(&src.join("more"), 3, 50_000);
    repo.snapshot(&[&src]);
    let report = ops::check(&audit, &CheckOptions::default(), &NoProgress).unwrap();
    assert!(!report.damage_found(), "{:#?}", report.findings);
    assert_eq!(report.stats.snapshots, 2);
}

/// A pack removed by a prune that ran while another process held the index stays named by
/// the shared index until that process syncs: not damage when nothing needs it.
#[test]
fn a_pack_the_index_still_names_but_nothing_needs_is_a_warning() {
    let repo = TestRepo::new(IndexKind::Persistent);
    let (kept, gone) = (repo.dir.path().join("kept"), repo.dir.path().join("gone"));
    generate_tree(&kept, 4, 50_000);
    generate_tree(&gone, 5, 50_000);
    repo.snapshot(&[&kept]);
    let packs = |r: &Repository| r.list_packs().unwrap().into_iter().map(|(id, _)| id).collect::<Vec<_>>();
    let before = packs(&repo.open(Access::Read));
    let forgotten = repo.snapshot(&[&gone]);
    // What `forget` and then a prune that was a guest leave: neither the snapshot nor its
    // packs (which hold only its new chunks), and the shared index unchanged.
    fs::remove_file(repo.path().join("snapshots").join(forgotten.id.to_hex())).unwrap();
    let removed: Vec<_> = packs(&repo.open(Access::Read)).into_iter().filter(|p| !before.contains(p)).collect();
    assert!(!removed.is_empty());
    for p in &removed {
        fs::remove_file(repo.path().join(cairn::repo::pack_key(p))).unwrap();
    }
    let audit = Repository::open_local_for_audit(&repo.path(), IndexKind::Persistent, &repo.keys()).unwrap();
    let report = ops::check(&audit, &CheckOptions::default(), &NoProgress).unwrap();
    assert!(!report.damage_found(), "{:#?}", report.findings);
    for p in &removed {
        let f = report.findings.iter().find(|f| f.object == format!("pack {p}")).expect("the pack is named");
        assert_eq!(f.severity, Severity::Warning, "{f:?}");
    }
}
