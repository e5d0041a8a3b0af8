//! `cairn key list|add|remove|passwd|export|import`: the key files of an encrypted repository.
//!
//! A new key's password comes from `--new-password-file` / `CAIRN_NEW_PASSWORD_FILE`,
//! `--new-password-command` / `CAIRN_NEW_PASSWORD_COMMAND`, `CAIRN_NEW_PASSWORD`, else a
//! prompt asked twice; the repository's own password from the usual sources (`docs/cli.md`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use cairn::crypto::{prompt_tty, KeyClass, Password, PasswordSources};
use cairn::error::{exit, Error, Result};
use cairn::repo::Access;

use super::render::json;
use super::repo::KdfArgs;
use super::Context;

#[derive(Subcommand)]
pub enum KeyCommand {
    /// List the key files: id, class, when and where each was made (no password needed
    /// beyond the repository's own).
    List,
    /// Add a key file (a new password for the same master key).
    Add {
        /// A write-only key: it can run `snapshot create` and `wal push` (deduplicating
        /// against the whole repository) and nothing that reads data or metadata, its own
        /// earlier snapshots included (docs/security.md, "Write-only hosts").
        #[arg(long)]
        write_only: bool,
        #[command(flatten)]
        new: NewKeyArgs,
    },
    /// Remove a key file by id or unique prefix; the last full key is refused.
    Remove {
        /// Key id or unique prefix.
        id: String,
    },
    /// Change the password of the key file this command opens with (a new file replaces it).
    Passwd(NewKeyArgs),
    /// Print the master key as a checksummed paper key. Anyone holding it can read every
    /// backup: keep it off this machine and off the repository's storage.
    Export,
    /// Restore access from a paper key: writes a new key file under a new password.
    Import {
        /// The paper key, as `key export` printed it.
        #[arg(long, value_name = "FILE")]
        paper_key_file: PathBuf,
        #[command(flatten)]
        new: NewKeyArgs,
    },
}

/// Where a new key's password comes from, and its KDF cost.
#[derive(Args)]
pub struct NewKeyArgs {
    /// Read the new password from the first line of this file (env CAIRN_NEW_PASSWORD_FILE).
    #[arg(long, value_name = "FILE")]
    new_password_file: Option<PathBuf>,
    /// Read the new password from this command's output (env CAIRN_NEW_PASSWORD_COMMAND).
    #[arg(long, value_name = "COMMAND")]
    new_password_command: Option<String>,
    #[command(flatten)]
    kdf: KdfArgs,
}

impl NewKeyArgs {
    fn password(&self) -> Result<Password> {
        let var = |k: &str| std::env::var(k.replacen("CAIRN_", "CAIRN_NEW_", 1)).ok();
        PasswordSources::from_vars(self.new_password_file.clone(), self.new_password_command.clone(), var)
            .resolve(|| prompt_tty("new password: ", true))
    }
}

pub fn run(ctx: &Context, cmd: KeyCommand) -> Result<i32> {
    // Import is how access comes back when no key opens the repository: it never opens it.
    let repo = || ctx.open(Access::Read);
    match cmd {
        KeyCommand::Import { paper_key_file, new } => {
            let paper =
                std::fs::read_to_string(&paper_key_file).map_err(|e| Error::io("cannot read", &paper_key_file, e))?;
            let id = ctx.connect().import_paper_key(&ctx.location()?, &paper, &new.password()?, new.kdf.params())?;
            done(ctx, "imported the paper key as key", &id)
        }
        KeyCommand::List => {
            let keys = repo()?.list_keys()?;
            if ctx.json {
                json(&keys)?;
            } else {
                for k in keys {
                    let mark = if k.current { "*" } else { " " };
                    outln!(
                        "{mark} {}  {:<10}  {}  {}@{}",
                        &k.id[..12.min(k.id.len())],
                        k.class,
                        k.created,
                        k.user,
                        k.host
                    )?;
                }
            }
            Ok(exit::OK)
        }
        KeyCommand::Add { write_only, new } => {
            let (class, what) = match write_only {
                true => (KeyClass::WriteOnly, "added write-only key"),
                false => (KeyClass::Full, "added key"),
            };
            // Refused before a new password is asked for.
            let repo = ctx.open_reading(Access::Read, "add a key")?;
            done(ctx, what, &repo.add_key(&new.password()?, new.kdf.params(), class)?)
        }
        KeyCommand::Remove { id } => done(ctx, "removed key", &repo()?.remove_key(&id)?),
        KeyCommand::Passwd(new) => {
            let repo = ctx.open_reading(Access::Read, "change a password")?;
            let id = repo.change_password(&new.password()?, new.kdf.params())?;
            done(ctx, "changed the password; the key is now", &id)
        }
        KeyCommand::Export => {
            let paper = repo()?.export_paper_key()?;
            if ctx.json {
                json(&serde_json::json!({ "paper_key": paper }))?;
            } else {
                outln!("{}", paper.trim_end_matches('\n'))?;
            }
            Ok(exit::OK)
        }
    }
}

fn done(ctx: &Context, what: &str, id: &str) -> Result<i32> {
    if ctx.json {
        json(&serde_json::json!({ "id": id }))?;
    } else {
        ctx.say(format!("{what} {}", &id[..12.min(id.len())]));
    }
    Ok(exit::OK)
}
