//! Acting on a thread's signals: at every host-call boundary, and inside running wasm through
//! the epoch deadline callback, once the thread's `Interrupt` flag is up.

use std::sync::Arc;

use wasmix_process::Action;
use wasmtime::{AsContextMut, Store, UpdateDeadline};

use crate::host::Host;
use crate::unwind::Unwind;

/// Nested handlers deeper than this are deferred until the outer ones return.
const MAX_HANDLER_DEPTH: u32 = 16;

/// Acts on everything pending for the calling thread: runs guest handlers, sits out a stop,
/// or unwinds when the thread or its process is being killed.
pub(crate) fn deliver(mut store: impl AsContextMut<Data = Host>) -> wasmtime::Result<()> {
    let mut store = store.as_context_mut();
    // A snapshot wants the thread (its interrupt was raised for that too): its next loop
    // header calls the safe point. Done before the flag is taken, wherever it is noticed.
    let host = store.data();
    if host.ctx.process.checkpoint().capture_requested() {
        if let Some(flag) = host.safepoint {
            flag.set(&mut store, wasmtime::Val::I32(1))?;
        }
    }
    // Mid-unwind or mid-rewind the guest's code cannot run a handler; the flag stays up.
    if store.data().handlers.depth() >= MAX_HANDLER_DEPTH || store.data().stack.busy() {
        return Ok(());
    }
    while store.data().interrupt.take() {
        loop {
            let (process, thread) = {
                let h = store.data();
                (Arc::clone(&h.ctx.process), Arc::clone(&h.thread))
            };
            match process.next_action(&thread) {
                Action::None => break,
                Action::Terminate => return Err(Unwind::ThreadExit.into()),
                Action::Handler(sig, _) => {
                    let Some(entry) = signal_entry(&mut store) else {
                        continue; // no entry point: nothing to run
                    };
                    store.data_mut().handlers.enter();
                    let r = entry.call(&mut store, i32::from(sig.number()));
                    store.data_mut().handlers.leave();
                    r?;
                }
            }
        }
    }
    Ok(())
}

/// The guest export that receives signals (`__wasm_signal` unless the guest named another).
fn signal_entry(
    store: &mut wasmtime::StoreContextMut<'_, Host>,
) -> Option<wasmtime::TypedFunc<i32, ()>> {
    let name = store.data().ctx.signal_callback()?;
    if let Some(f) = store.data().handlers.entry(&name) {
        return Some(f);
    }
    let instance = store.data().instance?;
    let f = instance
        .get_typed_func::<i32, ()>(&mut *store, &name)
        .ok()?;
    store.data_mut().handlers.cache_entry(name, f.clone());
    Some(f)
}

/// Arms the epoch deadline so wasm running on `store` checks for signals: every epoch bump
/// reaches the callback, which returns at once unless this thread's flag is up.
pub(crate) fn arm(store: &mut Store<Host>) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut cx| {
        // A hold first: a capture round that opens as it ends raises this thread's flag and
        // bumps the epoch while the thread is still in here; the deadline set on leaving
        // counts from the bumped epoch, so only the check below can see that flag.
        crate::snapshot::held(cx.data());
        if cx.data().interrupt.is_raised() {
            // The store has no callback while this one runs, so the handler must not reach a
            // deadline: it runs to its end (signals meanwhile wait for its host calls or for
            // the next deadline, as if masked during the handler).
            cx.set_epoch_deadline(u64::MAX / 2);
            deliver(&mut cx)?;
        }
        Ok(UpdateDeadline::Continue(1))
    });
}
