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
