//! `snapshot create --stdin-from-command`: the dump command whose output is stored.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use cairn::error::{Error, Result};

/// Starts `argv` with its standard output piped to cairn, its standard error passed through,
/// and no standard input.
pub fn spawn(argv: &[PathBuf]) -> Result<Child> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Error::InvalidArgument("--stdin-from-command needs a command: `-- pg_dump app`".into()))?;
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::InvalidArgument(format!("cannot run {}: {e}", shown(argv))))
}

/// Waits for the command once its output ended; a failure means no snapshot.
pub fn wait(child: &mut Child, argv: &[PathBuf]) -> Result<()> {
    let status = child.wait().map_err(|e| Error::io("cannot wait for", &argv[0], e))?;
    match status.success() {
        true => Ok(()),
        false => Err(Error::Hook(format!("{} failed ({status}): no snapshot saved", shown(argv)))),
    }
}

fn shown(argv: &[PathBuf]) -> String {
    format!("`{}`", argv.iter().map(|a| a.display().to_string()).collect::<Vec<_>>().join(" "))
}
