//! Capturing a guest thread's call stack and making a host call return again: the mechanism
//! fork, vfork, setjmp/longjmp (and checkpoints) stand on, over the data in `stack`.
//!
//! A host call that captures ([`begin_unwind`]) points asyncify at a data area in linear
//! memory and starts unwinding; every frame saves its locals there and returns, until the
//! thread's entry function returns to the run loop, which stops the unwind and takes a
//! [`ThreadSnapshot`] ([`finish_unwind`]). To resume, the run loop restores the snapshot,
//! starts a rewind ([`rewind`]) and calls the same entry function again: every frame reloads
//! its locals and re-enters its call, down to the host call, which sees it is being resumed
//! ([`resumed`]) and returns the chosen outcome — in the same instance (setjmp, the forking
//! parent) or another one (the forked child).
//!
//! Leaving a stack needs no capture: longjmp and the end of a vfork child unwind the engine
//! stack with an [`Unwind`](crate::unwind::Unwind) and rewind a snapshot taken earlier.
//!
//! While a thread unwinds or rewinds its code runs in asyncify's special states, so no signal
//! handler may be called into it then (`StackState::busy`).

use std::sync::Arc;

use wasmix_fs::Errno;
use wasmtime::{Caller, Store};

use crate::host::{split, Host, HostContext};
use crate::stack::asyncify::Asyncify;
use crate::stack::{Capture, Restore, Resumption, ThreadSnapshot, AREA, HEADER};

/// Why a thread's stack cannot be captured or resumed.
#[derive(Debug, thiserror::Error)]
#[error("cannot capture or resume the stack of `{program}`: {reason}")]
pub(crate) struct StackError {
    program: String,
    reason: String,
}

pub(crate) fn stack_error(host: &Host, reason: impl Into<String>) -> wasmtime::Error {
    StackError {
        program: host.ctx.image.program().name().to_owned(),
        reason: reason.into(),
    }
    .into()
}

/// The thread's asyncify handles, looked up on first use.
fn handles<C: HostContext>(cx: &mut C) -> Result<Arc<Asyncify>, String> {
    if let Some(a) = cx.host_mut().stack.asyncify() {
        return Ok(Arc::clone(a));
    }
    let instance = cx
        .host_mut()
        .instance
        .ok_or("the thread has no instance yet")?;
    let a = Arc::new(Asyncify::find(cx.as_context_mut(), instance)?);
    cx.host_mut().stack.set_asyncify(Arc::clone(&a));
    Ok(a)
}

/// The thread's data area, grown as a fresh page of linear memory the first time.
fn area<C: HostContext>(cx: &mut C) -> Result<u32, Errno> {
    if let Some(a) = cx.host_mut().stack.area() {
        return Ok(a);
    }
    let pages = crate::host::grow_memory(cx.as_context_mut(), 1).ok_or(Errno::Nomem)?;
    let at = u32::try_from(pages * u64::from(AREA)).map_err(|_| Errno::Nomem)?;
    cx.host_mut().stack.set_area(at);
    Ok(at)
}

/// Starts unwinding the calling thread from inside a host call; once the thread's entry
/// returns, the run loop carries out `capture`. The host call then returns at once (its
/// value is ignored while unwinding). `Err(errno)` when the stack cannot be captured.
pub(crate) fn begin_unwind(
    caller: &mut Caller<'_, Host>,
    capture: Capture,
) -> wasmtime::Result<Result<(), Errno>> {
    if caller.data().handlers.depth() > 0 {
        // The handler runs inside a host call: its stack does not lead back to the entry.
        return Ok(Err(Errno::Notsup));
    }
    let a = match handles(caller) {
        Ok(a) => a,
        Err(reason) => {
            tracing::warn!(
                "`{}` cannot capture its stack: {reason}",
                caller.data().ctx.image.program().name()
            );
            return Ok(Err(Errno::Notsup));
        }
    };
    let at = match area(caller) {
        Ok(at) => at,
        Err(e) => return Ok(Err(e)),
    };
    {
        let (mut mem, _) = split(caller);
        if mem.put_u32(at, at + HEADER).is_err() || mem.put_u32(at + 4, at + AREA).is_err() {
            return Ok(Err(Errno::Fault));
        }
    }
    caller.data_mut().stack.start_unwind(capture);
    a.start_unwind.call(&mut *caller, at as i32)?;
    Ok(Ok(()))
}

/// In a host call that may be a rewound one: how it resumes when it is (the rewind is over
/// then), `None` for a fresh call.
pub(crate) fn resumed(caller: &mut Caller<'_, Host>) -> wasmtime::Result<Option<Resumption>> {
    if !caller.data().stack.rewinding() {
        return Ok(None);
    }
    let a = handles(caller).map_err(|r| stack_error(caller.data(), r))?;
    a.stop_rewind.call(&mut *caller, ())?;
    // Only now: until asyncify has stopped rewinding, no handler may run on this thread.
    Ok(caller.data_mut().stack.end_rewind())
}

/// After the thread's entry returned: if it was unwinding, stops the unwind and captures the
/// thread.
pub(crate) fn finish_unwind(
    store: &mut Store<Host>,
) -> wasmtime::Result<Option<(Capture, ThreadSnapshot)>> {
    if !store.data().stack.unwinding() {
        return Ok(None);
    }
    let a = handles(store).map_err(|r| stack_error(store.data(), r))?;
    a.stop_unwind.call(&mut *store, ())?;
    let Some(capture) = store.data_mut().stack.end_unwind() else {
        return Ok(None);
    };
    let sp = a.stack_pointer(&mut *store);
    let globals = a.read_globals(&mut *store);
    let (mem, host) = split(store);
    let entry = host.stack.entry();
    let top = host.stack.stack_top();
    let at = host.stack.area().unwrap_or(0);
    let corrupt = |what: &str| stack_error(host, format!("the asyncify state is corrupt: {what}"));
    let current = mem.u32(at).map_err(|_| corrupt("its data area is gone"))?;
    if current < at + HEADER || current > at + AREA {
        return Err(corrupt("its data pointer left the data area"));
    }
    let data = mem
        .bytes(at + HEADER, current - at - HEADER)
        .map_err(|_| corrupt("its data area is gone"))?
        .into_owned();
    let stack = match top {
        Some(top) if top >= sp => mem
            .bytes(sp, top - sp)
            .map(std::borrow::Cow::into_owned)
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let snapshot = ThreadSnapshot::new(entry, globals, at, data, sp, top, stack);
    Ok(Some((capture, snapshot)))
}

/// After a trap: whether the thread was unwinding (the capture is abandoned then).
pub(crate) fn abandon_unwind(store: &mut Store<Host>) -> bool {
    store.data_mut().stack.abandon()
}

/// Makes the thread resume `snapshot` when its entry function is called next: the
/// interrupted host call resumes as `resume` says.
pub(crate) fn rewind(
    store: &mut Store<Host>,
    snapshot: &ThreadSnapshot,
    resume: Resumption,
    restore: Restore,
) -> wasmtime::Result<()> {
    let a = handles(store).map_err(|r| stack_error(store.data(), r))?;
    let at = snapshot.unwind_area();
    let data = snapshot.unwind_data();
    {
        let (mut mem, host) = split(store);
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        if len > AREA - HEADER {
            return Err(stack_error(
                host,
                "the snapshot's asyncify data is too large",
            ));
        }
        let write = (|| {
            mem.write(at + HEADER, data)?;
            mem.put_u32(at, at + HEADER + len)?;
            mem.put_u32(at + 4, at + AREA)?;
            if restore == Restore::Everything && !snapshot.stack().is_empty() {
                mem.write(snapshot.stack_pointer(), snapshot.stack())?;
            }
            Ok::<(), Errno>(())
        })();
        write.map_err(|_| stack_error(host, "the snapshot does not fit this memory"))?;
        host.stack.set_area(at);
        host.stack.set_stack_top(snapshot.stack_top());
    }
    if restore != Restore::StackPointer {
        a.write_globals(&mut *store, snapshot.globals())?;
    }
    a.set_stack_pointer(&mut *store, snapshot.stack_pointer())?;
    store.data_mut().stack.start_rewind(resume);
    a.start_rewind.call(&mut *store, at as i32)?;
    Ok(())
}

/// The current shadow stack pointer of the calling thread, if its module has one.
pub(crate) fn stack_pointer(caller: &mut Caller<'_, Host>) -> Option<u32> {
    let a = handles(caller).ok()?;
    Some(a.stack_pointer(&mut *caller))
}

#[cfg(test)]
mod tests;
