//! Where a password comes from, library side. In order: `--password-file` /
//! `CAIRN_PASSWORD_FILE`, `--password-command` / `CAIRN_PASSWORD_COMMAND`, `CAIRN_PASSWORD`
//! (least safe: the environment of a process is readable by its user and ends up in crash
//! reports), then a prompt. No flag takes the password itself: flags show in `ps`.
//!
//! One trailing newline (`\n` or `\r\n`) is removed from a file's or command's output; an
//! empty password is an error. Every wait on the command has a deadline.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A password, zeroed when dropped.
pub type Password = Zeroizing<String>;

pub const ENV_PASSWORD_FILE: &str = "CAIRN_PASSWORD_FILE";
pub const ENV_PASSWORD_COMMAND: &str = "CAIRN_PASSWORD_COMMAND";
pub const ENV_PASSWORD: &str = "CAIRN_PASSWORD";
/// How long `--password-command` may run (a password manager may wait for a touch).
pub const PASSWORD_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The non-interactive sources a command was given.
#[derive(Debug, Default)]
pub struct PasswordSources {
    pub file: Option<PathBuf>,
    pub command: Option<String>,
    pub env: Option<Password>,
}

impl PasswordSources {
    /// From the flags and the process environment; a flag wins over its variable.
    pub fn from_env(file_flag: Option<PathBuf>, command_flag: Option<String>) -> Self {
        Self::from_vars(file_flag, command_flag, |k| std::env::var(k).ok())
    }

    /// As `from_env`, with the environment given (for tests).
    pub fn from_vars(
        file_flag: Option<PathBuf>,
        command_flag: Option<String>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
        PasswordSources {
            file: file_flag.or_else(|| nonempty(var(ENV_PASSWORD_FILE)).map(PathBuf::from)),
            command: command_flag.or_else(|| nonempty(var(ENV_PASSWORD_COMMAND))),
            env: nonempty(var(ENV_PASSWORD)).map(Zeroizing::new),
        }
    }

    /// Whether a password is available without asking.
    pub fn is_given(&self) -> bool {
        self.file.is_some() || self.command.is_some() || self.env.is_some()
    }

    /// The password from the first source given, else from `prompt` (a tty prompt in the
    /// CLI; tests pass a closure).
    pub fn resolve(&self, prompt: impl FnOnce() -> Result<Password>) -> Result<Password> {
        let p = if let Some(path) = &self.file {
            read_file(path)?
        } else if let Some(cmd) = &self.command {
            run_command(cmd, PASSWORD_COMMAND_TIMEOUT)?
        } else if let Some(p) = &self.env {
            p.clone()
        } else {
            prompt()?
        };
        if p.is_empty() {
            return Err(Error::InvalidArgument("the password is empty".into()));
        }
        Ok(p)
    }
}

fn strip_newline(mut s: String) -> Password {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    Zeroizing::new(s)
}

/// The first line's worth of a password file (one trailing newline removed).
pub fn read_file(path: &Path) -> Result<Password> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| Error::io("reading the password file", path, e))?);
    let s = std::str::from_utf8(&bytes)
        .map_err(|_| Error::InvalidArgument(format!("password file {} is not UTF-8", path.display())))?;
    Ok(strip_newline(s.to_string()))
}

/// The standard output of `sh -c command`, which must exit 0 within `timeout`.
pub fn run_command(command: &str, timeout: Duration) -> Result<Password> {
    let failed = |d: String| Error::InvalidArgument(format!("password command `{command}` {d}"));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| failed(format!("could not start: {e}")))?;
    let mut stdout = child.stdout.take().ok_or_else(|| failed("has no stdout".into()))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let r = stdout.read_to_end(&mut buf).map(|_| buf);
        let _ = tx.send(r);
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| failed(format!("could not be waited for: {e}")))? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(failed(format!("did not finish within {} s", timeout.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if !status.success() {
        return Err(failed(format!("failed ({status})")));
    }
    // A background grandchild may hold stdout open: the read, too, has a deadline.
    let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
    let out = match rx.recv_timeout(remaining) {
        Ok(Ok(out)) => Zeroizing::new(out),
        Ok(Err(e)) => return Err(failed(format!("output could not be read: {e}"))),
        Err(_) => return Err(failed("kept its output open after exiting".into())),
    };
    let s = std::str::from_utf8(&out).map_err(|_| failed("printed something that is not UTF-8".into()))?;
    Ok(strip_newline(s.to_string()))
}

/// Asks on the terminal, without echo; with `confirm`, asks twice and compares.
pub fn prompt_tty(prompt: &str, confirm: bool) -> Result<Password> {
    let ask = |p: &str| {
        rpassword::prompt_password(p).map(Zeroizing::new).map_err(|_| {
            Error::InvalidArgument(
                "no password given, and no terminal to ask on: use --password-file FILE (or CAIRN_PASSWORD_FILE), \
                     --password-command CMD (or CAIRN_PASSWORD_COMMAND), or CAIRN_PASSWORD"
                    .into(),
            )
        })
    };
    let first = ask(prompt)?;
    if confirm && *ask("enter it again: ")? != *first {
        return Err(Error::InvalidArgument("the two passwords differ".into()));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    fn no_prompt() -> Result<Password> {
        panic!("prompted although a source was given")
    }

    #[test]
    fn order_is_file_then_command_then_env_then_prompt() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "from-file\n").unwrap();
        let all = [
            (ENV_PASSWORD_FILE, f.to_str().unwrap()),
            (ENV_PASSWORD_COMMAND, "echo from-command"),
            (ENV_PASSWORD, "from-env"),
        ];
        assert_eq!(*PasswordSources::from_vars(None, None, vars(&all)).resolve(no_prompt).unwrap(), "from-file");
        assert_eq!(
            *PasswordSources::from_vars(None, None, vars(&all[1..])).resolve(no_prompt).unwrap(),
            "from-command"
        );
        assert_eq!(*PasswordSources::from_vars(None, None, vars(&all[2..])).resolve(no_prompt).unwrap(), "from-env");
        let none = PasswordSources::from_vars(None, None, vars(&[]));
        assert!(!none.is_given());
        assert_eq!(*none.resolve(|| Ok(Zeroizing::new("typed".into()))).unwrap(), "typed");
        // A flag wins over its own variable.
        let s = PasswordSources::from_vars(None, Some("printf flag".into()), vars(&all[1..]));
        assert_eq!(*s.resolve(no_prompt).unwrap(), "flag");
    }

    #[test]
    fn one_trailing_newline_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "a b \r\n").unwrap();
        assert_eq!(*read_file(&f).unwrap(), "a b ");
        std::fs::write(&f, "x\n\n").unwrap();
        assert_eq!(*read_file(&f).unwrap(), "x\n");
    }

    #[test]
    fn command_failures_and_timeouts_are_one_line_errors() {
        let err = run_command("exit 3", Duration::from_secs(5)).unwrap_err().to_string();
        assert!(err.contains("failed") && !err.contains('\n'), "{err}");
        let t = Instant::now();
        let err = run_command("sleep 5", Duration::from_millis(200)).unwrap_err().to_string();
        assert!(err.contains("did not finish"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn empty_and_missing_passwords_are_refused() {
        let s = PasswordSources::from_vars(None, Some("true".into()), vars(&[]));
        assert!(s.resolve(no_prompt).unwrap_err().to_string().contains("empty"));
        let s = PasswordSources::from_vars(Some("/nonexistent/pw".into()), None, vars(&[]));
        assert!(s.resolve(no_prompt).is_err());
    }
}
