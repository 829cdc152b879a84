//! The calls that take a thread to a snapshot: WASIX `proc_snapshot` (the guest asks for
//! one) and the safe point loops call (`wasmix.safepoint`, inserted at load).

use wasmix_fs::Errno;
use wasmix_process::{CheckpointError, Trigger};
use wasmtime::{Caller, Result};

use super::{errno, Abi, HostCalls, INTERNAL};
use crate::capture;
use crate::host::Host;
use crate::host::LastFailed;
use crate::rewrite::SAFEPOINT;
use crate::snapshot::{self, SnapshotError};
use crate::stack::Resumption;

pub(super) fn add(calls: &mut HostCalls) -> Result<()> {
    calls.define_raw(Abi::Wasix.module(), "proc_snapshot", proc_snapshot)?;
    calls.define_raw(INTERNAL, SAFEPOINT, safepoint)?;
    Ok(())
}

/// Takes a snapshot of the calling process now: every thread parks, the snapshot is written,
/// and the call returns 0 once it is committed (also in a process restored from it).
/// ENOTSUP without a journal or instrumentation, EBUSY while the process has children or
/// another snapshot is under way.
fn proc_snapshot(mut caller: Caller<'_, Host>) -> Result<i32> {
    if caller.data().stack.rewinding() {
        if let Some(Resumption::Return(outcome)) = capture::resumed(&mut caller)? {
            // Return once the snapshot is in the journal (a restored process has nothing
            // to wait for).
            let journal = caller.data().ctx.journal().cloned();
            let written = {
                // Asleep for the process's barrier meanwhile: a hold of the process (this
                // snapshot's memory being handed over for tracking) need not wait for it.
                let _asleep = caller.data().thread.checkpoint().sleep();
                // Back at once when it is: not after a computing thread's slice.
                let _waiting = crate::sched::waiting();
                journal.map_or(Ok(()), |j| j.wait_last())
            };
            let outcome = match written {
                Ok(()) => Some(outcome.map(drop)),
                // A member ended as its share was asked for: ask again, for the tree as
                // it is now.
                Err(LastFailed::Round(CheckpointError::Action(why)))
                    if why == snapshot::TREE_CHANGED =>
                {
                    tracing::debug!("proc_snapshot: the tree changed; asking again");
                    None
                }
                Err(e) => {
                    tracing::warn!("proc_snapshot: {e}");
                    Some(Err(Errno::Io))
                }
            };
            if let Some(outcome) = outcome {
                return Ok(errno(outcome));
            }
        }
        // Restarted (captured by another round before asking, or the tree changed): ask now.
    }
    let ctx = std::sync::Arc::clone(&caller.data().ctx);
    tracing::debug!(
        "proc_snapshot: requested by thread {}",
        caller.data().thread.tid()
    );
    let memory_len = match &caller.data().memory {
        crate::host::GuestMemory::Own(m) => Some(m.data_size(&caller)),
        crate::host::GuestMemory::Shared(m) => Some(m.data_size()),
        crate::host::GuestMemory::None => None,
    };
    match snapshot::request(&ctx, Trigger::Explicit, memory_len) {
        Ok(_ticket) => {}
        // Someone else's round: be captured in it, and ask again once it is over.
        Err(SnapshotError::Busy) if snapshot::wanted(caller.data()) => {
            return snapshot::unwind(&mut caller, Resumption::Restart);
        }
        Err(e) => {
            let answer = match e {
                SnapshotError::NoJournal | SnapshotError::NotInstrumented(_) => Errno::Notsup,
                SnapshotError::ChildStarting(_) | SnapshotError::Busy => Errno::Busy,
                SnapshotError::Ended => Errno::Intr,
                SnapshotError::Failed(_) => Errno::Io,
                SnapshotError::TreeChanged => Errno::Busy,
            };
            tracing::warn!("proc_snapshot: {e}");
            return Ok(i32::from(answer.raw()));
        }
    }
    snapshot::unwind(&mut caller, Resumption::Return(Ok(0)))
}

/// A loop's safe point, called when the thread's flag is up: unwinds for a snapshot that
/// wants the thread, else lowers the flag.
fn safepoint(mut caller: Caller<'_, Host>) -> Result<()> {
    if caller.data().stack.rewinding() {
        capture::resumed(&mut caller)?;
    }
    if snapshot::wanted(caller.data()) {
        snapshot::unwind(&mut caller, Resumption::Restart)?;
        return Ok(());
    }
    if let Some(flag) = caller.data().safepoint {
        flag.set(&mut caller, wasmtime::Val::I32(0))?;
    }
    Ok(())
}
