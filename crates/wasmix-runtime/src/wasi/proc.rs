//! proc_exit and proc_raise.

use wasmix_fs::Errno;
use wasmix_process::{Signal, SignalError};
use wasmtime::{Caller, Result};

use super::{syscall, Abi, HostCalls};
use crate::host::{ExitStatus, Host, ProcessEnded};

/// A guest's signal number (0 is "none" and means no signal).
pub(crate) fn signal(raw: i32) -> Result<Option<Signal>, Errno> {
    if raw == 0 {
        return Ok(None);
    }
    let n = u8::try_from(raw).map_err(|_| Errno::Inval)?;
    Signal::new(n).map(Some).ok_or(Errno::Inval)
}

pub(crate) fn signal_errno(e: SignalError) -> Errno {
    match e {
        SignalError::Uncatchable(_) => Errno::Inval,
        SignalError::NoSuchThread => Errno::Srch,
    }
}

pub(super) fn add(linker: &mut HostCalls<'_>, abi: Abi) -> Result<()> {
    linker.func_wrap(
        abi.module(),
        "proc_exit",
        |_: Caller<'_, Host>, code: i32| -> Result<()> {
            Err(ProcessEnded(ExitStatus::Exited(code)).into())
        },
    )?;
    // Raised on the calling thread: a handler runs before the call returns, a fatal default
    // action ends the process before it does.
    syscall!(linker, abi, "proc_raise", |host, mem, sig: i32| {
        let Some(sig) = signal(sig)? else {
            return Ok(());
        };
        let tid = host.thread.tid();
        host.ctx
            .process
            .thread_signal(tid, sig)
            .map_err(signal_errno)
    });
    Ok(())
}
