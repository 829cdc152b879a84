//! The loop that runs one guest thread on one OS thread: instantiate, enter, settle what the
//! entry's return means (a capture, a longjmp, a vfork child's end), rewind, exec.

use std::sync::Arc;

use wasmix_fs::Errno;
use wasmix_process::{ExitStatus, Thread, Tid};
use wasmtime::{Store, Val};

use crate::capture;
use crate::host::{Host, ProcessCtx};
use crate::interrupt::Interrupt;
use crate::launch::{Launch, Start};
use crate::resume::{self, Next};
use crate::signals;
use crate::stack::{Entry, Restore, Resumption, ThreadSnapshot};
use crate::unwind::Unwind;

/// Runs one guest thread to its end on the calling OS thread, then retires it from the
/// process (the last thread out finalises the process).
pub(crate) fn run_thread(ctx: Arc<ProcessCtx>, thread: Arc<Thread>, start: Start) {
    // Its CPU time counts against the process's limit, if there is one.
    let cpu = ctx.runtime.cpu_watch();
    let pid = ctx.process.pid();
    if let Some(w) = &cpu {
        w.enter(pid);
    }
    ctx.runtime.register_context(&ctx);
    let mut start = Some(start);
    let mut interrupt = None;
    let mut ctx = ctx;
    let mut entry = Entry::Main;
    loop {
        let (mut store, rewind) = match start.take() {
            Some(Start::Resume(r)) => {
                entry = r.snapshot.entry();
                interrupt = Some(Arc::clone(&r.store.data().interrupt));
                (r.store, Some((r.snapshot, r.resume, Restore::Globals)))
            }
            fresh => {
                if let Some(Start::Entry(e)) = fresh {
                    entry = e;
                }
                let interrupt = interrupt
                    .get_or_insert_with(|| Interrupt::install(ctx.runtime.engine(), &thread));
                let mut store =
                    Host::new(Arc::clone(&ctx), Arc::clone(&thread), Arc::clone(interrupt))
                        .into_store();
                signals::arm(&mut store);
                (store, None)
            }
        };
        let outcome = enter(&ctx, &mut store, thread.tid(), entry, rewind);
        if outcome.as_ref().err().is_none_or(Unwind::is_thread_exit) {
            destroy_thread_locals(&ctx, &mut store, thread.tid());
        }
        let next = store.data_mut().pending.take_exec();
        drop(store);
        match outcome {
            Ok(()) => {
                if matches!(entry, Entry::Main) {
                    ctx.process.exit(ExitStatus::Exited(0));
                }
            }
            Err(e) => {
                if matches!(Unwind::of(&e), Some(Unwind::Exec)) {
                    if let Some(next) = next {
                        retire_other_threads(&ctx, &thread);
                        ctx = next;
                        ctx.runtime.register_context(&ctx);
                        if let Some(j) = ctx.journal() {
                            j.set_current(&ctx);
                        }
                        entry = Entry::Main;
                        continue;
                    }
                }
                ctx.end_with(e);
            }
        }
        break;
    }
    if let Some(w) = &cpu {
        w.leave(pid);
    }
    ctx.process.thread_exited(thread.tid());
    ctx.thread_exits.wake_all();
}

/// Runs `launch` on a pooled OS thread.
pub(crate) fn start_thread(launch: Launch) -> Result<(), Errno> {
    let Launch { ctx, thread, start } = launch;
    let name = format!("wasmix-{}-{}", ctx.process.pid(), thread.tid());
    crate::pool::run(name, move || run_thread(ctx, thread, start)).map_err(|_| Errno::Again)
}

/// Hands the values this thread set under 2023-style thread-local keys to the guest's
/// `_thread_local_destroy(user_data_lo, user_data_hi, value_lo, value_hi)`.
fn destroy_thread_locals(ctx: &ProcessCtx, store: &mut Store<Host>, tid: Tid) {
    let leftovers = ctx
        .thread_locals
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take_thread(tid);
    if leftovers.is_empty() {
        return;
    }
    let Some(instance) = store.data().instance else {
        return;
    };
    let Ok(destroy) =
        instance.get_typed_func::<(i32, i32, i32, i32), ()>(&mut *store, "_thread_local_destroy")
    else {
        return;
    };
    for (user_data, value) in leftovers {
        let halves = |v: u64| (v as u32 as i32, (v >> 32) as u32 as i32);
        let ((ul, uh), (vl, vh)) = (halves(user_data), halves(value));
        let _ = destroy.call(&mut *store, (ul, uh, vl, vh));
    }
}

/// Kills every other thread of the process (exec) and waits until they are gone.
fn retire_other_threads(ctx: &ProcessCtx, me: &Arc<Thread>) {
    for t in ctx.process.threads() {
        if t.tid() != me.tid() {
            t.kill();
        }
    }
    let _ = me.wait_uninterruptible(Some(&ctx.thread_exits), || {
        (ctx.process.live_threads() <= 1).then_some(())
    });
}

/// Runs the thread's entry (or resumes it, rewinding `rewind`) until it is really done.
fn enter(
    ctx: &Arc<ProcessCtx>,
    store: &mut Store<Host>,
    tid: Tid,
    entry: Entry,
    mut rewind: Option<(Arc<ThreadSnapshot>, Resumption, Restore)>,
) -> wasmtime::Result<()> {
    store.data_mut().stack.set_entry(entry);
    let instance = match (store.data().instance, &rewind) {
        (Some(instance), Some(_)) => instance,
        _ => {
            let instance = ctx.instantiate(store, matches!(entry, Entry::Main))?;
            let top = stack_top(store, instance, entry);
            store.data_mut().stack.set_stack_top(top);
            if matches!(entry, Entry::Main) {
                if let Ok(init) = instance.get_typed_func::<(), ()>(&mut *store, "_initialize") {
                    init.call(&mut *store, ())?;
                }
            }
            instance
        }
    };
    loop {
        if let Some((snapshot, resume, restore)) = rewind.take() {
            capture::rewind(store, &snapshot, resume, restore)?;
        }
        let entry = store.data().stack.entry();
        let result = call_entry(ctx, store, instance, tid, entry);
        match resume::settle(store, result, start_thread) {
            Next::Done(result) => return result,
            Next::Rewind(snapshot, resume, restore) => rewind = Some((snapshot, resume, restore)),
        }
    }
}

/// Where the thread's shadow stack starts, for programs whose stacks can be captured.
fn stack_top(store: &mut Store<Host>, instance: wasmtime::Instance, entry: Entry) -> Option<u32> {
    if !store.data().ctx.image.program().captures_stacks() {
        return None;
    }
    match entry {
        Entry::Main => match instance
            .get_global(&mut *store, "__stack_pointer")?
            .get(&mut *store)
        {
            Val::I32(sp) => Some(sp as u32),
            _ => None,
        },
        Entry::Legacy { stack_base, .. } => u32::try_from(stack_base).ok(),
        Entry::ThreadStart(_) => None,
    }
}

fn call_entry(
    ctx: &Arc<ProcessCtx>,
    store: &mut Store<Host>,
    instance: wasmtime::Instance,
    tid: Tid,
    entry: Entry,
) -> wasmtime::Result<()> {
    match entry {
        Entry::Main => {
            let start = instance
                .get_typed_func::<(), ()>(&mut *store, "_start")
                .map_err(|_| {
                    wasmtime::Error::msg(format!(
                        "`{}` exports no `_start` function to run (is it a library or reactor?)",
                        ctx.image.program().name()
                    ))
                })?;
            start.call(&mut *store, ())
        }
        Entry::Legacy {
            user_data,
            stack_base,
            reactor,
        } => {
            if !store.data().stack.busy() {
                if let Some(wasmtime::Extern::Global(sp)) =
                    instance.get_export(&mut *store, "__stack_pointer")
                {
                    let _ = sp.set(&mut *store, Val::I32(stack_base as u32 as i32));
                }
            }
            let name = if reactor { "_react" } else { "_start_thread" };
            let start = instance
                .get_typed_func::<(i32, i32), ()>(&mut *store, name)
                .map_err(|_| wasmtime::Error::msg(format!("no `{name}` export")))?;
            start.call(
                &mut *store,
                (user_data as u32 as i32, (user_data >> 32) as u32 as i32),
            )
        }
        Entry::ThreadStart(arg) => {
            let start = instance
                .get_func(&mut *store, "wasi_thread_start")
                .ok_or_else(|| wasmtime::Error::msg("no `wasi_thread_start` export"))?;
            start.call(&mut *store, &[Val::I32(tid as i32), Val::I32(arg)], &mut [])
        }
    }
}
