//! The `cairn` binary: parse arguments, run the command, print the error, choose the exit code.

mod cli;

use clap::Parser;

fn main() {
    fixed_mmap_threshold();
    let parsed = cli::Cli::parse();
    let code = match cli::run(parsed) {
        Ok(code) => code,
        // The reader of our stdout went away (`cairn ls … | head`): stop quietly, as Unix
        // tools do, with the code of a successful run (ripgrep and git do the same).
        Err(e) if cli::is_closed_stdout(&e) => 0,
        Err(e) => {
            // Messages may name a repository or endpoint URL: never with its password.
            eprintln!("error: {}", cairn::error::redact_urls(&e.to_string()));
            e.exit_code()
        }
    };
    std::process::exit(code);
}

/// Makes glibc's malloc serve every allocation of 1 MiB or more with its own memory map, which
/// goes back to the system when freed. By default glibc raises that threshold to the size of
/// each large block freed (up to 32 MiB): after the first 17 MiB pack buffer was freed, read
/// windows, pack trailers and batches came from the per-thread arenas, and each of the 16 I/O
/// threads' arenas kept its share resident. First snapshot of 24 files × 64 MiB at 1 KiB
/// chunks: 236-257 MiB peak RSS by default, 165-170 MiB with this (same time); jemalloc
/// (261-268) and mimalloc (312-322) did worse. See `docs/performance.md`, "Memory".
fn fixed_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `mallopt` only changes allocator tuning, is called before any other thread
    // exists, and its arguments are plain integers; a refusal (return 0) leaves the default.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
