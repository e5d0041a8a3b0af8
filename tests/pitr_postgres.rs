//! Point-in-time recovery of a real PostgreSQL (Debian's packages): WAL archived by
//! `archive_command = 'cairn wal push %p'`, online base backups with `snapshot create
//! --postgres`, load between them, and `restore --at T` replaying to exactly T.
//!
//! The server runs as an unprivileged user (`postgres` when the tests run as root) on a Unix
//! socket in a temporary directory, and is stopped when the test ends. `scripts/test.sh`
//! installs PostgreSQL when it is missing; without it this test fails rather than skips.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const STREAM: &str = "pg";

fn pg_bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|b| b.join("initdb").exists()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.pop().expect("PostgreSQL is not installed (scripts/test.sh installs Debian's postgresql)")
}

fn is_root() -> bool {
    cairn::fs::is_root()
}

/// A command run as the unprivileged PostgreSQL user.
fn as_pg(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--reset-env"]).arg(program);
        c.env("PATH", "/usr/bin:/bin");
        c
    } else {
        Command::new(program)
    }
}

/// How long any one program the test waits for may take (pg_ctl, psql, pgbench, cairn).
const LIMIT: Duration = Duration::from_secs(300);

/// Runs `c` to completion within [`LIMIT`]; a hang fails the test with `log` shown.
fn done(c: &mut Command, log: Option<&Path>) -> Output {
    common::process::output_within(c, b"", LIMIT, log)
}

fn check(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({:?}):\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// One PostgreSQL server on a Unix socket.
struct Server {
    bin: PathBuf,
    data: PathBuf,
    sock: PathBuf,
    port: u16,
}

impl Server {
    fn start(&self) {
        let log = self.data.with_extension("log");
        let o = done(
            as_pg(&self.bin.join("pg_ctl")).args([
                "-D",
                self.data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "120",
                "start",
            ]),
            Some(&log),
        );
        if !o.status.success() {
            panic!(
                "pg_ctl start failed: {}\n{}",
                String::from_utf8_lossy(&o.stderr),
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
    }

    fn stop(&self) {
        let _ = done(
            as_pg(&self.bin.join("pg_ctl")).args([
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "-t",
                "120",
                "stop",
            ]),
            None,
        );
    }

    fn conninfo(&self) -> String {
        format!("host={} port={} user=postgres dbname=postgres", self.sock.display(), self.port)
    }

    fn sql(&self, sql: &str) -> String {
        let o = done(
            as_pg(&self.bin.join("psql")).args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.sock.to_str().unwrap(),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ]),
            None,
        );
        check(o, sql).trim().to_string()
    }

    fn pgbench(&self, args: &[&str]) {
        let o = done(
            as_pg(&self.bin.join("pgbench"))
                .args(["-h", self.sock.to_str().unwrap(), "-p", &self.port.to_string(), "-U", "postgres"])
                .args(args)
                .arg("postgres"),
            None,
        );
        check(o, "pgbench");
    }

    /// Waits until recovery has finished and the server accepts writes.
    fn wait_promoted(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.sql("SELECT pg_is_in_recovery()") != "f" {
            assert!(Instant::now() < deadline, "recovery did not finish");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Forces a WAL switch and waits until the finished segment is archived.
    fn switch_and_archive(&self) {
        let seg = self.sql("SELECT pg_walfile_name(pg_switch_wal())");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let last = self.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
            if last.as_str() >= seg.as_str() {
                return;
            }
            let failed = self.sql("SELECT coalesce(last_failed_wal, '') || ' ' || failed_count FROM pg_stat_archiver");
            assert!(Instant::now() < deadline, "segment {seg} was not archived (last {last}, failed {failed})");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The state a point-in-time restore must reproduce.
    fn state(&self) -> (String, String) {
        (self.sql("SELECT count(*) FROM marker"), self.sql("SELECT sum(abalance) FROM pgbench_accounts"))
    }

    /// Distinctive writes: marker rows plus pgbench transactions.
    fn load(&self, tag: &str, rows: u32) {
        self.sql(&format!("INSERT INTO marker(note) SELECT '{tag}-' || g FROM generate_series(1, {rows}) g"));
        self.pgbench(&["-n", "-t", "150", "-c", "2"]);
        self.sql(&format!("INSERT INTO marker(note) VALUES ('{tag}-end')"));
    }

    /// The server clock, as RFC 3339 UTC with microseconds.
    fn now(&self) -> String {
        self.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Harness {
    dir: tempfile::TempDir,
    bin: PathBuf,
    cairn: PathBuf,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let h = Harness { dir, bin: pg_bin_dir(), cairn: PathBuf::from(env!("CARGO_BIN_EXE_cairn")) };
        h.mkdir_pg(h.dir.path());
        for d in ["sock", "restores"] {
            h.mkdir_pg(&h.path(d));
        }
        h.mkdir_pg(&h.repo());
        // The repository is encrypted (the default); the server's archive and restore
        // commands read the password from a file only the server's user can read.
        fs::write(h.password_file(), "pitr test password\n").unwrap();
        fs::set_permissions(h.password_file(), fs::Permissions::from_mode(0o600)).unwrap();
        if is_root() {
            let s = Command::new("chown").args(["postgres:postgres"]).arg(h.password_file()).status().unwrap();
            assert!(s.success());
        }
        let out = h.cairn(&["init", "--kdf-memory-kib", "8", "--kdf-passes", "1"]);
        assert!(out.contains("created repository"), "{out}");
        h
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn repo(&self) -> PathBuf {
        self.path("repo")
    }

    fn password_file(&self) -> PathBuf {
        self.path("password")
    }

    /// A directory the PostgreSQL user owns.
    fn mkdir_pg(&self, p: &Path) {
        fs::create_dir_all(p).unwrap();
        if is_root() {
            let s = Command::new("chown").args(["postgres:postgres"]).arg(p).status().unwrap();
            assert!(s.success());
        }
    }

    /// Runs cairn as the PostgreSQL user (the same user that archives WAL).
    fn cairn(&self, args: &[&str]) -> String {
        let o = done(
            as_pg(&self.cairn)
                .arg("--repo")
                .arg(self.repo())
                .arg("--password-file")
                .arg(self.password_file())
                .args(args),
            None,
        );
        check(o, &format!("cairn {args:?}"))
    }

    fn initdb(&self, port: u16) -> Server {
        let data = self.path("primary");
        self.mkdir_pg(&data);
        let o = done(
            as_pg(&self.bin.join("initdb")).args([
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ]),
            None,
        );
        check(o, "initdb");
        let conf = format!(
            "listen_addresses = ''\nunix_socket_directories = '{sock}'\nport = {port}\nwal_level = replica\n\
             archive_mode = on\narchive_command = '{cairn} --repo {repo} --password-file {pw} --quiet wal push %p --stream {STREAM}'\n\
             max_wal_size = '64MB'\nfsync = off\nsynchronous_commit = off\n",
            sock = self.path("sock").display(),
            cairn = self.cairn.display(),
            repo = self.repo().display(),
            pw = self.password_file().display(),
        );
        append(&data.join("postgresql.conf"), &conf);
        Server { bin: self.bin.clone(), data, sock: self.path("sock"), port }
    }

    /// `restore --at` into a fresh directory, then start a server on it (another port).
    fn restore_at(&self, at: &str, name: &str, port: u16) -> (Server, String) {
        let target = self.path("restores").join(name);
        let out = self.cairn(&["restore", "--at", at, "--stream", STREAM, "--target", target.to_str().unwrap()]);
        assert!(out.contains("PostgreSQL data directory prepared"), "{out}");
        append(&target.join("postgresql.auto.conf"), &format!("port = {port}\n"));
        let server = Server { bin: self.bin.clone(), data: target, sock: self.path("sock"), port };
        server.start();
        server.wait_promoted();
        (server, out)
    }

    fn snapshot(&self, server: &Server) -> String {
        let out = self.cairn(&[
            "snapshot",
            "create",
            "--json",
            "--tag",
            "pg",
            "--postgres",
            &server.conninfo(),
            server.data.to_str().unwrap(),
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["id"].as_str().unwrap().to_string()
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn restore_to_a_timestamp_replays_postgres_to_exactly_then() {
    let h = Harness::new();
    let primary = h.initdb(54321);
    primary.start();
    primary.pgbench(&["-i", "-s", "2", "-q"]);
    primary.sql(
        "CREATE TABLE marker(id bigserial PRIMARY KEY, note text NOT NULL, at timestamptz DEFAULT clock_timestamp())",
    );

    // Hourly-style: base backup, load, T1, base backup, load, T2, base backup, load.
    let s1 = h.snapshot(&primary);
    primary.load("h1", 1000);
    let state1 = primary.state();
    let t1 = primary.now();
    std::thread::sleep(Duration::from_millis(300));
    let s2 = h.snapshot(&primary);
    primary.load("h2", 2000);
    primary.switch_and_archive();
    let state2 = primary.state();
    let t2 = primary.now();
    std::thread::sleep(Duration::from_millis(300));
    let s3 = h.snapshot(&primary);
    primary.load("h3", 500);
    primary.switch_and_archive();
    assert_ne!(state1, state2);
    assert_ne!(primary.state(), state2);

    // The backup_label is in the snapshot and pg_wal's contents are not.
    let ls = h.cairn(&["ls", &s1[..12], primary.data.to_str().unwrap()]);
    assert!(ls.contains("/backup_label"), "{ls}");
    assert!(!ls.contains("pg_wal/0000"), "{ls}");
    assert!(!ls.contains("postmaster.pid"), "{ls}");
    let wal = h.cairn(&["wal", "list", "--stream", STREAM]);
    assert!(wal.lines().count() > 3, "{wal}");

    // T1 lies between the first and second snapshot, T2 between the second and third.
    for (at, want, snap, port) in [(&t1, &state1, &s1, 54322u16), (&t2, &state2, &s2, 54323)] {
        let (restored, out) = h.restore_at(at, &format!("at-{port}"), port);
        assert!(out.contains(&format!("snapshot {}", &snap[..8])), "restore --at {at} chose the wrong snapshot: {out}");
        assert_eq!(&restored.state(), want, "state after restoring to {at}");
        restored.stop();
    }
    let _ = s3;
    primary.stop();
}
