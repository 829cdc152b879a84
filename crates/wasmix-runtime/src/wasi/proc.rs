//! proc_exit and proc_raise.

use wasmix_fs::Errno;
use wasmtime::Result;
use wasmtime::{Caller, Linker};

use super::Abi;
use crate::host::{ExitStatus, Host, ProcessEnded};

/// What the default action of a signal does to a process with no handlers installed.
fn default_terminates(sig: i32) -> Result<bool, Errno> {
    match sig {
        // SIGCHLD, SIGCONT, SIGURG, SIGWINCH are ignored; stop signals are treated as no-ops
        // because a lone WASI process has no job control to resume it.
        16 | 17 | 22 | 27 | 18..=21 => Ok(false),
        1..=30 => Ok(true),
        _ => Err(Errno::Inval),
    }
}

pub(super) fn add(linker: &mut Linker<Host>, abi: Abi) -> Result<()> {
    linker.func_wrap(
        abi.module(),
        "proc_exit",
        |_: Caller<'_, Host>, code: i32| -> Result<()> {
            Err(ProcessEnded(ExitStatus::Exited(code)).into())
        },
    )?;
    linker.func_wrap(
        abi.module(),
        "proc_raise",
        |_: Caller<'_, Host>, sig: i32| -> Result<i32> {
            if sig == 0 {
                return Ok(0);
            }
            match default_terminates(sig) {
                Ok(true) => Err(ProcessEnded(ExitStatus::Signaled(sig as u8)).into()),
                Ok(false) => Ok(0),
                Err(e) => Ok(i32::from(e.raw())),
            }
        },
    )?;
    Ok(())
}
