//! Commands a restic or borg user looks for (issue 18): `forget ID`, `snapshot tag`,
//! `snapshot list` filters, completions and the man page, each through the real binary.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::cli::{cairn, cairn_with, Ran};
use common::write_file;

const LIMIT: Duration = Duration::from_secs(120);

/// A repository and a small source tree in one temp dir.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Self {
        let r = Repo { dir: tempfile::tempdir().unwrap() };
        write_file(&r.src().join("f"), b"some data");
        r.ok(&["init"]);
        r
    }
    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }
    fn src(&self) -> PathBuf {
        self.dir.path().join("src")
    }
    fn run(&self, args: &[&str]) -> Ran {
        let r = cairn(&self.repo(), args, LIMIT);
        assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.show());
        r
    }
    fn ok(&self, args: &[&str]) -> Ran {
        let r = self.run(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.show());
        r
    }
    /// `snapshot create` at `time` with extra arguments; returns the new id.
    fn snapshot(&self, time: &str, extra: &[&str]) -> String {
        let src = self.src();
        let mut args = vec!["--json", "snapshot", "create", "--time", time];
        args.extend_from_slice(extra);
        args.push(src.to_str().unwrap());
        let out: serde_json::Value = serde_json::from_str(&self.ok(&args).stdout()).unwrap();
        out["id"].as_str().unwrap().to_string()
    }
    /// Ids of `snapshot list` with these extra arguments, oldest first.
    fn ids(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["--json", "snapshot", "list"];
        args.extend_from_slice(extra);
        let out: serde_json::Value = serde_json::from_str(&self.ok(&args).stdout()).unwrap();
        out.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
    }
    /// Three snapshots an hour apart, oldest first.
    fn three(&self) -> Vec<String> {
        ["2026-11-01 10:00", "2026-11-01 11:00", "2026-11-01 12:00"].iter().map(|t| self.snapshot(t, &[])).collect()
    }
}

#[test]
fn forget_by_id_removes_exactly_the_named_snapshots_and_says_which() {
    let r = Repo::new();
    let ids = r.three();
    let ran = r.ok(&["forget", &ids[0][..10], "latest"]);
    let out = ran.stdout();
    assert!(out.contains(&format!("remove  {}", &ids[0][..8])), "{out}");
    assert!(out.contains(&format!("remove  {}", &ids[2][..8])), "{out}");
    assert!(out.contains("removed 2 snapshots"), "{out}");
    assert_eq!(r.ids(&[]), vec![ids[1].clone()]);
}

#[test]
fn forget_by_id_with_dry_run_removes_nothing() {
    let r = Repo::new();
    let ids = r.three();
    let out = r.ok(&["forget", "--dry-run", &ids[1]]).stdout();
    assert!(out.contains("would remove 1 snapshot") && out.contains(&ids[1][..8]), "{out}");
    assert_eq!(r.ids(&[]), ids);
}

#[test]
fn forget_by_id_with_prune_frees_the_data_only_that_snapshot_held() {
    let r = Repo::new();
    r.snapshot("2026-11-01 10:00", &[]);
    write_file(&r.src().join("big"), &common::Rng::new(7).bytes(300_000));
    let second = r.snapshot("2026-11-01 11:00", &[]);
    let out = r.ok(&["forget", "--prune", &second]).stdout();
    assert!(out.contains("removed 1 snapshot") && out.contains("marked the data of 1 snapshot"), "{out}");
    let after_prune = r.ok(&["--json", "prune", "--dry-run"]).stdout();
    let plan: serde_json::Value = serde_json::from_str(&after_prune).unwrap();
    assert_eq!(plan["unused_bytes"], 0, "{after_prune}");
    r.ok(&["repo", "check"]);
}

#[test]
fn forget_by_id_removes_nothing_when_one_name_is_wrong() {
    let r = Repo::new();
    let ids = r.three();
    let ran = r.run(&["forget", &ids[0], "ffffffffffff"]);
    assert_eq!(ran.code, 1, "{}", ran.show());
    assert_eq!(r.ids(&[]), ids);
}

#[test]
fn forget_by_id_refuses_retention_rules_beside_it() {
    let r = Repo::new();
    let ids = r.three();
    for extra in [&["--keep-last", "1"][..], &["--keep-within", "1d"], &["--host", "h"], &["--tag", "t"]] {
        let mut args = vec!["forget", ids[0].as_str()];
        args.extend_from_slice(extra);
        let ran = r.run(&args);
        assert_eq!(ran.code, 2, "{args:?}: {}", ran.show());
        assert!(ran.stderr.contains("cannot be used with"), "{}", ran.show());
    }
    assert_eq!(r.ids(&[]), ids);
}

#[test]
fn forget_by_id_with_a_write_only_key_exits_14() {
    let r = Repo::new();
    let ids = r.three();
    let wo = [("CAIRN_NEW_PASSWORD", "wo password")];
    let added = cairn_with(&r.repo(), &["key", "add", "--write-only"], &wo, LIMIT);
    assert_eq!(added.code, 0, "{}", added.show());
    let cache = r.dir.path().join("cache");
    let env = [("CAIRN_PASSWORD", "wo password"), ("CAIRN_CACHE_DIR", cache.to_str().unwrap())];
    let ran = cairn_with(&r.repo(), &["forget", &ids[0]], &env, LIMIT);
    assert_eq!(ran.code, 14, "{}", ran.show());
    assert!(ran.stderr.trim().starts_with("error: this is a write-only key: it cannot "), "{}", ran.show());
    assert_eq!(r.ids(&[]), ids);
}

#[test]
fn a_snapshot_time_in_the_future_is_refused_unless_forced() {
    let r = Repo::new();
    let src = r.src();
    let ran = r.run(&["snapshot", "create", "--time", "2126-11-01 10:00", src.to_str().unwrap()]);
    assert_eq!(ran.code, 2, "{}", ran.show());
    let err = ran.stderr.trim();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("in the future") && err.contains("--force"), "{err}");
    assert!(r.ids(&[]).is_empty());
    // Within a minute of now is clock skew, not a typo.
    let soon = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 20).to_string();
    r.snapshot(&soon, &[]);
    r.snapshot("2126-11-01 10:00", &["--force"]);
    assert_eq!(r.ids(&[]).len(), 2);
}

/// `snapshot list --json` rows: (id, tags).
fn tags_of(r: &Repo) -> Vec<(String, Vec<String>)> {
    let out: serde_json::Value = serde_json::from_str(&r.ok(&["--json", "snapshot", "list"]).stdout()).unwrap();
    out.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let tags = s["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
            (s["id"].as_str().unwrap().to_string(), tags)
        })
        .collect()
}

#[test]
fn snapshot_tag_adds_removes_and_sets_tags_under_a_new_id() {
    let r = Repo::new();
    let old = r.snapshot("2026-11-01 10:00", &["--tag", "hourly", "--tag", "keep"]);
    let ran = r.ok(&["--json", "snapshot", "tag", &old[..8], "--add", "monthly", "--remove", "hourly"]);
    let done: serde_json::Value = serde_json::from_str(&ran.stdout()).unwrap();
    let new = done[0]["new"].as_str().unwrap().to_string();
    assert_eq!(done[0]["old"], old.as_str());
    assert_ne!(new, old);
    assert_eq!(tags_of(&r), vec![(new.clone(), vec!["keep".to_string(), "monthly".to_string()])]);
    // The new snapshot holds the same files.
    assert!(r.ok(&["ls", &new]).stdout().contains("/f"));
    // Text output names old -> new; --set replaces all; --set '' clears.
    let out = r.ok(&["snapshot", "tag", "latest", "--set", "x", "--set", "y"]).stdout();
    assert!(out.contains(&format!("{} -> ", &new[..8])) && out.contains("x,y"), "{out}");
    r.ok(&["snapshot", "tag", "latest", "--set", ""]);
    assert_eq!(tags_of(&r)[0].1, Vec::<String>::new());
    // A change that changes nothing keeps the id.
    let id = tags_of(&r)[0].0.clone();
    let out = r.ok(&["snapshot", "tag", &id, "--remove", "absent"]).stdout();
    assert!(out.contains("unchanged"), "{out}");
    assert_eq!(tags_of(&r)[0].0, id);
    r.ok(&["repo", "check"]);
}

#[test]
fn snapshot_tag_changes_nothing_when_a_name_is_wrong_or_no_change_is_given() {
    let r = Repo::new();
    let ids = r.three();
    let ran = r.run(&["snapshot", "tag", &ids[0], "ffffffffffff", "--add", "t"]);
    assert_eq!(ran.code, 1, "{}", ran.show());
    let ran = r.run(&["snapshot", "tag", &ids[0]]);
    assert_eq!(ran.code, 2, "{}", ran.show());
    let ran = r.run(&["snapshot", "tag", &ids[0], "--add", "a,b"]);
    assert_eq!(ran.code, 2, "{}", ran.show());
    assert_eq!(r.ids(&[]), ids);
}

#[test]
fn snapshot_tag_with_a_write_only_key_exits_14() {
    let r = Repo::new();
    let ids = r.three();
    let added = cairn_with(&r.repo(), &["key", "add", "--write-only"], &[("CAIRN_NEW_PASSWORD", "wo")], LIMIT);
    assert_eq!(added.code, 0, "{}", added.show());
    let cache = r.dir.path().join("cache");
    let env = [("CAIRN_PASSWORD", "wo"), ("CAIRN_CACHE_DIR", cache.to_str().unwrap())];
    let ran = cairn_with(&r.repo(), &["snapshot", "tag", &ids[0], "--add", "t"], &env, LIMIT);
    assert_eq!(ran.code, 14, "{}", ran.show());
    assert_eq!(r.ids(&[]), ids);
}

#[test]
fn snapshot_list_filters_by_tag_host_and_path_repeatably() {
    let r = Repo::new();
    let other = r.dir.path().join("other");
    write_file(&other.join("g"), b"other data");
    let a = r.snapshot("2026-11-01 10:00", &["--host", "alpha", "--tag", "hourly", "--tag", "db"]);
    let b = r.snapshot("2026-11-01 11:00", &["--host", "beta", "--tag", "hourly"]);
    let c = r.snapshot("2026-11-01 12:00", &["--host", "gamma", "--tag", "db"]);
    let out: serde_json::Value = serde_json::from_str(
        &r.ok(&[
            "--json",
            "snapshot",
            "create",
            "--time",
            "2026-11-01 13:00",
            "--host",
            "alpha",
            other.to_str().unwrap(),
        ])
        .stdout(),
    )
    .unwrap();
    let d = out["id"].as_str().unwrap().to_string();
    assert_eq!(r.ids(&["--tag", "hourly"]), vec![a.clone(), b.clone()]);
    // Every tag given must be present.
    assert_eq!(r.ids(&["--tag", "hourly", "--tag", "db"]), vec![a.clone()]);
    // Any of the hosts given.
    assert_eq!(r.ids(&["--host", "alpha", "--host", "gamma"]), vec![a.clone(), c.clone(), d.clone()]);
    assert_eq!(r.ids(&["--path", other.to_str().unwrap()]), vec![d.clone()]);
    assert_eq!(r.ids(&["--host", "alpha", "--path", r.src().to_str().unwrap()]), vec![a.clone()]);
    assert!(r.ids(&["--host", "nobody"]).is_empty());
    // The text table filters too, and restic's name for it takes the same flags.
    let text = r.ok(&["snapshots", "--tag", "db", "--host", "gamma"]).stdout();
    assert!(text.contains(&c[..8]) && !text.contains(&a[..8]), "{text}");
}

#[test]
fn completions_for_bash_zsh_and_fish_name_the_commands_and_their_options() {
    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("no-repo");
    for (shell, marker) in [("bash", "complete -F _cairn"), ("zsh", "#compdef cairn"), ("fish", "complete -c cairn")] {
        let ran = cairn(&none, &["completions", shell], LIMIT);
        assert_eq!(ran.code, 0, "{shell}: {}", ran.show());
        let script = ran.stdout();
        assert!(script.contains(marker), "{shell}: {}", &script[..script.len().min(400)]);
        for word in ["forget", "snapshot", "keep-last", "remove"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let ran = cairn(&none, &["completions", "tcsh"], LIMIT);
    assert_eq!(ran.code, 2, "{}", ran.show());
    assert!(!none.exists(), "generating completions touched the repository path");
}

#[test]
fn man_writes_one_page_with_every_command_and_its_options() {
    let dir = tempfile::tempdir().unwrap();
    let ran = cairn(&dir.path().join("no-repo"), &["man"], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    let page = ran.stdout();
    assert!(page.contains(".TH cairn 1"), "{}", &page[..page.len().min(400)]);
    for section in ["cairn snapshot create", "cairn snapshot tag", "cairn forget", "cairn repo check", "cairn wal push"]
    {
        assert!(page.contains(&format!("\\fB{section}\\fR")), "the man page lacks {section}");
    }
    assert!(page.contains("keep\\-last") && page.contains("\\-\\-dry\\-run"), "options missing");
}

/// `cairn dump` writes exactly a file's bytes (a multi-chunk binary file too), by absolute or
/// snapshot-relative path, and refuses a directory or a missing path with one line.
#[test]
fn dump_writes_one_files_bytes_and_refuses_the_rest() {
    let r = Repo::new();
    let big = common::Rng::new(5).bytes(3 << 20);
    write_file(&r.src().join("sub/big.bin"), &big);
    let id = r.snapshot("2026-11-01 10:00", &[]);
    let abs = std::fs::canonicalize(r.src()).unwrap().join("sub/big.bin");
    assert!(r.ok(&["dump", &id, abs.to_str().unwrap()]).stdout_bytes() == big, "absolute path");
    assert_eq!(r.ok(&["dump", "latest", "f"]).stdout_bytes(), b"some data", "relative to the snapshot's path");
    let dir = r.run(&["dump", "latest", "sub"]);
    assert_eq!(dir.code, 2, "{}", dir.show());
    assert!(dir.stderr.contains("is a dir in the snapshot, not a file"), "{}", dir.show());
    let missing = r.run(&["dump", "latest", "nope"]);
    assert_eq!(missing.code, 1, "{}", missing.show());
    assert!(missing.stderr.contains("nope not found"), "{}", missing.show());
}

/// `cairn find` names every snapshot holding a match, by name or by path pattern, with the
/// size the file had in each; `--snapshot` narrows the search.
#[test]
fn find_names_each_snapshot_holding_a_match() {
    let r = Repo::new();
    write_file(&r.src().join("etc/app.conf"), b"v1");
    let first = r.snapshot("2026-11-01 10:00", &[]);
    write_file(&r.src().join("etc/app.conf"), b"version 2");
    write_file(&r.src().join("etc/deep/more.conf"), b"x");
    let second = r.snapshot("2026-11-01 11:00", &[]);
    let found = |args: &[&str]| -> Vec<(String, String, u64)> {
        let mut all = vec!["--json", "find"];
        all.extend_from_slice(args);
        let out: serde_json::Value = serde_json::from_str(&r.ok(&all).stdout()).unwrap();
        out.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let path = e["path"].as_str().unwrap();
                (
                    e["snapshot"].as_str().unwrap().to_string(),
                    path.rsplit('/').next().unwrap().to_string(),
                    e["size"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let by_name = found(&["*.conf"]);
    assert_eq!(
        by_name,
        vec![
            (first.clone(), "app.conf".into(), 2),
            (second.clone(), "app.conf".into(), 9),
            (second.clone(), "more.conf".into(), 1)
        ]
    );
    let src = std::fs::canonicalize(r.src()).unwrap();
    let pattern = format!("{}/etc/deep/*", src.display());
    assert_eq!(found(&[&pattern]), vec![(second.clone(), "more.conf".into(), 1)]);
    assert_eq!(found(&["app.conf", "--snapshot", &first[..8]]), vec![(first, "app.conf".into(), 2)]);
    assert!(found(&["nothing-*"]).is_empty());
}

/// `cairn stats`: two snapshots of the same 1 MiB of random data restore 2 MiB from 1 MiB of
/// unique data (deduplication 2x), and one snapshot alone shows 1x.
#[test]
fn stats_counts_unique_data_once() {
    let r = Repo::new();
    write_file(&r.src().join("data.bin"), &common::Rng::new(9).bytes(1 << 20));
    r.snapshot("2026-11-01 10:00", &[]);
    r.snapshot("2026-11-01 11:00", &[]);
    let stats = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--json", "stats"];
        all.extend_from_slice(args);
        serde_json::from_str(&r.ok(&all).stdout()).unwrap()
    };
    let both = stats(&[]);
    let file_bytes = (1u64 << 20) + 9;
    assert_eq!(both["snapshots"], 2, "{both}");
    assert_eq!(both["restore_bytes"], 2 * file_bytes, "{both}");
    assert_eq!(both["unique_bytes"], file_bytes, "{both}");
    assert!((both["dedup_ratio"].as_f64().unwrap() - 2.0).abs() < 1e-9, "{both}");
    assert!(both["stored_bytes"].as_u64().unwrap() >= 1 << 20, "random data does not compress: {both}");
    let one = stats(&["latest"]);
    assert_eq!((one["snapshots"].as_u64(), one["unique_bytes"].as_u64()), (Some(1), Some(file_bytes)), "{one}");
}

/// `--stdin` stores standard input as `/NAME` (a second, slightly longer dump dedups against
/// the first); `--stdin-from-command` stores a command's output, and a command that fails
/// leaves no snapshot.
#[test]
fn stdin_and_command_output_are_stored_as_one_file() {
    let r = Repo::new();
    let dump: Vec<u8> = (0..200_000).flat_map(|i| format!("INSERT INTO t VALUES ({i});\n").into_bytes()).collect();
    let piped = |data: &[u8]| -> serde_json::Value {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.envs(common::TEST_ENV).arg("--repo").arg(r.repo());
        cmd.args(["--json", "snapshot", "create", "--stdin", "--stdin-filename", "app.sql"]);
        let out = common::process::output_within(&mut cmd, data, LIMIT, None);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let first = piped(&dump);
    assert_eq!(first["paths"][0], "/app.sql", "{first}");
    let mut longer = dump.clone();
    longer.extend_from_slice(b"INSERT INTO t VALUES (-1);\n");
    let second = piped(&longer);
    assert_eq!(second["parent"], first["id"], "{second}");
    assert!(second["summary"]["bytes_added"].as_u64().unwrap() < 200 << 10, "{second}");
    assert!(r.ok(&["dump", "latest", "/app.sql"]).stdout_bytes() == longer);

    let before = r.ids(&[]).len();
    let failed = r.run(&["snapshot", "create", "--stdin-from-command", "--", "sh", "-c", "echo partial; exit 3"]);
    assert_eq!(failed.code, 1, "{}", failed.show());
    assert!(failed.stderr.contains("failed (exit status: 3): no snapshot saved"), "{}", failed.show());
    assert_eq!(r.ids(&[]).len(), before, "a failed dump saves no snapshot");
    r.ok(&["snapshot", "create", "--stdin-from-command", "--stdin-filename", "n.txt", "--", "seq", "1", "1000"]);
    assert_eq!(r.ok(&["dump", "latest", "/n.txt"]).stdout().lines().count(), 1000);
}
