//! The real binary, as a user meets it: the main workflow, JSON output, and every error case
//! with its one-line message and documented exit code.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::write_file;

struct Cairn {
    repo: PathBuf,
}

impl Cairn {
    fn run(&self, args: &[&str]) -> Output {
        common::cli::finish(
            Command::new(env!("CARGO_BIN_EXE_cairn")).envs(common::TEST_ENV).arg("--repo").arg(&self.repo).args(args),
        )
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn setup() -> (tempfile::TempDir, Cairn) {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn { repo: dir.path().join("repo") };
    let o = cairn.run(&["init"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    (dir, cairn)
}

#[test]
fn init_snapshot_list_diff_ls_restore() {
    let (dir, cairn) = setup();
    let data = dir.path().join("data");
    write_file(&data.join("seg-1.log"), &common::Rng::new(1).events(3 << 20));
    write_file(&data.join("conf/app.conf"), b"a=1\n");
    let o = cairn.run(&["snapshot", "create", data.to_str().unwrap(), "--tag", "hourly"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("processed 2 files"), "{}", stdout(&o));
    write_file(&data.join("seg-2.log"), b"new segment\n");
    fs::remove_file(data.join("conf/app.conf")).unwrap();
    let o = cairn.run(&["snapshot", "create", data.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("(parent "), "{}", stdout(&o));

    let o = cairn.run(&["snapshot", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let (first, second) = (list[0]["id"].as_str().unwrap(), list[1]["id"].as_str().unwrap());
    assert_eq!(list[0]["tags"][0], "hourly");

    let o = cairn.run(&["snapshot", "diff", &first[..8], &second[..8]]);
    let out = stdout(&o);
    assert!(out.contains("+  ") && out.contains("seg-2.log"), "{out}");
    assert!(out.contains("-  ") && out.contains("app.conf"), "{out}");

    let o = cairn.run(&["ls", "latest"]);
    assert!(stdout(&o).contains("seg-2.log"), "{}", stdout(&o));

    let o = cairn.run(&["snapshot", "show", &first[..10], "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown["id"], first);

    let target = dir.path().join("restored");
    let o = cairn.run(&["restore", &first[..8], "--target", target.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(fs::read(target.join("conf/app.conf")).unwrap(), b"a=1\n");
    assert!(!target.join("seg-2.log").exists());
}

#[test]
fn missing_path_is_a_usage_error_naming_it() {
    let (_dir, cairn) = setup();
    let o = cairn.run(&["snapshot", "create", "/no/such/dir"]);
    assert_eq!(code(&o), 2);
    assert_eq!(stderr(&o).trim(), "error: path /no/such/dir does not exist");
}

#[test]
fn not_a_repository_exits_10() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn { repo: dir.path().to_path_buf() };
    let o = cairn.run(&["snapshot", "list"]);
    assert_eq!(code(&o), 10);
    assert!(stderr(&o).contains("is not a cairn repository"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1);
}

#[test]
fn no_repository_given_is_a_usage_error() {
    let o = common::cli::finish(
        Command::new(env!("CARGO_BIN_EXE_cairn"))
            .envs(common::TEST_ENV)
            .args(["snapshot", "list"])
            .env_remove("CAIRN_REPO"),
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--repo"), "{}", stderr(&o));
}

#[test]
fn unknown_snapshot_is_named() {
    let (_dir, cairn) = setup();
    let o = cairn.run(&["snapshot", "show", "deadbeef"]);
    assert_eq!(code(&o), 1);
    assert_eq!(stderr(&o).trim(), "error: snapshot deadbeef not found");
    let o = cairn.run(&["restore", "latest", "--target", "/tmp/x"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("no snapshots"), "{}", stderr(&o));
    // Malformed or absent, the argument names no snapshot: the same exit 1 (issue 18).
    let o = cairn.run(&["snapshot", "show", "not-hex!"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("give an id, a hex id prefix or `latest`"), "{}", stderr(&o));
}

#[test]
fn corrupt_config_exits_13() {
    let (_dir, cairn) = setup();
    let config = cairn.repo.join("config");
    let mut bytes = fs::read(&config).unwrap();
    bytes[20] ^= 0xff;
    fs::write(&config, bytes).unwrap();
    let o = cairn.run(&["snapshot", "list"]);
    assert_eq!(code(&o), 13);
    assert_eq!(stderr(&o).trim(), "error: repository config is corrupt: checksum mismatch");
}

#[test]
fn newer_format_version_exits_12() {
    let (_dir, cairn) = setup();
    let config_path = cairn.repo.join("config");
    let config = cairn::repo::Config::decode(&fs::read(&config_path).unwrap()).unwrap();
    let newer = cairn::codec::seal(cairn::codec::RecordKind::Config, 3, &config).unwrap();
    fs::write(&config_path, newer).unwrap();
    let o = cairn.run(&["snapshot", "list"]);
    assert_eq!(code(&o), 12);
    assert!(stderr(&o).contains("format version 3, but this cairn supports version 2"), "{}", stderr(&o));
}

#[test]
fn an_unknown_feature_exits_12_naming_it() {
    let (_dir, cairn) = setup();
    let config_path = cairn.repo.join("config");
    let mut config = cairn::repo::Config::decode(&fs::read(&config_path).unwrap()).unwrap();
    // `encryption` is known now (issue 16); a feature from the future is not.
    config.features.push(cairn::repo::Feature { name: "zz-future".into(), params: Vec::new() });
    fs::write(&config_path, config.encode().unwrap()).unwrap();
    let o = cairn.run(&["snapshot", "list"]);
    assert_eq!(code(&o), 12);
    assert!(stderr(&o).contains("uses feature \"zz-future\" that this cairn does not support"), "{}", stderr(&o));
}

#[test]
fn init_refuses_an_existing_repository() {
    let (_dir, cairn) = setup();
    let o = cairn.run(&["init"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("already holds a cairn repository"), "{}", stderr(&o));
}

fn is_root() -> bool {
    cairn::fs::is_root()
}

/// Mounts `dir` read-only over itself for the guard's life (needs root).
struct ReadOnlyMount(PathBuf);

impl ReadOnlyMount {
    fn new(dir: &Path) -> Option<Self> {
        let ok = |args: &[&str]| Command::new("mount").args(args).status().map(|s| s.success()).unwrap_or(false);
        let d = dir.to_str().unwrap();
        if !ok(&["--bind", d, d]) {
            return None;
        }
        let guard = ReadOnlyMount(dir.to_path_buf());
        ok(&["-o", "remount,bind,ro", d]).then_some(guard)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it when it is root"]
fn read_only_repository_fails_cleanly_and_stays_usable_as_root() {
    common::require_root();
    let (dir, cairn) = setup();
    let data = dir.path().join("data");
    write_file(&data.join("f"), b"payload");
    {
        let Some(_ro) = ReadOnlyMount::new(&cairn.repo) else {
            panic!("mount is not permitted here, although running as root");
        };
        let o = cairn.run(&["snapshot", "create", data.to_str().unwrap()]);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        assert!(stderr(&o).contains("is on a read-only filesystem"), "{}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        // Reading still works on a read-only repository.
        let o = cairn.run(&["snapshot", "list"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let o = cairn.run(&["snapshot", "create", data.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = cairn.run(&["snapshot", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[test]
fn unreadable_file_is_skipped_with_exit_3_and_the_snapshot_is_written() {
    let (dir, cairn) = setup();
    let data = dir.path().join("data");
    write_file(&data.join("ok.txt"), b"fine");
    write_file(&data.join("secret.txt"), b"hidden");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(data.join("secret.txt"), fs::Permissions::from_mode(0o000)).unwrap();
    let mut cmd = Command::new(if is_root() { "setpriv" } else { env!("CARGO_BIN_EXE_cairn") });
    cmd.envs(common::TEST_ENV);
    if is_root() {
        // Root reads anything: run as nobody, in directories nobody may use.
        for p in [dir.path(), &cairn.repo, &data] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o777)).unwrap();
        }
        let status = Command::new("chmod").args(["-R", "a+rwX"]).arg(&cairn.repo).status().unwrap();
        assert!(status.success());
        fs::set_permissions(data.join("secret.txt"), fs::Permissions::from_mode(0o000)).unwrap();
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_cairn")]);
    }
    let o = cmd.arg("--repo").arg(&cairn.repo).args(["snapshot", "create"]).arg(&data).output().unwrap();
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: skipped") && stderr(&o).contains("secret.txt"), "{}", stderr(&o));
    let o = cairn.run(&["ls", "latest"]);
    assert!(stdout(&o).contains("ok.txt") && !stdout(&o).contains("secret.txt"), "{}", stdout(&o));
    // The summary counts the skipped file as skipped, not as a file read (issue 15 item 3).
    let list: serde_json::Value = serde_json::from_slice(&cairn.run(&["snapshot", "list", "--json"]).stdout).unwrap();
    let summary = &list[0]["summary"];
    assert_eq!((summary["files"].as_u64(), summary["files_read"].as_u64()), (Some(1), Some(1)), "{summary}");
    assert_eq!(summary["skipped"].as_u64(), Some(1), "{summary}");
}

#[test]
fn help_texts_exist_for_every_command() {
    for args in
        [vec!["--help"], vec!["snapshot", "create", "--help"], vec!["restore", "--help"], vec!["repo", "--help"]]
    {
        let o = common::cli::finish(Command::new(env!("CARGO_BIN_EXE_cairn")).envs(common::TEST_ENV).args(&args));
        assert_eq!(code(&o), 0);
        assert!(stdout(&o).contains("Usage:"));
    }
}

/// A service that refuses cairn is a runtime failure (exit 1, "PostgreSQL: …"), never a usage
/// error (exit 2): the arguments were fine, the server was not there.
#[test]
fn a_refused_postgres_connection_exits_1_not_as_a_usage_error() {
    let (dir, cairn) = setup();
    let pgdata = dir.path().join("pgdata");
    fs::create_dir_all(pgdata.join("global")).unwrap();
    fs::write(pgdata.join("PG_VERSION"), "15\n").unwrap();
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let conninfo = format!("host=127.0.0.1 port={port} user=postgres connect_timeout=5");
    let o = cairn.run(&["snapshot", "create", "--postgres", &conninfo, pgdata.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).starts_with("error: PostgreSQL: cannot connect"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}
