//! The per-process state a guest's host calls see (the wasmtime store data).

use std::sync::Arc;

use wasmix_fs::FileSystem;
use wasmtime::Memory;

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// `proc_exit(code)` or a normal return from `_start` (code 0).
    Exited(i32),
    /// Terminated by a signal's default action (`proc_raise`).
    Signaled(u8),
}

impl ExitStatus {
    /// The status a Unix shell would report: the code, or 128 + signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + i32::from(s),
        }
    }

    /// Whether the process exited with code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }
}

/// Raised from a host call to unwind the guest when the process ends.
#[derive(Debug)]
pub(crate) struct ProcessEnded(pub ExitStatus);

impl std::fmt::Display for ProcessEnded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            ExitStatus::Exited(c) => write!(f, "process exited with code {c}"),
            ExitStatus::Signaled(s) => write!(f, "process terminated by signal {s}"),
        }
    }
}

impl std::error::Error for ProcessEnded {}

pub(crate) struct Host {
    pub fs: Arc<FileSystem>,
    pub args: Vec<Vec<u8>>,
    /// `KEY=VALUE` entries.
    pub env: Vec<Vec<u8>>,
    /// The memory host calls read and write (the main module's export `memory`).
    pub memory: Option<Memory>,
}
