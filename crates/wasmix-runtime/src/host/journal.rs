//! A journaled process's side of its journal: the writer, what takes snapshots and what
//! follows them, the clock offset a restore brought, and the process context to act on
//! (which an exec replaces).

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use wasmix_journal::JournalWriter;
use wasmix_process::Trigger;

use super::ProcessCtx;

/// The journal of one process.
pub(crate) struct Journaling {
    writer: Mutex<JournalWriter>,
    triggers: Vec<Trigger>,
    stop_after: bool,
    /// Added to the monotonic clock: a restored process's clock goes on from where its
    /// snapshot left it, never back.
    monotonic_offset: u64,
    current: Mutex<Weak<ProcessCtx>>,
}

impl Journaling {
    pub fn new(
        writer: JournalWriter,
        triggers: Vec<Trigger>,
        stop_after: bool,
        monotonic_offset: u64,
    ) -> Journaling {
        Journaling {
            writer: Mutex::new(writer),
            triggers,
            stop_after,
            monotonic_offset,
            current: Mutex::new(Weak::new()),
        }
    }

    pub fn writer(&self) -> MutexGuard<'_, JournalWriter> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `trigger` takes a snapshot.
    pub fn on(&self, trigger: Trigger) -> bool {
        self.triggers.contains(&trigger)
    }

    /// Whether the process stops once a snapshot is taken.
    pub fn stop_after(&self) -> bool {
        self.stop_after
    }

    pub fn monotonic_offset(&self) -> u64 {
        self.monotonic_offset
    }

    /// The context the process runs in now.
    pub fn current(&self) -> Option<Arc<ProcessCtx>> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade()
    }

    /// Records that the process now runs in `ctx` (its start, or an exec).
    pub fn set_current(&self, ctx: &Arc<ProcessCtx>) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(ctx);
    }
}
