//! How long-running operations report progress. Operations call these hooks; the CLI renders
//! them as a progress bar on a terminal, tests and scripts pass [`NoProgress`].

pub trait Progress: Send + Sync {
    /// A new phase starts; `total_bytes` when known.
    fn phase(&self, _name: &str, _total_bytes: Option<u64>) {}
    /// Bytes processed (read, skipped as unchanged, or restored).
    fn add_bytes(&self, _n: u64) {}
    /// Files completed.
    fn add_files(&self, _n: u64) {}
    /// The operation is over; clear any display.
    fn finish(&self) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
