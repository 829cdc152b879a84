//! The per-thread "look at your signals" flag and how it reaches a thread wherever it is.
//!
//! A signal made pending on a thread (by the process model) runs the thread's notifier, which
//! raises the thread's [`Interrupt`] flag, bumps the engine epoch (so wasm running anywhere
//! checks in at its next loop back-edge or call) and pokes the thread's eventfd (so a wait in
//! the host kernel returns). Whoever sees the flag acts on it on the thread's own store
//! (`signals::deliver`).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use wasmix_process::Thread;
use wasmtime::Engine;

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
        // A kill or signal that came before the thread ran had no notifier to raise: a
        // child killed right after its spawn would otherwise never look, and a wait of
        // its would answer EINTR forever.
        if thread.is_killed() || !thread.pending().is_empty() {
            interrupt.raise();
        }
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

    /// Lowers the flag; whether it was up.
    pub fn take(&self) -> bool {
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

    /// Empties the eventfd after a wake-up (the flag itself is lowered by [`Interrupt::take`]).
    pub fn drain(&self) {
        if let Some(fd) = self.eventfd.get() {
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(fd, &mut buf);
        }
    }
}
