//! The configuration file through the real binary: errors that name file, line and key (exit
//! 2), the one configured repository as every command's default, the precedence flag > env >
//! file, `cairn run` with retention per source, a failing source that does not stop the
//! others, hook order, `--dry-run`, and every example in `contrib/config/` parsing.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::output_within;

const LIMIT: Duration = Duration::from_secs(120);

/// What a run of the binary did.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn show(&self) -> String {
        format!("exit {}\nstdout:\n{}\nstderr:\n{}", self.code, self.stdout, self.stderr)
    }
}

/// A directory with `config.toml`, a `data/` tree per source, and room for repositories.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(config: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        for source in ["a", "b"] {
            let data = dir.path().join("data").join(source);
            std::fs::create_dir_all(&data).unwrap();
            std::fs::write(data.join("state"), format!("state of {source}")).unwrap();
        }
        std::fs::write(dir.path().join("pw"), format!("{}\n", common::TEST_PASSWORD)).unwrap();
        std::fs::write(dir.path().join("wrong-pw"), "not the password\n").unwrap();
        let s = Setup { dir };
        s.write(config);
        s
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn config(&self) -> PathBuf {
        self.path("config.toml")
    }

    fn write(&self, config: &str) {
        std::fs::write(self.config(), config).unwrap();
    }

    /// `cairn --config config.toml ARGS…` with the test password in the environment.
    fn cairn(&self, args: &[&str]) -> Out {
        self.cairn_env(args, &[("CAIRN_PASSWORD", common::TEST_PASSWORD)])
    }

    /// The binary with `--config`, no `CAIRN_*` variable but `envs` (and the cheap KDF), and
    /// `XDG_CONFIG_HOME` pointing into the test directory, so no user's own file is read.
    fn cairn_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Out {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        for var in ["CAIRN_REPO", "CAIRN_CONFIG", "CAIRN_PASSWORD", "CAIRN_PASSWORD_FILE", "CAIRN_PASSWORD_COMMAND"] {
            cmd.env_remove(var);
        }
        cmd.env("XDG_CONFIG_HOME", self.path("xdg"))
            .env("CAIRN_KDF_MEMORY_KIB", "8")
            .env("CAIRN_KDF_PASSES", "1")
            .envs(envs.iter().copied())
            .current_dir(self.dir.path())
            .arg("--config")
            .arg(self.config())
            .args(args)
            .stdin(Stdio::null());
        let out = output_within(&mut cmd, b"", LIMIT, None);
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> Out {
        let out = self.cairn(args);
        assert_eq!(out.code, 0, "cairn {args:?}: {}", out.show());
        out
    }

    /// Snapshot ids per tag `source:NAME`, from `snapshot list --json`.
    fn snapshots_by_source(&self, repo_args: &[&str]) -> BTreeMap<String, Vec<String>> {
        let mut args = repo_args.to_vec();
        args.extend(["snapshot", "list", "--json"]);
        let out = self.ok(&args);
        let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let mut by = BTreeMap::<String, Vec<String>>::new();
        for s in list.as_array().unwrap() {
            for tag in s["tags"].as_array().unwrap() {
                if let Some(source) = tag.as_str().unwrap().strip_prefix("source:") {
                    by.entry(source.to_string()).or_default().push(s["id"].as_str().unwrap().to_string());
                }
            }
        }
        by
    }
}

const TWO_SOURCES: &str = r#"
[repositories.main]
location = "repo"

[sources.a]
paths = ["data/a"]
retention = { keep-last = 2 }

[sources.b]
paths = ["data/b"]
exclude = ["*.tmp"]
[sources.b.retention]
keep-last = 1
"#;

/// One line on stderr, exit 2, naming the file, the line and the key.
fn assert_config_error(out: &Out, file: &Path, line: usize, key: &str, says: &str) {
    assert_eq!(out.code, 2, "{}", out.show());
    let err = out.stderr.trim_end();
    assert_eq!(err.lines().count(), 1, "one line: {}", out.show());
    assert!(err.contains(&file.display().to_string()), "names the file: {err}");
    assert!(err.contains(&format!("line {line},")), "names line {line}: {err}");
    assert!(err.contains(&format!("key {key}:")), "names key {key}: {err}");
    assert!(err.contains(says), "says {says:?}: {err}");
}

#[test]
fn unknown_keys_wrong_types_and_unknown_names_exit_2_naming_file_line_and_key() {
    let s = Setup::new(TWO_SOURCES);
    let cases: &[(&str, usize, &str, &str)] = &[
        // A typo in a key.
        ("[repositories.main]\nlocation = \"repo\"\n[sources.a]\npaths = [\"x\"]\nexclud = [\"y\"]\n", 5, "sources.a.exclud", "unknown field `exclud`"),
        // A number where a string list belongs.
        ("[repositories.main]\nlocation = \"repo\"\n[sources.a]\npaths = 3\n", 4, "sources.a.paths", "invalid type"),
        // A string where a count belongs, in a sub-table.
        ("[repositories.main]\nlocation = \"repo\"\n[sources.a]\npaths = [\"x\"]\n[sources.a.retention]\nkeep-daily = \"7\"\n", 6, "sources.a.retention.keep-daily", "invalid type"),
        // A duration that is not one.
        ("[repositories.main]\nlocation = \"repo\"\n[sources.a]\npaths = [\"x\"]\nhooks.timeout = \"10 minutes\"\n", 5, "sources.a.hooks.timeout", "duration"),
        // A repository that is not configured.
        ("[repositories.main]\nlocation = \"repo\"\n\n[sources.a]\nrepository = \"mian\"\npaths = [\"x\"]\n", 5, "sources.a.repository", "no repository named \"mian\""),
        // A WAL stream whose base source is not configured.
        ("[repositories.main]\nlocation = \"repo\"\n[wal.pg]\nsource = \"postgres\"\n", 4, "wal.pg.source", "no source named \"postgres\""),
        // An unknown top-level table.
        ("[repositories.main]\nlocation = \"repo\"\n[source.a]\npaths = [\"x\"]\n", 3, "source", "unknown field `source`"),
    ];
    for (text, line, key, says) in cases {
        s.write(text);
        // Every command reads the file, not only `run`.
        for args in [&["run", "--all"][..], &["snapshot", "list"][..]] {
            assert_config_error(&s.cairn(args), &s.config(), *line, key, says);
        }
    }
}

#[test]
fn an_unknown_source_or_repository_name_on_the_command_line_exits_2_naming_the_file() {
    let s = Setup::new(TWO_SOURCES);
    let out = s.cairn(&["run", "a", "c"]);
    assert_eq!(out.code, 2, "{}", out.show());
    assert!(
        out.stderr.contains("no source named \"c\"") && out.stderr.contains("(configured: a, b)"),
        "{}",
        out.show()
    );
    assert!(out.stderr.contains(&s.config().display().to_string()), "{}", out.show());
    assert!(!s.path("repo").exists(), "nothing ran: {}", out.show());
    let out = s.cairn(&["--repo", "mian", "snapshot", "list"]);
    assert_eq!(out.code, 2, "{}", out.show());
    assert!(out.stderr.contains("no repository named \"mian\"") && out.stderr.contains("./mian"), "{}", out.show());
}

#[test]
fn the_only_configured_repository_is_every_commands_default() {
    let s = Setup::new(TWO_SOURCES);
    s.ok(&["init", "-q"]);
    assert!(s.path("repo/config").exists(), "init made the configured repository, relative to the file");
    s.ok(&["snapshot", "create", "data/a"]);
    assert_eq!(s.ok(&["snapshot", "list", "--json"]).stdout.matches("\"id\"").count(), 1);
    // By name, and CAIRN_REPO naming it too.
    s.ok(&["--repo", "main", "snapshot", "list"]);
    let by_env =
        s.cairn_env(&["snapshot", "list"], &[("CAIRN_PASSWORD", common::TEST_PASSWORD), ("CAIRN_REPO", "main")]);
    assert_eq!(by_env.code, 0, "{}", by_env.show());
    // With two repositories there is no default.
    s.write(
        "[repositories.main]\nlocation = \"repo\"\n[repositories.other]\nlocation = \"other\"\n\
         [sources.a]\nrepository = \"main\"\npaths = [\"data/a\"]\n",
    );
    let out = s.cairn(&["snapshot", "list"]);
    assert_eq!(out.code, 2, "{}", out.show());
    assert!(out.stderr.contains("no repository given"), "{}", out.show());
}

#[test]
fn a_flag_overrides_the_environment_and_the_environment_overrides_the_file() {
    let s = Setup::new(&TWO_SOURCES.replace("location = \"repo\"", "location = \"repo\"\npassword-file = \"pw\""));
    s.ok(&["init", "-q"]);
    // The file's password source alone opens it.
    let plain = s.cairn_env(&["snapshot", "list"], &[]);
    assert_eq!(plain.code, 0, "the file's password-file: {}", plain.show());
    // A wrong password in the environment beats the file's right one …
    let env = s.cairn_env(&["snapshot", "list"], &[("CAIRN_PASSWORD", "wrong")]);
    assert_eq!(env.code, 1, "CAIRN_PASSWORD wins over the file: {}", env.show());
    assert!(env.stderr.contains("wrong password"), "{}", env.show());
    // … and a flag beats the environment.
    let pw = s.path("pw").display().to_string();
    let flag = s.cairn_env(&["--password-file", &pw, "snapshot", "list"], &[("CAIRN_PASSWORD_FILE", "wrong-pw")]);
    assert_eq!(flag.code, 0, "--password-file wins over CAIRN_PASSWORD_FILE: {}", flag.show());
    // --repo with a location beats the configured repository.
    let elsewhere = s.path("elsewhere").display().to_string();
    s.ok(&["--repo", &elsewhere, "init", "-q"]);
    s.ok(&["--repo", &elsewhere, "snapshot", "create", "data/b"]);
    assert_eq!(s.snapshots_by_source(&["--repo", &elsewhere]).len(), 0, "a plain snapshot has no source tag");
    let listed = s.ok(&["--repo", &elsewhere, "snapshot", "list", "--json"]).stdout;
    assert!(listed.contains("data/b") && !listed.contains("data/a"), "{listed}");
    // `run --repo LOCATION` sends the sources there.
    s.ok(&["--repo", &elsewhere, "run", "a"]);
    assert_eq!(s.snapshots_by_source(&["--repo", &elsewhere])["a"].len(), 1);
    assert!(s.snapshots_by_source(&[]).is_empty(), "the configured repository was not used");
}

/// The ids `run --json` reports per source.
fn run_ids(out: &Out) -> BTreeMap<String, String> {
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    report["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["source"].as_str().unwrap().to_string(), s["snapshot"].as_str().unwrap_or("").to_string()))
        .collect()
}

#[test]
fn run_all_applies_each_sources_retention_to_its_own_snapshots() {
    let s = Setup::new(TWO_SOURCES);
    s.ok(&["init", "-q"]);
    let mut made: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for round in 0..3 {
        std::fs::write(s.path("data/a/state"), format!("a, round {round}")).unwrap();
        let out = s.ok(&["run", "--all", "--json"]);
        for (source, id) in run_ids(&out) {
            made.entry(source).or_default().push(id);
        }
    }
    let kept = s.snapshots_by_source(&[]);
    let newest = |source: &str, n: usize| {
        let ids = &made[source];
        let mut want = ids[ids.len() - n..].to_vec();
        want.sort();
        want
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(sorted(kept["a"].clone()), newest("a", 2), "a keeps its last 2");
    assert_eq!(sorted(kept["b"].clone()), newest("b", 1), "b keeps its last 1, and a's rule did not touch it");
    // Human summary: one line per source.
    let out = s.ok(&["run", "b"]);
    assert!(out.stdout.starts_with("b: snapshot ") && out.stdout.contains("forgot 1, kept 1"), "{}", out.show());
}

#[test]
fn a_failing_source_does_not_stop_the_next_and_the_exit_code_is_the_worst() {
    let config = TWO_SOURCES.replace("[sources.b.retention]", "hooks.pre = [\"false\"]\n[sources.b.retention]");
    let s = Setup::new(&config.replace("[sources.a]", "[sources.0]\npaths = [\"data/missing\"]\n\n[sources.a]"));
    s.ok(&["init", "-q"]);
    let out = s.cairn(&["run", "--all", "--json"]);
    // A missing path is a usage error (2): worse than b's failed hook (1).
    assert_eq!(out.code, 2, "{}", out.show());
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let by: BTreeMap<&str, &serde_json::Value> =
        report["sources"].as_array().unwrap().iter().map(|s| (s["source"].as_str().unwrap(), s)).collect();
    assert_eq!(by["0"]["exit_code"], 2, "the missing path failed: {}", out.show());
    assert_eq!(by["a"]["exit_code"], 0, "a ran after 0 failed: {}", out.show());
    assert_eq!(by["b"]["exit_code"], 1, "b's pre hook failed: {}", out.show());
    assert!(by["b"]["error"].as_str().unwrap().contains("pre hook `false` exited with 1"), "{}", out.show());
    assert_eq!(report["exit_code"], 2);
    assert_eq!(s.snapshots_by_source(&[]).keys().collect::<Vec<_>>(), ["a"], "only a has a snapshot");
    // Without --json the failures are on stderr, the success on stdout.
    let out = s.cairn(&["run", "b", "a"]);
    assert_eq!(out.code, 1, "{}", out.show());
    assert!(out.stderr.contains("b: failed: pre hook") && out.stdout.starts_with("a: snapshot"), "{}", out.show());
}

/// Hooks that append `WHO STAGE $CAIRN_STATUS` to `log`.
fn logging(log: &Path, who: &str) -> String {
    let line = |stage: &str| format!("\"echo '{who} {stage}' ${{CAIRN_STATUS:-}} >> {}\"", log.display());
    format!(
        "shell = true\npre = [{}]\npost = [{}]\non-failure = [{}]\nfinally = [{}]\n",
        line("pre"),
        line("post"),
        line("on-failure"),
        line("finally")
    )
}

#[test]
fn hooks_from_the_config_run_in_order_around_each_source_and_the_whole_run() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let config = format!(
        "[repositories.main]\nlocation = \"repo\"\n[repositories.main.hooks]\n{}\n\
         [sources.a]\npaths = [\"data/a\"]\n[sources.a.hooks]\n{}\n\
         [sources.b]\npaths = [\"data/missing\"]\n[sources.b.hooks]\n{}\n",
        logging(&log, "repo"),
        logging(&log, "a"),
        logging(&log, "b"),
    );
    let s = Setup::new(&config);
    s.ok(&["init", "-q"]);
    let out = s.cairn(&["run", "a", "b"]);
    assert_eq!(out.code, 2, "b's path is missing: {}", out.show());
    let lines: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        [
            "repo pre",
            "a pre",
            "a post success",
            "a finally success",
            "b pre",
            "b on-failure failure",
            "b finally failure",
            "repo on-failure failure",
            "repo finally failure",
        ],
        "{}",
        out.show()
    );
}

#[test]
fn dry_run_shows_the_plan_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let config = TWO_SOURCES.replace(
        "[sources.b.retention]",
        &format!(
            "prune = true\ncheck = true\ncheck-read-data = \"1/7\"\nhooks.pre = [\"touch {}\"]\n[sources.b.retention]",
            marker.display()
        ),
    );
    let s = Setup::new(&config);
    let out = s.ok(&["run", "--all", "--dry-run"]);
    for want in [
        "source a: snapshot",
        "keep last 2",
        "exclude *.tmp",
        "hook pre: touch",
        "then prune",
        "then check --read-data-subset 1/7",
    ] {
        assert!(out.stdout.contains(want), "{want:?}: {}", out.show());
    }
    assert!(!marker.exists() && !s.path("repo").exists(), "no hook ran, no repository was made");
    let json: serde_json::Value = serde_json::from_str(&s.ok(&["run", "b", "--dry-run", "--json"]).stdout).unwrap();
    assert_eq!(json[0]["sources"][0]["source"], "b");
    assert_eq!(json[0]["prune"], true);
}

#[test]
fn run_prunes_and_checks_where_a_source_asks() {
    let s =
        Setup::new(&TWO_SOURCES.replace("[sources.b.retention]", "prune = true\ncheck = true\n[sources.b.retention]"));
    s.ok(&["init", "-q"]);
    s.ok(&["run", "b"]);
    std::fs::write(s.path("data/b/state"), vec![7u8; 200_000]).unwrap();
    let out = s.ok(&["run", "b", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["repositories"][0]["check_damage"], 0, "{}", out.show());
    assert!(report["repositories"][0]["pruned_bytes"].as_u64().is_some(), "{}", out.show());
}

#[test]
fn every_example_in_contrib_config_parses_and_plans() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        seen += 1;
        let s = Setup::new("");
        std::fs::copy(&path, s.config()).unwrap();
        let out = s.cairn(&["run", "--all", "--dry-run"]);
        assert_eq!(out.code, 0, "{}: {}", path.display(), out.show());
        assert!(out.stdout.contains("source "), "{}: {}", path.display(), out.show());
    }
    assert!(seen >= 4, "the four service examples are there ({seen} found)");
}

/// SIGTERM during a source's `post` hook: the source's on-failure and finally run, then the
/// repository's, then cairn exits 130 (the repository's `finally` is what resumes what its
/// `pre` paused).
#[test]
fn sigterm_during_a_source_runs_its_finally_and_the_repositorys_then_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let slow_post = format!("\"echo 'a post' >> {}; sleep 3\"", log.display());
    let source_hooks = logging(&log, "a").replace(
        &format!("post = [\"echo 'a post' ${{CAIRN_STATUS:-}} >> {}\"]", log.display()),
        &format!("post = [{slow_post}]"),
    );
    assert!(source_hooks.contains("sleep 3"), "{source_hooks}");
    let config = format!(
        "[repositories.main]\nlocation = \"repo\"\n[repositories.main.hooks]\n{}\n\
         [sources.a]\npaths = [\"data/a\"]\n[sources.a.hooks]\n{source_hooks}\n",
        logging(&log, "repo"),
    );
    let s = Setup::new(&config);
    s.ok(&["init", "-q"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .env_remove("CAIRN_REPO")
        .env("CAIRN_PASSWORD", common::TEST_PASSWORD)
        .env("XDG_CONFIG_HOME", s.path("xdg"))
        .current_dir(s.dir.path())
        .arg("--config")
        .arg(s.config())
        .args(["run", "a"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + LIMIT;
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("a post") {
        assert!(std::time::Instant::now() < deadline, "the post hook never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = common::process::wait_within(&mut child, LIMIT).expect("cairn exits after SIGTERM");
    assert_eq!(status.code(), Some(130));
    let lines: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        [
            "repo pre",
            "a pre",
            "a post",
            "a on-failure interrupted",
            "a finally interrupted",
            "repo on-failure interrupted",
            "repo finally interrupted",
        ]
    );
}

/// A source's `redis` key takes the snapshot through the Redis adapter: with no server at the
/// socket, `run` fails that source with the adapter's named error (and writes no snapshot);
/// `paged` reaches the snapshot as `--paged` does.
#[test]
fn redis_and_paged_keys_reach_the_snapshot() {
    let s = Setup::new(&TWO_SOURCES.replace(
        "[sources.b]\npaths = [\"data/b\"]",
        "[sources.b]\npaths = [\"data/b\"]\nredis = \"unix:///nonexistent/cairn-test.sock\"",
    ));
    s.ok(&["init", "-q"]);
    let out = s.cairn(&["run", "b"]);
    assert_eq!(out.code, 1, "{}", out.show());
    assert!(out.stderr.contains("Redis"), "the adapter's error: {}", out.show());
    assert!(s.snapshots_by_source(&[]).is_empty(), "no snapshot: {}", out.show());
    s.write(
        &TWO_SOURCES.replace("[sources.a]\npaths = [\"data/a\"]", "[sources.a]\npaths = [\"data/a\"]\npaged = [\"*\"]"),
    );
    let out = s.cairn(&["run", "a", "--json"]);
    assert_eq!(out.code, 0, "{}", out.show());
}
