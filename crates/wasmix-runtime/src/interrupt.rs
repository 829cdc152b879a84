//! The per-thread "look at your signals" flag and how it reaches a thread wherever it is.
//!
//! A signal made pending on a thread (by the process model) runs the thread's notifier, which
//! raises the thread's [`Interrupt`] flag, sets the word its code's interruption checks read
//! (`checks.rs`; with snapshots on, bumps the engine epoch instead), so wasm running anywhere
//! checks in at its next loop header or call, and pokes the thread's eventfd (so a wait in
//! the host kernel returns). Whoever sees the flag acts on it on the thread's own store
//! (`signals::deliver`).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use wasmix_process::Thread;
use wasmtime::Engine;

/// The per-thread "look at your signals" flag.
pub(crate) struct Interrupt {
    flag: AtomicBool,
    engine: Engine,
    /// Created the first time the thread blocks in the host kernel.
    eventfd: OnceLock<OwnedFd>,
    /// The slot the thread's compiled checks read (its instance's), once it has one.
    word: Mutex<Option<Arc<CheckWord>>>,
}

/// The runtime's flag table (`checks`): one shared page every instance with interruption
/// checks imports, a word per thread. Slot 0 is never raised (an instance's slot before the
/// runtime sets it).
pub(crate) struct FlagTable {
    memory: wasmtime::SharedMemory,
    /// Slots given back, and the next never given out.
    free: Mutex<(Vec<u32>, u32)>,
}

/// Words in the table's page.
const SLOTS: u32 = 65536 / 4;

impl FlagTable {
    pub fn new(engine: &Engine) -> wasmtime::Result<Arc<FlagTable>> {
        let memory = wasmtime::SharedMemory::new(engine, wasmtime::MemoryType::shared(1, 1))?;
        Ok(Arc::new(FlagTable {
            memory,
            free: Mutex::new((Vec::new(), 1)),
        }))
    }

    /// The memory instances import.
    pub fn memory(&self) -> &wasmtime::SharedMemory {
        &self.memory
    }

    /// A slot for a new thread, lowered; `None` when all are taken.
    pub fn take(self: &Arc<FlagTable>) -> Option<CheckWord> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let slot = match free.0.pop() {
            Some(s) => s,
            None if free.1 < SLOTS => {
                free.1 += 1;
                free.1 - 1
            }
            None => return None,
        };
        let word = CheckWord {
            table: Arc::clone(self),
            slot,
        };
        word.set(false);
        Some(word)
    }

    fn word(&self, slot: u32) -> &AtomicU32 {
        let bytes = &self.memory.data()[slot as usize * 4..][..4];
        // SAFETY: in bounds and aligned (the page is, and slots are 4 bytes apart); the
        // memory lives as long as `self`, and its words are only touched atomically here
        // and by the checks' loads.
        unsafe { &*bytes.as_ptr().cast::<AtomicU32>() }
    }
}

/// One thread's slot in the [`FlagTable`]; given back when dropped.
pub(crate) struct CheckWord {
    table: Arc<FlagTable>,
    slot: u32,
}

impl CheckWord {
    /// The offset the instance's slot global holds.
    pub fn offset(&self) -> i32 {
        (self.slot * 4) as i32
    }

    fn set(&self, up: bool) {
        self.table
            .word(self.slot)
            .store(u32::from(up), Ordering::Release);
    }
}

impl Drop for CheckWord {
    fn drop(&mut self) {
        self.set(false);
        let mut free = self.table.free.lock().unwrap_or_else(|e| e.into_inner());
        free.0.push(self.slot);
    }
}

impl Interrupt {
    /// A flag for `thread`, installed as its notifier.
    pub fn install(engine: &Engine, thread: &Thread) -> Arc<Interrupt> {
        let interrupt = Arc::new(Interrupt {
            flag: AtomicBool::new(false),
            engine: engine.clone(),
            eventfd: OnceLock::new(),
            word: Mutex::new(None),
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
        if let Some(word) = &*self.word.lock().unwrap_or_else(|e| e.into_inner()) {
            word.set(true);
        }
        self.engine.increment_epoch();
        if let Some(fd) = self.eventfd.get() {
            let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
        }
    }

    /// Makes `word` the one this thread's checks read (raised at once if the flag is up).
    pub fn attach(&self, word: Arc<CheckWord>) {
        let mut slot = self.word.lock().unwrap_or_else(|e| e.into_inner());
        word.set(self.is_raised());
        *slot = Some(word);
    }

    /// Forgets the word (the thread's store ends, or it lends its store away).
    pub fn detach(&self) {
        *self.word.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// After a check found the word set: lowers it, unless the flag is still up.
    pub fn settle(&self) {
        if let Some(word) = &*self.word.lock().unwrap_or_else(|e| e.into_inner()) {
            word.set(self.is_raised());
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
