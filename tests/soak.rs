//! Soak: everything the design says may run at once, through the real binary, for a while.
//!
//! Two writers back up trees of their own that change between their snapshots; two more
//! back up one shared tree at the same moment (the test changes it between rounds, never
//! during one); `forget --keep-last 3 --prune` runs in a loop, `repo check` in another, and
//! restores of random recorded snapshots in a third. Every snapshot's manifest (path → BLAKE3
//! and size) is recorded when it is taken, which is exact because nothing changes a tree while
//! a snapshot of it runs.
//!
//! Asserts: every `snapshot create` exits 0, no `repo check` exits non-zero (4 would be
//! damage), every restore equals the manifest of its snapshot (a snapshot forgotten before
//! the restore found it is skipped), prune never fails but for its lock wait, and a final
//! `repo check --read-data` is clean. Every child has a deadline: on expiry it is killed and
//! its stderr printed.
//!
//! `CAIRN_SOAK_SECS` (60) sets the duration, `CAIRN_SOAK_SEED` (17) the seed.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::Rng;

/// Longest any child may run: beyond the 60 s lock wait, with room for a slow machine.
const CHILD_DEADLINE: Duration = Duration::from_secs(240);

/// Path → (BLAKE3 hex, size) of every regular file below a root.
type Manifest = BTreeMap<String, (String, u64)>;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// One finished child.
struct Run {
    /// Exit code; -1 when it was killed at its deadline or died of a signal.
    code: i32,
    stdout: String,
    stderr: String,
    secs: f64,
}

/// Runs, exit codes and durations per command.
#[derive(Default)]
struct Tally {
    runs: u64,
    codes: BTreeMap<i32, u64>,
    secs: Vec<f64>,
    /// First lines of the stderr of failed runs, with the code.
    failures: Vec<String>,
}

struct Soak {
    dir: tempfile::TempDir,
    end: Instant,
    children: AtomicU64,
    tallies: Mutex<BTreeMap<&'static str, Tally>>,
    /// Snapshot id → manifest at snapshot time.
    manifests: Mutex<HashMap<String, Manifest>>,
    /// Snapshot ids in the order they were recorded.
    recorded: Mutex<Vec<String>>,
    /// Restore problems: a restore that differs from its manifest, or failed for another
    /// reason than its snapshot having been forgotten.
    restore_errors: Mutex<Vec<String>>,
    restores_compared: AtomicU64,
    restores_forgotten: AtomicU64,
}

impl Soak {
    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn running(&self) -> bool {
        Instant::now() < self.end
    }

    fn spawn(&self, args: &[&str]) -> (std::process::Child, PathBuf, PathBuf, Instant) {
        let n = self.children.fetch_add(1, Ordering::Relaxed);
        let (out, err) = (self.dir.path().join(format!("logs/{n}.out")), self.dir.path().join(format!("logs/{n}.err")));
        let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .envs(common::TEST_ENV)
            .arg("--repo")
            .arg(self.repo())
            .args(args)
            .env("CAIRN_IO_THREADS", "4")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        (child, out, err, Instant::now())
    }

    /// Waits for a child up to [`CHILD_DEADLINE`], killing it then; tallies it under `what`.
    fn wait(&self, what: &'static str, spawned: (std::process::Child, PathBuf, PathBuf, Instant)) -> Run {
        let (mut child, out, err, started) = spawned;
        let code = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status.code().unwrap_or(-1);
            }
            if started.elapsed() > CHILD_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!("{what}: killed after {CHILD_DEADLINE:?}; stderr:\n{}", fs::read_to_string(&err).unwrap());
                break -1;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let run = Run {
            code,
            stdout: fs::read_to_string(&out).unwrap_or_default(),
            stderr: fs::read_to_string(&err).unwrap_or_default(),
            secs: started.elapsed().as_secs_f64(),
        };
        let _ = (fs::remove_file(out), fs::remove_file(err));
        let mut tallies = self.tallies.lock().unwrap();
        let t = tallies.entry(what).or_default();
        t.runs += 1;
        *t.codes.entry(code).or_default() += 1;
        t.secs.push(run.secs);
        if code != 0 {
            let out: String =
                run.stdout.lines().filter(|l| !l.starts_with("warning")).take(6).collect::<Vec<_>>().join(" | ");
            t.failures.push(format!("exit {code}: {} {out}", run.stderr.trim()));
        }
        run
    }

    fn run(&self, what: &'static str, args: &[&str]) -> Run {
        let child = self.spawn(args);
        self.wait(what, child)
    }

    fn record(&self, run: &Run, manifest: &Manifest) {
        if run.code != 0 {
            return;
        }
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let id = v["id"].as_str().unwrap_or_else(|| panic!("no id in {}", run.stdout)).to_string();
        self.manifests.lock().unwrap().insert(id.clone(), manifest.clone());
        self.recorded.lock().unwrap().push(id);
    }

    /// A writer with a tree of its own, changed only between its snapshots.
    fn own_tree_writer(&self, name: &str, seed: u64) {
        let tree = self.dir.path().join(name);
        let mut rng = Rng::new(seed);
        populate(&tree, &mut rng);
        while self.running() {
            let manifest = manifest_of(&tree);
            let run = self.run("snapshot create (own tree)", &["--json", "snapshot", "create", tree.to_str().unwrap()]);
            self.record(&run, &manifest);
            mutate(&tree, &mut rng);
        }
    }

    /// Two writers snapshotting one tree at the same moment; the tree changes between rounds.
    fn shared_tree_writers(&self, seed: u64) {
        let tree = self.dir.path().join("shared");
        let mut rng = Rng::new(seed);
        populate(&tree, &mut rng);
        while self.running() {
            let manifest = manifest_of(&tree);
            let args = ["--json", "snapshot", "create", tree.to_str().unwrap()];
            let (a, b) = (self.spawn(&args), self.spawn(&args));
            for child in [a, b] {
                let run = self.wait("snapshot create (shared tree)", child);
                self.record(&run, &manifest);
            }
            mutate(&tree, &mut rng);
        }
    }

    fn pruner(&self, every: Duration) {
        while self.running() {
            sleep_while_running(self, every);
            self.run("forget --keep-last 3 --prune", &["forget", "--keep-last", "3", "--prune"]);
        }
    }

    fn checker(&self) {
        while self.running() {
            self.run("repo check", &["repo", "check"]);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Restores random snapshots among the most recently recorded (older ones are mostly
    /// forgotten) and compares each with its manifest.
    fn restorer(&self, seed: u64) {
        let mut rng = Rng::new(seed);
        let mut n = 0;
        while self.running() {
            let pick = {
                let recorded = self.recorded.lock().unwrap();
                let recent = &recorded[recorded.len().saturating_sub(12)..];
                (!recent.is_empty()).then(|| recent[rng.below(recent.len() as u64) as usize].clone())
            };
            let Some(id) = pick else {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            };
            n += 1;
            let target = self.dir.path().join(format!("restore-{n}"));
            let run = self.run("restore", &["restore", &id, "--target", target.to_str().unwrap()]);
            let gone = !self.repo().join("snapshots").join(&id).exists();
            if run.code == 0 {
                let expected = self.manifests.lock().unwrap()[&id].clone();
                let got = manifest_of(&target);
                if got == expected {
                    self.restores_compared.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.restore_errors.lock().unwrap().push(format!("snapshot {id}: {}", diff(&expected, &got)));
                }
            } else if gone && (run.stderr.contains("not found") || run.code == 3) {
                // Forgotten before the restore found it, or (exit 3) after it resolved the id but
                // before it held its lock, when a prune removed the data meanwhile: the CLI
                // resolves the snapshot before `ops::restore` takes the lock.
                self.restores_forgotten.fetch_add(1, Ordering::Relaxed);
            } else {
                self.restore_errors.lock().unwrap().push(format!("snapshot {id}: exit {}: {}", run.code, run.stderr));
            }
            let _ = fs::remove_dir_all(&target);
        }
    }
}

fn sleep_while_running(soak: &Soak, d: Duration) {
    let until = Instant::now() + d;
    while soak.running() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Files of a tree: a few directories, sizes from a few bytes to 300 KiB, half compressible.
fn write_random(path: &Path, rng: &mut Rng) {
    let len = match rng.below(4) {
        0 => rng.below(200) as usize,
        1 => 1000 + rng.below(20_000) as usize,
        _ => 20_000 + rng.below(300_000) as usize,
    };
    let data = if rng.below(2) == 0 { rng.bytes(len) } else { rng.events(len) };
    fs::write(path, data).unwrap();
}

fn populate(tree: &Path, rng: &mut Rng) {
    for d in ["", "a", "a/b", "c"] {
        fs::create_dir_all(tree.join(d)).unwrap();
    }
    for i in 0..24 {
        let dir = ["", "a", "a/b", "c"][i % 4];
        write_random(&tree.join(dir).join(format!("f{i}")), rng);
    }
}

/// Changes a few files: rewrites, appends, new files and deletions.
fn mutate(tree: &Path, rng: &mut Rng) {
    for _ in 0..1 + rng.below(4) {
        let files: Vec<PathBuf> = manifest_of(tree).keys().map(|k| tree.join(k)).collect();
        let f = &files[rng.below(files.len() as u64) as usize];
        match rng.below(4) {
            0 => write_random(f, rng),
            1 => {
                use std::io::Write;
                let mut file = fs::OpenOptions::new().append(true).open(f).unwrap();
                let len = 1 + rng.below(50_000) as usize;
                file.write_all(&rng.events(len)).unwrap();
            }
            2 => {
                let name = format!("n{}", rng.below(1000));
                write_random(&f.with_file_name(name), rng);
            }
            _ if files.len() > 8 => fs::remove_file(f).unwrap(),
            _ => write_random(f, rng),
        }
    }
}

fn manifest_of(root: &Path) -> Manifest {
    let mut m = Manifest::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                dirs.push(e.path());
            } else if t.is_file() {
                let data = fs::read(e.path()).unwrap();
                let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
                m.insert(rel, (blake3::hash(&data).to_hex().to_string(), data.len() as u64));
            }
        }
    }
    m
}

fn diff(expected: &Manifest, got: &Manifest) -> String {
    let mut out = Vec::new();
    for (k, v) in expected {
        match got.get(k) {
            None => out.push(format!("{k} missing")),
            Some(g) if g != v => out.push(format!("{k} differs ({} bytes, expected {})", g.1, v.1)),
            _ => {}
        }
    }
    out.extend(got.keys().filter(|k| !expected.contains_key(*k)).map(|k| format!("{k} extra")));
    out.join(", ")
}

fn percentile(secs: &mut [f64], p: f64) -> f64 {
    secs.sort_by(|a, b| a.total_cmp(b));
    secs.get(((secs.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0)
}

fn report(soak: &Soak, elapsed: Duration) -> String {
    let mut out = format!("soak: {:.0} s\n", elapsed.as_secs_f64());
    out += "| command | runs | exit codes | median s | p95 s | max s |\n|---|---|---|---|---|---|\n";
    let mut tallies = soak.tallies.lock().unwrap();
    for (what, t) in tallies.iter_mut() {
        let codes: Vec<String> = t.codes.iter().map(|(c, n)| format!("{c}: {n}")).collect();
        let (median, p95, max) =
            (percentile(&mut t.secs, 0.5), percentile(&mut t.secs, 0.95), percentile(&mut t.secs, 1.0));
        out += &format!("| {what} | {} | {} | {median:.2} | {p95:.2} | {max:.2} |\n", t.runs, codes.join(", "));
    }
    out += &format!(
        "restores compared with their manifest: {}; of forgotten snapshots: {}; restore problems: {}\n",
        soak.restores_compared.load(Ordering::Relaxed),
        soak.restores_forgotten.load(Ordering::Relaxed),
        soak.restore_errors.lock().unwrap().len()
    );
    for (what, t) in tallies.iter() {
        for f in t.failures.iter().take(20) {
            out += &format!("{what}: {f}\n");
        }
    }
    for e in soak.restore_errors.lock().unwrap().iter().take(20) {
        out += &format!("restore: {e}\n");
    }
    out
}

#[test]
fn writers_prune_check_and_restores_at_once() {
    let secs = env_u64("CAIRN_SOAK_SECS", 60);
    let seed = env_u64("CAIRN_SOAK_SEED", 17);
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("logs")).unwrap();
    let soak = Soak {
        dir,
        end: Instant::now() + Duration::from_secs(secs),
        children: AtomicU64::new(0),
        tallies: Mutex::default(),
        manifests: Mutex::default(),
        recorded: Mutex::default(),
        restore_errors: Mutex::default(),
        restores_compared: AtomicU64::new(0),
        restores_forgotten: AtomicU64::new(0),
    };
    // Small packs, so a prune has packs to delete and repack.
    let init = soak.run("init", &["init", "--pack-mib", "1"]);
    assert_eq!(init.code, 0, "{}", init.stderr);
    let started = Instant::now();
    // A prune every 30 s in a long run, every 10 s in a short one.
    let prune_every = Duration::from_secs((secs / 6).clamp(10, 30));
    std::thread::scope(|s| {
        s.spawn(|| soak.own_tree_writer("tree-a", seed ^ 1));
        s.spawn(|| soak.own_tree_writer("tree-b", seed ^ 2));
        s.spawn(|| soak.shared_tree_writers(seed ^ 3));
        s.spawn(|| soak.pruner(prune_every));
        s.spawn(|| soak.checker());
        s.spawn(|| soak.restorer(seed ^ 4));
    });
    let elapsed = started.elapsed();
    let last = soak.run("repo check --read-data (final)", &["repo", "check", "--read-data"]);
    let summary = report(&soak, elapsed);
    println!("seed {seed}\n{summary}");
    let tallies = soak.tallies.lock().unwrap();
    let failed = |what: &str, ok: &dyn Fn(i32) -> bool| -> u64 {
        tallies.get(what).map_or(0, |t| t.codes.iter().filter(|(c, _)| !ok(**c)).map(|(_, n)| n).sum())
    };
    let fails = [
        failed("snapshot create (own tree)", &|c| c == 0),
        failed("snapshot create (shared tree)", &|c| c == 0),
        failed("repo check", &|c| c == 0),
        // Prune may give up waiting for the exclusive lock (exit 11) while others work.
        failed("forget --keep-last 3 --prune", &|c| c == 0 || c == 11),
    ];
    assert_eq!(fails, [0, 0, 0, 0], "seed {seed}: failed runs\n{summary}");
    assert!(soak.restore_errors.lock().unwrap().is_empty(), "seed {seed}\n{summary}");
    assert!(soak.restores_compared.load(Ordering::Relaxed) > 0, "no restore compared\n{summary}");
    assert_eq!(last.code, 0, "final check --read-data:\n{}{}", last.stdout, last.stderr);
}
