//! fork and vfork: a child process made from a captured thread.
//!
//! fork gives the child a copy-on-write copy of memory (see `forkmem`), the forking thread's
//! globals and stack, the file table (open file descriptions shared, as in POSIX), signal
//! dispositions and mask — and only the forking thread. The child is prepared entirely on the
//! parent's OS thread, so the parent resumes only once its memory has been copied, then runs
//! on its own thread.
//!
//! vfork lends the parent's thread and memory to the child: the thread takes on the child's
//! identity (process, files, signals) and resumes the capture returning 0. When the child
//! execs or exits, the thread takes the parent's identity back and resumes the same capture
//! returning the child's pid — the parent never ran in between, and sees what the child wrote.
//!
//! `proc_fork_env` (the vfork of wasix-libc's exception-handling build) lends the thread the
//! same way but captures nothing: the child's exit or exec takes the parent's identity back
//! inside that host call, which returns in the parent; its libc longjmps to the vfork.

use std::sync::Arc;

use wasmix_fs::Errno;
use wasmix_process::{ExitStatus, Process, Signal};
use wasmtime::Store;

use crate::forkmem::ForkMemory;
use crate::host::{memory_region, GuestMemory, Host, Identity, ProcessCtx, Vfork};
use crate::interrupt::Interrupt;
use crate::launch::{discard, Launch, Resume, Start, Starter};
use crate::signals;
use crate::stack::{Entry, Restore, Resumption, ThreadSnapshot};
use crate::unwind::Unwind;

/// A new process, child of the calling thread's, with its signal state; retired again if the
/// fork fails later on.
fn child_process(host: &Host) -> Result<Arc<Process>, Errno> {
    let parent = &host.ctx.process;
    let process = host
        .ctx
        .runtime
        .control()
        .spawn(Some(parent), [0; 32])
        .map_err(|_| Errno::Again)?;
    process.set_dispositions(&parent.dispositions());
    if let Some(main) = process.main_thread() {
        main.set_mask(host.thread.mask());
    }
    Ok(process)
}

/// `proc_fork` with a copy of memory: starts the child (with `start`) resuming `snapshot` with
/// 0 and returns its pid.
pub(crate) fn fork(
    store: &mut Store<Host>,
    snapshot: &Arc<ThreadSnapshot>,
    start: Starter,
) -> Result<u32, Errno> {
    let process = child_process(store.data())?;
    let made = (|| {
        let parent = Arc::clone(&store.data().ctx);
        let runtime = parent.runtime.clone();
        let image = parent.image.for_fork(&runtime)?;
        let ctx =
            Arc::new(parent.fork_child(Arc::clone(&process), image, store.data().thread.tid()));
        let thread = process.main_thread().ok_or(Errno::Again)?;
        let interrupt = Interrupt::install(runtime.engine(), &thread);
        let mut child = Host::new(Arc::clone(&ctx), Arc::clone(&thread), interrupt).into_store();
        signals::arm(&mut child);
        // The child's main thread: its memory's place is known (a snapshot of the tree
        // reads it), and its contents come from the parent below, not from adoption.
        ctx.instantiate_unadopted(&mut child).map_err(|e| {
            tracing::warn!("fork: cannot instantiate the child: {e:#}");
            Errno::Nomem
        })?;
        copy_memory(store, &mut child, &ctx)?;
        let host = child.data_mut();
        host.stack = store.data().stack.for_child();
        host.stack.set_entry(snapshot.entry());
        let resume = Resume {
            store: child,
            snapshot: Arc::clone(snapshot),
            resume: Resumption::Return(Ok(0)),
        };
        start(Launch {
            ctx,
            thread,
            start: Start::Resume(Box::new(resume)),
        })
    })();
    match made {
        Ok(()) => Ok(process.pid()),
        Err(e) => {
            discard(&process);
            Err(e)
        }
    }
}

/// Gives the child's memory the parent's contents: copy-on-write when the parent's memory
/// lives in a file, else byte by byte.
fn copy_memory(
    parent: &mut Store<Host>,
    child: &mut Store<Host>,
    child_ctx: &ProcessCtx,
) -> Result<(), Errno> {
    if matches!(parent.data().memory, GuestMemory::None) {
        return Ok(()); // no memory to copy
    }
    // Only 32-bit memories of 64 KiB pages are laid out as `memory_region` knows.
    let (Some(from), Some(mut to)) = (memory_region(parent), memory_region(child)) else {
        return Err(Errno::Notsup);
    };
    if to.len < from.len {
        let pages = ((from.len - to.len) / 65536) as u64;
        crate::host::grow_memory(&mut *child, pages).ok_or(Errno::Nomem)?;
        to.len = from.len;
    }
    match parent.data().ctx.fork_memory() {
        Some(memory) => {
            // SAFETY: both regions are whole engine reservations; the child's memory is not
            // in use by anyone yet.
            let copy = unsafe { memory.fork(from, to) }.map_err(|e| {
                tracing::warn!("fork: cannot map the child's memory: {e}");
                Errno::Nomem
            })?;
            child_ctx.set_fork_memory(Arc::new(copy));
        }
        None => {
            // SAFETY: both ranges are accessible and `from.len` long; they do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(from.base, to.base, from.len) };
            // SAFETY: as in adoption at start: the child runs no code yet.
            if let Ok(m) = unsafe { ForkMemory::adopt(to) } {
                child_ctx.set_fork_memory(Arc::new(m));
            }
        }
    }
    Ok(())
}

/// `proc_fork` without a copy of memory: the calling thread becomes the child until it execs
/// or exits.
pub(crate) fn vfork(store: &mut Store<Host>, snapshot: &Arc<ThreadSnapshot>) -> Result<(), Errno> {
    lend_thread(store.data_mut(), Some(Arc::clone(snapshot))).map(|_| ())
}

/// `proc_fork_env`, the vfork of wasix-libc's exception-handling build: the calling thread
/// becomes the child, as with vfork, but nothing is captured — the call returns (in the
/// child) and the child's `proc_exit2` or `proc_exec*` returns too, in the parent, whose libc
/// then longjmps back to its vfork. Returns the child's pid.
pub(crate) fn fork_env(host: &mut Host) -> Result<u32, Errno> {
    lend_thread(host, None)
}

/// Lends the calling thread to a new child process sharing the parent's memory; returns its
/// pid.
fn lend_thread(host: &mut Host, snapshot: Option<Arc<ThreadSnapshot>>) -> Result<u32, Errno> {
    let process = child_process(host)?;
    let Some(thread) = process.main_thread() else {
        discard(&process);
        return Err(Errno::Again);
    };
    let ctx = Arc::new(host.ctx.fork_child(
        Arc::clone(&process),
        host.ctx.image.clone(),
        host.thread.tid(),
    ));
    if let Some(m) = host.ctx.fork_memory() {
        ctx.set_fork_memory(Arc::clone(m));
    }
    let interrupt = Interrupt::install(ctx.runtime.engine(), &thread);
    let parent = host.swap_identity(Identity::new(ctx, thread, interrupt));
    host.vforks.push(Vfork::new(parent, snapshot));
    Ok(process.pid())
}

/// How a vfork child leaves its parent's thread.
pub(crate) enum ChildEnd {
    /// It ends so (`proc_exit2`, or the end its entry came to).
    Exit(ExitStatus),
    /// Its entry failed: a trap, recorded as the process's cause of death, or an unwind.
    Failed(wasmtime::Error),
    /// `proc_exec*`: the child goes on with this image, on a thread of its own.
    Exec(Arc<ProcessCtx>),
}

/// The vfork child on this thread leaves it as `end` says: it becomes a process of its own
/// (its new image started with `start`) or a zombie. The caller gives the thread back to
/// the parent.
fn release_child(host: &Host, end: ChildEnd, start: Starter) {
    let child = &host.ctx;
    let thread = Arc::clone(&host.thread);
    match end {
        ChildEnd::Exec(next) => {
            let launch = Launch {
                ctx: next,
                thread,
                start: Start::Entry(Entry::Main),
            };
            if start(launch).is_err() {
                discard(&child.process);
            }
            return;
        }
        ChildEnd::Exit(status) => child.process.exit(status),
        ChildEnd::Failed(e) => child.end_with(e),
    }
    child.process.thread_exited(thread.tid());
    child.thread_exits.wake_all();
}

/// When the thread runs a `proc_fork_env` child: the child ends or starts its new image (with
/// `start`), and the thread takes its parent's identity back, so the calling host call returns
/// in the parent; true then. False when the thread runs no such child.
pub(crate) fn end_env_child(host: &mut Host, end: ChildEnd, start: Starter) -> bool {
    if !host.vforks.last().is_some_and(Vfork::is_env) {
        return false;
    }
    let Some(frame) = host.vforks.pop() else {
        return false;
    };
    release_child(host, end, start);
    let (parent, _) = frame.into_parts();
    host.swap_identity(parent);
    true
}

/// The vfork child running on this thread has ended (`result`) or exec'd (its new image is
/// started with `start`): it becomes a process of its own (or a zombie), and the thread takes
/// its parent's identity back. Returns the stack to rewind — the parent's `proc_fork`,
/// returning the child's pid — or gives `result` back when the thread runs no vfork child.
pub(crate) fn end_vfork_child(
    store: &mut Store<Host>,
    result: wasmtime::Result<()>,
    start: Starter,
) -> Result<(Arc<ThreadSnapshot>, Resumption, Restore), wasmtime::Result<()>> {
    let host = store.data_mut();
    let Some(frame) = host.vforks.pop() else {
        return Err(result);
    };
    let exec = host.pending.take_exec();
    let pid = host.ctx.process.pid();
    let exec =
        exec.filter(|_| matches!(result.as_ref().map_err(Unwind::of), Err(Some(Unwind::Exec))));
    let end = match (exec, result) {
        (Some(next), _) => ChildEnd::Exec(next),
        (None, Ok(())) => ChildEnd::Exit(ExitStatus::Exited(0)),
        (None, Err(e)) if Unwind::is_thread_exit(&e) => {
            ChildEnd::Exit(ExitStatus::Signaled(Signal::KILL))
        }
        (None, Err(e)) => ChildEnd::Failed(e),
    };
    release_child(host, end, start);
    let (parent, snapshot) = frame.into_parts();
    store.data_mut().swap_identity(parent);
    let Some(snapshot) = snapshot else {
        // A `proc_fork_env` child that ended other than by `proc_exit2` or `proc_exec*` (a
        // trap, a kill, its entry returning) took the parent's stack with it.
        return Err(Err(wasmtime::Error::msg(format!(
            "the vfork child {pid} ended without _exit or exec, and the stack it borrowed \
             from this process went with it"
        ))));
    };
    // The child ran on this instance: the parent's globals come back with its stack.
    Ok((
        snapshot,
        Resumption::Return(Ok(u64::from(pid))),
        Restore::Globals,
    ))
}
