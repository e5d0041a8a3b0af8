//! Restoring a service's state, through the real binary: a target a running process holds
//! open is refused (naming the process and file) unless `--force`; `--backup-existing` keeps
//! everything the restore replaces or deletes, byte for byte.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::write_file;

fn run(repo: &Path, args: &[&str]) -> Output {
    common::cli::finish(
        Command::new(env!("CARGO_BIN_EXE_cairn")).envs(common::TEST_ENV).arg("--repo").arg(repo).args(args),
    )
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let (repo, src) = (dir.path().join("repo"), dir.path().join("svc"));
    assert!(run(&repo, &["init"]).status.success());
    write_file(&src.join("state.db"), b"snapshot state");
    write_file(&src.join("services.toml"), b"[svc]\nport = 1\n");
    let o = run(&repo, &["--json", "snapshot", "create", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", err(&o));
    let id = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["id"].as_str().unwrap().to_string();
    (dir, repo, src, id)
}

/// A "service": holds `state.db` open and keeps appending to it until killed.
struct Service(Child);

impl Service {
    fn start(dir: &Path) -> Service {
        let child = Command::new("sh")
            .arg("-c")
            .arg("exec 3>>state.db; while :; do echo write >&3; sleep 0.05; done")
            .current_dir(dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // Wait (bounded) until it has the file open.
        let fd_dir = PathBuf::from(format!("/proc/{}/fd", child.id()));
        let start = Instant::now();
        while !fs::read_dir(&fd_dir)
            .unwrap()
            .flatten()
            .any(|e| fs::read_link(e.path()).is_ok_and(|p| p.ends_with("state.db")))
        {
            assert!(start.elapsed() < Duration::from_secs(10), "the test service did not open state.db");
            std::thread::sleep(Duration::from_millis(10));
        }
        Service(child)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_target_a_running_process_holds_is_refused_unless_forced() {
    let (dir, repo, _src, id) = setup();
    let target = dir.path().join("live");
    write_file(&target.join("state.db"), b"live state");
    let service = Service::start(&target);
    let o = run(&repo, &["restore", &id, "--target", target.to_str().unwrap(), "--overwrite", "always"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let msg = err(&o);
    assert!(msg.contains(&format!("process {}", service.0.id())) && msg.contains("state.db"), "{msg}");
    assert!(msg.contains("--force"), "{msg}");
    assert!(fs::read(target.join("state.db")).unwrap().starts_with(b"live state"), "a refused restore wrote");

    let o = run(&repo, &["restore", &id, "--target", target.to_str().unwrap(), "--overwrite", "always", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(err(&o).contains("restoring anyway (--force)"), "{}", err(&o));
    assert_eq!(fs::read(target.join("state.db")).unwrap(), b"snapshot state");
}

#[test]
fn backup_existing_keeps_what_is_replaced_and_what_delete_would_remove() {
    let (dir, repo, _src, id) = setup();
    let target = dir.path().join("t");
    write_file(&target.join("state.db"), b"edited state");
    write_file(&target.join("services.toml"), b"edited config");
    write_file(&target.join("only-here/notes"), b"not in the snapshot");
    let o = run(
        &repo,
        &[
            "--json",
            "restore",
            &id,
            "--target",
            target.to_str().unwrap(),
            "--overwrite",
            "always",
            "--delete",
            "--backup-existing=before-restore",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["backups"].as_array().unwrap().len(), 3, "{report}");
    assert_eq!(fs::read(target.join("state.db")).unwrap(), b"snapshot state");
    assert_eq!(fs::read(target.join("state.db.before-restore")).unwrap(), b"edited state");
    assert_eq!(fs::read(target.join("services.toml.before-restore")).unwrap(), b"edited config");
    assert_eq!(fs::read(target.join("only-here.before-restore/notes")).unwrap(), b"not in the snapshot");
    assert!(!target.join("only-here").exists());
}
