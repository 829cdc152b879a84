//! Getting signals into guest threads: at every host-call boundary, and into running wasm
//! through the epoch deadline callback.
//!
//! A signal made pending on a thread (by the process model) runs the thread's notifier, which
//! raises the thread's [`Interrupt`] flag, bumps the engine epoch (so wasm running anywhere
//! checks in at its next loop back-edge or call) and pokes the thread's eventfd (so a wait in
//! the host kernel returns). Whoever sees the flag calls [`deliver`] on the thread's own store.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use wasmix_process::{Action, Thread};
use wasmtime::{AsContextMut, Engine, Store, UpdateDeadline};

use crate::host::{Host, ThreadEnded};

/// Nested handlers deeper than this are deferred until the outer ones return.
const MAX_HANDLER_DEPTH: u32 = 16;

/// The per-thread "look at your signals" flag.
pub(crate) struct Interrupt {
    flag: AtomicBool,
    engine: Engine,
    /// Created the first time the thread blocks in the host kernel.
    eventfd: OnceLock<OwnedFd>,
}

impl Interrupt {
    /// A flag for `thread`, installed as its notifier.
    pub fn install(engine: &Engine, thread: &Thread) -> Arc<Interrupt> {
        let interrupt = Arc::new(Interrupt {
            flag: AtomicBool::new(false),
            engine: engine.clone(),
            eventfd: OnceLock::new(),
        });
        let weak = Arc::downgrade(&interrupt);
        thread.set_notifier(move || {
            if let Some(i) = weak.upgrade() {
                i.raise();
            }
        });
        interrupt
    }

    fn raise(&self) {
        self.flag.store(true, Ordering::Release);
        self.engine.increment_epoch();
        if let Some(fd) = self.eventfd.get() {
            let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
        }
    }

    /// Whether something may be waiting to be delivered.
    pub fn is_raised(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    fn take(&self) -> bool {
        self.flag.swap(false, Ordering::AcqRel)
    }

    /// The eventfd that becomes readable when the flag is raised, for waits in `poll(2)`.
    pub fn eventfd(&self) -> Option<BorrowedFd<'_>> {
        if self.eventfd.get().is_none() {
            let fd = rustix::event::eventfd(
                0,
                rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
            )
            .ok()?;
            let _ = self.eventfd.set(fd);
        }
        self.eventfd.get().map(|fd| fd.as_fd())
    }

    /// Empties the eventfd after a wake-up (the flag itself is cleared by [`deliver`]).
    pub fn drain(&self) {
        if let Some(fd) = self.eventfd.get() {
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(fd, &mut buf);
        }
    }
}

/// Acts on everything pending for the calling thread: runs guest handlers, sits out a stop,
/// or unwinds when the thread or its process is being killed.
pub(crate) fn deliver(mut store: impl AsContextMut<Data = Host>) -> wasmtime::Result<()> {
    let mut store = store.as_context_mut();
    // Mid-unwind or mid-rewind the guest's code cannot run a handler; the flag stays up.
    if store.data().handler_depth >= MAX_HANDLER_DEPTH || store.data().stack.busy() {
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
                Action::Terminate => return Err(ThreadEnded.into()),
                Action::Handler(sig, _) => {
                    let Some(entry) = signal_entry(&mut store) else {
                        continue; // no entry point: nothing to run
                    };
                    store.data_mut().handler_depth += 1;
                    let r = entry.call(&mut store, i32::from(sig.number()));
                    store.data_mut().handler_depth -= 1;
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
    if let Some((cached, f)) = &store.data().signal_entry {
        if *cached == name {
            return Some(f.clone());
        }
    }
    let instance = store.data().instance?;
    let f = instance
        .get_typed_func::<i32, ()>(&mut *store, &name)
        .ok()?;
    store.data_mut().signal_entry = Some((name, f.clone()));
    Some(f)
}

/// Arms the epoch deadline so wasm running on `store` checks for signals: every epoch bump
/// reaches the callback, which returns at once unless this thread's flag is up.
pub(crate) fn arm(store: &mut Store<Host>) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut cx| {
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
