//! `cairn restore-test` through the real binary: a good snapshot passes and its validator sees
//! the restored copy; a snapshot whose pack was damaged on purpose fails, and the failure is
//! recorded in the repository where `snapshot show` and `status` show it. `repo check`
//! results are recorded the same way.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::cli::{cairn, Ran};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(180);

struct Setup {
    dir: tempfile::TempDir,
    repo: PathBuf,
    data: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (repo, data) = (dir.path().join("repo"), dir.path().join("data"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("state"), b"service state").unwrap();
    // Incompressible, so damage in the middle of a pack lands in file data.
    let noise: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(data.join("segment"), noise).unwrap();
    ok(&repo, &["init"]);
    ok(&repo, &["snapshot", "create", data.to_str().unwrap()]);
    Setup { dir, repo, data }
}

fn run(repo: &Path, args: &[&str]) -> Ran {
    cairn(repo, args, LIMIT)
}

fn ok(repo: &Path, args: &[&str]) -> Ran {
    let ran = run(repo, args);
    assert_eq!(ran.code, 0, "cairn {args:?}: {}", ran.show());
    ran
}

fn json(ran: &Ran) -> Value {
    serde_json::from_str(&ran.stdout()).unwrap_or_else(|e| panic!("{e}: {}", ran.show()))
}

/// A validator that checks the restored file and writes what it saw into `log`.
fn validator(log: &Path) -> String {
    format!(
        "test \"$(cat \"$CAIRN_RESTORE_DIR/state\")\" = 'service state' && \
         echo \"$CAIRN_RESTORE_DIR $CAIRN_SNAPSHOT_ID\" > '{}'",
        log.display()
    )
}

/// Flips bytes in the middle of every pack: file data that no longer matches its id.
fn damage_packs(repo: &Path) {
    for shard in std::fs::read_dir(repo.join("packs")).unwrap() {
        for pack in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let path = pack.unwrap().path();
            let mut bytes = std::fs::read(&path).unwrap();
            let mid = bytes.len() / 2;
            for b in &mut bytes[mid..mid + 64] {
                *b ^= 0xff;
            }
            std::fs::write(&path, bytes).unwrap();
        }
    }
}

#[test]
fn a_good_snapshot_passes_and_the_validator_sees_the_restored_copy() {
    let s = setup();
    let log = s.dir.path().join("seen");
    let scratch = s.dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let args = ["restore-test", "latest", "--hook-shell", "--scratch", scratch.to_str().unwrap(), "--json"];
    let ran = ok(&s.repo, &[&args[..], &["--verify", &validator(&log)]].concat());
    let report = json(&ran);
    assert_eq!(report["success"], true, "{}", ran.show());
    let seen = std::fs::read_to_string(&log).unwrap();
    let (dir, id) = seen.trim().split_once(' ').unwrap();
    assert_eq!(id, report["snapshot"].as_str().unwrap());
    assert_eq!(dir, report["restore_dir"].as_str().unwrap());
    assert!(dir.starts_with(scratch.to_str().unwrap()), "{dir}");
    assert!(!Path::new(dir).exists(), "the scratch copy is deleted afterwards");
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0, "nothing left in the scratch directory");

    let show = json(&ok(&s.repo, &["snapshot", "show", "latest", "--json"]));
    let tests = show["restore_tests"].as_array().unwrap();
    assert_eq!(tests.len(), 1, "{show}");
    assert_eq!(tests[0]["success"], true);
    let status = json(&ok(&s.repo, &["status", "--json"]));
    assert_eq!(status["sources"][0]["last_restore_test"]["success"], true, "{status}");
    let _ = &s.data;
}

#[test]
fn keep_leaves_the_restored_copy_in_place() {
    let s = setup();
    let ran = ok(&s.repo, &["restore-test", "latest", "--keep", "--json", "--verify", "true"]);
    let dir = PathBuf::from(json(&ran)["restore_dir"].as_str().unwrap());
    assert_eq!(std::fs::read(dir.join("state")).unwrap(), b"service state");
    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}

#[test]
fn a_failing_validator_fails_the_test_and_is_recorded() {
    let s = setup();
    let ran = run(&s.repo, &["restore-test", "latest", "--verify", "false"]);
    assert_eq!(ran.code, 1, "{}", ran.show());
    assert!(ran.stderr.contains("restore test failed"), "{}", ran.show());
    assert!(ran.stderr.contains("verify hook `false` exited with 1"), "{}", ran.show());
    let status = json(&ok(&s.repo, &["status", "--json"]));
    assert_eq!(status["sources"][0]["last_restore_test"]["success"], false, "{status}");
}

#[test]
fn a_damaged_pack_fails_the_test_and_the_failure_is_recorded_and_shown() {
    let s = setup();
    damage_packs(&s.repo);
    let log = s.dir.path().join("seen");
    let ran = run(&s.repo, &["restore-test", "latest", "--json", "--hook-shell", "--verify", &validator(&log)]);
    assert_eq!(ran.code, 1, "{}", ran.show());
    let report = json(&ran);
    assert_eq!(report["success"], false);
    assert!(report["verify"].is_null(), "the validator does not run on an incomplete copy: {report}");
    assert!(!log.exists());
    // Depending on where the damage lands: a tree that cannot be read, or file data.
    let detail = report["detail"].as_str().unwrap();
    assert!(detail.contains("restore failed") || detail.contains("could not be restored"), "{report}");

    let show = run(&s.repo, &["snapshot", "show", "latest"]);
    assert!(show.stdout().contains("restore test FAILED"), "{}", show.show());
    let shown = json(&ok(&s.repo, &["snapshot", "show", "latest", "--json"]));
    assert_eq!(shown["restore_tests"][0]["success"], false, "{shown}");
    let status = json(&ok(&s.repo, &["status", "--json"]));
    let test = &status["sources"][0]["last_restore_test"];
    assert_eq!(test["success"], false, "{status}");
    assert_eq!(test["snapshot"], report["snapshot"]);
    let text = ok(&s.repo, &["status"]).stdout();
    assert!(text.contains("restore test    FAILED"), "{text}");
}

#[test]
fn check_results_are_recorded_for_status() {
    let s = setup();
    let status = json(&ok(&s.repo, &["status", "--json"]));
    assert!(status["last_check"].is_null(), "{status}");
    ok(&s.repo, &["repo", "check", "--read-data"]);
    let status = json(&ok(&s.repo, &["status", "--json"]));
    assert_eq!(status["last_check"]["success"], true, "{status}");
    assert_eq!(status["last_check"]["command"], "read-data");
    assert!(status["last_check"]["bytes"].as_u64().unwrap() > 0, "{status}");
    damage_packs(&s.repo);
    let ran = run(&s.repo, &["repo", "check", "--read-data"]);
    assert_eq!(ran.code, 4, "{}", ran.show());
    let status = json(&ok(&s.repo, &["status", "--json"]));
    assert_eq!(status["last_check"]["success"], false, "{status}");
}

#[test]
fn a_damaged_run_record_is_reported_by_check() {
    let s = setup();
    ok(&s.repo, &["restore-test", "latest", "--verify", "true"]);
    let dir = s.repo.join("records/restore-test");
    let record = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&record).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&record, bytes).unwrap();
    let ran = run(&s.repo, &["repo", "check"]);
    assert_eq!(ran.code, 4, "{}", ran.show());
    assert!(ran.stdout().contains("run record records/restore-test/"), "{}", ran.show());
}

#[test]
fn a_failed_snapshot_is_recorded_for_its_source() {
    let s = setup();
    let ran = run(&s.repo, &["snapshot", "create", s.data.to_str().unwrap(), "--pre", "false"]);
    assert_eq!(ran.code, 1, "{}", ran.show());
    let status = json(&ok(&s.repo, &["status", "--json"]));
    let source = &status["sources"][0];
    assert!(source["last_failure"]["detail"].as_str().unwrap().contains("pre hook"), "{status}");
    assert_eq!(status["sources"].as_array().unwrap().len(), 1, "the failure joins its source: {status}");
}

#[test]
fn records_are_bounded_per_source() {
    let s = setup();
    for _ in 0..22 {
        ok(&s.repo, &["restore-test", "latest", "--verify", "true", "--quiet"]);
    }
    let kept = std::fs::read_dir(s.repo.join("records/restore-test")).unwrap().count();
    assert_eq!(kept, cairn::repo::RUNS_KEPT_PER_SOURCE, "the oldest beyond the bound are deleted");
    let status = json(&ok(&s.repo, &["status", "--json"]));
    assert_eq!(status["sources"][0]["last_restore_test"]["success"], true, "{status}");
}
