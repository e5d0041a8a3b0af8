//! `--metrics-file` through the real binary: the text format (a golden file with the
//! time-dependent values masked, and `promtool check metrics`), several commands sharing one
//! file without erasing each other's samples, and values equal to what `status` reports.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::cli::{cairn, Ran};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(180);

struct Setup {
    dir: tempfile::TempDir,
    repo: PathBuf,
    data: PathBuf,
    prom: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (repo, data, prom) = (dir.path().join("repo"), dir.path().join("data"), dir.path().join("cairn.prom"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("state"), b"service state").unwrap();
    ok(&repo, &["init"]);
    Setup { dir, repo, data, prom }
}

fn ok(repo: &Path, args: &[&str]) -> Ran {
    let ran = cairn(repo, args, LIMIT);
    assert_eq!(ran.code, 0, "cairn {args:?}: {}", ran.show());
    ran
}

/// Series → value text of a metrics file.
fn samples(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.to_string())
        })
        .collect()
}

/// Runs every command that writes metrics into the same file.
fn run_everything(s: &Setup) {
    let m = s.prom.to_str().unwrap();
    let data = s.data.to_str().unwrap();
    ok(&s.repo, &["snapshot", "create", data, "--metrics-file", m]);
    std::fs::write(s.data.join("state"), b"service state, later").unwrap();
    ok(&s.repo, &["snapshot", "create", data, "--metrics-file", m]);
    ok(&s.repo, &["restore-test", "latest", "--verify", "true", "--metrics-file", m]);
    ok(&s.repo, &["repo", "check", "--read-data", "--metrics-file", m]);
    let wal = s.dir.path().join("000000010000000000000001");
    std::fs::write(&wal, vec![7u8; 4096]).unwrap();
    ok(&s.repo, &["wal", "push", wal.to_str().unwrap(), "--metrics-file", m]);
    ok(&s.repo, &["forget", "--keep-last", "5", "--prune", "--metrics-file", m]);
}

const TIME_DEPENDENT: &[&str] = &[
    "cairn_check_duration_seconds",
    "cairn_check_last_timestamp_seconds",
    "cairn_check_read_bytes",
    "cairn_forget_last_timestamp_seconds",
    "cairn_prune_last_timestamp_seconds",
    "cairn_prune_freed_bytes",
    "cairn_restore_test_duration_seconds",
    "cairn_restore_test_last_timestamp_seconds",
    "cairn_snapshot_added_bytes",
    "cairn_snapshot_duration_seconds",
    "cairn_snapshot_last_success_timestamp_seconds",
    "cairn_wal_archive_lag_seconds",
    "cairn_wal_last_archive_timestamp_seconds",
];

#[test]
fn the_file_matches_the_golden_format_with_times_masked() {
    let s = setup();
    run_everything(&s);
    let text = std::fs::read_to_string(&s.prom).unwrap();
    let source = format!("{}:{}", hostname(), std::fs::canonicalize(&s.data).unwrap().display());
    let masked: String = text
        .replace(&format!("repo=\"{}\"", s.repo.display()), "repo=\"REPO\"")
        .replace(&format!("source=\"{source}\""), "source=\"SOURCE\"")
        .lines()
        .map(|l| match l.rsplit_once(' ') {
            Some((series, _)) if !l.starts_with('#') && TIME_DEPENDENT.iter().any(|n| series.starts_with(n)) => {
                format!("{series} X\n")
            }
            _ => format!("{l}\n"),
        })
        .collect();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics/everything.prom");
    if std::env::var_os("CAIRN_BLESS").is_some() {
        std::fs::write(&golden, &masked).unwrap();
    }
    assert_eq!(masked, std::fs::read_to_string(&golden).unwrap(), "CAIRN_BLESS=1 rewrites the golden file");
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string()
}

#[test]
fn promtool_accepts_the_file_of_every_command_and_of_status() {
    let s = setup();
    run_everything(&s);
    let status_file = s.dir.path().join("status.prom");
    ok(&s.repo, &["status", "--metrics-file", status_file.to_str().unwrap()]);
    for file in [&s.prom, &status_file] {
        // Installed by scripts/deps.sh (Debian package `prometheus`).
        let out = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(file).unwrap())
            .output()
            .expect("promtool is not installed: run scripts/deps.sh (Debian package prometheus)");
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            out.status.success(),
            "promtool: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool warns: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn command_metrics_equal_what_status_reports() {
    let s = setup();
    run_everything(&s);
    let written = samples(&std::fs::read_to_string(&s.prom).unwrap());
    let status_file = s.dir.path().join("status.prom");
    let ran = ok(&s.repo, &["status", "--json", "--metrics-file", status_file.to_str().unwrap()]);
    let status: Value = serde_json::from_str(&ran.stdout()).unwrap();
    let from_status = samples(&std::fs::read_to_string(&status_file).unwrap());
    let mut compared = 0;
    for (series, value) in &written {
        // The lag is the age when written: it grows between the two writes.
        if series.starts_with("cairn_wal_archive_lag_seconds") {
            continue;
        }
        if let Some(v) = from_status.get(series) {
            assert_eq!(v, value, "{series}");
            compared += 1;
        }
    }
    assert!(compared >= 12, "{compared} series compared: {written:?} vs {from_status:?}");
    // And the JSON says the same.
    let src = &status["sources"][0];
    let key = |name: &str| {
        written
            .iter()
            .find(|(k, _)| k.starts_with(&format!("{name}{{")))
            .map(|(_, v)| v.parse::<f64>().unwrap())
            .unwrap()
    };
    assert_eq!(
        key("cairn_snapshot_last_success_timestamp_seconds"),
        src["last_snapshot"]["finished"]["timestamp_seconds"].as_f64().unwrap()
    );
    assert_eq!(key("cairn_snapshot_added_bytes"), src["last_snapshot"]["added_bytes"].as_f64().unwrap());
    assert_eq!(key("cairn_snapshot_duration_seconds"), src["last_snapshot"]["duration_seconds"].as_f64().unwrap());
    assert_eq!(key("cairn_restore_test_success"), 1.0);
    assert_eq!(
        key("cairn_restore_test_last_timestamp_seconds"),
        src["last_restore_test"]["finished"]["timestamp_seconds"].as_f64().unwrap()
    );
    assert_eq!(key("cairn_check_success"), 1.0);
    assert_eq!(
        key("cairn_check_last_timestamp_seconds"),
        status["last_check"]["finished"]["timestamp_seconds"].as_f64().unwrap()
    );
    assert_eq!(
        key("cairn_wal_last_archive_timestamp_seconds"),
        status["wal"][0]["newest_archived"]["timestamp_seconds"].as_f64().unwrap()
    );
}

#[test]
fn a_failed_snapshot_is_in_the_metrics_even_without_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("cairn.prom");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let missing = dir.path().join("no-repo");
    let ran = cairn(
        &missing,
        &["snapshot", "create", data.to_str().unwrap(), "--metrics-file", prom.to_str().unwrap()],
        LIMIT,
    );
    assert_eq!(ran.code, 10, "{}", ran.show());
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.contains("cairn_snapshot_last_failure_timestamp_seconds{repo="), "{text}");
    assert_eq!(ran.stderr.lines().count(), 1, "one clear error line: {}", ran.show());
}
