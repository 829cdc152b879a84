//! What a thread does when its entry function returns: finish a stack capture and carry out
//! its purpose (fork, vfork, setjmp), follow a longjmp, or end a vfork child — and which
//! captured stack to rewind next, if any.

use std::sync::Arc;

use wasmix_fs::Errno;
use wasmtime::Store;

use crate::capture;
use crate::fork;
use crate::host::{split, Host};
use crate::launch::Starter;
use crate::snapshot::{self, Parked};
use crate::stack::{Capture, Restore, Resumption, ThreadSnapshot};
use crate::unwind::Unwind;

/// What the run loop does next.
pub(crate) enum Next {
    /// The thread is done; this is how it ended.
    Done(wasmtime::Result<()>),
    /// Call the entry again, rewinding this stack; its interrupted call resumes so.
    Rewind(Arc<ThreadSnapshot>, Resumption, Restore),
}

/// Decides what follows the entry's return `result`; new threads (a fork child, a vfork
/// child's new image) are handed to `start`.
pub(crate) fn settle(
    store: &mut Store<Host>,
    result: wasmtime::Result<()>,
    start: Starter,
) -> Next {
    match result {
        Ok(()) => match capture::finish_unwind(store) {
            Ok(Some((capture, snapshot))) => carry_out(store, capture, snapshot, start),
            Ok(None) => after(store, Ok(()), start),
            Err(e) => Next::Done(Err(e)),
        },
        Err(e) => {
            if capture::abandon_unwind(store) {
                return Next::Done(Err(e.context(
                    "the guest trapped while its stack was being captured (its stack may be \
                     deeper than the 64 KiB asyncify data area holds)",
                )));
            }
            if let Some(Unwind::LongJump { snapshot, value }) = Unwind::of(&e) {
                return Next::Rewind(
                    Arc::clone(snapshot),
                    Resumption::Return(Ok(*value)),
                    Restore::StackPointer,
                );
            }
            after(store, Err(e), start)
        }
    }
}

/// The entry really returned (or failed): a vfork child has ended, or the thread has.
fn after(store: &mut Store<Host>, result: wasmtime::Result<()>, start: Starter) -> Next {
    match fork::end_vfork_child(store, result, start) {
        Ok((snapshot, resume, restore)) => Next::Rewind(snapshot, resume, restore),
        Err(result) => Next::Done(result),
    }
}

fn carry_out(
    store: &mut Store<Host>,
    capture: Capture,
    snapshot: ThreadSnapshot,
    start: Starter,
) -> Next {
    let snapshot = Arc::new(snapshot);
    match capture {
        Capture::Fork { copy_memory: true } => {
            let outcome = fork::fork(store, &snapshot, start).map(u64::from);
            Next::Rewind(snapshot, Resumption::Return(outcome), Restore::StackPointer)
        }
        Capture::Fork { copy_memory: false } => {
            let outcome = fork::vfork(store, &snapshot).map(|()| 0);
            Next::Rewind(snapshot, Resumption::Return(outcome), Restore::StackPointer)
        }
        Capture::Checkpoint { resume } => match snapshot::park(store, &snapshot, resume) {
            Parked::Continue => Next::Rewind(snapshot, resume, Restore::StackPointer),
            Parked::Stop => Next::Done(Err(Unwind::Exit(snapshot::stopped()).into())),
        },
        Capture::Setjmp { buf } => {
            let key = store
                .data_mut()
                .stack
                .setjmps_mut()
                .record(buf, Arc::clone(&snapshot));
            let (mut mem, _) = split(store);
            // The buffer is `{user: u64, hash: [u8; 16]}`; `user` is libc's.
            let outcome = mem.write(buf + 8, &key).map(|()| 0);
            Next::Rewind(
                snapshot,
                Resumption::Return(outcome.map_err(|_: Errno| Errno::Fault)),
                Restore::StackPointer,
            )
        }
    }
}
