//! How a guest thread begins: fresh at an entry point, or resuming a captured stack in a store
//! prepared for it — and what is handed to an OS thread to run one.
//!
//! The mechanisms that make new threads (fork, a vfork child's exec) sit below the run loop,
//! so they are given the loop's starter as a plain function ([`Starter`]) rather than
//! importing it.

use std::sync::Arc;

use wasmix_fs::Errno;
use wasmix_process::{ExitStatus, Process, Signal, Thread};
use wasmtime::Store;

use crate::host::{Host, ProcessCtx};
use crate::stack::{Entry, Resumption, ThreadSnapshot};

/// How a guest thread begins.
pub(crate) enum Start {
    /// Fresh, at an entry point.
    Entry(Entry),
    /// Resuming a captured stack in a store prepared for it (a forked child).
    Resume(Box<Resume>),
}

/// A prepared store and the stack it resumes.
pub(crate) struct Resume {
    pub store: Store<Host>,
    pub snapshot: Arc<ThreadSnapshot>,
    pub resume: Resumption,
}

/// A guest thread ready to run: its process, its identity, and how it begins.
pub(crate) struct Launch {
    pub ctx: Arc<ProcessCtx>,
    pub thread: Arc<Thread>,
    pub start: Start,
}

/// Runs a [`Launch`] on an OS thread of its own (the run loop's `start_thread`); EAGAIN when
/// no thread can be had.
pub(crate) type Starter = fn(Launch) -> Result<(), Errno>;

/// Ends a child process whose main thread never ran.
pub(crate) fn discard(process: &Process) {
    process.exit(ExitStatus::Signaled(Signal::KILL));
    process.thread_exited(process.pid());
}
