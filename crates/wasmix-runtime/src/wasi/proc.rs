//! A process's identity and its end: `proc_exit` (every ABI), and WASIX `proc_exit2`,
//! `proc_id`, `proc_parent`.

use wasmix_fs::Errno;
use wasmix_process::ExitStatus;
use wasmtime::{Caller, Result};

use super::{host_calls, Abi, Call, HostCalls};
use crate::host::Host;
use crate::mem::Out;
use crate::unwind::Unwind;

/// `proc_exit`, which every ABI generation has.
pub(super) fn add(calls: &mut HostCalls<'_>, abi: Abi) -> Result<()> {
    calls.define_raw(abi.module(), "proc_exit", proc_exit)
}

/// The WASIX process-identity calls.
pub(super) fn add_wasix(calls: &mut HostCalls<'_>) -> Result<()> {
    // The vfork-aware exit of newer libcs; wasmix's vfork resumes the parent on any exit.
    calls.define_raw(Abi::Wasix.module(), "proc_exit2", proc_exit)?;
    host_calls!(calls, Abi::Wasix, [proc_id, proc_parent]);
    Ok(())
}

fn proc_exit(_: Caller<'_, Host>, code: i32) -> Result<()> {
    Err(Unwind::Exit(ExitStatus::Exited(code)).into())
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
