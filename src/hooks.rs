//! Hooks: commands an operator runs around a snapshot or a restore (pause a service's job
//! claims before, resume them after), with a deadline, their output passed through with a
//! prefix, and what happened recorded for `--json`.
//!
//! A hook is an argv (no shell) unless it was given as a shell command on purpose: an argv
//! cannot be changed by a file name or an environment value that holds shell syntax. Each hook
//! runs in its own process group, so a timeout kills the whole pipeline it started, not only
//! its first process.
//!
//! The order of stages (`pre`, the command, `post`, `on-failure`, `finally`) is the caller's
//! (see `docs/hooks.md`); this module runs the hooks of one stage.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};

/// When a hook runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Before the command; a failure stops the command.
    Pre,
    /// After the command succeeded.
    Post,
    /// After the command, a `pre` or a `post` hook failed (or the command was interrupted).
    OnFailure,
    /// Last, whenever every `pre` hook succeeded: even after a failure or an interruption.
    Finally,
    /// `restore-test`'s verify command, run on the restored copy.
    Verify,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Pre => "pre",
            Stage::Post => "post",
            Stage::OnFailure => "on-failure",
            Stage::Finally => "finally",
            Stage::Verify => "verify",
        }
    }
}

/// One command to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hook {
    /// Program and arguments; for a shell hook, the one command line given to `sh -c`.
    pub argv: Vec<String>,
    pub shell: bool,
}

impl Hook {
    /// A command line split as a POSIX shell would split words (quotes respected), but run
    /// without a shell.
    pub fn argv(line: &str) -> Result<Hook> {
        let argv = shlex::split(line)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Error::InvalidArgument(format!("hook {line:?} is empty or has an unclosed quote")))?;
        Ok(Hook { argv, shell: false })
    }

    /// A command line for `sh -c`, for pipes and redirections.
    pub fn shell(line: &str) -> Hook {
        Hook { argv: vec![line.to_string()], shell: true }
    }

    /// How the hook is shown in messages.
    pub fn display(&self) -> String {
        if self.shell {
            format!("sh -c {:?}", self.argv[0])
        } else {
            self.argv.join(" ")
        }
    }

    /// Runs this one command as `stage`, killed with its process group after `timeout`.
    pub fn run(&self, stage: Stage, env: &[(String, String)], timeout: Duration) -> HookRun {
        run_one(self, stage, env, timeout)
    }

    fn command(&self) -> Command {
        let mut cmd = if self.shell {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(&self.argv[0]);
            c
        } else {
            let mut c = Command::new(&self.argv[0]);
            c.args(&self.argv[1..]);
            c
        };
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        cmd
    }
}

/// The most standard output [`Hook::output`] keeps: a generation or an offset is short.
pub const OUTPUT_LIMIT_BYTES: u64 = 64 << 10;

impl Hook {
    /// Runs the hook with `env` and returns its standard output (its standard error is passed
    /// through as `hook LABEL: …`); a failure, a timeout or no exit status is an error naming
    /// it as `LABEL`.
    pub fn output(&self, label: &str, env: &[(String, String)], timeout: Duration) -> Result<Vec<u8>> {
        let started = Instant::now();
        let mut cmd = self.command();
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let fail = |why: String| Error::Hook(format!("{label} command `{}` {why}", self.display()));
        let mut child = cmd.spawn().map_err(|e| fail(format!("cannot start: {e}")))?;
        let stdout = child.stdout.take().map(|out| {
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                let _ = out.take(OUTPUT_LIMIT_BYTES).read_to_end(&mut kept);
                kept
            })
        });
        let stderr = child.stderr.take().map(|err| {
            let label = label.to_string();
            std::thread::spawn(move || {
                for line in BufReader::new(err).split(b'\n').map_while(|l| l.ok()) {
                    eprintln!("hook {label}: {}", String::from_utf8_lossy(&line));
                }
            })
        });
        let status = wait_with_deadline(&mut child, started + timeout)
            .map_err(|e| fail(format!("cannot be waited for: {e}")))?;
        let status = status.ok_or_else(|| fail("did not finish within its timeout and was killed".into()))?;
        drop(stderr);
        match status.code() {
            Some(0) => Ok(stdout.and_then(|t| t.join().ok()).unwrap_or_default()),
            Some(code) => Err(fail(format!("exited with {code}"))),
            None => Err(fail("was killed by a signal".into())),
        }
    }
}

/// Hooks of every stage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hooks {
    pub pre: Vec<Hook>,
    pub post: Vec<Hook>,
    pub on_failure: Vec<Hook>,
    pub finally: Vec<Hook>,
    /// How long each hook may run before it (and its process group) is killed.
    pub timeout: Duration,
}

impl Hooks {
    pub fn is_empty(&self) -> bool {
        self.pre.is_empty() && self.post.is_empty() && self.on_failure.is_empty() && self.finally.is_empty()
    }

    pub fn of(&self, stage: Stage) -> &[Hook] {
        match stage {
            Stage::Pre => &self.pre,
            Stage::Post => &self.post,
            Stage::OnFailure => &self.on_failure,
            Stage::Finally => &self.finally,
            Stage::Verify => &[],
        }
    }

    /// Runs the hooks of `stage` in order with `env` added to the environment (and
    /// `CAIRN_HOOK_STAGE`), each line of their output written to stderr as `hook STAGE: LINE`.
    /// `pre` and `post` stop at the first failure; `on-failure` and `finally` run every hook.
    pub fn run(&self, stage: Stage, env: &[(String, String)]) -> Vec<HookRun> {
        let mut runs = Vec::new();
        for hook in self.of(stage) {
            let run = run_one(hook, stage, env, self.timeout);
            let failed = !run.ok();
            runs.push(run);
            if failed && matches!(stage, Stage::Pre | Stage::Post) {
                break;
            }
        }
        runs
    }
}

/// What one hook did, for reports and `--json`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HookRun {
    pub stage: Stage,
    pub command: String,
    /// Exit code; `None` when it could not start, was killed by a signal, or timed out.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// Why it failed to start, or which signal ended it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
}

impl HookRun {
    pub fn ok(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// One sentence for a failed hook.
    pub fn failure(&self) -> String {
        let what = format!("{} hook `{}`", self.stage.name(), self.command);
        match (&self.error, self.exit_code) {
            _ if self.timed_out => format!("{what} did not finish within its timeout and was killed"),
            (Some(e), _) => format!("{what} failed: {e}"),
            (None, Some(code)) => format!("{what} exited with {code}"),
            (None, None) => format!("{what} failed"),
        }
    }
}

fn run_one(hook: &Hook, stage: Stage, env: &[(String, String)], timeout: Duration) -> HookRun {
    let started = Instant::now();
    let mut run =
        HookRun { stage, command: hook.display(), exit_code: None, timed_out: false, error: None, duration_ms: 0 };
    let mut cmd = hook.command();
    cmd.envs(env.iter().map(|(k, v)| (k, v))).env("CAIRN_HOOK_STAGE", stage.name());
    match cmd.spawn() {
        Err(e) => run.error = Some(format!("cannot start {}: {e}", hook.argv[0])),
        Ok(mut child) => {
            let relays = relay_output(&mut child, stage);
            match wait_with_deadline(&mut child, started + timeout) {
                Ok(Some(status)) => record_status(&mut run, status),
                Ok(None) => run.timed_out = true,
                Err(e) => run.error = Some(format!("cannot wait for it: {e}")),
            }
            // The pipes close when every process of the hook has exited. One it left running
            // in the background may hold them open: its output is relayed until the deadline,
            // then left to itself rather than waited for.
            let deadline = started + timeout;
            while relays.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    run.duration_ms = started.elapsed().as_millis() as u64;
    run
}

fn record_status(run: &mut HookRun, status: ExitStatus) {
    use std::os::unix::process::ExitStatusExt;
    run.exit_code = status.code();
    if let Some(signal) = status.signal() {
        run.error = Some(format!("killed by signal {signal}"));
    }
}

/// Waits for `child` until `deadline`; past it, kills its whole process group and returns
/// `None`.
fn wait_with_deadline(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Copies the child's stdout and stderr to our stderr, line by line, prefixed with the stage.
/// (Our stdout belongs to the command's own report, `--json` included.)
fn relay_output(child: &mut Child, stage: Stage) -> Vec<std::thread::JoinHandle<()>> {
    let mut relays = Vec::new();
    let streams: [Option<Box<dyn Read + Send>>; 2] = [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ];
    for stream in streams.into_iter().flatten() {
        relays.push(std::thread::spawn(move || {
            for line in BufReader::new(stream).split(b'\n').map_while(|l| l.ok()) {
                eprintln!("hook {}: {}", stage.name(), String::from_utf8_lossy(&line));
            }
        }));
    }
    relays
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(stage_hooks: Vec<Hook>, timeout_ms: u64) -> Hooks {
        Hooks { pre: stage_hooks, timeout: Duration::from_millis(timeout_ms), ..Hooks::default() }
    }

    #[test]
    fn argv_hooks_split_like_a_shell_but_run_without_one() {
        let h = Hook::argv("printf '%s|' 'a b' $HOME").unwrap();
        assert_eq!(h.argv, ["printf", "%s|", "a b", "$HOME"]);
        assert!(Hook::argv("  ").is_err());
        assert!(Hook::argv("echo 'unclosed").is_err());
    }

    #[test]
    fn a_failing_pre_hook_stops_the_stage_and_says_why() {
        let h = hooks(vec![Hook::argv("false").unwrap(), Hook::argv("true").unwrap()], 10_000);
        let runs = h.run(Stage::Pre, &[]);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].exit_code, Some(1));
        assert_eq!(runs[0].failure(), "pre hook `false` exited with 1");
        let missing = hooks(vec![Hook::argv("/no/such/program").unwrap()], 10_000).run(Stage::Pre, &[]);
        assert!(missing[0].failure().contains("cannot start /no/such/program"), "{}", missing[0].failure());
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed_with_its_children() {
        let started = Instant::now();
        let runs = hooks(vec![Hook::shell("sleep 30 | cat")], 300).run(Stage::Pre, &[]);
        assert!(runs[0].timed_out, "{runs:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "the pipeline was killed, not waited for");
    }

    #[test]
    fn output_is_the_standard_output_and_failures_are_named() {
        let h = Hook::shell("echo gen-7; echo noise >&2");
        assert_eq!(h.output("consistent-with", &[], Duration::from_secs(10)).unwrap(), b"gen-7\n");
        let e = Hook::argv("false").unwrap().output("consistent-with", &[], Duration::from_secs(10)).unwrap_err();
        assert_eq!(e.to_string(), "consistent-with command `false` exited with 1");
        let slow = Hook::shell("sleep 30").output("consistent-with", &[], Duration::from_millis(200)).unwrap_err();
        assert!(slow.to_string().contains("timeout"), "{slow}");
    }

    #[test]
    fn hooks_see_the_stage_and_the_environment_given() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let line = format!("echo \"$CAIRN_HOOK_STAGE $CAIRN_SNAPSHOT_ID\" > {}", out.display());
        let h = Hooks { finally: vec![Hook::shell(&line)], timeout: Duration::from_secs(10), ..Hooks::default() };
        let runs = h.run(Stage::Finally, &[("CAIRN_SNAPSHOT_ID".into(), "abc".into())]);
        assert!(runs[0].ok(), "{runs:?}");
        assert_eq!(std::fs::read_to_string(out).unwrap(), "finally abc\n");
    }
}
