//! Capturing a guest thread's call stack and making a host call return again: the one
//! mechanism fork, vfork, setjmp/longjmp and checkpoints stand on.
//!
//! No engine can save a native stack, so modules are asyncify-instrumented (by their toolchain,
//! or at load by [`prepare`]). A host call that captures ([`begin_unwind`]) points asyncify at
//! a data area in linear memory and starts unwinding; every frame saves its locals there and
//! returns, until the thread's entry function returns to the run loop, which stops the unwind
//! and takes a [`ThreadSnapshot`] ([`finish_unwind`]). To resume, the run loop restores the
//! snapshot, starts a rewind ([`rewind`]) and calls the same entry function again: every frame
//! reloads its locals and re-enters its call, down to the host call, which sees it is being
//! resumed ([`resumed`]) and returns the chosen outcome — in the same instance (setjmp, the
//! forking parent) or another one (the forked child).
//!
//! Leaving a stack needs no capture: longjmp and the end of a vfork child unwind the engine
//! stack with a host error ([`LongJump`] and friends) and rewind a snapshot taken earlier.
//!
//! While a thread unwinds or rewinds its code runs in asyncify's special states, so no signal
//! handler may be called into it then ([`StackState::busy`]).

pub(crate) mod asyncify;
mod checkpoints;
pub(crate) mod prepare;
pub(crate) mod snapshot;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use wasmix_fs::Errno;
use wasmtime::{Caller, Store};

use crate::host::{split, GuestMemory, Host, HostContext};
use crate::mem::GuestMem;
use asyncify::Asyncify;
pub(crate) use checkpoints::Checkpoints;
pub(crate) use snapshot::ThreadSnapshot;

/// Bytes of linear memory a capturing thread gets for asyncify's data: one wasm page, grown
/// the first time the thread captures, its own from then on.
const AREA: u32 = 65536;
/// asyncify's header at the start of the area: `{current, end}`.
const HEADER: u32 = 8;

/// What the run loop does once the thread has unwound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Capture {
    /// `proc_fork`: a child with a copy of memory, or (vfork) borrowing the parent's.
    Fork { copy_memory: bool },
    /// `stack_checkpoint` (setjmp) into the snapshot buffer at this address.
    Checkpoint { buf: u32 },
}

/// What a resumed call returns: its value, or an errno.
pub(crate) type Outcome = Result<u64, Errno>;

/// One thread's stack-capture state, kept in its store.
#[derive(Default)]
pub(crate) struct StackState {
    asyncify: Option<Arc<Asyncify>>,
    /// Address of the thread's asyncify data area.
    area: Option<u32>,
    /// The thread's initial stack pointer (its stack's highest address), when known.
    stack_top: Option<u32>,
    pending: Option<Capture>,
    resume: Option<Outcome>,
    busy: bool,
    checkpoints: Checkpoints,
}

impl StackState {
    /// Whether the thread is unwinding or rewinding (its code must not be called into).
    pub fn busy(&self) -> bool {
        self.busy
    }

    pub fn checkpoints_mut(&mut self) -> &mut Checkpoints {
        &mut self.checkpoints
    }

    /// The state a forked child's thread starts with: the same area and setjmp buffers.
    pub fn for_child(&self) -> StackState {
        StackState {
            area: self.area,
            stack_top: self.stack_top,
            checkpoints: self.checkpoints.clone(),
            ..StackState::default()
        }
    }

    /// Records where the thread's stack starts, before its entry runs.
    pub fn set_stack_top(&mut self, top: Option<u32>) {
        self.stack_top = top;
    }
}

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
    if let Some(a) = &cx.host_mut().stack.asyncify {
        return Ok(Arc::clone(a));
    }
    let instance = cx
        .host_mut()
        .instance
        .ok_or("the thread has no instance yet")?;
    let a = Arc::new(Asyncify::find(cx.as_context_mut(), instance)?);
    cx.host_mut().stack.asyncify = Some(Arc::clone(&a));
    Ok(a)
}

/// The thread's data area, grown as a fresh page of linear memory the first time.
fn area<C: HostContext>(cx: &mut C) -> Result<u32, Errno> {
    if let Some(a) = cx.host_mut().stack.area {
        return Ok(a);
    }
    let pages = match cx.host_mut().memory.clone() {
        GuestMemory::Own(m) => m.grow(cx.as_context_mut(), 1).map_err(|_| Errno::Nomem)?,
        GuestMemory::Shared(m) => m.grow(1).map_err(|_| Errno::Nomem)?,
        GuestMemory::None => return Err(Errno::Nomem),
    };
    let at = u32::try_from(pages * u64::from(AREA)).map_err(|_| Errno::Nomem)?;
    cx.host_mut().stack.area = Some(at);
    Ok(at)
}

/// Starts unwinding the calling thread from inside a host call; once the thread's entry
/// returns, the run loop carries out `capture`. The host call then returns at once (its
/// value is ignored while unwinding). `Err(errno)` when the stack cannot be captured.
pub(crate) fn begin_unwind(
    caller: &mut Caller<'_, Host>,
    capture: Capture,
) -> wasmtime::Result<Result<(), Errno>> {
    if caller.data().handler_depth > 0 {
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
        let (bytes, _) = split(caller);
        let mut mem = GuestMem::new(bytes);
        if mem.put_u32(at, at + HEADER).is_err() || mem.put_u32(at + 4, at + AREA).is_err() {
            return Ok(Err(Errno::Fault));
        }
    }
    let host = caller.data_mut();
    host.stack.pending = Some(capture);
    host.stack.busy = true;
    a.start_unwind.call(&mut *caller, at as i32)?;
    Ok(Ok(()))
}

/// In a host call that may be a rewound one: the outcome to return when it is (the rewind is
/// over then), `None` for a fresh call.
pub(crate) fn resumed(caller: &mut Caller<'_, Host>) -> wasmtime::Result<Option<Outcome>> {
    let Some(outcome) = caller.data_mut().stack.resume.take() else {
        return Ok(None);
    };
    let a = handles(caller).map_err(|r| stack_error(caller.data(), r))?;
    a.stop_rewind.call(&mut *caller, ())?;
    caller.data_mut().stack.busy = false;
    Ok(Some(outcome))
}

/// After the thread's entry returned: if it was unwinding, stops the unwind and captures the
/// thread.
pub(crate) fn finish_unwind(
    store: &mut Store<Host>,
) -> wasmtime::Result<Option<(Capture, ThreadSnapshot)>> {
    let Some(capture) = store.data_mut().stack.pending.take() else {
        return Ok(None);
    };
    let a = handles(store).map_err(|r| stack_error(store.data(), r))?;
    a.stop_unwind.call(&mut *store, ())?;
    store.data_mut().stack.busy = false;
    let sp = a.stack_pointer(&mut *store);
    let globals = a.read_globals(&mut *store);
    let (bytes, host) = split(store);
    let entry = host.entry;
    let top = host.stack.stack_top;
    let at = host.stack.area.unwrap_or(0);
    let mem = GuestMem::new(bytes);
    let corrupt = |what: &str| stack_error(host, format!("the asyncify state is corrupt: {what}"));
    let current = mem.u32(at).map_err(|_| corrupt("its data area is gone"))?;
    if current < at + HEADER || current > at + AREA {
        return Err(corrupt("its data pointer left the data area"));
    }
    let data = mem
        .slice(at + HEADER, current - at - HEADER)
        .map_err(|_| corrupt("its data area is gone"))?
        .to_vec();
    let stack = match top {
        Some(top) if top >= sp => mem
            .slice(sp, top - sp)
            .map(<[u8]>::to_vec)
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let snapshot = ThreadSnapshot::new(entry, globals, at, data, sp, top, stack);
    Ok(Some((capture, snapshot)))
}

/// After a trap: whether the thread was unwinding (the capture is abandoned then).
pub(crate) fn abandon_unwind(store: &mut Store<Host>) -> bool {
    let stack = &mut store.data_mut().stack;
    stack.busy = false;
    stack.resume = None;
    stack.pending.take().is_some()
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

/// Makes the thread resume `snapshot` when its entry function is called next: the
/// interrupted host call will return `outcome`.
pub(crate) fn rewind(
    store: &mut Store<Host>,
    snapshot: &ThreadSnapshot,
    outcome: Outcome,
    restore: Restore,
) -> wasmtime::Result<()> {
    let a = handles(store).map_err(|r| stack_error(store.data(), r))?;
    let at = snapshot.unwind_area();
    let data = snapshot.unwind_data();
    {
        let (bytes, host) = split(store);
        let mut mem = GuestMem::new(bytes);
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
        host.stack.area = Some(at);
        host.stack.stack_top = snapshot.stack_top();
    }
    if restore != Restore::StackPointer {
        a.write_globals(&mut *store, snapshot.globals())?;
    }
    a.set_stack_pointer(&mut *store, snapshot.stack_pointer())?;
    let host = store.data_mut();
    host.stack.resume = Some(outcome);
    host.stack.busy = true;
    a.start_rewind.call(&mut *store, at as i32)?;
    Ok(())
}

/// The current shadow stack pointer of the calling thread, if its module has one.
pub(crate) fn stack_pointer(caller: &mut Caller<'_, Host>) -> Option<u32> {
    let a = handles(caller).ok()?;
    Some(a.stack_pointer(&mut *caller))
}

/// Raised by `stack_restore` (longjmp): unwinds the engine stack so the run loop can rewind
/// the checkpoint, whose `stack_checkpoint` call then returns `value`.
#[derive(Debug)]
pub(crate) struct LongJump {
    pub snapshot: Arc<ThreadSnapshot>,
    pub value: u64,
}

impl std::fmt::Display for LongJump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("longjmp")
    }
}

impl std::error::Error for LongJump {}
