//! The AOF check on a hand-made AOF directory, deterministically: the races it guards against
//! (a rewrite between reading the manifest and the snapshot record, a read during a write) are
//! too rare to rely on a live server to produce them.

use std::fs;

use super::*;
use crate::ops::backup::consistent::Check;
use crate::progress::NoProgress;
use crate::repo::{Access, IndexKind, InitOptions, KeySource};

const MANIFEST: &str = "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n";
const SET: &[u8] = b"*3\r\n$3\r\nSET\r\n$5\r\nseq:1\r\n$1\r\n1\r\n";

struct Fixture {
    _dir: tempfile::TempDir,
    data: PathBuf,
    repo: Repository,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("data/appendonlydir")).unwrap();
    // Snapshot paths are symlink-resolved; the check looks files up by such paths.
    let data = dir.path().join("data").canonicalize().unwrap();
    let aof = data.join("appendonlydir");
    fs::write(aof.join("appendonly.aof.1.base.rdb"), b"REDIS0011 base").unwrap();
    fs::write(aof.join("appendonly.aof.1.incr.aof"), SET).unwrap();
    fs::write(aof.join("appendonly.aof.manifest"), MANIFEST).unwrap();
    let path = dir.path().join("repo");
    Repository::init_local(&path, &InitOptions::default()).unwrap();
    let repo = Repository::open_local_with(&path, Access::Write, IndexKind::Memory, &KeySource::default()).unwrap();
    Fixture { _dir: dir, data, repo }
}

impl Fixture {
    fn state(&self) -> AofState {
        manifest_at(self.data.join("appendonlydir"), "appendonly.aof").unwrap()
    }

    /// A snapshot of the data directory with the AOF check of `state` on attempt `last`.
    fn snapshot(&self, state: &AofState, last: bool) -> Result<BackupReport> {
        let verify = |d: &Draft<'_>| verify_aof(state, d, last);
        let checks: [Check<'_>; 1] = [&verify];
        let opts = BackupOptions { paths: vec![self.data.clone()], ..Default::default() };
        backup_checked(&self.repo, &opts, None, &checks, &NoProgress)
    }

    fn snapshot_count(&self) -> usize {
        self.repo.snapshots().unwrap().len()
    }

    fn aof(&self, name: &str) -> PathBuf {
        self.data.join("appendonlydir").join(name)
    }
}

fn inconsistent(r: Result<BackupReport>) -> String {
    match r {
        Err(Error::Inconsistent(why)) => why,
        other => panic!("expected an inconsistent attempt, got {other:?}"),
    }
}

#[test]
fn an_unchanged_manifest_with_every_file_stored_passes() {
    let f = fixture();
    let report = f.snapshot(&f.state(), false).unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(f.snapshot_count(), 1);
}

/// A rewrite that ended between the manifest read and the snapshot record replaced the
/// manifest: no snapshot may be written from that attempt.
#[test]
fn a_manifest_replaced_during_the_attempt_discards_it() {
    let f = fixture();
    let state = f.state();
    fs::write(f.aof("appendonly.aof.2.base.rdb"), b"REDIS0011 new base").unwrap();
    let rewritten = "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n";
    fs::write(f.aof("appendonly.aof.manifest"), rewritten).unwrap();
    let why = inconsistent(f.snapshot(&state, true));
    assert!(why.contains("changed while the files it names were read"), "{why}");
    assert_eq!(f.snapshot_count(), 0);
}

/// Never a snapshot whose manifest names a missing file.
#[test]
fn a_named_file_missing_from_the_snapshot_discards_it() {
    let f = fixture();
    let state = f.state();
    fs::remove_file(f.aof("appendonly.aof.1.base.rdb")).unwrap();
    let why = inconsistent(f.snapshot(&state, true));
    assert!(why.contains("appendonly.aof.1.base.rdb is named by the AOF manifest but was not stored"), "{why}");
    assert_eq!(f.snapshot_count(), 0);
}

/// A last incr file read during a write ends mid-command: retried while attempts remain, kept
/// with a warning on the last one.
#[test]
fn a_torn_incr_tail_is_retried_then_kept_with_a_warning() {
    let f = fixture();
    fs::write(f.aof("appendonly.aof.1.incr.aof"), [SET, &SET[..SET.len() - 3]].concat()).unwrap();
    let state = f.state();
    let why = inconsistent(f.snapshot(&state, false));
    assert!(why.contains("ending inside a command"), "{why}");
    assert_eq!(f.snapshot_count(), 0);
    let report = f.snapshot(&state, true).unwrap();
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(report.warnings[0].contains("aof-load-truncated yes"), "{}", report.warnings[0]);
    assert_eq!(f.snapshot_count(), 1);
}

#[test]
fn names_outside_the_aof_directory_are_refused() {
    let f = fixture();
    fs::write(f.aof("appendonly.aof.manifest"), "file ../../etc/passwd seq 1 type b\n").unwrap();
    let e = manifest_at(f.data.join("appendonlydir"), "appendonly.aof").err().unwrap();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
}
