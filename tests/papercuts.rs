//! Small things a new user hits in the first hour (issue 18, "Papercuts"), each through the
//! real binary.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::cairn;

const LIMIT: Duration = Duration::from_secs(120);

/// `cairn ls ID | head -2`: the reader closes the pipe after two lines. cairn used to panic
/// ("failed printing to stdout: Broken pipe", exit 101); it must stop quietly with exit 0.
#[test]
fn a_reader_that_stops_early_ends_the_listing_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, data) = (dir.path().join("repo"), dir.path().join("data"));
    // Far more than a pipe buffer (64 KiB) of `ls` lines, so writes go on after the close.
    for d in 0..20 {
        let sub = data.join(format!("directory-with-a-long-name-{d:03}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..150 {
            std::fs::write(sub.join(format!("file-with-a-long-name-{f:04}")), b"x").unwrap();
        }
    }
    for args in [&["init"][..], &["snapshot", "create", data.to_str().unwrap()]] {
        let ran = cairn(&repo, args, LIMIT);
        assert_eq!(ran.code, 0, "{args:?}: {}", ran.show());
    }
    for command in [&["ls", "latest"][..], &["--json", "ls", "latest"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .envs(common::TEST_ENV)
            .arg("--repo")
            .arg(&repo)
            .args(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for _ in 0..2 {
            lines.next().unwrap().unwrap();
        }
        drop(lines);
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > LIMIT {
                let _ = child.kill();
                panic!("cairn {command:?} did not end after its reader went away");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(0), "{command:?}: stderr: {stderr}");
        assert!(stderr.is_empty(), "{command:?}: nothing on stderr, got: {stderr}");
    }
}

/// `ls`: special mode bits shown, a newline or a non-UTF-8 byte in a name escaped onto one
/// line (and exact in `--json`), directories above the snapshot's path without a 1970 time,
/// and a path relative to the snapshot's own path accepted.
#[test]
fn ls_shows_modes_and_names_exactly_and_takes_relative_paths() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (repo, data) = (dir.path().join("repo"), dir.path().join("app"));
    std::fs::create_dir_all(data.join("data/svc")).unwrap();
    std::fs::write(data.join("data/svc/tool"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(data.join("data/svc/tool"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::create_dir(data.join("shared")).unwrap();
    std::fs::set_permissions(data.join("shared"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::write(data.join("two\nlines"), b"x").unwrap();
    std::fs::write(data.join(OsStr::from_bytes(b"latin1-\xe9")), b"x").unwrap();
    for args in [&["init"][..], &["snapshot", "create", data.to_str().unwrap()]] {
        let ran = cairn(&repo, args, LIMIT);
        assert_eq!(ran.code, 0, "{args:?}: {}", ran.show());
    }
    let ran = cairn(&repo, &["ls", "latest"], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    let out = ran.stdout();
    let line = |needle: &str| out.lines().find(|l| l.ends_with(needle)).unwrap_or_else(|| panic!("{needle}: {out}"));
    assert!(line("/data/svc/tool").starts_with("-rwsr-xr-x"), "{out}");
    assert!(line("/shared/").starts_with("drwxrwxrwt"), "{out}");
    assert!(line("/two\\nlines").starts_with("-rw"), "{out}");
    assert!(line("/latin1-\\xe9").starts_with("-rw"), "{out}");
    assert!(!out.contains("1970-01-01"), "directories above the snapshot path have no time: {out}");

    let ran = cairn(&repo, &["--json", "ls", "latest"], LIMIT);
    let entries: serde_json::Value = serde_json::from_str(&ran.stdout()).unwrap();
    let latin = entries.as_array().unwrap().iter().find(|e| e["path_bytes"].is_array()).expect("exact bytes");
    let exact: Vec<u8> = latin["path_bytes"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap() as u8).collect();
    assert!(exact.ends_with(b"/latin1-\xe9"), "{latin}");
    assert_eq!(out.lines().count(), entries.as_array().unwrap().len(), "one line per entry: {out}");

    let ran = cairn(&repo, &["ls", "latest", "data/svc"], LIMIT);
    assert_eq!(ran.code, 0, "a path relative to the snapshot's path: {}", ran.show());
    assert!(ran.stdout().lines().any(|l| l.ends_with("/data/svc/tool")), "{}", ran.show());

    // A snapshot argument that names no snapshot exits 1, malformed or not.
    for spec in ["0000", "zzzz"] {
        let ran = cairn(&repo, &["snapshot", "show", spec], LIMIT);
        assert_eq!(ran.code, 1, "{spec}: {}", ran.show());
    }
}

/// restic's and borg's command names work, and summaries are plain English ("1 file", not
/// "1 files"; a young temporary file kept by prune is said to be kept, and why).
#[test]
fn restic_names_work_and_summaries_read_as_english() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, data) = (dir.path().join("repo"), dir.path().join("data"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("one"), b"one file").unwrap();
    let ran = cairn(&repo, &["init"], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    let ran = cairn(&repo, &["backup", data.to_str().unwrap()], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    assert!(ran.stdout().contains("processed 1 file,"), "{}", ran.show());
    let ran = cairn(&repo, &["snapshots"], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    assert!(ran.stdout().trim_end().ends_with("\n1 snapshot"), "{}", ran.show());
    let ran = cairn(&repo, &["check"], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    assert!(ran.stdout().contains("checked 1 snapshot, "), "{}", ran.show());

    // A temporary file a writer might still be writing: prune keeps it and says so.
    std::fs::write(repo.join("packs").join(".tmp-in-progress"), b"partial").unwrap();
    let ran = cairn(&repo, &["prune"], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    let out = ran.stdout();
    assert!(out.contains("removed 0 temporary files"), "{out}");
    assert!(out.contains("kept 1 temporary file younger than an hour"), "{out}");
    assert!(!out.contains("did "), "{out}");
}
