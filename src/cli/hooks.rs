//! `--pre`, `--post`, `--on-failure` and `--finally` around `snapshot create` and `restore`:
//! the stage order, the environment hooks see, and `finally` after SIGINT/SIGTERM.
//!
//! Order: every `pre` hook (the first failure stops: the command does not run); the command;
//! `post` after a success (its first failure makes the run a failure); `on-failure` when
//! anything failed or the run was interrupted; `finally` whenever every `pre` hook succeeded.
//! That last rule is what makes "pause job claims in pre, resume them in finally" safe.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;

use cairn::error::{exit, Error, Result};
use cairn::hooks::{Hook, HookRun, Hooks, Stage};

#[derive(Args, Clone, Debug, Default)]
pub struct HookArgs {
    /// Run CMD before; if it fails, the command does not run (repeatable, in order). CMD is
    /// split into words like a shell would, but no shell runs it (see --hook-shell).
    #[arg(long = "pre", value_name = "CMD", help_heading = "Hooks")]
    pre: Vec<String>,
    /// Run CMD after the command succeeded (repeatable); a failure makes the run fail.
    #[arg(long = "post", value_name = "CMD", help_heading = "Hooks")]
    post: Vec<String>,
    /// Run CMD when the command, a pre or a post hook failed, or on SIGINT/SIGTERM (repeatable).
    #[arg(long = "on-failure", value_name = "CMD", help_heading = "Hooks")]
    on_failure: Vec<String>,
    /// Run CMD last whenever the pre hooks succeeded: after success, failure or SIGINT/SIGTERM
    /// (repeatable). The place to resume what a pre hook paused.
    #[arg(long = "finally", value_name = "CMD", help_heading = "Hooks")]
    finally: Vec<String>,
    /// Run every hook CMD with `sh -c` (pipes, redirections, variables) instead of as words.
    #[arg(long, help_heading = "Hooks")]
    hook_shell: bool,
    /// Kill a hook (and every process it started) that runs longer than SECS.
    #[arg(long, value_name = "SECS", default_value_t = 600, help_heading = "Hooks")]
    hook_timeout: u64,
}

impl HookArgs {
    /// One command line as a hook, split into words or for `sh -c` as --hook-shell says.
    pub fn command(&self, line: &str) -> Result<Hook> {
        if self.hook_shell {
            Ok(Hook::shell(line))
        } else {
            Hook::argv(line)
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.hook_timeout)
    }

    pub fn hooks(&self) -> Result<Hooks> {
        let make = |lines: &[String]| -> Result<Vec<Hook>> {
            lines.iter().map(|l| if self.hook_shell { Ok(Hook::shell(l)) } else { Hook::argv(l) }).collect()
        };
        Ok(Hooks {
            pre: make(&self.pre)?,
            post: make(&self.post)?,
            on_failure: make(&self.on_failure)?,
            finally: make(&self.finally)?,
            timeout: Duration::from_secs(self.hook_timeout),
        })
    }
}

/// What the command produced, as hooks see it.
pub struct Outcome {
    /// Whether the run counts as a success for the hooks: a restore that left files out
    /// (exit 3) returns normally but must not run `post` (which might start a service on it).
    pub success: bool,
    pub env: Vec<(String, String)>,
}

/// Runs `command` between the hooks; returns its result (or the first hook failure) and what
/// every hook did. `env` is what every hook sees; `outcome` adds what the command produced
/// (snapshot id, bytes) for `post`, `on-failure` and `finally`. With `exit_on_signal`, a
/// SIGINT/SIGTERM during the command runs `on-failure` and `finally` at once and exits 130
/// (for commands that cannot stop early by themselves: what they leave is what a crash
/// leaves, which the repository tolerates); without it the command handles the signal.
pub fn around<T>(
    hooks: &Hooks,
    env: Vec<(String, String)>,
    exit_on_signal: bool,
    command: impl FnOnce() -> Result<T>,
    outcome: impl Fn(&T) -> Outcome,
) -> (Result<T>, Vec<HookRun>) {
    around_within(hooks, env, exit_on_signal, None, command, outcome)
}

/// Hooks that wrap a command run by [`around_within`] together with others (a repository's
/// hooks around each source of `cairn run`): when a signal ends the process during the
/// command, their `on-failure` and `finally` run too, after the command's own.
#[derive(Clone)]
pub struct Outer {
    pub hooks: Hooks,
    pub env: Vec<(String, String)>,
}

/// [`around`] inside `outer`'s hooks. With `exit_on_signal` and an `outer`, a signal is acted
/// on even when `hooks` is empty, so the outer `finally` is never skipped.
pub fn around_within<T>(
    hooks: &Hooks,
    env: Vec<(String, String)>,
    exit_on_signal: bool,
    outer: Option<&Outer>,
    command: impl FnOnce() -> Result<T>,
    outcome: impl Fn(&T) -> Outcome,
) -> (Result<T>, Vec<HookRun>) {
    if hooks.is_empty() && !(exit_on_signal && outer.is_some()) {
        return (command(), Vec::new());
    }
    let started = Instant::now();
    let finished = Arc::new(Mutex::new(false));
    let armed = Arc::new(AtomicBool::new(false));
    // Signals are caught from before the first `pre` hook: one that comes while they run is
    // acted on once they succeeded (then `finally` must run), never lost in between.
    let watcher = exit_on_signal.then(|| {
        let shared = Shared { finished: finished.clone(), armed: armed.clone(), started };
        watch_signals(hooks.clone(), env.clone(), outer.cloned(), shared)
    });
    let mut runs = hooks.run(Stage::Pre, &env);
    if let Some(failed) = runs.iter().find(|r| !r.ok()) {
        let err = Error::Hook(failed.failure());
        runs.extend(hooks.run(Stage::OnFailure, &with_status(&env, "failure", &err.to_string(), started)));
        return (Err(err), runs);
    }
    armed.store(true, Ordering::SeqCst);
    let result = command();
    let mut failed = result.is_err();
    let mut status_env = match &result {
        Ok(value) => {
            let o = outcome(value);
            failed = !o.success;
            let (status, why) =
                if o.success { ("success", "") } else { ("failure", "the command finished incompletely") };
            let mut e = with_status(&env, status, why, started);
            e.extend(o.env);
            e
        }
        Err(err) => with_status(&env, status_of(err), &err.to_string(), started),
    };
    let mut result = result;
    if !failed {
        let post = hooks.run(Stage::Post, &status_env);
        if let Some(bad) = post.iter().find(|r| !r.ok()) {
            let err = Error::Hook(bad.failure());
            status_env = with_status(&status_env, "failure", &err.to_string(), started);
            result = Err(err);
            failed = true;
        }
        runs.extend(post);
    }
    // From here the signal watcher must not run the last stages a second time.
    let mut done = finished.lock().unwrap_or_else(|p| p.into_inner());
    if !*done {
        *done = true;
        if failed {
            runs.extend(hooks.run(Stage::OnFailure, &status_env));
        }
        runs.extend(hooks.run(Stage::Finally, &status_env));
    }
    drop(done);
    if let Some(stop) = watcher {
        stop.store(true, Ordering::Relaxed);
    }
    (result, runs)
}

fn status_of(err: &Error) -> &'static str {
    match err {
        Error::Interrupted { .. } => "interrupted",
        _ => "failure",
    }
}

/// `env` plus `CAIRN_STATUS`, `CAIRN_ERROR` and `CAIRN_DURATION_MS` (replacing earlier ones).
fn with_status(env: &[(String, String)], status: &str, error: &str, started: Instant) -> Vec<(String, String)> {
    let mut e: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "CAIRN_STATUS" | "CAIRN_ERROR" | "CAIRN_DURATION_MS"))
        .cloned()
        .collect();
    e.push(("CAIRN_STATUS".into(), status.into()));
    e.push(("CAIRN_ERROR".into(), error.into()));
    e.push(("CAIRN_DURATION_MS".into(), started.elapsed().as_millis().to_string()));
    e
}

/// On SIGINT/SIGTERM once `armed` (every `pre` hook succeeded): `on-failure` and `finally`
/// (unless the command's own path already ran them), then exit 130. Returns the flag that
/// retires the watcher.
/// What the command's path and the signal watcher share.
struct Shared {
    /// Set by whichever of the two runs the last stages first.
    finished: Arc<Mutex<bool>>,
    /// Every `pre` hook succeeded.
    armed: Arc<AtomicBool>,
    started: Instant,
}

fn watch_signals(hooks: Hooks, env: Vec<(String, String)>, outer: Option<Outer>, shared: Shared) -> Arc<AtomicBool> {
    let Shared { finished, armed, started } = shared;
    use signal_hook::consts::{SIGINT, SIGTERM};
    let signalled = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // A second signal ends the process at once, as without hooks.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, exit::INTERRUPTED, signalled.clone());
        let _ = signal_hook::flag::register(sig, signalled.clone());
    }
    let retired = stop.clone();
    std::thread::spawn(move || {
        while !retired.load(Ordering::Relaxed) {
            if signalled.load(Ordering::Relaxed) && armed.load(Ordering::SeqCst) {
                let mut done = finished.lock().unwrap_or_else(|p| p.into_inner());
                if *done {
                    return;
                }
                *done = true;
                eprintln!("interrupted: running the on-failure and finally hooks, then stopping");
                let env = with_status(&env, "interrupted", "interrupted by a signal", started);
                report(&hooks.run(Stage::OnFailure, &env));
                report(&hooks.run(Stage::Finally, &env));
                if let Some(o) = &outer {
                    let env = with_status(&o.env, "interrupted", "interrupted by a signal", started);
                    report(&o.hooks.run(Stage::OnFailure, &env));
                    report(&o.hooks.run(Stage::Finally, &env));
                }
                std::process::exit(exit::INTERRUPTED);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    stop
}

/// A flag set by SIGINT or SIGTERM from now on, for a command that stops between its steps
/// (`cairn run`). A second signal ends the process at once.
pub fn stop_flag() -> Arc<AtomicBool> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(sig, exit::INTERRUPTED, stop.clone());
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    stop
}

/// Names every failed hook on stderr (`post` and `pre` failures are also the command's error).
pub fn report(runs: &[HookRun]) {
    for r in runs.iter().filter(|r| !r.ok()) {
        eprintln!("warning: {}", r.failure());
    }
}
