//! Making new guest threads and processes: a thread of the calling process at an entry point,
//! or a child process running a program (`proc_spawn*`).

use std::sync::Arc;

use wasmix_fs::{Errno, FileSystem};
use wasmix_process::{Disposition, Pid, Signal, Tid};

use crate::host::{image_errno, Host, Image, ProcessCtx};
use crate::launch::{discard, Launch, Start};
use crate::program::Program;
use crate::running::start_thread;
use crate::stack::Entry;

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
    let launch = Launch {
        ctx: Arc::clone(&ctx),
        thread,
        start: Start::Entry(entry),
    };
    if start_thread(launch).is_err() {
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
    let image = Image::new(&runtime, &spec.program, Vec::new()).map_err(image_errno)?;
    let process = runtime
        .control()
        .spawn(Some(&parent.process), [0; 32])
        .map_err(|_| Errno::Again)?;
    process.set_dispositions(&parent.process.dispositions_for_exec());
    for (sig, d) in spec.dispositions {
        let _ = process.set_disposition(sig, d);
    }
    let ctx = Arc::new(
        ProcessCtx::new(
            runtime,
            Arc::clone(&process),
            Arc::new(spec.fs),
            spec.args,
            spec.env,
            image,
            true,
        )
        .with_clock_offset(parent.clock_offset()),
    );
    let main = process.main_thread().ok_or(Errno::Again)?;
    let pid = process.pid();
    let launch = Launch {
        ctx,
        thread: main,
        start: Start::Entry(Entry::Main),
    };
    if start_thread(launch).is_err() {
        discard(&process);
        return Err(Errno::Again);
    }
    Ok(pid)
}
