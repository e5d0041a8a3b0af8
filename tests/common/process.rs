//! Waiting on an external program (a server's shell, `pg_ctl`, `psql`, `pgbench`) with a
//! deadline: one that hangs is killed and the test fails with what it printed and the server's
//! log, instead of hanging the suite. Output goes to files, so a chatty program cannot block
//! on a full pipe.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd` with `stdin` as its input and returns its output; kills it and panics (showing
/// its output and the file `log`, if given) when it is not done within `limit`.
pub fn output_within(cmd: &mut Command, stdin: &[u8], limit: Duration, log: Option<&Path>) -> Output {
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    // A program that never reads its input must not block us: errors here are its business.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let Some(status) = wait_within(&mut child, limit) else {
        panic!(
            "{cmd:?} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}\nlog:\n{}",
            fs::read_to_string(out.path()).unwrap_or_default(),
            fs::read_to_string(err.path()).unwrap_or_default(),
            log.map(|l| fs::read_to_string(l).unwrap_or_default()).unwrap_or_default()
        );
    };
    Output { status, stdout: fs::read(out.path()).unwrap(), stderr: fs::read(err.path()).unwrap() }
}

/// Waits for `child` at most `limit`; past it, kills it, reaps it and returns `None`.
pub fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
