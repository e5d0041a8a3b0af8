//! `snapshot create`'s exclusion options (issue 18, "Snapshot selection and content"), each
//! through the real binary: what lands in the snapshot, what is counted and named, and how a
//! bad option fails.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::cli::{cairn, Ran};

const LIMIT: Duration = Duration::from_secs(120);

/// Initializes a repository at `repo` and snapshots `data` with `opts`.
fn snapshot(repo: &Path, data: &Path, opts: &[&str]) -> Ran {
    if !repo.exists() {
        let ran = cairn(repo, &["init"], LIMIT);
        assert_eq!(ran.code, 0, "{}", ran.show());
    }
    let mut args = vec!["--json", "snapshot", "create", "-v"];
    args.extend_from_slice(opts);
    args.push(data.to_str().unwrap());
    cairn(repo, &args, LIMIT)
}

/// The paths in the latest snapshot below `data`, relative to it.
fn stored(repo: &Path, data: &Path) -> BTreeSet<String> {
    let ran = cairn(repo, &["--json", "ls", "latest"], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    let entries: serde_json::Value = serde_json::from_str(&ran.stdout()).unwrap();
    let prefix = format!("{}/", fs::canonicalize(data).unwrap().display());
    let paths = entries.as_array().unwrap().iter().filter_map(|e| e["path"].as_str());
    paths.filter_map(|p| p.strip_prefix(&prefix)).map(|p| p.trim_end_matches('/').to_string()).collect()
}

fn excluded_count(ran: &Ran) -> u64 {
    let out: serde_json::Value = serde_json::from_str(&ran.stdout()).unwrap_or_else(|_| panic!("{}", ran.show()));
    out["excluded"].as_u64().unwrap_or_else(|| panic!("no excluded count: {}", ran.show()))
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

#[test]
fn exclude_patterns_follow_restic_anchoring_and_are_counted_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, data) = (dir.path().join("repo"), dir.path().join("data"));
    for f in ["keep.txt", "a.log", "sub/b.log", "tmp/kept", "sub/tmp/gone", "abs/gone", "Old.BAK", "notes/x/y", "c.md"]
    {
        write(&data.join(f), f.as_bytes());
    }
    let list = dir.path().join("excludes.txt");
    fs::write(&list, "# comment\n\n  notes/**  \nc.md\n").unwrap();
    let abs = format!("{}/abs", fs::canonicalize(&data).unwrap().display());
    let opts = ["--exclude", "*.log", "--exclude", "sub/tmp", "-e", &abs, "--iexclude", "*.bak", "--exclude-file"];
    let mut opts = opts.to_vec();
    opts.push(list.to_str().unwrap());
    let ran = snapshot(&repo, &data, &opts);
    assert_eq!(ran.code, 0, "{}", ran.show());
    let got = stored(&repo, &data);
    let want = ["keep.txt", "sub", "tmp", "tmp/kept", "notes"];
    assert_eq!(got, want.iter().map(|s| s.to_string()).collect(), "{}", ran.show());
    // a.log, sub/b.log, sub/tmp, abs, Old.BAK, notes/x, c.md: each one entry.
    assert_eq!(excluded_count(&ran), 7, "{}", ran.show());
    for name in ["a.log", "sub/b.log", "sub/tmp", "abs", "Old.BAK", "notes/x", "c.md"] {
        assert!(ran.stderr.contains(&format!("/data/{name} (")), "{name} not named: {}", ran.show());
    }
    // Without --json the count is in the summary.
    let plain = cairn(&repo, &["snapshot", "create", "--exclude", "*.log", data.to_str().unwrap()], LIMIT);
    assert!(plain.stdout().contains("excluded 2 entries"), "{}", plain.show());
}

#[test]
fn a_bad_pattern_or_size_is_a_usage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, data) = (dir.path().join("repo"), dir.path().join("data"));
    write(&data.join("f"), b"f");
    for (opts, needle) in [
        (&["--exclude", "a[b"][..], "a[b"),
        (&["--iexclude", "{x"][..], "{x"),
        (&["--exclude-larger-than", "10Q"][..], "10Q"),
        (&["--exclude-file", "/nonexistent/excludes"][..], "/nonexistent/excludes"),
    ] {
        let ran = snapshot(&repo, &data, opts);
        assert_eq!(ran.code, 2, "{opts:?}: {}", ran.show());
        assert!(ran.stderr.contains(needle), "{opts:?}: {}", ran.show());
    }
}

#[test]
fn tagged_directories_keep_only_their_tag() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, data) = (dir.path().join("repo"), dir.path().join("data"));
    write(&data.join("private/.nobackup"), b"");
    write(&data.join("private/secret"), b"s");
    write(&data.join("private/deep/more"), b"m");
    write(&data.join("cache/CACHEDIR.TAG"), b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n");
    write(&data.join("cache/blob"), b"b");
    // Same length as the signature, so only the comparison of its bytes can tell it apart.
    write(&data.join("fake/CACHEDIR.TAG"), b"Signature: 00000000000000000000000000000000\n");
    write(&data.join("fake/blob"), b"b");
    let ran = snapshot(&repo, &data, &["--exclude-if-present", ".nobackup", "--exclude-caches"]);
    assert_eq!(ran.code, 0, "{}", ran.show());
    let want =
        ["private", "private/.nobackup", "cache", "cache/CACHEDIR.TAG", "fake", "fake/CACHEDIR.TAG", "fake/blob"];
    assert_eq!(stored(&repo, &data), want.iter().map(|s| s.to_string()).collect(), "{}", ran.show());
    assert_eq!(excluded_count(&ran), 3, "secret, deep, blob: {}", ran.show());
    assert!(ran.stderr.contains("holds CACHEDIR.TAG"), "{}", ran.show());
}

#[test]
fn files_larger_than_the_limit_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, data) = (dir.path().join("repo"), dir.path().join("data"));
    write(&data.join("small"), &[1; 1024]);
    write(&data.join("big"), &[2; 1025]);
    let ran = snapshot(&repo, &data, &["--exclude-larger-than", "1K"]);
    assert_eq!(ran.code, 0, "{}", ran.show());
    assert_eq!(stored(&repo, &data), ["small".to_string()].into());
    assert_eq!(excluded_count(&ran), 1, "{}", ran.show());
}

/// Mounts a tmpfs at `at`; false when this machine does not let us (not root, no
/// CAP_SYS_ADMIN in a container), and the caller then says it skipped.
fn mount_tmpfs(at: &Path) -> bool {
    let mut cmd = Command::new("mount");
    cmd.args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(at);
    let out = common::process::output_within(&mut cmd, b"", LIMIT, None);
    out.status.success()
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it when it is root"]
fn one_file_system_keeps_mount_points_empty_as_root() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let (repo, data) = (dir.path().join("repo"), dir.path().join("data"));
    write(&data.join("here"), b"h");
    fs::create_dir_all(data.join("mnt")).unwrap();
    assert!(mount_tmpfs(&data.join("mnt")), "cannot mount a tmpfs, although running as root");
    write(&data.join("mnt/there"), b"t");
    let crossed = snapshot(&repo, &data, &[]);
    let ran = snapshot(&repo, &data, &["--one-file-system"]);
    let mut umount = Command::new("umount");
    umount.arg(data.join("mnt"));
    common::process::output_within(&mut umount, b"", LIMIT, None);
    assert_eq!(crossed.code, 0, "{}", crossed.show());
    assert_eq!(ran.code, 0, "{}", ran.show());
    assert_eq!(stored(&repo, &data), ["here".to_string(), "mnt".to_string()].into(), "{}", ran.show());
    assert_eq!(excluded_count(&ran), 1, "{}", ran.show());
    assert_eq!(excluded_count(&crossed), 0, "{}", crossed.show());
}

/// Every file under `dir`, with its size: what a dry run must leave as it was.
fn files_under(dir: &Path) -> BTreeSet<(String, u64)> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            match e.file_type().unwrap().is_dir() {
                true => stack.push(e.path()),
                false => drop(out.insert((e.path().display().to_string(), e.metadata().unwrap().len()))),
            }
        }
    }
    out
}

#[test]
fn dry_run_counts_what_would_be_stored_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, data) = (dir.path().join("repo"), dir.path().join("data"));
    write(&data.join("a"), &[1; 1000]);
    write(&data.join("sub/b"), &[2; 24]);
    write(&data.join("sub/c.tmp"), &[3; 5000]);
    write(&data.join("big"), &[4; 3000]);
    let ran = cairn(&repo, &["init"], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    let before = files_under(&repo);
    let opts = ["--dry-run", "--exclude", "*.tmp", "--exclude-larger-than", "2K"];
    let ran = snapshot(&repo, &data, &opts);
    assert_eq!(ran.code, 0, "{}", ran.show());
    let out: serde_json::Value = serde_json::from_str(&ran.stdout()).unwrap();
    assert_eq!((out["files"].as_u64(), out["bytes"].as_u64()), (Some(2), Some(1024)), "{}", ran.show());
    assert_eq!((out["dirs"].as_u64(), out["excluded"].as_u64()), (Some(2), Some(2)), "{}", ran.show());
    assert_eq!(files_under(&repo), before, "a dry run wrote to the repository");
    let list = cairn(&repo, &["--json", "snapshot", "list"], LIMIT);
    assert_eq!(list.stdout().trim(), "[]", "{}", list.show());

    let ran = cairn(&repo, &["snapshot", "create", "-n", "-v", "-e", "*.tmp", data.to_str().unwrap()], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    let out = ran.stdout();
    assert!(out.contains("/data/sub/b  24 B"), "every file with its size: {out}");
    assert!(out.contains("would store 3 files"), "{out}");
    assert!(ran.stderr.contains("/data/sub/c.tmp ("), "{}", ran.show());
}

#[test]
fn files_from_lists_add_the_paths_to_back_up() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let root = fs::canonicalize(dir.path()).unwrap();
    let (one, two, three) = (root.join("one"), root.join("two"), root.join("three"));
    write(&one.join("f"), b"1");
    write(&two.join("g"), b"2");
    write(&three.join("h"), b"3");
    let lines = root.join("lines");
    fs::write(&lines, format!("# the services\n{}\n\n", one.display())).unwrap();
    let raw = root.join("raw");
    fs::write(&raw, format!("{}\0", two.display())).unwrap();
    let ran = cairn(&repo, &["init"], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    let (lines, raw, three) = (lines.to_str().unwrap(), raw.to_str().unwrap(), three.to_str().unwrap());
    let ran =
        cairn(&repo, &["--json", "snapshot", "create", "--files-from", lines, "--files-from-raw", raw, three], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    let out: serde_json::Value = serde_json::from_str(&ran.stdout()).unwrap();
    let paths: Vec<&str> = out["paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    let want: Vec<String> = ["one", "three", "two"].iter().map(|n| root.join(n).display().to_string()).collect();
    assert_eq!(paths, want, "{}", ran.show());
    // A list that names nothing, and no PATH, is a usage error.
    fs::write(root.join("empty"), "# nothing\n").unwrap();
    let ran = cairn(&repo, &["snapshot", "create", "--files-from", root.join("empty").to_str().unwrap()], LIMIT);
    assert_eq!(ran.code, 2, "{}", ran.show());
}
