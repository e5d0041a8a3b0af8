//! A real `redis-server` (Debian's package) under a writer that records every acknowledged
//! `SET seq:N`, snapshotted with `snapshot create --redis` while background saves (RDB mode)
//! or AOF rewrites (AOF mode) are forced from another thread. Every snapshot must restore into
//! a fresh server started with `aof-load-truncated no`, hold exactly the keys seq:1..M with M
//! at least the highest write acknowledged before the snapshot began, and hold no temp file.
//!
//! Each server runs on a free loopback port in a temporary directory; every wait has a
//! deadline and a failure prints the server's log. Without `redis-server` the test is skipped
//! with a message, unless `CAIRN_REQUIRE_SERVICES` is set (`scripts/test.sh` sets it after
//! installing the package), which makes a missing server a failure.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cairn::redis::{resp::Value, Client, Target};
use common::cli::{cairn, Ran};

/// Snapshots per mode (the issue asks for at least 20).
const SNAPSHOTS: usize = 20;
/// How long a server may take to start and load its data.
const START_LIMIT: Duration = Duration::from_secs(60);
const CAIRN_LIMIT: Duration = Duration::from_secs(120);

fn redis_server() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("redis-server")).find(|b| b.is_file()))
        .unwrap_or_default();
    if found.is_none() {
        assert!(
            std::env::var_os("CAIRN_REQUIRE_SERVICES").is_none(),
            "redis-server is not installed and CAIRN_REQUIRE_SERVICES is set (scripts/deps.sh installs it)"
        );
        eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server); set CAIRN_REQUIRE_SERVICES to fail instead");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One redis-server process, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
    /// The `--requirepass` it was given.
    password: Option<String>,
}

impl Server {
    /// Starts a server on `dir` with `config` (`--name value` pairs) and waits until it
    /// answers and finished loading; `None` (with its log) when it exits instead.
    fn start(bin: &Path, dir: &Path, config: &[&str]) -> Result<Server, String> {
        let port = free_port();
        let log = dir.with_extension("log");
        let child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(&log)
            .args(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server: {e}"))?;
        let password = config.iter().position(|a| *a == "--requirepass").map(|i| config[i + 1].to_string());
        let mut server = Server { child, port, log, password };
        let started = Instant::now();
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                return Err(format!("redis-server exited with {status}:\n{}", server.log_text()));
            }
            if let Ok(mut c) = Client::connect(&server.target()) {
                if c.info("persistence").is_ok_and(|i| i.get("loading").is_some_and(|l| l == "0")) {
                    return Ok(server);
                }
            }
            if started.elapsed() > START_LIMIT {
                return Err(format!("redis-server did not answer within {START_LIMIT:?}:\n{}", server.log_text()));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn target(&self) -> Target {
        Target { password: self.password.clone(), ..Target::parse(&self.url()).unwrap() }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn client(&self) -> Client {
        Client::connect(&self.target()).unwrap_or_else(|e| panic!("{e}\n{}", self.log_text()))
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = common::process::wait_within(&mut self.child, Duration::from_secs(30));
    }
}

/// Writes `SET seq:N` for N = 1, 2, … and publishes the highest N acknowledged.
fn writer(server: &Server, acked: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    let mut client = server.client();
    thread::spawn(move || {
        // Values long enough that a command often straddles a page: torn tails get a chance.
        let pad = "v".repeat(300);
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let reply = client.call(&["SET", &format!("seq:{n}"), &format!("{n}:{pad}")]).unwrap();
            assert_eq!(reply, Value::Simple("OK".into()));
            acked.store(n, Ordering::SeqCst);
            if n % 20 == 0 {
                thread::sleep(Duration::from_millis(2));
            }
        }
    })
}

/// Forces `command` (BGSAVE or BGREWRITEAOF) every `every` until stopped; "already in
/// progress" refusals are expected.
fn forcer(server: &Server, command: &'static str, every: Duration, stop: Arc<AtomicBool>) -> thread::JoinHandle<u64> {
    let mut client = server.client();
    thread::spawn(move || {
        let mut started = 0;
        while !stop.load(Ordering::Relaxed) {
            if client.call(&[command]).is_ok() {
                started += 1;
            }
            thread::sleep(every);
        }
        started
    })
}

/// The number of keys, after checking they are exactly seq:1..=M.
fn contiguous_prefix(client: &mut Client) -> u64 {
    let Value::Int(m) = client.call(&["DBSIZE"]).unwrap() else { panic!("DBSIZE") };
    let m = m as u64;
    let mut n = 1;
    while n <= m {
        let end = (n + 999).min(m);
        let keys: Vec<String> = (n..=end).map(|k| format!("seq:{k}")).collect();
        let mut args = vec!["EXISTS"];
        args.extend(keys.iter().map(String::as_str));
        let Value::Int(found) = client.call(&args).unwrap() else { panic!("EXISTS") };
        assert_eq!(found as u64, end - n + 1, "keys seq:{n}..={end} are not all present though DBSIZE is {m}");
        n = end + 1;
    }
    m
}

fn temp_files(dir: &Path, out: &mut Vec<String>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            temp_files(&e.path(), out);
        } else if e.file_name().to_string_lossy().starts_with("temp-") {
            out.push(e.path().display().to_string());
        }
    }
}

fn ok(ran: &Ran, what: &str) {
    assert_eq!(ran.code, 0, "{what}: {}", ran.show());
}

/// Runs the whole scenario in one mode, printing how many attempts each snapshot took and why
/// attempts were discarded. (The races the AOF check guards against are rare on a live server:
/// `ops/backup/redis_tests.rs` produces each of them deterministically.)
fn snapshots_restore_with_every_acknowledged_write(aof: bool) {
    let Some(bin) = redis_server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (data, repo) = (tmp.path().join("data"), tmp.path().join("repo"));
    fs::create_dir(&data).unwrap();
    ok(&cairn(&repo, &["init"], CAIRN_LIMIT), "init");
    let mode: &[&str] = if aof { &["--appendonly", "yes"] } else { &["--appendonly", "no"] };
    let server = Server::start(&bin, &data, mode).unwrap_or_else(|e| panic!("{e}"));
    let (acked, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let w = writer(&server, acked.clone(), stop.clone());
    let command = if aof { "BGREWRITEAOF" } else { "BGSAVE" };
    let f = forcer(&server, command, Duration::from_millis(150), stop.clone());
    thread::sleep(Duration::from_millis(300));
    let mut taken = Vec::new();
    let mut discards = std::collections::BTreeMap::new();
    for _ in 0..SNAPSHOTS {
        let before = acked.load(Ordering::SeqCst);
        let args =
            ["snapshot", "create", "--json", "--attempts", "20", "--redis", &server.url(), data.to_str().unwrap()];
        let ran = cairn(&repo, &args, CAIRN_LIMIT);
        if ran.code != 0 {
            panic!("snapshot failed: {}\nserver log:\n{}", ran.show(), server.log_text());
        }
        let out: serde_json::Value = serde_json::from_str(&ran.stdout()).unwrap();
        for why in out["discarded_attempts"].as_array().unwrap() {
            let why = why.as_str().unwrap();
            let kind = if why.contains("manifest") {
                "manifest changed"
            } else if why.contains("inside a command") {
                "torn incr tail"
            } else {
                why
            };
            *discards.entry(kind.to_string()).or_insert(0u32) += 1;
        }
        taken.push((out["id"].as_str().unwrap().to_string(), before, out["attempts"].as_u64().unwrap()));
    }
    stop.store(true, Ordering::Relaxed);
    w.join().unwrap();
    let forced = f.join().unwrap();
    drop(server);
    let attempts: Vec<u64> = taken.iter().map(|t| t.2).collect();
    eprintln!("{command} started {forced} times; attempts per snapshot: {attempts:?}; discarded: {discards:?}");
    for (i, (id, before, _)) in taken.iter().enumerate() {
        let target = tmp.path().join(format!("restore-{i}"));
        ok(&cairn(&repo, &["restore", id, "--target", target.to_str().unwrap()], CAIRN_LIMIT), "restore");
        let mut temps = Vec::new();
        temp_files(&target, &mut temps);
        assert!(temps.is_empty(), "snapshot {id} holds temp files: {temps:?}");
        let config = [mode, &["--aof-load-truncated", "no"]].concat();
        let restored = Server::start(&bin, &target, &config).unwrap_or_else(|e| panic!("snapshot {i} ({id}): {e}"));
        let m = contiguous_prefix(&mut restored.client());
        assert!(m >= *before, "snapshot {i} ({id}) holds seq:1..{m} but seq:{before} was acknowledged before it began");
    }
}

#[test]
fn rdb_snapshots_under_forced_bgsaves_restore_every_acknowledged_write() {
    snapshots_restore_with_every_acknowledged_write(false);
}

#[test]
fn aof_snapshots_under_forced_rewrites_restore_every_acknowledged_write() {
    snapshots_restore_with_every_acknowledged_write(true);
}

#[test]
fn a_unix_socket_and_a_password_file_work_and_mistakes_are_named() {
    let Some(bin) = redis_server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (data, repo, elsewhere) = (tmp.path().join("data"), tmp.path().join("repo"), tmp.path().join("elsewhere"));
    fs::create_dir(&data).unwrap();
    fs::create_dir(&elsewhere).unwrap();
    ok(&cairn(&repo, &["init"], CAIRN_LIMIT), "init");
    let sock = tmp.path().join("redis.sock");
    let config = ["--unixsocket", sock.to_str().unwrap(), "--requirepass", "s3cret"];
    let server = Server::start(&bin, &data, &config).unwrap_or_else(|e| panic!("{e}"));
    server.client().ok(&["SET", "seq:1", "1"]).unwrap();
    let (good, bad) = (tmp.path().join("good.pw"), tmp.path().join("bad.pw"));
    fs::write(&good, "s3cret\n").unwrap();
    fs::write(&bad, "wrong-password\n").unwrap();
    let url = format!("unix://{}", sock.display());
    let d = data.to_str().unwrap();

    let ran = cairn(
        &repo,
        &["snapshot", "create", "--redis", &url, "--redis-password-file", good.to_str().unwrap(), d],
        CAIRN_LIMIT,
    );
    ok(&ran, "snapshot over the socket with the password file");
    let ran = cairn(
        &repo,
        &["snapshot", "create", "--redis", &format!("redis://:s3cret@127.0.0.1:{}", server.port), d],
        CAIRN_LIMIT,
    );
    ok(&ran, "snapshot with the password in the URL");

    let ran = cairn(
        &repo,
        &["snapshot", "create", "--redis", &url, "--redis-password-file", bad.to_str().unwrap(), d],
        CAIRN_LIMIT,
    );
    assert_eq!(ran.code, 1, "{}", ran.show());
    assert!(ran.stderr.contains("error: Redis: AUTH refused by"), "{}", ran.show());
    assert!(!ran.stderr.contains("wrong-password"), "the password is never printed: {}", ran.show());

    let ran = cairn(
        &repo,
        &[
            "snapshot",
            "create",
            "--redis",
            &url,
            "--redis-password-file",
            good.to_str().unwrap(),
            elsewhere.to_str().unwrap(),
        ],
        CAIRN_LIMIT,
    );
    assert_eq!(ran.code, 2, "{}", ran.show());
    assert!(ran.stderr.contains("which is not under"), "{}", ran.show());

    let ran = cairn(&repo, &["snapshot", "create", "--redis", "redis://127.0.0.1:1", d], CAIRN_LIMIT);
    assert_eq!(ran.code, 1, "{}", ran.show());
    assert!(ran.stderr.contains("error: Redis: cannot connect to 127.0.0.1:1"), "{}", ran.show());
    let list = cairn(&repo, &["snapshot", "list", "--json"], CAIRN_LIMIT);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&list.stdout()).unwrap().as_array().unwrap().len(), 2);
}
