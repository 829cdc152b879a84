//! Process and thread ids, and why a new one could not be had: the vocabulary every other
//! module of the process model shares, so it sits below them all.

/// A process id (the id of its main thread too).
pub type Pid = u32;

/// A thread id, from the same space as pids.
pub type Tid = u32;

/// A spawn refused; every variant means EAGAIN to a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// The process limit is reached.
    #[error("too many processes")]
    TooManyProcesses,
    /// The thread limit is reached.
    #[error("too many threads")]
    TooManyThreads,
    /// Every id is in use.
    #[error("no free process or thread id")]
    IdsExhausted,
    /// A restore asked for an id another process or thread holds.
    #[error("id {0} is in use")]
    InUse(u32),
    /// The process (or the control plane) is going away.
    #[error("the process is exiting")]
    ShuttingDown,
}
