//! What the threads of one process share while it runs one program image.

use std::sync::{Arc, Mutex, OnceLock};

use wasmix_fs::{Errno, FileSystem};
use wasmix_process::{Disposition, ExitStatus, Process, Signal, Tid, WaitQueue};
use wasmtime::Store;

use super::{image_errno, memory_region, GuestMemory, Host, Image, Journaling};
use crate::forkmem::ForkMemory;
use crate::futex::Futexes;
use crate::passthrough::Passthrough;
use crate::program::Program;
use crate::unwind::Unwind;
use crate::Runtime;

/// What the threads of one process (one program image) share.
pub(crate) struct ProcessCtx {
    pub runtime: Runtime,
    pub process: Arc<Process>,
    pub fs: Arc<FileSystem>,
    pub args: Vec<Vec<u8>>,
    /// `KEY=VALUE` entries.
    pub env: Vec<Vec<u8>>,
    pub image: Image,
    pub futexes: Futexes,
    /// Woken whenever a thread of the process finishes (`thread_join` waits here).
    pub thread_exits: WaitQueue,
    /// Keys of the 2023 `thread_local_*` calls.
    pub thread_locals: Mutex<crate::tls::ThreadLocals>,
    /// The guest export signals are delivered to, once the guest registers one.
    callback: Mutex<Option<String>>,
    /// The first trap of any thread, across execs: the process's cause of death.
    trap: Arc<Mutex<Option<wasmtime::Error>>>,
    /// Whether traps are printed here (child processes) or returned to the embedder (root).
    report_traps: bool,
    /// The process's memory in a file, for copy-on-write forks (programs that can fork).
    fork_memory: OnceLock<Arc<ForkMemory>>,
    /// The engine's reservation for the process's memory (base, span), for a snapshot taken
    /// while every thread is parked.
    memory_reservation: OnceLock<(usize, usize)>,
    /// The process's journal, when it has one (kept across exec).
    journal: Option<Arc<Journaling>>,
    /// Host signals whose host disposition follows this (root) process's (kept across exec;
    /// see `passthrough`).
    passthrough: Option<Arc<Passthrough>>,
    /// Added to the monotonic clock, ns: a restored tree's clock goes on from its
    /// snapshot's, never back (children inherit it).
    clock_offset: u64,
}

impl ProcessCtx {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        runtime: Runtime,
        process: Arc<Process>,
        fs: Arc<FileSystem>,
        args: Vec<Vec<u8>>,
        env: Vec<Vec<u8>>,
        image: Image,
        report_traps: bool,
    ) -> ProcessCtx {
        ProcessCtx {
            runtime,
            process,
            fs,
            args,
            env,
            image,
            futexes: Futexes::default(),
            thread_exits: WaitQueue::new(),
            thread_locals: Mutex::default(),
            callback: Mutex::new(None),
            trap: Arc::new(Mutex::new(None)),
            report_traps,
            fork_memory: OnceLock::new(),
            memory_reservation: OnceLock::new(),
            journal: None,
            passthrough: None,
            clock_offset: 0,
        }
    }

    /// The context of a child `fork` makes of this process for `process`, running `image`
    /// (a copy of this one's, or for vfork this very image): files shared as after fork(2),
    /// the signal entry point kept, and the forking thread's thread-local values.
    pub fn fork_child(&self, process: Arc<Process>, image: Image, forking: Tid) -> ProcessCtx {
        let child = ProcessCtx::new(
            self.runtime.clone(),
            Arc::clone(&process),
            Arc::new(self.fs.fork()),
            self.args.clone(),
            self.env.clone(),
            image,
            true,
        )
        .with_clock_offset(self.clock_offset);
        if let Some(name) = self.signal_callback() {
            *child.callback.lock().unwrap_or_else(|e| e.into_inner()) = Some(name);
        }
        let locals = self
            .thread_locals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fork(forking, process.pid());
        *child
            .thread_locals
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = locals;
        child
    }

    /// A new root process running `program` with `fs`, no args or env, and its main thread's
    /// store data: what unit tests and the fuzz harness call host functions on.
    #[cfg(any(test, fuzzing))]
    pub fn for_test(runtime: &Runtime, program: &Program, fs: FileSystem) -> Host {
        use crate::interrupt::Interrupt;
        let process = runtime.control().spawn(None, [0; 32]).unwrap();
        let thread = process.main_thread().unwrap();
        let image = Image::new(runtime, program, Vec::new()).unwrap();
        let ctx = Arc::new(ProcessCtx::new(
            runtime.clone(),
            process,
            Arc::new(fs),
            vec![b"prog".to_vec()],
            vec![b"A=1".to_vec()],
            image,
            false,
        ));
        let interrupt = Interrupt::install(runtime.engine(), &thread);
        Host::new(ctx, thread, interrupt)
    }

    /// The copy-on-write memory, once the process has one.
    pub fn fork_memory(&self) -> Option<&Arc<ForkMemory>> {
        self.fork_memory.get()
    }

    pub fn set_fork_memory(&self, memory: Arc<ForkMemory>) {
        let _ = self.fork_memory.set(memory);
    }

    /// The same process running a new image (exec): files less close-on-exec ones, handlers
    /// reset to default, ignored signals still ignored.
    pub fn exec(
        &self,
        program: &Program,
        args: Vec<Vec<u8>>,
        env: Vec<Vec<u8>>,
    ) -> Result<ProcessCtx, Errno> {
        let image = Image::new(&self.runtime, program, Vec::new()).map_err(image_errno)?;
        let mut next = ProcessCtx::new(
            self.runtime.clone(),
            Arc::clone(&self.process),
            Arc::clone(&self.fs),
            args,
            env,
            image,
            self.report_traps,
        );
        next.trap = Arc::clone(&self.trap);
        next.journal = self.journal.clone();
        next.passthrough = self.passthrough.clone();
        next.clock_offset = self.clock_offset;
        Ok(next)
    }

    /// The same context with host signals that follow its dispositions (the root's).
    pub fn with_passthrough(mut self, passthrough: Arc<Passthrough>) -> ProcessCtx {
        self.passthrough = Some(passthrough);
        self
    }

    /// Makes the host dispositions of the passed-through signals follow the process's, after
    /// they changed (a callback registered, an exec).
    pub fn sync_host_signals(&self) {
        if let Some(p) = &self.passthrough {
            p.sync(&self.process);
        }
    }

    /// The same context with `journal` (the caller makes it the journal's current context
    /// once it is shared).
    pub fn with_journal(mut self, journal: Arc<Journaling>) -> ProcessCtx {
        self.clock_offset = journal.monotonic_offset();
        self.journal = Some(journal);
        self
    }

    /// The same context with `offset` added to its monotonic clock.
    pub fn with_clock_offset(mut self, offset: u64) -> ProcessCtx {
        self.clock_offset = offset;
        self
    }

    /// What is added to the monotonic clock (see the field).
    pub fn clock_offset(&self) -> u64 {
        self.clock_offset
    }

    /// The process's journal, if it has one.
    pub fn journal(&self) -> Option<&Arc<Journaling>> {
        self.journal.as_ref()
    }

    /// The process's memory as a region `len` bytes long (see `memory_reservation`).
    pub fn memory_region(&self, len: usize) -> Option<crate::forkmem::Region> {
        self.memory_reservation
            .get()
            .map(|&(base, span)| crate::forkmem::Region {
                base: base as *mut u8,
                len,
                span,
            })
    }

    /// The export that receives signals, once registered.
    pub fn signal_callback(&self) -> Option<String> {
        self.callback
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Registers the guest's signal entry point: from now on every catchable signal whose
    /// default is not to ignore it goes to the guest, whose libc keeps the dispositions —
    /// and, to a libc dispatcher guarded at load, those whose default is to ignore them.
    pub fn set_signal_callback(&self, name: String) {
        // Signals whose default is to be ignored reach only a libc's guarded dispatcher:
        // other callbacks were never sent them, and old libcs' own dispatch would call
        // SIG_IGN as a function (see `rewrite::guard_call`).
        let takes_ignored = name == "__wasm_signal" && self.image.program().guards_signals();
        *self.callback.lock().unwrap_or_else(|e| e.into_inner()) = Some(name);
        for n in 1..=wasmix_process::MAX_SIGNAL {
            let Some(sig) = Signal::new(n) else { continue };
            let ignored_by_default = sig.default_action() == wasmix_process::DefaultAction::Ignore;
            if sig.is_uncatchable()
                || (ignored_by_default && !takes_ignored)
                || self.process.disposition(sig) == Disposition::Ignore
            {
                continue;
            }
            let _ = self.process.set_disposition(sig, Disposition::Handler(0));
        }
        self.sync_host_signals();
    }

    /// The first trap, if one ended the process.
    pub fn take_trap(&self) -> Option<wasmtime::Error> {
        self.trap.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn record_trap(&self, e: wasmtime::Error) {
        if self.report_traps {
            eprintln!(
                "wasmix: process {} ({}) trapped: {e:?}",
                self.process.pid(),
                self.image.program().name()
            );
        }
        let mut slot = self.trap.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() && !self.report_traps {
            *slot = Some(e);
        }
    }

    /// Ends the process the way `e` (a host error or trap out of one of its threads) says.
    pub fn end_with(&self, e: wasmtime::Error) {
        match Unwind::of(&e) {
            Some(Unwind::Exit(status)) => self.process.exit(*status),
            Some(Unwind::ThreadExit) => {}
            _ => {
                self.record_trap(e);
                self.process.exit(ExitStatus::Signaled(Signal::ABRT));
            }
        }
    }

    /// Instantiates the process's program in `store` and points the host at its memory. The
    /// main thread of a program that can fork moves the memory into a file first (copy-on-write
    /// forks); a memory that cannot be moved still forks, by copying.
    pub fn instantiate(
        &self,
        store: &mut Store<Host>,
        main: bool,
    ) -> wasmtime::Result<wasmtime::Instance> {
        self.instantiate_with(store, main, main)
    }

    /// Like [`ProcessCtx::instantiate`] for a main thread whose memory is filled from
    /// elsewhere — a restored process's, mapped from its journal (it moves into a file later,
    /// when a snapshot first needs it: [`ProcessCtx::adopt_memory`]), or a forked child's,
    /// the parent's copy.
    pub fn instantiate_unadopted(
        &self,
        store: &mut Store<Host>,
    ) -> wasmtime::Result<wasmtime::Instance> {
        self.instantiate_with(store, true, false)
    }

    /// Moves the process's memory (`region`) into a file for copy-on-write snapshots and
    /// forks, if it is not there yet. `None` when it cannot be.
    ///
    /// # Safety
    /// `region` must be the process's whole memory reservation, and no thread may use the
    /// memory meanwhile.
    pub unsafe fn adopt_memory(&self, region: crate::forkmem::Region) -> Option<&Arc<ForkMemory>> {
        if self.fork_memory().is_none() && self.image.program().captures_stacks() {
            // SAFETY: as the caller vouches.
            match unsafe { ForkMemory::adopt(region) } {
                Ok(m) => self.set_fork_memory(Arc::new(m)),
                Err(e) => tracing::warn!("memory not moved into a file: {e}"),
            }
        }
        self.fork_memory()
    }

    fn instantiate_with(
        &self,
        store: &mut Store<Host>,
        main: bool,
        adopt: bool,
    ) -> wasmtime::Result<wasmtime::Instance> {
        // A shared memory is known before instantiation, where the start function
        // (`__wasm_init_memory`) may already make host calls on it.
        if let Some(m) = self.image.shared_memory() {
            store.data_mut().memory = GuestMemory::Shared(m.clone());
        }
        // The slot this thread's interruption checks read, in every instance of its store.
        let word = match self.runtime.check_flags() {
            Some(t) => Some(Arc::new(t.take().ok_or_else(|| {
                wasmtime::Error::msg("no interruption flag left for a new thread")
            })?)),
            None => None,
        };
        let offset = word.as_ref().map(|w| w.offset());
        if let Some(word) = word {
            store.data_mut().attach_checks(word);
        }
        let instance = self.image.instantiate(&self.runtime, store, offset)?;
        if self.image.shared_memory().is_none() {
            store.data_mut().memory = instance
                .get_memory(&mut *store, "memory")
                .map_or(GuestMemory::None, GuestMemory::Own);
        }
        store.data_mut().instance = Some(instance);
        if let Some(wasmtime::Extern::Global(flag)) =
            instance.get_export(&mut *store, crate::rewrite::SAFEPOINT_FLAG)
        {
            store.data_mut().safepoint = Some(flag);
        }
        if main {
            if let Some(region) = memory_region(store) {
                let _ = self
                    .memory_reservation
                    .set((region.base as usize, region.span));
            }
        }
        if adopt && self.image.program().captures_stacks() && self.fork_memory().is_none() {
            if let Some(region) = memory_region(store) {
                let started = std::time::Instant::now();
                // SAFETY: the region is the engine's whole reservation for this memory, and no
                // guest code runs yet.
                match unsafe { ForkMemory::adopt(region) } {
                    Ok(m) => {
                        tracing::debug!(
                            "memory of {} moved into a file for copy-on-write forks: {} bytes in {:?}",
                            self.image.program().name(),
                            region.len,
                            started.elapsed()
                        );
                        self.set_fork_memory(Arc::new(m))
                    }
                    Err(e) => tracing::warn!("forks of this process will copy its memory: {e}"),
                }
            }
        }
        Ok(instance)
    }
}
