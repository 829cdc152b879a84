//! The public error of running a process.

/// Why a process could not be run to an exit status.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The guest trapped; the message holds the trap and its wasm backtrace.
    #[error("{0:?}")]
    Trap(wasmtime::Error),
    /// The module cannot be linked (a missing or mistyped import, a bad preload).
    #[error("{0}")]
    Link(String),
    /// The process could not be set up (mounts, stdio, listeners).
    #[error("{0}")]
    Setup(String),
    /// Its memory would not fit in what is left of the runtime's total memory limit
    /// ([`crate::RuntimeConfig::max_total_memory`]).
    #[error("{0}")]
    OutOfMemory(String),
    /// It ran past its wall-clock limit ([`crate::ProcessBuilder::timeout`]) and was killed,
    /// with every process it started.
    #[error("the run took longer than {0:?} and was killed (--timeout)")]
    TimedOut(std::time::Duration),
}
