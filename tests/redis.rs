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
        let mut server = Server { child, port, log };
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
        Target::parse(&self.url()).unwrap()
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

/// Runs the whole scenario in one mode; returns how many attempts each snapshot took.
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
    for _ in 0..SNAPSHOTS {
        let before = acked.load(Ordering::SeqCst);
        let args =
            ["snapshot", "create", "--json", "--attempts", "20", "--redis", &server.url(), data.to_str().unwrap()];
        let ran = cairn(&repo, &args, CAIRN_LIMIT);
        if ran.code != 0 {
            panic!("snapshot failed: {}\nserver log:\n{}", ran.show(), server.log_text());
        }
        let out: serde_json::Value = serde_json::from_str(&ran.stdout()).unwrap();
        taken.push((out["id"].as_str().unwrap().to_string(), before, out["attempts"].as_u64().unwrap()));
    }
    stop.store(true, Ordering::Relaxed);
    w.join().unwrap();
    let forced = f.join().unwrap();
    drop(server);
    let attempts: Vec<u64> = taken.iter().map(|t| t.2).collect();
    eprintln!("{command} started {forced} times; attempts per snapshot: {attempts:?}");
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
