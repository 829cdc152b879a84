//! A captured guest thread: plain data, no engine handles, so it can be kept, copied into a
//! forked child, or written to a journal and restored into another instance.

use serde::{Deserialize, Serialize};

// How a thread started and a global's bits are the journal's own plain types: a captured
// thread is written to a journal as it is.
pub(crate) use wasmix_journal::record::{Entry, Global};

/// One guest thread, stopped at a host call: everything needed to make that call return
/// again, in this instance or a fresh one of the same module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ThreadSnapshot {
    /// How the thread was started: rewinding calls the same entry again.
    entry: Entry,
    /// Mutable globals by export name (`__stack_pointer`, `__tls_base`, asyncify's own, ...).
    globals: Vec<(String, Global)>,
    /// Where in linear memory the asyncify data lives while the thread unwinds or rewinds.
    unwind_area: u32,
    /// The asyncify data: the locals and resume points of every frame, innermost first.
    unwind_data: Vec<u8>,
    /// The shadow stack pointer at capture.
    stack_pointer: u32,
    /// Where the thread's shadow stack starts (its highest address), when known.
    stack_top: Option<u32>,
    /// The used shadow stack, `stack_pointer..stack_top` (empty when the top is unknown).
    stack: Vec<u8>,
}

impl ThreadSnapshot {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        entry: Entry,
        globals: Vec<(String, Global)>,
        unwind_area: u32,
        unwind_data: Vec<u8>,
        stack_pointer: u32,
        stack_top: Option<u32>,
        stack: Vec<u8>,
    ) -> ThreadSnapshot {
        ThreadSnapshot {
            entry,
            globals,
            unwind_area,
            unwind_data,
            stack_pointer,
            stack_top,
            stack,
        }
    }

    pub fn entry(&self) -> Entry {
        self.entry
    }

    pub fn globals(&self) -> &[(String, Global)] {
        &self.globals
    }

    pub fn unwind_area(&self) -> u32 {
        self.unwind_area
    }

    pub fn unwind_data(&self) -> &[u8] {
        &self.unwind_data
    }

    pub fn stack_pointer(&self) -> u32 {
        self.stack_pointer
    }

    pub fn stack_top(&self) -> Option<u32> {
        self.stack_top
    }

    pub fn stack(&self) -> &[u8] {
        &self.stack
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_survives_serialisation() {
        let snap = ThreadSnapshot::new(
            Entry::ThreadStart(7),
            vec![
                ("__stack_pointer".into(), Global::I32(65000)),
                ("x".into(), Global::F64(1.5f64.to_bits())),
            ],
            1 << 20,
            vec![1, 2, 3],
            65000,
            Some(65536),
            vec![9; 536],
        );
        let bytes = postcard::to_allocvec(&snap).unwrap();
        let back: ThreadSnapshot = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, snap);
    }
}
