//! Running the real `cairn` binary from a test, with a deadline: a child that hangs is killed
//! and the test fails instead of hanging. Output goes to files, so a command that prints a lot
//! cannot block on a full pipe.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one run of the binary did.
pub struct Ran {
    /// Exit code, or minus the signal that ended it (a stack overflow aborts: -6).
    pub code: i32,
    pub stderr: String,
    pub elapsed: Duration,
    out: tempfile::NamedTempFile,
}

impl Ran {
    pub fn stdout(&self) -> String {
        fs::read_to_string(self.out.path()).unwrap()
    }

    /// Standard output as bytes (a dumped binary file).
    pub fn stdout_bytes(&self) -> Vec<u8> {
        fs::read(self.out.path()).unwrap()
    }

    /// Standard output line by line, read as it is consumed (for output too large to hold).
    pub fn stdout_lines(&self) -> impl Iterator<Item = String> {
        BufReader::new(fs::File::open(self.out.path()).unwrap()).lines().map(|l| l.unwrap())
    }

    /// Standard output and error, shortened, for assertion messages.
    pub fn show(&self) -> String {
        let out = self.stdout_lines().take(40).map(|l| l.chars().take(300).collect::<String>());
        let err: String = self.stderr.chars().take(4000).collect();
        format!("exit {}\nstdout:\n{}\nstderr:\n{err}", self.code, out.collect::<Vec<_>>().join("\n"))
    }
}

/// Runs `cairn --repo REPO ARGS…`, killing it if it is not done within `limit`.
pub fn cairn(repo: &Path, args: &[&str], limit: Duration) -> Ran {
    cairn_with(repo, args, &[], limit)
}

/// [`cairn`] with `envs` set after the test environment (e.g. another key's password).
pub fn cairn_with(repo: &Path, args: &[&str], envs: &[(&str, &str)], limit: Duration) -> Ran {
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .envs(super::TEST_ENV)
        .envs(envs.iter().copied())
        .arg("--repo")
        .arg(repo)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    let Some(status) = super::process::wait_within(&mut child, limit) else {
        panic!("cairn {args:?} did not finish within {limit:?}");
    };
    use std::os::unix::process::ExitStatusExt;
    let code = status.code().unwrap_or_else(|| -status.signal().unwrap_or(0));
    Ran { code, stderr: fs::read_to_string(err.path()).unwrap(), elapsed: started.elapsed(), out }
}

/// How long any one run of the binary may take before a test calls it hung.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(600);

/// Runs a `cairn` command a test built (`Command::new(env!("CARGO_BIN_EXE_cairn"))…`) to
/// completion, with no input, within [`DEFAULT_LIMIT`]: the test fails instead of hanging.
pub fn finish(cmd: &mut Command) -> std::process::Output {
    super::process::output_within(cmd, b"", DEFAULT_LIMIT, None)
}
