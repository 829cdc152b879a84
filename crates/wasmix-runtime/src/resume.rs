//! What a thread does when its entry function returns: finish a stack capture and carry out
//! its purpose (fork, vfork, setjmp), follow a longjmp, or end a vfork child — and which
//! captured stack to rewind next, if any.

use std::sync::Arc;

use wasmix_fs::Errno;
use wasmtime::Store;

use crate::host::{split, Host};
use crate::mem::GuestMem;
use crate::stack::{self, Capture, LongJump, Outcome, Restore, ThreadSnapshot};

/// What the run loop does next.
pub(crate) enum Next {
    /// The thread is done; this is how it ended.
    Done(wasmtime::Result<()>),
    /// Call the entry again, rewinding this stack; its interrupted call returns the outcome.
    Rewind(Arc<ThreadSnapshot>, Outcome, Restore),
}

/// Decides what follows the entry's return `result`.
pub(crate) fn settle(store: &mut Store<Host>, result: wasmtime::Result<()>) -> Next {
    match result {
        Ok(()) => match stack::finish_unwind(store) {
            Ok(Some((capture, snapshot))) => return carry_out(store, capture, snapshot),
            Ok(None) => {}
            Err(e) => return Next::Done(Err(e)),
        },
        Err(e) => {
            if stack::abandon_unwind(store) {
                return Next::Done(Err(e.context(
                    "the guest trapped while its stack was being captured (its stack may be \
                     deeper than the 64 KiB asyncify data area holds)",
                )));
            }
            match e.downcast::<LongJump>() {
                Ok(jump) => {
                    return Next::Rewind(jump.snapshot, Ok(jump.value), Restore::StackPointer)
                }
                Err(e) => return after(store, Err(e)),
            }
        }
    }
    after(store, Ok(()))
}

/// The entry really returned (or failed): a vfork child has ended, or the thread has.
fn after(store: &mut Store<Host>, result: wasmtime::Result<()>) -> Next {
    if store.data().vforks.is_empty() {
        return Next::Done(result);
    }
    crate::fork::end_vfork_child(store, result)
}

fn carry_out(store: &mut Store<Host>, capture: Capture, snapshot: ThreadSnapshot) -> Next {
    let snapshot = Arc::new(snapshot);
    match capture {
        Capture::Fork { copy_memory: true } => {
            let outcome = crate::fork::fork(store, &snapshot).map(u64::from);
            Next::Rewind(snapshot, outcome, Restore::StackPointer)
        }
        Capture::Fork { copy_memory: false } => {
            let outcome = crate::fork::vfork(store, &snapshot).map(|()| 0);
            Next::Rewind(snapshot, outcome, Restore::StackPointer)
        }
        Capture::Checkpoint { buf } => {
            let key = store
                .data_mut()
                .stack
                .checkpoints_mut()
                .record(buf, Arc::clone(&snapshot));
            let (bytes, _) = split(store);
            // The buffer is `{user: u64, hash: [u8; 16]}`; `user` is libc's.
            let outcome = GuestMem::new(bytes).write(buf + 8, &key).map(|()| 0);
            Next::Rewind(
                snapshot,
                outcome.map_err(|_: Errno| Errno::Fault),
                Restore::StackPointer,
            )
        }
    }
}
