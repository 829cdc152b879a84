//! The state a guest thread's host calls see (the wasmtime store data), and the errors that
//! unwind a guest.

use std::sync::Arc;

use wasmix_fs::FileSystem;
use wasmix_process::Thread;
use wasmtime::{
    AsContext, AsContextMut, Caller, Instance, Memory, SharedMemory, Store, StoreContextMut,
    TypedFunc,
};

use crate::running::ProcessCtx;
use crate::signals::Interrupt;

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// `proc_exit(code)` or a normal return from `_start` (code 0).
    Exited(i32),
    /// Ended by a signal (its default action, SIGKILL, or a trap, which counts as SIGABRT).
    Signaled(u8),
}

impl ExitStatus {
    /// The status a Unix shell would report: the code, or 128 + signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + i32::from(s),
        }
    }

    /// Whether the process exited with code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }
}

impl From<wasmix_process::ExitStatus> for ExitStatus {
    fn from(s: wasmix_process::ExitStatus) -> ExitStatus {
        match s {
            wasmix_process::ExitStatus::Exited(c) => ExitStatus::Exited(c),
            wasmix_process::ExitStatus::Signaled(sig) => ExitStatus::Signaled(sig.number()),
        }
    }
}

/// Raised from a host call to unwind the guest when its process ends (`proc_exit`, a fatal
/// signal, a kill from outside).
#[derive(Debug)]
pub(crate) struct ProcessEnded(pub ExitStatus);

impl std::fmt::Display for ProcessEnded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            ExitStatus::Exited(c) => write!(f, "process exited with code {c}"),
            ExitStatus::Signaled(s) => write!(f, "process terminated by signal {s}"),
        }
    }
}

impl std::error::Error for ProcessEnded {}

/// Unwinds one thread: `thread_exit`, or the thread was killed while its process goes on
/// (another thread's exec).
#[derive(Debug)]
pub(crate) struct ThreadEnded;

impl std::fmt::Display for ThreadEnded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("thread ended")
    }
}

impl std::error::Error for ThreadEnded {}

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

/// Store data of one guest thread.
pub(crate) struct Host {
    /// The process this thread belongs to.
    pub ctx: Arc<ProcessCtx>,
    /// The process's files (the same as `ctx.fs`, here for the syscall adapters' brevity).
    pub fs: Arc<FileSystem>,
    pub thread: Arc<Thread>,
    pub interrupt: Arc<Interrupt>,
    pub memory: GuestMemory,
    pub instance: Option<Instance>,
    /// The guest's signal entry point, looked up once per callback name.
    pub signal_entry: Option<(String, TypedFunc<i32, ()>)>,
    /// Handlers running on this thread (a handler may be interrupted by another signal).
    pub handler_depth: u32,
    /// The image `proc_exec` prepared, taken by the run loop after the guest unwinds.
    pub pending_exec: Option<Arc<ProcessCtx>>,
    /// A sleep (`poll_oneoff` on clocks only) a signal interrupted: its subscription address
    /// and deadlines, so the restarted call keeps the original wake-up times.
    pub pending_sleep: Option<(u32, Vec<std::time::Instant>)>,
    /// How this thread was started (what a rewind calls again).
    pub entry: crate::running::Entry,
    /// Stack capture: asyncify handles, the data area, setjmp buffers.
    pub stack: crate::stack::StackState,
    /// Parents this thread stands in for while it runs their vfork children, innermost last.
    pub vforks: Vec<crate::fork::Vfork>,
}

impl Host {
    pub fn new(ctx: Arc<ProcessCtx>, thread: Arc<Thread>, interrupt: Arc<Interrupt>) -> Host {
        Host {
            fs: Arc::clone(&ctx.fs),
            ctx,
            thread,
            interrupt,
            memory: GuestMemory::None,
            instance: None,
            signal_entry: None,
            handler_depth: 0,
            pending_exec: None,
            pending_sleep: None,
            entry: crate::running::Entry::Main,
            stack: crate::stack::StackState::default(),
            vforks: Vec::new(),
        }
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

/// The guest's memory bytes and the host state, borrowed together for one host call.
pub(crate) fn split<C: HostContext>(caller: &mut C) -> (&mut [u8], &mut Host) {
    match caller.as_context().data().memory.clone() {
        GuestMemory::Own(m) => m.data_and_store_mut(caller.as_context_mut()),
        GuestMemory::Shared(s) => {
            let data = s.data();
            let (ptr, len) = (data.as_ptr() as *mut u8, data.len());
            // SAFETY: the shared memory outlives the call (the process holds it). Other guest
            // threads may write the same bytes concurrently — a race the guest itself
            // created, exactly as between its own threads; the host only copies bytes in or
            // out and never relies on them staying put.
            let bytes = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
            (bytes, caller.host_mut())
        }
        GuestMemory::None => (&mut [], caller.host_mut()),
    }
}
