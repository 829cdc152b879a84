//! wasmix-process: the process model, independent of any WebAssembly engine.
//!
//! * [`ControlPlane`] — allocates pids and tids from one id space (a main thread's tid is its
//!   pid; ids are never reused while held), enforces limits, keeps the process table.
//! * [`Process`] — family (parent, children, re-parenting of orphans to the root), threads,
//!   exit status (first one sticks; exited vs killed by a signal), signal dispositions,
//!   `waitpid`-style joins, interval timers.
//! * [`Thread`] — pending signals and mask, and [`Thread::wait_for`], the one interruptible wait
//!   every blocking host operation uses.
//! * [`Coordinator`] — the checkpoint barrier; [`CpuBackoff`] — slowing idle pollers.
//!
//! Lock order, outermost first: a process's signals → its thread map → a thread; a parent's
//! family → a child's exit state. No lock is held while waking another process.

#![warn(missing_docs)]

mod backoff;
mod checkpoint;
#[cfg(not(loom))]
mod control;
mod ids;
#[cfg(not(loom))]
mod process;
mod signal;
mod sync;
mod thread;
#[cfg(not(loom))]
mod timer;

pub use backoff::{CpuBackoff, RunToken};
pub use checkpoint::{
    After, CheckpointError, Coordinator, Hold, Resume, SleepGuard, Snapshot, SnapshotAction,
    Ticket, Trigger,
};
#[cfg(not(loom))]
pub use control::{ControlPlane, Limits};
pub use ids::{LimitError, Pid, Tid};
#[cfg(not(loom))]
pub use process::{
    Child, ExitStatus, Exited, JoinChild, JoinError, Process, SignalError, SignalTap,
};
pub use signal::{Action, DefaultAction, Disposition, SigSet, Signal, MAX_SIGNAL};
pub use thread::{Thread, WaitError, WaitQueue};
