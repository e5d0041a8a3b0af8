//! Hooks around `snapshot create` and `restore` through the real binary: stage order, a
//! failing `pre`, the environment, a timeout, and `finally` after SIGTERM. A small HTTP
//! server stands for a service whose job claims a `pre` hook pauses and `finally` resumes:
//! whatever happens, every pause is followed by a resume.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cli::cairn;

const LIMIT: Duration = Duration::from_secs(120);

struct Setup {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    data: PathBuf,
    log: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (repo, data, log) = (dir.path().join("repo"), dir.path().join("data"), dir.path().join("hooks.log"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("state"), b"service state").unwrap();
    let ran = cairn(&repo, &["init"], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    Setup { _dir: dir, repo, data, log }
}

/// `--hook-shell` hooks that append `NAME $CAIRN_STATUS` to the log.
fn logging_hooks(log: &Path, stages: &[&str]) -> Vec<String> {
    let mut args = vec!["--hook-shell".to_string()];
    for stage in stages {
        args.push(format!("--{stage}"));
        args.push(format!("echo \"{stage} ${{CAIRN_STATUS:-}}\" >> '{}'", log.display()));
    }
    args
}

fn log_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log).unwrap_or_default().lines().map(str::to_string).collect()
}

fn run(repo: &Path, args: &[String]) -> common::cli::Ran {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cairn(repo, &args, LIMIT)
}

const ALL: &[&str] = &["pre", "post", "on-failure", "finally"];

#[test]
fn stages_run_in_order_on_success_and_on_failure() {
    let s = setup();
    let mut args = vec!["snapshot".to_string(), "create".into(), s.data.display().to_string()];
    args.extend(logging_hooks(&s.log, ALL));
    let ran = run(&s.repo, &args);
    assert_eq!(ran.code, 0, "{}", ran.show());
    assert_eq!(log_lines(&s.log), ["pre ", "post success", "finally success"]);

    // The snapshot itself fails (its path vanished): on-failure and finally, no post.
    std::fs::remove_file(&s.log).unwrap();
    let gone = s.data.join("gone");
    let mut args = vec!["snapshot".to_string(), "create".into(), gone.display().to_string()];
    args.extend(logging_hooks(&s.log, ALL));
    let ran = run(&s.repo, &args);
    assert_ne!(ran.code, 0, "{}", ran.show());
    assert_eq!(log_lines(&s.log), ["pre ", "on-failure failure", "finally failure"]);
}

#[test]
fn a_failing_pre_hook_stops_the_snapshot() {
    let s = setup();
    let log = s.log.display().to_string();
    let args: Vec<String> = vec![
        "snapshot".into(),
        "create".into(),
        s.data.display().to_string(),
        "--pre".into(),
        "false".into(),
        "--on-failure".into(),
        format!("sh -c 'echo on-failure >> {log}'"),
        "--finally".into(),
        format!("sh -c 'echo finally >> {log}'"),
    ];
    let ran = run(&s.repo, &args);
    assert_eq!(ran.code, 1, "{}", ran.show());
    assert!(ran.stderr.contains("pre hook `false` exited with 1"), "{}", ran.show());
    assert_eq!(log_lines(&s.log), ["on-failure"], "finally runs only when every pre hook succeeded");
    let list = cairn(&s.repo, &["--json", "snapshot", "list"], LIMIT);
    assert_eq!(list.stdout().trim(), "[]", "no snapshot was taken: {}", list.show());
}

#[test]
fn hooks_see_what_the_snapshot_did_and_json_reports_them() {
    let s = setup();
    let env_file = s.log.with_file_name("env");
    let args: Vec<String> = vec![
        "--json".into(),
        "snapshot".into(),
        "create".into(),
        s.data.display().to_string(),
        "--hook-shell".into(),
        "--post".into(),
        format!("env | grep ^CAIRN_ | sort > '{}'", env_file.display()),
    ];
    let ran = run(&s.repo, &args);
    assert_eq!(ran.code, 0, "{}", ran.show());
    let report: serde_json::Value = serde_json::from_str(&ran.stdout()).unwrap();
    let env = std::fs::read_to_string(&env_file).unwrap();
    let id = report["id"].as_str().expect("snapshot id in --json");
    assert!(env.contains(&format!("CAIRN_SNAPSHOT_ID={id}")), "{env}");
    for key in ["CAIRN_STATUS=success", "CAIRN_COMMAND=snapshot create", "CAIRN_HOOK_STAGE=post", "CAIRN_BYTES_ADDED="]
    {
        assert!(env.contains(key), "{key} missing: {env}");
    }
    assert!(env.contains(&format!("CAIRN_PATHS={}", s.data.display())), "{env}");
    let hooks = report["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["stage"], "post");
    assert_eq!(hooks[0]["exit_code"], 0);
}

#[test]
fn a_hook_past_its_timeout_is_killed_and_fails_the_run() {
    let s = setup();
    let started = Instant::now();
    let args: Vec<String> = vec![
        "snapshot".into(),
        "create".into(),
        s.data.display().to_string(),
        "--pre".into(),
        "sleep 60".into(),
        "--hook-timeout".into(),
        "1".into(),
    ];
    let ran = run(&s.repo, &args);
    assert_eq!(ran.code, 1, "{}", ran.show());
    assert!(ran.stderr.contains("did not finish within its timeout"), "{}", ran.show());
    assert!(started.elapsed() < Duration::from_secs(30), "killed at its timeout, not waited for");
}

/// A stand-in for a service's admin API: records `/pause` and `/resume` calls in order.
fn recorder() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            // Read the rest of the request, so closing the connection does not reset it.
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 0) && header.trim() != "" {
                header.clear();
            }
            seen.lock().unwrap().push(path);
            let _ = (&stream).write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    (port, calls)
}

/// An argv hook calling the recorder (bash's /dev/tcp: no curl needed).
fn call(port: u16, what: &str) -> String {
    format!(
        "bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}; printf \"GET /{what} HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3 >/dev/null'"
    )
}

#[test]
fn resume_is_never_missing_even_after_sigterm() {
    let s = setup();
    let (port, calls) = recorder();
    // Enough data that the snapshot is still running when the signal comes, in most trials.
    let mut rng = common::Rng::new(7);
    for i in 0..12 {
        std::fs::write(s.data.join(format!("segment-{i:02}")), rng.bytes(4 << 20)).unwrap();
    }
    for (trial, delay_ms) in [0u64, 40, 120, 250, 500, 900].into_iter().enumerate() {
        let marker = s.data.with_file_name(format!("paused-{trial}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .envs(common::TEST_ENV)
            .arg("--repo")
            .arg(&s.repo)
            .args(["snapshot", "create", "--force", "-q"])
            .arg(&s.data)
            .args(["--pre", &call(port, "pause")])
            .args(["--pre", &format!("touch {}", marker.display())])
            .args(["--finally", &call(port, "resume")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while !marker.exists() && started.elapsed() < LIMIT {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
            rustix::process::Signal::TERM,
        )
        .ok();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(started.elapsed() < LIMIT, "trial {trial}: cairn did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(matches!(status.code(), Some(0) | Some(130)), "trial {trial}: {status:?} {stderr}");
        eprintln!("trial {trial}: SIGTERM {delay_ms} ms after the pre hooks, exit {:?}", status.code());
        let seen = calls.lock().unwrap().clone();
        let expected: Vec<String> = (0..=trial).flat_map(|_| ["/pause".to_string(), "/resume".to_string()]).collect();
        assert_eq!(seen, expected, "trial {trial} (exit {:?}): {stderr}", status.code());
    }
    // The repository is intact after the interrupted snapshots.
    let ran = cairn(&s.repo, &["repo", "check"], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
}

#[test]
fn restore_runs_its_hooks_and_post_not_after_an_incomplete_restore() {
    let s = setup();
    let ran = cairn(&s.repo, &["snapshot", "create", s.data.to_str().unwrap()], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    let target = s.data.with_file_name("restored");
    let mut args = vec!["restore".to_string(), "latest".into(), "--target".into(), target.display().to_string()];
    args.extend(logging_hooks(&s.log, ALL));
    let ran = run(&s.repo, &args);
    assert_eq!(ran.code, 0, "{}", ran.show());
    assert_eq!(log_lines(&s.log), ["pre ", "post success", "finally success"]);
    assert_eq!(std::fs::read(target.join("state")).unwrap(), b"service state");

    // Damage the data of one file: the restore finishes incompletely (exit 3), so `post`
    // (which would start the service on it) does not run; on-failure and finally do.
    {
        use cairn::repo::{Access, IndexKind, Repository};
        let repo =
            Repository::open_local_with(&s.repo, Access::Read, IndexKind::Persistent, &common::test_keys()).unwrap();
        let snap = repo.resolve_snapshot(&"latest".parse().unwrap()).unwrap().1;
        let path = std::fs::canonicalize(s.data.join("state")).unwrap();
        let node = cairn::ops::select::find_node(&repo, &snap, path.to_str().unwrap().as_bytes()).unwrap().unwrap();
        let loc = repo.locate(&repo.file_chunks(&node).unwrap()[0].id).unwrap();
        let pack = s.repo.join(cairn::repo::pack_key(&loc.pack));
        let mut bytes = std::fs::read(&pack).unwrap();
        bytes[loc.offset as usize + loc.stored_len as usize / 2] ^= 0xff;
        std::fs::write(&pack, bytes).unwrap();
    }
    std::fs::remove_file(&s.log).unwrap();
    let target = s.data.with_file_name("restored-2");
    let mut args = vec!["restore".to_string(), "latest".into(), "--target".into(), target.display().to_string()];
    args.extend(logging_hooks(&s.log, ALL));
    let ran = run(&s.repo, &args);
    assert_eq!(ran.code, 3, "{}", ran.show());
    assert_eq!(log_lines(&s.log), ["pre ", "on-failure failure", "finally failure"]);
}
