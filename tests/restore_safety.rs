//! Restores into hostile or occupied targets, through the real binary: nothing outside the
//! target ever changes (a hashed manifest of an "outside" directory before and after), the
//! overwrite policies decide what happens to what is there, conflicts of type never abort, and
//! point-in-time restore does not follow symlinks a snapshot carries.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assert_same_tree, manifest, write_file};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let env = Env { dir: tempfile::tempdir().unwrap() };
        let o = env.run(&["init"]);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        fs::create_dir_all(env.outside()).unwrap();
        write_file(&env.outside().join("victim"), b"outside, must not change");
        write_file(&env.outside().join("dir/inner"), b"also outside");
        env
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn outside(&self) -> PathBuf {
        self.path("outside")
    }
    fn run(&self, args: &[&str]) -> Output {
        common::cli::finish(
            Command::new(env!("CARGO_BIN_EXE_cairn"))
                .envs(common::TEST_ENV)
                .arg("--repo")
                .arg(self.path("repo"))
                .args(args),
        )
    }
    /// Snapshots `src` and returns the snapshot id.
    fn snapshot(&self, src: &Path) -> String {
        let o = self.run(&["--json", "snapshot", "create", src.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["id"].as_str().unwrap().to_string()
    }
    fn restore(&self, id: &str, target: &Path, extra: &[&str]) -> Output {
        let mut args = vec!["restore", id, "--target", target.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.run(&args)
    }
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A source tree with a directory `conf/`, a file `data.bin` and a symlink `link`.
fn source(env: &Env) -> PathBuf {
    let src = env.path("src");
    write_file(&src.join("conf/app.conf"), b"port = 1\n");
    write_file(&src.join("data.bin"), &[7u8; 100_000]);
    write_file(&src.join("keep/readonly.txt"), b"snapshot version");
    symlink("data.bin", src.join("link")).unwrap();
    src
}

#[test]
fn a_non_empty_target_needs_a_policy_and_is_left_alone_without_one() {
    let env = Env::new();
    let id = env.snapshot(&source(&env));
    let target = env.path("target");
    write_file(&target.join("mine"), b"operator's file");
    let before = manifest(&target);
    let o = env.restore(&id, &target, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("--overwrite"), "{}", err(&o));
    assert_eq!(manifest(&target), before);
}

#[test]
fn symlinks_in_the_target_are_replaced_never_followed() {
    let env = Env::new();
    let src = source(&env);
    let id = env.snapshot(&src);
    let target = env.path("target");
    fs::create_dir_all(&target).unwrap();
    let out = env.outside();
    // A symlink where the snapshot has a directory, a file, and another symlink.
    symlink(out.join("dir"), target.join("conf")).unwrap();
    symlink(out.join("victim"), target.join("data.bin")).unwrap();
    symlink(out.join("victim"), target.join("link")).unwrap();
    let outside_before = manifest(&out);
    for policy in ["always", "if-changed", "if-newer"] {
        let o = env.restore(&id, &target, &["--overwrite", policy]);
        assert_eq!(o.status.code(), Some(0), "{policy}: {}", err(&o));
        assert_eq!(manifest(&out), outside_before, "{policy}: something outside the target changed");
        assert_same_tree(&src, &target);
    }
}

#[test]
fn conflicts_of_type_are_resolved_by_the_policy_and_never_abort() {
    let env = Env::new();
    let src = source(&env);
    let id = env.snapshot(&src);
    let target = env.path("target");
    // A file where the snapshot has a directory, a directory where it has a file, a
    // read-only file where it has a file, and a FIFO where it has a symlink.
    write_file(&target.join("conf"), b"a file, not a directory");
    write_file(&target.join("data.bin/nested/deep"), b"a directory, not a file");
    write_file(&target.join("keep/readonly.txt"), b"old");
    fs::set_permissions(target.join("keep/readonly.txt"), fs::Permissions::from_mode(0o444)).unwrap();
    rustix::fs::mkfifoat(rustix::fs::CWD, target.join("link"), rustix::fs::Mode::from_raw_mode(0o600)).unwrap();

    let never = env.restore(&id, &target, &["--overwrite", "never", "--json"]);
    assert_eq!(never.status.code(), Some(0), "{}", err(&never));
    let report: serde_json::Value = serde_json::from_slice(&never.stdout).unwrap();
    assert_eq!(report["kept"], 4, "{report}");
    assert_eq!(fs::read(target.join("conf")).unwrap(), b"a file, not a directory");

    let o = env.restore(&id, &target, &["--overwrite", "always"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_same_tree(&src, &target);
}

#[test]
fn restoring_a_directory_over_a_symlink_from_an_earlier_snapshot_stays_inside() {
    // No hostile setup: snapshot 1 has `conf -> outside`, snapshot 2 has `conf/`.
    let env = Env::new();
    let src = env.path("src");
    write_file(&src.join("data"), b"x");
    symlink(env.outside().join("dir"), src.join("conf")).unwrap();
    let first = env.snapshot(&src);
    fs::remove_file(src.join("conf")).unwrap();
    write_file(&src.join("conf/inner"), b"the snapshot's, not the outside's");
    fs::set_permissions(src.join("conf"), fs::Permissions::from_mode(0o777)).unwrap();
    let second = env.snapshot(&src);
    let target = env.path("target");
    let outside_before = manifest(&env.outside());
    assert_eq!(env.restore(&first, &target, &[]).status.code(), Some(0));
    let o = env.restore(&second, &target, &["--overwrite", "if-changed"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(manifest(&env.outside()), outside_before);
    assert_same_tree(&src, &target);
}

#[test]
fn delete_removes_what_the_snapshot_lacks_and_only_inside() {
    let env = Env::new();
    let src = source(&env);
    let id = env.snapshot(&src);
    let target = env.path("target");
    assert_eq!(env.restore(&id, &target, &[]).status.code(), Some(0));
    write_file(&target.join("extra/file"), b"not in the snapshot");
    symlink(env.outside().join("dir"), target.join("extra-link")).unwrap();
    write_file(&target.join("conf/extra.conf"), b"neither");
    let outside_before = manifest(&env.outside());
    let dry = env.restore(&id, &target, &["--overwrite", "if-changed", "--delete", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", err(&dry));
    let plan = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(plan.contains("delete") && plan.contains("extra-link"), "{plan}");
    assert!(target.join("extra/file").exists(), "a dry run changed the target");
    let o = env.restore(&id, &target, &["--overwrite", "if-changed", "--delete"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(manifest(&env.outside()), outside_before);
    assert_same_tree(&src, &target);
}

#[test]
fn a_target_that_is_a_symlink_is_followed_as_documented() {
    let env = Env::new();
    let src = source(&env);
    let id = env.snapshot(&src);
    let real = env.path("real-target");
    fs::create_dir_all(&real).unwrap();
    symlink(&real, env.path("target-link")).unwrap();
    let o = env.restore(&id, &env.path("target-link"), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_same_tree(&src, &real);
}

#[test]
fn the_summary_names_the_snapshot_and_latest_honours_host_and_tag() {
    let env = Env::new();
    let a = env.path("a");
    write_file(&a.join("f"), b"host a");
    let o = env.run(&["snapshot", "create", a.to_str().unwrap(), "--host", "alpha", "--tag", "t1"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let b = env.path("b");
    write_file(&b.join("g"), b"host b");
    let o = env.run(&["snapshot", "create", b.to_str().unwrap(), "--host", "beta"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let target = env.path("t-alpha");
    let o = env.run(&["restore", "latest", "--host", "alpha", "--target", target.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("host alpha"), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(target.join("f").exists() && !target.join("g").exists());
    let target = env.path("t-tag");
    let o = env.run(&["restore", "latest", "--tag", "t1", "--target", target.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(target.join("f").exists());
    let o = env.run(&["restore", "latest", "--host", "gamma", "--target", env.path("t-none").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
}

#[test]
fn include_takes_the_absolute_paths_ls_prints_and_an_unmatched_pattern_is_an_error() {
    let env = Env::new();
    let src = source(&env);
    let id = env.snapshot(&src);
    let abs = format!("{}/conf/app.conf", fs::canonicalize(&src).unwrap().display());
    let target = env.path("t1");
    let o = env.restore(&id, &target, &["--include", &abs, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["files"], 1, "{report}");
    assert_eq!(report["snapshot"]["id"], id.as_str());
    assert!(target.join("conf/app.conf").is_file());
    let o = env.restore(&id, &env.path("t2"), &["--include", "no-such-*"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("matched nothing"), "{}", err(&o));
    let o = env.restore(&id, &env.path("t3"), &["--exclude", "conf", "--exclude", "*.bin"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(!env.path("t3/conf").exists() && !env.path("t3/data.bin").exists());
    assert!(env.path("t3/keep/readonly.txt").exists());
}

#[test]
fn verify_only_writes_nothing() {
    let env = Env::new();
    let src = source(&env);
    let id = env.snapshot(&src);
    let o = env.run(&["restore", &id, "--verify-only", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["verified"], 3, "{report}");
    assert!(report["bytes_fetched"].as_u64().unwrap() >= 100_000);
}

/// The planted-symlink attack: whoever owns a PostgreSQL data directory plants
/// `recovery.signal` and `postgresql.auto.conf` as symlinks to files they must not touch; a
/// point-in-time restore (run as root) must not truncate, append to or chown them.
#[test]
fn point_in_time_restore_does_not_follow_symlinks_the_snapshot_carries() {
    let env = Env::new();
    let pgdata = env.path("pgdata");
    write_file(&pgdata.join("PG_VERSION"), b"15\n");
    write_file(&pgdata.join("global/pg_control"), &[1u8; 512]);
    write_file(&pgdata.join("base/1/1259"), &[2u8; 8192]);
    symlink(env.outside().join("victim"), pgdata.join("recovery.signal")).unwrap();
    symlink(env.outside().join("victim"), pgdata.join("postgresql.auto.conf")).unwrap();
    symlink(env.outside().join("dir"), pgdata.join("pg_wal")).unwrap();
    env.snapshot(&pgdata);
    let outside_before = manifest(&env.outside());
    let target = env.path("restored");
    let at = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 5).to_string();
    let o = env.run(&["restore", "--at", &at, "--target", target.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(manifest(&env.outside()), outside_before, "the restore wrote outside its target");
    let signal = fs::symlink_metadata(target.join("recovery.signal")).unwrap();
    assert!(signal.is_file(), "recovery.signal must be a regular file");
    let conf = fs::read_to_string(target.join("postgresql.auto.conf")).unwrap();
    assert!(conf.contains("recovery_target_time"), "{conf}");
    assert!(err(&o).contains("pg_wal"), "the symlinked pg_wal is named in a warning: {}", err(&o));
}
