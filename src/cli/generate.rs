//! `cairn completions SHELL` and `cairn man`: shell completion scripts (clap_complete) and a
//! roff man page (clap_mangen), generated from the same clap definition the binary parses, so
//! they cannot drift from it. Both crates live only here.

use clap::{Args, CommandFactory, ValueEnum};
use clap_complete::Shell;

use cairn::error::{exit, Error, Result};

use super::render::out_bytes;
use super::Cli;

/// Shells `cairn completions` writes scripts for.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    shell: CompletionShell,
}

/// Writes the completion script for `args.shell` to stdout.
pub fn completions(args: CompletionsArgs) -> Result<i32> {
    let shell = match args.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "cairn", &mut script);
    out_bytes(&script)?;
    Ok(exit::OK)
}

/// Writes the man page `cairn(1)` to stdout: the main page, then the synopsis, description and
/// options of every command (`cairn snapshot create` …), so one page documents all options.
pub fn man() -> Result<i32> {
    let failed = |source| Error::Io { context: "cannot render the man page".into(), source };
    let mut cmd = Cli::command();
    cmd.build(); // sets each subcommand's full name (`cairn snapshot create`) for its synopsis
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page).map_err(failed)?;
    let mut stack: Vec<clap::Command> = visible(&cmd);
    stack.reverse();
    while let Some(sub) = stack.pop() {
        stack.extend(visible(&sub).into_iter().rev());
        let man = clap_mangen::Man::new(sub);
        man.render_synopsis_section(&mut page).map_err(failed)?;
        man.render_description_section(&mut page).map_err(failed)?;
        man.render_options_section(&mut page).map_err(failed)?;
    }
    out_bytes(&page)?;
    Ok(exit::OK)
}

/// The subcommands a user sees (not restic's hidden aliases, not `help`).
fn visible(cmd: &clap::Command) -> Vec<clap::Command> {
    cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help").cloned().collect()
}
