//! The `cairn` binary: parse arguments, run the command, print the error, choose the exit code.

mod cli;

use clap::Parser;

fn main() {
    let parsed = cli::Cli::parse();
    let code = match cli::run(parsed) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
