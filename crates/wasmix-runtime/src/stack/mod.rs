//! What a captured guest stack is, and each thread's stack-capture state: plain data the
//! mechanism (`capture`) works on, fork and setjmp keep, and a journal will store.
//!
//! No engine can save a native stack, so modules are asyncify-instrumented (by their toolchain,
//! or at load by [`prepare`]). A captured thread is a [`ThreadSnapshot`]: the entry it was
//! started at, its mutable globals, asyncify's data (every frame's locals and resume point) and
//! its shadow stack bytes. [`StackState`] is one thread's progress through a capture or a
//! rewind; [`SetjmpBuffers`] the snapshots a thread's `setjmp` calls took.

pub(crate) mod asyncify;
pub(crate) mod prepare;
mod setjmp;
pub(crate) mod snapshot;

use std::sync::Arc;

use wasmix_fs::Errno;

use asyncify::Asyncify;
pub(crate) use setjmp::SetjmpBuffers;
pub(crate) use snapshot::{Entry, ThreadSnapshot};

/// Bytes of linear memory a capturing thread gets for asyncify's data: one wasm page, grown
/// the first time the thread captures, its own from then on.
pub(crate) const AREA: u32 = 65536;
/// asyncify's header at the start of the area: `{current, end}`.
pub(crate) const HEADER: u32 = 8;

/// What the run loop does once the thread has unwound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Capture {
    /// `proc_fork`: a child with a copy of memory, or (vfork) borrowing the parent's.
    Fork { copy_memory: bool },
    /// `stack_checkpoint` (setjmp) into the `jmp_buf` at this address.
    Setjmp { buf: u32 },
    /// A snapshot: the thread parks at the checkpoint barrier, then the call resumes so.
    Checkpoint { resume: Resumption },
}

/// What a resumed call returns: its value, or an errno.
pub(crate) type Outcome = Result<u64, Errno>;

/// What a rewound call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resumption {
    /// Returns this (fork's pid, setjmp's value, a snapshot call's success).
    Return(Outcome),
    /// Runs again from its start, as if freshly called (a blocking call or safe point that
    /// was captured before it did anything).
    Restart,
}

/// How much of a snapshot a rewind puts back besides the asyncify data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Restore {
    /// The stack pointer only, as a native longjmp restores registers: other globals keep
    /// their current values.
    StackPointer,
    /// Every captured global (a forked child's fresh instance, a parent after its vfork child
    /// ran on its instance).
    Globals,
    /// Globals and the shadow stack bytes (a fresh instance over a fresh memory).
    Everything,
}

/// One thread's stack-capture state, kept in its store.
#[derive(Default)]
pub(crate) struct StackState {
    /// How the thread was started: what a rewind calls again.
    entry: Entry,
    asyncify: Option<Arc<Asyncify>>,
    /// Address of the thread's asyncify data area.
    area: Option<u32>,
    /// The thread's initial stack pointer (its stack's highest address), when known.
    stack_top: Option<u32>,
    /// The capture under way (set while unwinding).
    pending: Option<Capture>,
    /// What the rewound call does (set while rewinding).
    resume: Option<Resumption>,
    setjmps: SetjmpBuffers,
}

impl StackState {
    /// The state of a thread started at `entry`.
    pub fn new(entry: Entry) -> StackState {
        StackState {
            entry,
            ..StackState::default()
        }
    }

    /// The state a forked child's thread starts with: the same entry, area and setjmp buffers.
    pub fn for_child(&self) -> StackState {
        StackState {
            entry: self.entry,
            area: self.area,
            stack_top: self.stack_top,
            setjmps: self.setjmps.clone(),
            ..StackState::default()
        }
    }

    pub fn entry(&self) -> Entry {
        self.entry
    }

    pub fn set_entry(&mut self, entry: Entry) {
        self.entry = entry;
    }

    /// Whether the thread is unwinding or rewinding (its code must not be called into).
    pub fn busy(&self) -> bool {
        self.pending.is_some() || self.resume.is_some()
    }

    /// Whether the thread is unwinding for a capture.
    pub fn unwinding(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether the thread is rewinding into a captured call.
    pub fn rewinding(&self) -> bool {
        self.resume.is_some()
    }

    pub fn setjmps_mut(&mut self) -> &mut SetjmpBuffers {
        &mut self.setjmps
    }

    pub fn asyncify(&self) -> Option<&Arc<Asyncify>> {
        self.asyncify.as_ref()
    }

    pub fn set_asyncify(&mut self, a: Arc<Asyncify>) {
        self.asyncify = Some(a);
    }

    pub fn area(&self) -> Option<u32> {
        self.area
    }

    pub fn set_area(&mut self, at: u32) {
        self.area = Some(at);
    }

    pub fn stack_top(&self) -> Option<u32> {
        self.stack_top
    }

    /// Records where the thread's stack starts, before its entry runs.
    pub fn set_stack_top(&mut self, top: Option<u32>) {
        self.stack_top = top;
    }

    /// The thread starts unwinding for `capture`.
    pub fn start_unwind(&mut self, capture: Capture) {
        self.pending = Some(capture);
    }

    /// The unwind is over: what it was for, if the thread was unwinding.
    pub fn end_unwind(&mut self) -> Option<Capture> {
        self.pending.take()
    }

    /// The thread starts rewinding; its interrupted call will resume as `resume` says.
    pub fn start_rewind(&mut self, resume: Resumption) {
        self.resume = Some(resume);
    }

    /// The rewind reached its call: how the call resumes, if the thread was rewinding.
    pub fn end_rewind(&mut self) -> Option<Resumption> {
        self.resume.take()
    }

    /// After a trap: forgets a capture or rewind under way; whether a capture was.
    pub fn abandon(&mut self) -> bool {
        self.resume = None;
        self.pending.take().is_some()
    }
}
