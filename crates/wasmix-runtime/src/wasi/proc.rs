//! A process's identity, its start as a vfork child and its end: `proc_exit` (every ABI),
//! and WASIX `proc_fork_env`, `proc_exit2`, `proc_id`, `proc_parent`.

use wasmix_fs::Errno;
use wasmix_process::ExitStatus;
use wasmtime::{Caller, Result};

use super::{host_calls, Abi, Call, HostCalls};
use crate::fork::{self, ChildEnd};
use crate::host::Host;
use crate::mem::Out;
use crate::unwind::Unwind;

/// `proc_exit`, which every ABI generation has.
pub(super) fn add(calls: &mut HostCalls, abi: Abi) -> Result<()> {
    calls.define_raw(abi.module(), "proc_exit", proc_exit)
}

/// The WASIX process-identity calls.
pub(super) fn add_wasix(calls: &mut HostCalls) -> Result<()> {
    // The vfork-aware exit of newer libcs; wasmix's vfork resumes the parent on any exit, and
    // a `proc_fork_env` child's exit returns in the parent (see `proc_exit`).
    calls.define_raw(Abi::Wasix.module(), "proc_exit2", proc_exit)?;
    host_calls!(calls, Abi::Wasix, [proc_fork_env, proc_id, proc_parent]);
    Ok(())
}

/// Ends the process — or, in a child made by `proc_fork_env`, ends the child and returns in
/// its parent (wasix-libc's exception-handling build then longjmps back to its vfork:
/// `__vfork_restore` in `libc-top-half/musl/src/process/vfork.c`, wasix-org/wasix-libc).
fn proc_exit(mut caller: Caller<'_, Host>, code: i32) -> Result<()> {
    let status = ExitStatus::Exited(code);
    let start = crate::running::start_thread;
    if fork::end_env_child(caller.data_mut(), ChildEnd::Exit(status), start) {
        return Ok(());
    }
    Err(Unwind::Exit(status).into())
}

/// The vfork of wasix-libc's exception-handling build: the calling thread goes on as a new
/// child process, sharing memory, until its `proc_exit2` or `proc_exec*` returns in the
/// parent; the child's pid goes to `ret` (which both see).
fn proc_fork_env(cx: &mut Call<'_>, ret: Out<u32>) -> Result<(), Errno> {
    let pid = fork::fork_env(cx.host)?;
    ret.set(&mut cx.mem, pid);
    Ok(())
}

fn proc_id(cx: &mut Call<'_>, ret: Out<u32>) -> Result<(), Errno> {
    ret.set(&mut cx.mem, cx.host.ctx.process.pid());
    Ok(())
}

fn proc_parent(cx: &mut Call<'_>, pid: u32, ret: Out<u32>) -> Result<(), Errno> {
    let me = &cx.host.ctx.process;
    let ppid = if pid == me.pid() {
        me.ppid()
    } else {
        cx.host
            .ctx
            .runtime
            .control()
            .lookup(pid)
            .ok_or(Errno::Srch)?
            .ppid()
    };
    ret.set(&mut cx.mem, ppid);
    Ok(())
}
