//! Private by default: under umask 022 every file of a repository (objects, locks, the RocksDB
//! index) is 0600 and every directory 0700; passwords in URLs never reach a message; without S3
//! credentials cairn says which to set, at once, instead of probing the EC2 metadata endpoint.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{write_file, Rng};

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Every entry under `dir` (itself included) whose mode lets others in.
fn open_to_others(dir: &Path, out: &mut Vec<String>) {
    let meta = std::fs::symlink_metadata(dir).unwrap();
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        out.push(format!("{} {mode:o}", dir.display()));
    }
    if meta.is_dir() {
        for e in std::fs::read_dir(dir).unwrap() {
            open_to_others(&e.unwrap().path(), out);
        }
    }
}

#[test]
fn repository_and_index_files_are_private_under_umask_022() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, data) = (dir.path().join("repo"), dir.path().join("data"));
    write_file(&data.join("a"), &Rng::new(5).bytes(3 << 20));
    write_file(&data.join("wal1"), &Rng::new(6).bytes(100_000));
    let script = "set -e; umask 022; c=\"$CAIRN\"; \"$c\" init; \"$c\" snapshot create \"$DATA\"; \
                  \"$c\" wal push \"$DATA/wal1\"; \"$c\" forget --keep-last 1 --prune; \"$c\" repo check; \
                  \"$c\" repo repair index";
    let o = Command::new("sh")
        .envs(common::TEST_ENV)
        .args(["-c", script])
        .env("CAIRN", env!("CARGO_BIN_EXE_cairn"))
        .env("CAIRN_REPO", &repo)
        .env("DATA", &data)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(repo.join("index").join("CURRENT").is_file());
    let mut open = Vec::new();
    open_to_others(&repo, &mut open);
    assert!(open.is_empty(), "readable by others under umask 022:\n{}", open.join("\n"));
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn cairn_without_aws_env() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.env("HOME", std::env::temp_dir()).env("CAIRN_CACHE_DIR", std::env::temp_dir().join("cairn-private-test"));
    c
}

#[test]
fn passwords_in_urls_never_reach_a_message() {
    let endpoint = format!("http://minio:endpoint-pw-42@127.0.0.1:{}", closed_port());
    let o = cairn_without_aws_env()
        .args(["--repo", "s3://AKIAEXAMPLE:url-secret-17@bucket/prefix", "--s3-endpoint", &endpoint])
        .args(["snapshot", "list"])
        .output()
        .unwrap();
    let out = text(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(!out.contains("url-secret-17") && !out.contains("endpoint-pw-42"), "a secret was printed: {out}");
    // A message that names the URL shows it redacted.
    let o = cairn_without_aws_env()
        .args(["--repo", "s3://AKIAEXAMPLE:url-secret-17@", "snapshot", "list"])
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("s3://AKIAEXAMPLE:***@") && !out.contains("url-secret-17"), "{out}");
}

#[test]
fn no_s3_credentials_says_what_to_set_at_once() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let t = Instant::now();
    let o = cairn_without_aws_env()
        .args(["--repo", "s3://bucket/prefix", "--s3-endpoint", &endpoint, "snapshot", "list"])
        .output()
        .unwrap();
    let took = t.elapsed();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("no S3 credentials") && out.contains("AWS_ACCESS_KEY_ID"), "{out}");
    assert!(out.contains("AWS_EC2_METADATA_DISABLED=false"), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}
