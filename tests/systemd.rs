//! `contrib/systemd/` and `contrib/cron.example` as shipped: every unit's `ExecStart` and
//! every cron command runs as written (the binary path and the instance substituted) against
//! a configuration and repository made here, and `systemd-analyze verify` accepts every unit
//! where it is installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::process::output_within;

const LIMIT: Duration = Duration::from_secs(120);
const SHIPPED_BINARY: &str = "/usr/local/bin/cairn";
const SYSTEMD_ANALYZE: &str = "/usr/bin/systemd-analyze";

fn contrib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib")
}

fn units() -> Vec<PathBuf> {
    let mut units: Vec<PathBuf> = std::fs::read_dir(contrib().join("systemd"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "service" || e == "timer"))
        .collect();
    units.sort();
    units
}

/// A configuration with repository `local` (initialised, its password in a file as a unit
/// would have it) and source `a`.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/state"), b"service state").unwrap();
        std::fs::write(dir.path().join("pw"), format!("{}\n", common::TEST_PASSWORD)).unwrap();
        let config = "[repositories.local]\nlocation = \"repo\"\npassword-file = \"pw\"\n\n\
                      [sources.a]\npaths = [\"data\"]\nretention = { keep-last = 3 }\n";
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let s = Setup { dir };
        let out = s.run(Command::new(env!("CARGO_BIN_EXE_cairn")).args(["init", "-q"]));
        assert!(out.status.success(), "init: {}", show(&out));
        s
    }

    /// Runs `cmd` as a unit or cron job would: no `CAIRN_*` from the test's environment but
    /// the configuration file, `/` as the working directory (relative paths in the file are
    /// relative to the file), the binary's directory on `PATH`.
    fn run(&self, cmd: &mut Command) -> Output {
        for var in ["CAIRN_REPO", "CAIRN_PASSWORD", "CAIRN_PASSWORD_FILE", "CAIRN_PASSWORD_COMMAND"] {
            cmd.env_remove(var);
        }
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_cairn")).parent().unwrap().display().to_string();
        cmd.env("PATH", format!("{bin_dir}:/usr/bin:/bin"))
            .env("CAIRN_CONFIG", self.dir.path().join("config.toml"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg"))
            .env("CAIRN_KDF_MEMORY_KIB", "8")
            .env("CAIRN_KDF_PASSES", "1")
            .current_dir("/");
        output_within(cmd, b"", LIMIT, None)
    }

    fn snapshots(&self) -> usize {
        let out = self.run(Command::new(env!("CARGO_BIN_EXE_cairn")).args(["snapshot", "list", "--json"]));
        assert!(out.status.success(), "list: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).matches("\"id\"").count()
    }
}

fn show(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The unit's `ExecStart=` command line with systemd's specifiers resolved as systemd would
/// for instance `instance` (`%i`, `%%`, `$$`), split into words as systemd splits them (its
/// quoting is the shell's for these lines), the shipped binary path replaced by the tested one.
fn exec_start(unit: &Path, instance: &str) -> Vec<String> {
    let text = std::fs::read_to_string(unit).unwrap();
    let line = text.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("a service has an ExecStart line");
    let resolved = line
        .replace("%%", "\u{0}")
        .replace("%i", instance)
        .replace('\u{0}', "%")
        .replace("$$", "$")
        .replace(SHIPPED_BINARY, env!("CARGO_BIN_EXE_cairn"));
    assert!(!resolved.contains('%') || resolved.contains("+%u"), "an unhandled specifier in {line}");
    shlex::split(&resolved).expect("ExecStart splits into words")
}

#[test]
fn every_units_exec_start_runs_as_written() {
    let s = Setup::new();
    let mut ran = Vec::new();
    // cairn@ first: the check and the prune then have a snapshot to look at.
    let mut services: Vec<PathBuf> =
        units().into_iter().filter(|u| u.extension().is_some_and(|e| e == "service")).collect();
    services.sort_by_key(|u| !u.file_name().unwrap().to_string_lossy().starts_with("cairn@"));
    for unit in services {
        let name = unit.file_name().unwrap().to_string_lossy().into_owned();
        // cairn@SOURCE; the check and prune units take a repository name.
        let instance = if name == "cairn@.service" { "a" } else { "local" };
        let argv = exec_start(&unit, instance);
        let out = s.run(Command::new(&argv[0]).args(&argv[1..]));
        assert!(out.status.success(), "{name}: {argv:?}: {}", show(&out));
        ran.push(name);
    }
    assert_eq!(ran, ["cairn@.service", "cairn-check@.service", "cairn-prune@.service"]);
    assert_eq!(s.snapshots(), 1, "cairn@a made a snapshot of source a");
}

#[test]
fn every_cron_example_line_runs_as_written() {
    let s = Setup::new();
    let text = std::fs::read_to_string(contrib().join("cron.example")).unwrap();
    let mut ran = 0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains('=')) {
        // Five time fields and a user, then the command, given to sh with `\%` as cron
        // passes it (an unescaped % would end the command).
        let command: Vec<&str> = line.split_whitespace().skip(6).collect();
        let command = command.join(" ").replace("\\%", "%");
        let out = s.run(Command::new("/bin/sh").arg("-c").arg(&command));
        assert!(out.status.success(), "{line}: {}", show(&out));
        ran += 1;
    }
    assert_eq!(ran, 3, "run, check and prune");
    assert_eq!(s.snapshots(), 1, "`run --all` made a snapshot of source a");
}

/// `systemd-analyze verify` of `units`: its stderr lines other than the environment's noise
/// (no systemd as PID 1, no bus in a container).
fn verify(units: &[PathBuf]) -> (bool, Vec<String>) {
    let mut cmd = Command::new(SYSTEMD_ANALYZE);
    cmd.arg("verify").args(units).env("SYSTEMD_LOG_COLOR", "0");
    let out = output_within(&mut cmd, b"", LIMIT, None);
    let noise = [
        "not been booted with systemd",
        "not booted with systemd",
        "Failed to connect to bus",
        "Failed to create bus connection",
    ];
    let problems = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty() && !noise.iter().any(|n| l.contains(n)))
        .map(str::to_string)
        .collect();
    (out.status.success(), problems)
}

/// The units copied into `dir`, the tested binary in place of the shipped one (verify checks
/// that ExecStart's program is executable).
fn units_in(dir: &Path, edit: impl Fn(&str) -> String) -> Vec<PathBuf> {
    units()
        .iter()
        .map(|u| {
            let copy = dir.join(u.file_name().unwrap());
            let text = std::fs::read_to_string(u).unwrap().replace(SHIPPED_BINARY, env!("CARGO_BIN_EXE_cairn"));
            std::fs::write(&copy, edit(&text)).unwrap();
            copy
        })
        .collect()
}

#[test]
fn systemd_analyze_verify_accepts_every_unit() {
    if !Path::new(SYSTEMD_ANALYZE).exists() {
        eprintln!("skipped: {SYSTEMD_ANALYZE} is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let copies = units_in(dir.path(), str::to_string);
    assert_eq!(copies.len(), 6, "three services and three timers");
    let (ok, problems) = verify(&copies);
    assert!(ok && problems.is_empty(), "systemd-analyze verify: ok={ok} {problems:#?}");
    // The check can fail: a misspelt key is only a warning to systemd, but one here.
    let broken = tempfile::tempdir().unwrap();
    let copies = units_in(broken.path(), |t| t.replace("Persistent=true", "Persistant=true"));
    let (_, problems) = verify(&copies);
    assert!(problems.iter().any(|p| p.contains("Persistant")), "{problems:#?}");
}
