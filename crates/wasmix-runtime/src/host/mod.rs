//! The state host calls work on: [`Host`], the store data of one guest thread, and below it
//! the process context its threads share ([`ProcessCtx`]) and the program image they
//! instantiate ([`Image`]). These three refer to each other (a store's data names its process,
//! whose image pre-links instances of that store type), so they live in one module; everything
//! that acts on them (capture, signals, fork, the run loop, the host calls) sits above.

mod ctx;
mod image;
mod journal;

use std::sync::Arc;
use std::time::Instant;

use wasmix_fs::FileSystem;
use wasmix_process::Thread;
use wasmtime::{
    AsContext, AsContextMut, Caller, Instance, Memory, SharedMemory, Store, StoreContextMut,
    TypedFunc,
};

pub(crate) use ctx::ProcessCtx;
pub(crate) use image::{image_errno, Image};
pub(crate) use journal::{Durable, Job, Journaling, LastFailed, MemoryImage, ProcessJob};

use crate::forkmem::Region;
use crate::interrupt::Interrupt;
use crate::mem::GuestMem;
use crate::stack::{Entry, StackState, ThreadSnapshot};

/// The linear memory host calls read and write.
#[derive(Clone, Default)]
pub(crate) enum GuestMemory {
    /// Before instantiation, or a module without memory.
    #[default]
    None,
    /// The instance's own memory (single-threaded programs).
    Own(Memory),
    /// The process's shared memory, the same for every thread.
    Shared(SharedMemory),
}

/// Store data of one guest thread: its live handles, then the per-thread state a checkpoint
/// of the thread will save (handlers, pending work, stack capture, vfork frames).
pub(crate) struct Host {
    /// The process this thread belongs to.
    pub ctx: Arc<ProcessCtx>,
    pub thread: Arc<Thread>,
    pub interrupt: Arc<Interrupt>,
    pub memory: GuestMemory,
    pub instance: Option<Instance>,
    /// The flag global that sends loops to their safe point (programs instrumented for
    /// snapshots).
    pub safepoint: Option<wasmtime::Global>,
    /// The slot this instance's interruption checks read (`checks`), attached to
    /// `interrupt`; given back when the store ends.
    check_word: Option<Arc<crate::interrupt::CheckWord>>,
    /// Signal handlers running on this thread.
    pub handlers: Handlers,
    /// Work a host call left for later: an exec to carry out, a sleep to restart.
    pub pending: Pending,
    /// Stack capture: entry, asyncify handles, the data area, setjmp buffers.
    pub stack: StackState,
    /// Parents this thread stands in for while it runs their vfork children, innermost last.
    pub vforks: Vec<Vfork>,
    /// The store's limits for an own memory (per process and in total).
    limits: crate::budget::MemoryLimiter,
    /// When this thread's last poll that found nothing returned (CPU backoff).
    pub idle_poll_at: Option<std::time::Instant>,
    /// This thread's last descriptor lookup for reads and writes.
    fd_cache: wasmix_fs::FdCache,
    /// Whether this thread's next futex wait spins before it sleeps.
    pub futex_spin: crate::futex::Spin,
}

impl Drop for Host {
    fn drop(&mut self) {
        // Its slot goes back to the table once no raise can reach it.
        if self.check_word.take().is_some() {
            self.interrupt.detach();
        }
        // The store drops its memory right after this: a snapshot still reading an own
        // memory (write-protected, read in the background) must finish first. A shared
        // memory outlives the store (the snapshot holds it).
        if matches!(self.memory, GuestMemory::Own(_)) {
            if let Some(m) = self.ctx.fork_memory() {
                m.retire();
            }
        }
    }
}

impl Host {
    pub fn new(ctx: Arc<ProcessCtx>, thread: Arc<Thread>, interrupt: Arc<Interrupt>) -> Host {
        Host {
            ctx,
            thread,
            interrupt,
            memory: GuestMemory::None,
            instance: None,
            safepoint: None,
            check_word: None,
            handlers: Handlers::default(),
            pending: Pending::default(),
            stack: StackState::new(Entry::Main),
            vforks: Vec::new(),
            limits: crate::budget::MemoryLimiter::new(None, None),
            idle_poll_at: None,
            fd_cache: wasmix_fs::FdCache::default(),
            futex_spin: crate::futex::Spin::default(),
        }
    }

    /// The thread's store: growth of an own memory past the runtime's per-process limit or
    /// its total budget answers -1 (a shared memory's type carries the per-process limit and
    /// its image the charge instead, see `Image`).
    pub fn into_store(mut self) -> Store<Host> {
        let runtime = &self.ctx.runtime;
        let engine = runtime.engine().clone();
        self.limits = crate::budget::MemoryLimiter::new(
            runtime.max_memory(),
            runtime.memory_budget().cloned(),
        );
        let mut store = Store::new(&engine, self);
        store.limiter(|h| &mut h.limits);
        store
    }

    /// The process's files.
    pub fn fs(&self) -> &Arc<FileSystem> {
        &self.ctx.fs
    }

    /// Runs `f` on the open file behind `fd` if it holds `required` rights, found through
    /// this thread's lookup cache: reads and writes of one descriptor in a loop take no lock
    /// and no reference count (each an atomic operation, which a one-byte write to
    /// `/dev/null` notices).
    pub fn with_file<R>(
        &mut self,
        fd: u32,
        required: u64,
        f: impl FnOnce(&mut Host, &wasmix_fs::OpenFile) -> R,
    ) -> wasmix_fs::FsResult<R> {
        let mut cache = std::mem::take(&mut self.fd_cache);
        let found = self.ctx.fs.file_cached(&mut cache, fd, required).map(drop);
        let out = found.map(|()| f(self, cache.file().expect("found just now")));
        self.fd_cache = cache;
        out
    }

    /// Makes `word` the one this thread's interruption checks read.
    pub fn attach_checks(&mut self, word: Arc<crate::interrupt::CheckWord>) {
        self.interrupt.attach(Arc::clone(&word));
        self.check_word = Some(word);
    }

    /// Takes on `next`'s identity (vfork lends the thread to a child and takes it back);
    /// returns the one it had.
    pub fn swap_identity(&mut self, next: Identity) -> Identity {
        self.handlers.forget_entry();
        if let Some(word) = &self.check_word {
            self.interrupt.detach();
            next.interrupt.attach(Arc::clone(word));
        }
        Identity {
            ctx: std::mem::replace(&mut self.ctx, next.ctx),
            thread: std::mem::replace(&mut self.thread, next.thread),
            interrupt: std::mem::replace(&mut self.interrupt, next.interrupt),
        }
    }
}

/// The signal handlers running on a thread (a handler may be interrupted by another signal),
/// and the guest's signal entry point, looked up once per callback name.
#[derive(Default)]
pub(crate) struct Handlers {
    depth: u32,
    entry: Option<(String, TypedFunc<i32, ()>)>,
}

impl Handlers {
    /// How many handlers are running on the thread.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    pub fn enter(&mut self) {
        self.depth += 1;
    }

    pub fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// The cached entry point for the callback `name`.
    pub fn entry(&self, name: &str) -> Option<TypedFunc<i32, ()>> {
        match &self.entry {
            Some((cached, f)) if cached == name => Some(f.clone()),
            _ => None,
        }
    }

    pub fn cache_entry(&mut self, name: String, f: TypedFunc<i32, ()>) {
        self.entry = Some((name, f));
    }

    /// Forgets the cached entry (the guest registered another, or the instance changed).
    pub fn forget_entry(&mut self) {
        self.entry = None;
    }
}

/// A sleep (`poll_oneoff` on clocks only) a signal interrupted: its subscriptions' address
/// and deadlines, so the restarted call keeps the original wake-up times.
pub(crate) struct Sleep {
    pub subscriptions: u32,
    pub deadlines: Vec<Instant>,
}

/// Work a host call leaves for the run loop or for its own restart.
#[derive(Default)]
pub(crate) struct Pending {
    exec: Option<Arc<ProcessCtx>>,
    sleep: Option<Sleep>,
}

impl Pending {
    /// The image `proc_exec` prepared, for the run loop once the guest has unwound.
    pub fn set_exec(&mut self, next: Arc<ProcessCtx>) {
        self.exec = Some(next);
    }

    pub fn take_exec(&mut self) -> Option<Arc<ProcessCtx>> {
        self.exec.take()
    }

    pub fn set_sleep(&mut self, sleep: Sleep) {
        self.sleep = Some(sleep);
    }

    pub fn take_sleep(&mut self) -> Option<Sleep> {
        self.sleep.take()
    }

    pub fn has_sleep(&self) -> bool {
        self.sleep.is_some()
    }
}

/// Who a thread is: what vfork swaps out while the child borrows the thread.
pub(crate) struct Identity {
    ctx: Arc<ProcessCtx>,
    thread: Arc<Thread>,
    interrupt: Arc<Interrupt>,
}

impl Identity {
    pub fn new(ctx: Arc<ProcessCtx>, thread: Arc<Thread>, interrupt: Arc<Interrupt>) -> Identity {
        Identity {
            ctx,
            thread,
            interrupt,
        }
    }
}

/// A parent waiting in vfork while its child runs on its thread: who it is, and the stack its
/// `proc_fork` call resumes once the child has exec'd or ended — none for `proc_fork_env`,
/// whose caller's libc returns to the parent's frame itself (with longjmp) once the child's
/// `proc_exit2` or `proc_exec*` has returned.
pub(crate) struct Vfork {
    parent: Identity,
    snapshot: Option<Arc<ThreadSnapshot>>,
}

impl Vfork {
    pub fn new(parent: Identity, snapshot: Option<Arc<ThreadSnapshot>>) -> Vfork {
        Vfork { parent, snapshot }
    }

    /// Whether the child came from `proc_fork_env` (no stack to resume).
    pub fn is_env(&self) -> bool {
        self.snapshot.is_none()
    }

    pub fn into_parts(self) -> (Identity, Option<Arc<ThreadSnapshot>>) {
        (self.parent, self.snapshot)
    }
}

/// A store, or a host call's view of one: what [`split`] works on.
pub(crate) trait HostContext: AsContextMut<Data = Host> {
    fn host_mut(&mut self) -> &mut Host;
}

impl HostContext for Caller<'_, Host> {
    fn host_mut(&mut self) -> &mut Host {
        self.data_mut()
    }
}

impl HostContext for Store<Host> {
    fn host_mut(&mut self) -> &mut Host {
        self.data_mut()
    }
}

impl HostContext for StoreContextMut<'_, Host> {
    fn host_mut(&mut self) -> &mut Host {
        self.data_mut()
    }
}

/// The guest's memory and the host state, borrowed together for one host call.
pub(crate) fn split<C: HostContext>(caller: &mut C) -> (GuestMem<'_>, &mut Host) {
    match caller.as_context().data().memory.clone() {
        GuestMemory::Own(m) => {
            let (bytes, host) = m.data_and_store_mut(caller.as_context_mut());
            (GuestMem::own(bytes), host)
        }
        GuestMemory::Shared(s) => {
            let data = s.data();
            // SAFETY: the process's image holds this memory for as long as any of its threads
            // runs, and a memory never shrinks; `GuestMem` only copies through the pointer.
            let mem = unsafe { GuestMem::shared(data.as_ptr() as *mut u8, data.len()) };
            (mem, caller.host_mut())
        }
        GuestMemory::None => (GuestMem::own(&mut []), caller.host_mut()),
    }
}

/// Grows the thread's linear memory by `pages` as the guest's `memory.grow` would, within
/// the per-process limit and the total budget: the size it had in pages, or `None`.
pub(crate) fn grow_memory(
    mut store: impl wasmtime::AsContextMut<Data = Host>,
    pages: u64,
) -> Option<u64> {
    match store.as_context().data().memory.clone() {
        GuestMemory::Own(m) => m.grow(&mut store, pages).ok(),
        GuestMemory::Shared(_) => store.as_context().data().ctx.image.grow_shared(pages),
        GuestMemory::None => None,
    }
}

/// The address range the engine reserved for the thread's linear memory.
pub(crate) fn memory_region(store: &mut Store<Host>) -> Option<Region> {
    // Every 32-bit memory gets this much address space (set in the engine's config).
    const RESERVATION: u64 = 1 << 32;
    let (base, len, ty) = match store.data().memory.clone() {
        GuestMemory::Own(m) => (m.data_ptr(&*store), m.data_size(&*store), m.ty(&*store)),
        GuestMemory::Shared(m) => (m.data().as_ptr() as *mut u8, m.data_size(), m.ty()),
        GuestMemory::None => return None,
    };
    if ty.is_64() || ty.page_size() != 65536 {
        return None;
    }
    let max = ty
        .maximum()
        .map_or(RESERVATION, |p| p.saturating_mul(65536));
    Some(Region {
        base,
        len,
        span: usize::try_from(max.min(RESERVATION)).ok()?,
    })
}
