//! `snapshot create --consistent-with CMD`: CMD's output before reading and after must match,
//! else the attempt is discarded and taken again; after `--attempts` moving attempts the
//! command fails with no snapshot written.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::cli::{cairn, Ran};
use common::write_file;

const LIMIT: Duration = Duration::from_secs(120);

fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (repo, data) = (dir.path().join("repo"), dir.path().join("data"));
    write_file(&data.join("segment-1"), b"sealed segment\n");
    let init = cairn(&repo, &["init"], LIMIT);
    assert_eq!(init.code, 0, "{}", init.show());
    (dir, repo, data)
}

fn create(repo: &Path, data: &Path, extra: &[&str]) -> Ran {
    let mut args = vec!["snapshot", "create", "--json", "--hook-shell", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    cairn(repo, &args, LIMIT)
}

fn snapshot_count(repo: &Path) -> usize {
    let list = cairn(repo, &["snapshot", "list", "--json"], LIMIT);
    serde_json::from_str::<serde_json::Value>(&list.stdout()).unwrap().as_array().unwrap().len()
}

/// A shell command printing a counter that it advances on every run; `shown` maps the count
/// before the run to what is printed.
fn counter(state: &Path, shown: &str) -> String {
    let f = state.display();
    format!("n=$(cat {f} 2>/dev/null || echo 0); echo $((n+1)) > {f}; {shown}")
}

#[test]
fn a_stable_output_gives_one_attempt_and_the_command_sees_its_stage() {
    let (dir, repo, data) = setup();
    let log = dir.path().join("stages");
    let cmd = format!("echo \"$CAIRN_CONSISTENT_STAGE $CAIRN_ATTEMPT\" >> {}; echo gen-7", log.display());
    let ran = create(&repo, &data, &["--consistent-with", &cmd]);
    assert_eq!(ran.code, 0, "{}", ran.show());
    let out: serde_json::Value = serde_json::from_str(&ran.stdout()).unwrap();
    assert_eq!(out["attempts"], 1);
    assert_eq!(fs::read_to_string(&log).unwrap(), "before 1\nafter 1\n");
    assert_eq!(snapshot_count(&repo), 1);
}

#[test]
fn an_output_that_moved_once_discards_that_attempt_and_takes_the_snapshot_again() {
    let (dir, repo, data) = setup();
    // Runs print 0 (before, attempt 1), then 1 forever: attempt 1 moved, attempt 2 did not.
    let cmd = counter(&dir.path().join("n"), "if [ $n -ge 1 ]; then echo 1; else echo 0; fi");
    let ran = create(&repo, &data, &["--consistent-with", &cmd]);
    assert_eq!(ran.code, 0, "{}", ran.show());
    let out: serde_json::Value = serde_json::from_str(&ran.stdout()).unwrap();
    assert_eq!(out["attempts"], 2, "{}", ran.show());
    assert_eq!(snapshot_count(&repo), 1, "the discarded attempt wrote no snapshot");
}

#[test]
fn an_output_that_always_moves_fails_with_a_named_error_and_no_snapshot() {
    let (dir, repo, data) = setup();
    let finally = dir.path().join("finally-ran");
    let cmd = counter(&dir.path().join("n"), "echo $n");
    let touch = format!("touch {}", finally.display());
    let ran = create(&repo, &data, &["--consistent-with", &cmd, "--attempts", "3", "--finally", &touch]);
    assert_eq!(ran.code, 1, "{}", ran.show());
    assert!(ran.stderr.contains("--consistent-with output changed while the data was read"), "{}", ran.show());
    assert!(ran.stderr.contains("in each of 3 attempts: no snapshot was written"), "{}", ran.show());
    assert_eq!(fs::read_to_string(dir.path().join("n")).unwrap().trim(), "6", "3 attempts, 2 runs each");
    assert!(finally.exists(), "finally hooks run after the failure");
    assert_eq!(snapshot_count(&repo), 0);
}

#[test]
fn a_failing_command_fails_the_snapshot_at_once() {
    let (_dir, repo, data) = setup();
    let ran = create(&repo, &data, &["--consistent-with", "exit 4"]);
    assert_eq!(ran.code, 1, "{}", ran.show());
    assert!(ran.stderr.contains("consistent-with command `sh -c \"exit 4\"` exited with 4"), "{}", ran.show());
    assert_eq!(snapshot_count(&repo), 0);
}
