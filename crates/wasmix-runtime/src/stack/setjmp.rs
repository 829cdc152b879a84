//! setjmp buffers: the host keeps the stack each `setjmp` captured; the guest's `jmp_buf` only
//! holds a random key, so a forged or stale buffer cannot make the host resume anything it
//! did not capture on that thread.

use std::collections::HashMap;
use std::sync::Arc;

use super::ThreadSnapshot;

/// How far above a setjmp capture's stack pointer a still-valid longjmp may start: the frames of
/// libc's setjmp wrappers, which have returned by the time the caller longjmps.
const WRAPPER_FRAMES: u32 = 256;

/// Buffers are looked up by address; a thread rarely has more than a handful live.
const MAX_SETJMPS: usize = 4096;

#[derive(Clone)]
struct Setjmp {
    key: [u8; 16],
    snapshot: Arc<ThreadSnapshot>,
}

/// Why a longjmp is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Rejected {
    #[error("no setjmp on this thread filled in the jmp_buf at {0:#x}")]
    Unknown(u32),
    #[error("the jmp_buf at {0:#x} was altered since setjmp filled it in")]
    Forged(u32),
    #[error("the function that called setjmp for the jmp_buf at {0:#x} has returned")]
    Stale(u32),
}

/// One thread's live setjmp captures, by `jmp_buf` address.
#[derive(Clone, Default)]
pub(crate) struct SetjmpBuffers {
    by_buf: HashMap<u32, Setjmp>,
    /// Keys are a keyed hash of a counter: one entropy read per thread, not per setjmp.
    secret: Option<[u8; 32]>,
    issued: u64,
}

impl SetjmpBuffers {
    /// Keeps `snapshot` for the buffer at `buf`; returns the key to store in it. Captures
    /// taken in frames that have since returned are dropped.
    pub fn record(&mut self, buf: u32, snapshot: Arc<ThreadSnapshot>) -> [u8; 16] {
        let sp = snapshot.stack_pointer();
        self.by_buf
            .retain(|_, c| c.snapshot.stack_pointer().saturating_add(WRAPPER_FRAMES) >= sp);
        if self.by_buf.len() >= MAX_SETJMPS {
            // Bounded even for a guest that setjmps into ever new buffers at one depth.
            let oldest = self.by_buf.keys().next().copied();
            if let Some(k) = oldest {
                self.by_buf.remove(&k);
            }
        }
        let secret = *self.secret.get_or_insert_with(|| {
            let mut s = [0u8; 32];
            // Without an entropy source the keys are still distinct, only predictable.
            let _ = getrandom::fill(&mut s);
            s
        });
        self.issued += 1;
        let mut key = [0u8; 16];
        key.copy_from_slice(
            &blake3::keyed_hash(&secret, &self.issued.to_le_bytes()).as_bytes()[..16],
        );
        self.by_buf.insert(buf, Setjmp { key, snapshot });
        key
    }

    /// The capture a longjmp through the buffer at `buf` (holding `key`) returns to, from
    /// a stack now at `sp`. Captures deeper than the target are gone afterwards.
    pub fn take_target(
        &mut self,
        buf: u32,
        key: [u8; 16],
        sp: u32,
    ) -> Result<Arc<ThreadSnapshot>, Rejected> {
        let c = self.by_buf.get(&buf).ok_or(Rejected::Unknown(buf))?;
        if c.key != key {
            return Err(Rejected::Forged(buf));
        }
        let target = c.snapshot.stack_pointer();
        if sp > target.saturating_add(WRAPPER_FRAMES) {
            self.by_buf.remove(&buf);
            return Err(Rejected::Stale(buf));
        }
        let snapshot = Arc::clone(&c.snapshot);
        self.by_buf
            .retain(|_, c| c.snapshot.stack_pointer().saturating_add(WRAPPER_FRAMES) >= target);
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::Entry;

    fn at(sp: u32) -> Arc<ThreadSnapshot> {
        Arc::new(ThreadSnapshot::new(
            Entry::Main,
            Vec::new(),
            0,
            Vec::new(),
            sp,
            None,
            Vec::new(),
        ))
    }

    #[test]
    fn only_the_key_handed_out_resumes_a_checkpoint() {
        let mut c = SetjmpBuffers::default();
        let key = c.record(100, at(60_000));
        assert_eq!(c.take_target(200, key, 59_000), Err(Rejected::Unknown(200)));
        let mut forged = key;
        forged[3] ^= 1;
        assert_eq!(
            c.take_target(100, forged, 59_000),
            Err(Rejected::Forged(100))
        );
        assert_eq!(
            c.take_target(100, key, 59_000).unwrap().stack_pointer(),
            60_000
        );
        // A longjmp may be repeated to the same buffer.
        assert!(c.take_target(100, key, 59_500).is_ok());
    }

    #[test]
    fn a_checkpoint_whose_frame_returned_is_stale() {
        let mut c = SetjmpBuffers::default();
        let key = c.record(100, at(50_000));
        assert_eq!(
            c.take_target(100, key, 50_000 + WRAPPER_FRAMES + 16),
            Err(Rejected::Stale(100))
        );
        // Recording at a shallower point drops deeper captures.
        let deep = c.record(300, at(40_000));
        c.record(400, at(60_000));
        assert_eq!(
            c.take_target(300, deep, 39_000),
            Err(Rejected::Unknown(300))
        );
    }

    #[test]
    fn longjmp_drops_checkpoints_deeper_than_its_target() {
        let mut c = SetjmpBuffers::default();
        let outer = c.record(1, at(60_000));
        let inner = c.record(2, at(50_000));
        c.take_target(1, outer, 45_000).unwrap();
        assert_eq!(c.take_target(2, inner, 45_000), Err(Rejected::Unknown(2)));
    }
}
