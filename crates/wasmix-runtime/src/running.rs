//! A process while it runs: the context its threads share, and the loop that runs one guest
//! thread on one OS thread (instantiate, enter, unwind, exec).

use std::sync::{Arc, Mutex, OnceLock};

use wasmix_fs::{Errno, FileSystem};
use wasmix_process::{Disposition, Pid, Process, Signal, Thread, Tid, WaitQueue};
use wasmtime::{Store, Val};

use crate::forkmem::{ForkMemory, Region};
use crate::futex::Futexes;
use crate::host::{ExitStatus, GuestMemory, Host, ProcessEnded, ThreadEnded};
use crate::image::Image;
use crate::program::Program;
use crate::signals::{self, Interrupt};
use crate::stack::{self, Outcome, Restore, ThreadSnapshot};
use crate::Runtime;

/// Raised by `proc_exec*` once the new image is ready: the thread's run loop replaces the
/// process's program.
#[derive(Debug)]
pub(crate) struct ExecNow;

impl std::fmt::Display for ExecNow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("exec")
    }
}

impl std::error::Error for ExecNow {}

/// Where a guest thread starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Entry {
    /// The program's `_start` (after `_initialize`, if exported).
    Main,
    /// `wasi_thread_start(tid, arg)`: wasi-threads and WASIX `thread_spawn_v2`.
    ThreadStart(i32),
    /// The 2023 WASIX form: `_start_thread` (or `_react`) with the user data split into two
    /// i32 halves, the stack pointer set to `stack_base` first.
    Legacy {
        user_data: u64,
        stack_base: u64,
        reactor: bool,
    },
}

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
        );
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
    /// store data: what unit tests call host functions on.
    #[cfg(test)]
    pub fn for_test(runtime: &Runtime, program: &Program, fs: FileSystem) -> Host {
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
        let image = Image::new(&self.runtime, program, Vec::new()).map_err(|_| Errno::Noexec)?;
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
        Ok(next)
    }

    /// The export that receives signals, once registered.
    pub fn signal_callback(&self) -> Option<String> {
        self.callback
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Registers the guest's signal entry point: from now on every catchable signal whose
    /// default is not to ignore it goes to the guest, whose libc keeps the dispositions.
    pub fn set_signal_callback(&self, name: String) {
        *self.callback.lock().unwrap_or_else(|e| e.into_inner()) = Some(name);
        for n in 1..=wasmix_process::MAX_SIGNAL {
            let Some(sig) = Signal::new(n) else { continue };
            if sig.is_uncatchable()
                || sig.default_action() == wasmix_process::DefaultAction::Ignore
                || self.process.disposition(sig) == Disposition::Ignore
            {
                continue;
            }
            let _ = self.process.set_disposition(sig, Disposition::Handler(0));
        }
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
}

fn process_status(s: ExitStatus) -> wasmix_process::ExitStatus {
    match s {
        ExitStatus::Exited(c) => wasmix_process::ExitStatus::Exited(c),
        ExitStatus::Signaled(n) => {
            wasmix_process::ExitStatus::Signaled(Signal::new(n).unwrap_or(Signal::KILL))
        }
    }
}

/// How a guest thread begins.
pub(crate) enum Start {
    /// Fresh, at an entry point.
    Entry(Entry),
    /// Resuming a captured stack in a store prepared for it (a forked child).
    Resume(Box<Resume>),
}

/// A prepared store and the stack it resumes.
pub(crate) struct Resume {
    pub store: Store<Host>,
    pub snapshot: Arc<ThreadSnapshot>,
    pub outcome: Outcome,
}

/// Runs one guest thread to its end on the calling OS thread, then retires it from the
/// process (the last thread out finalises the process).
pub(crate) fn run_thread(ctx: Arc<ProcessCtx>, thread: Arc<Thread>, start: Start) {
    let mut start = Some(start);
    let mut interrupt = None;
    let mut ctx = ctx;
    let mut entry = Entry::Main;
    loop {
        let (mut store, rewind) = match start.take() {
            Some(Start::Resume(r)) => {
                entry = r.snapshot.entry();
                interrupt = Some(Arc::clone(&r.store.data().interrupt));
                (r.store, Some((r.snapshot, r.outcome, Restore::Globals)))
            }
            fresh => {
                if let Some(Start::Entry(e)) = fresh {
                    entry = e;
                }
                let interrupt = interrupt
                    .get_or_insert_with(|| Interrupt::install(ctx.runtime.engine(), &thread));
                let mut store = Store::new(
                    ctx.runtime.engine(),
                    Host::new(Arc::clone(&ctx), Arc::clone(&thread), Arc::clone(interrupt)),
                );
                signals::arm(&mut store);
                (store, None)
            }
        };
        let outcome = enter(&ctx, &mut store, thread.tid(), entry, rewind);
        if outcome
            .as_ref()
            .err()
            .is_none_or(|e| e.downcast_ref::<ThreadEnded>().is_some())
        {
            destroy_thread_locals(&ctx, &mut store, thread.tid());
        }
        let next = store.data_mut().pending_exec.take();
        drop(store);
        match outcome {
            Ok(()) => {
                if matches!(entry, Entry::Main) {
                    ctx.process.exit(wasmix_process::ExitStatus::Exited(0));
                }
            }
            Err(e) => {
                if e.downcast_ref::<ExecNow>().is_some() {
                    if let Some(next) = next {
                        retire_other_threads(&ctx, &thread);
                        ctx = next;
                        entry = Entry::Main;
                        continue;
                    }
                }
                ctx.end_with(e);
            }
        }
        break;
    }
    ctx.process.thread_exited(thread.tid());
    ctx.thread_exits.wake_all();
}

impl ProcessCtx {
    /// Ends the process the way `e` (a host error or trap out of one of its threads) says.
    pub fn end_with(&self, e: wasmtime::Error) {
        if let Some(ended) = e.downcast_ref::<ProcessEnded>() {
            self.process.exit(process_status(ended.0));
        } else if e.downcast_ref::<ThreadEnded>().is_none() {
            self.record_trap(e);
            self.process
                .exit(wasmix_process::ExitStatus::Signaled(Signal::ABRT));
        }
    }
}

/// Runs `start` for `thread` of `ctx`'s process on a pooled OS thread.
pub(crate) fn start_thread(
    ctx: Arc<ProcessCtx>,
    thread: Arc<Thread>,
    start: Start,
) -> Result<(), Errno> {
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

/// Instantiates the process's program in `store` and points the host at its memory. The
/// main thread of a program that can fork moves the memory into a file first (copy-on-write
/// forks); a memory that cannot be moved still forks, by copying.
pub(crate) fn prepare(
    ctx: &Arc<ProcessCtx>,
    store: &mut Store<Host>,
    main: bool,
) -> wasmtime::Result<wasmtime::Instance> {
    // A shared memory is known before instantiation, where the start function
    // (`__wasm_init_memory`) may already make host calls on it.
    if let Some(m) = ctx.image.shared_memory() {
        store.data_mut().memory = GuestMemory::Shared(m.clone());
    }
    let instance = ctx.image.instantiate(&ctx.runtime, store)?;
    if ctx.image.shared_memory().is_none() {
        store.data_mut().memory = instance
            .get_memory(&mut *store, "memory")
            .map_or(GuestMemory::None, GuestMemory::Own);
    }
    store.data_mut().instance = Some(instance);
    if main && ctx.image.program().captures_stacks() && ctx.fork_memory().is_none() {
        if let Some(region) = memory_region(store) {
            let started = std::time::Instant::now();
            // SAFETY: the region is the engine's whole reservation for this memory, and no
            // guest code runs yet.
            match unsafe { ForkMemory::adopt(region) } {
                Ok(m) => {
                    tracing::debug!(
                        "memory of {} moved into a file for copy-on-write forks: {} bytes in {:?}",
                        ctx.image.program().name(),
                        region.len,
                        started.elapsed()
                    );
                    ctx.set_fork_memory(Arc::new(m))
                }
                Err(e) => tracing::warn!("forks of this process will copy its memory: {e}"),
            }
        }
    }
    Ok(instance)
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

fn enter(
    ctx: &Arc<ProcessCtx>,
    store: &mut Store<Host>,
    tid: Tid,
    entry: Entry,
    mut rewind: Option<(Arc<ThreadSnapshot>, Outcome, Restore)>,
) -> wasmtime::Result<()> {
    store.data_mut().entry = entry;
    let instance = match (store.data().instance, &rewind) {
        (Some(instance), Some(_)) => instance,
        _ => {
            let instance = prepare(ctx, store, matches!(entry, Entry::Main))?;
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
        if let Some((snapshot, outcome, restore)) = rewind.take() {
            stack::rewind(store, &snapshot, outcome, restore)?;
        }
        let entry = store.data().entry;
        let result = call_entry(ctx, store, instance, tid, entry);
        match crate::resume::settle(store, result) {
            crate::resume::Next::Done(result) => return result,
            crate::resume::Next::Rewind(snapshot, outcome, restore) => {
                rewind = Some((snapshot, outcome, restore))
            }
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

/// Starts a new thread of the calling thread's process at `entry`; returns its tid.
pub(crate) fn spawn_thread(host: &Host, entry: Entry) -> Result<Tid, Errno> {
    let ctx = Arc::clone(&host.ctx);
    if ctx.image.shared_memory().is_none() {
        return Err(Errno::Notsup);
    }
    let thread = ctx
        .process
        .spawn_thread(host.thread.mask(), true)
        .map_err(|_| Errno::Again)?;
    let tid = thread.tid();
    if start_thread(Arc::clone(&ctx), thread, Start::Entry(entry)).is_err() {
        ctx.process.thread_exited(tid);
        return Err(Errno::Again);
    }
    Ok(tid)
}

/// What a new child process starts with.
pub(crate) struct ChildSpec {
    pub program: Program,
    pub args: Vec<Vec<u8>>,
    pub env: Vec<Vec<u8>>,
    pub fs: FileSystem,
    /// Disposition overrides on top of exec inheritance (posix_spawn's list).
    pub dispositions: Vec<(Signal, Disposition)>,
}

/// Starts a child process of `parent` running `spec` on its own OS thread; returns its pid.
pub(crate) fn spawn_process(parent: &Arc<ProcessCtx>, spec: ChildSpec) -> Result<Pid, Errno> {
    let runtime = parent.runtime.clone();
    let image = Image::new(&runtime, &spec.program, Vec::new()).map_err(|_| Errno::Noexec)?;
    let process = runtime
        .control()
        .spawn(Some(&parent.process), [0; 32])
        .map_err(|_| Errno::Again)?;
    process.set_dispositions(&parent.process.dispositions_for_exec());
    for (sig, d) in spec.dispositions {
        let _ = process.set_disposition(sig, d);
    }
    let ctx = Arc::new(ProcessCtx::new(
        runtime,
        Arc::clone(&process),
        Arc::new(spec.fs),
        spec.args,
        spec.env,
        image,
        true,
    ));
    let main = process.main_thread().ok_or(Errno::Again)?;
    let pid = process.pid();
    if start_thread(ctx, main, Start::Entry(Entry::Main)).is_err() {
        discard(&process);
        return Err(Errno::Again);
    }
    Ok(pid)
}

/// Ends a child whose main thread never ran (its parent does not learn its pid).
pub(crate) fn discard(process: &Process) {
    process.exit(wasmix_process::ExitStatus::Signaled(Signal::KILL));
    process.thread_exited(process.pid());
}
