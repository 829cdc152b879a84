//! WASIX `proc_join`: waiting for a child process, in its generations.

use std::sync::Arc;

use wasmix_fs::Errno;
use wasmix_process::{Child, ExitStatus, JoinError};
use wasmtime::Result;

use super::{older, Abi, Call, HostCalls, Restart};
use crate::mem::{GuestMem, Out};

const JOIN_NON_BLOCKING: u32 = 1;
const JOIN_NOTHING: u8 = 0;
const JOIN_EXIT_NORMAL: u8 = 1;
const JOIN_EXIT_SIGNAL: u8 = 2;

pub(super) fn add(calls: &mut HostCalls) -> Result<()> {
    // Joins restart after a handled signal, as waitpid(2) with SA_RESTART.
    calls.define(Abi::Wasix, "proc_join", proc_join, Restart::AfterHandler)?;
    calls.define(
        Abi::Wasix,
        &older("proc_join", 2),
        proc_join_two_args,
        Restart::AfterHandler,
    )?;
    Ok(())
}

/// Writes a `join_status`: tag, then the exit code (u16) or code and signal.
fn put_status(mem: &mut GuestMem, slot: Out<[u8; 6]>, status: Option<ExitStatus>) {
    let mut out = [0u8; 6];
    match status {
        None => out[0] = JOIN_NOTHING,
        Some(ExitStatus::Exited(code)) => {
            out[0] = JOIN_EXIT_NORMAL;
            out[2..4].copy_from_slice(&(code as u16).to_le_bytes());
        }
        Some(ExitStatus::Signaled(sig)) => {
            out[0] = JOIN_EXIT_SIGNAL;
            out[2..4].copy_from_slice(&(128 + u16::from(sig.number())).to_le_bytes());
            out[4] = sig.number();
        }
    }
    slot.set(mem, out);
}

fn join_errno(e: JoinError) -> Errno {
    match e {
        JoinError::NoChild => Errno::Child,
        JoinError::Interrupted | JoinError::Killed => Errno::Intr,
    }
}

/// Reads an `option<pid>` (tag byte, pid at offset 4).
fn which_child(mem: &GuestMem, ptr: u32) -> Result<Child, Errno> {
    match mem.u8(ptr)? {
        0 => Ok(Child::Any),
        1 => Ok(Child::Pid(mem.u32(ptr + 4)?)),
        _ => Err(Errno::Inval),
    }
}

fn put_pid(mem: &mut GuestMem, slot: Out<[u8; 8]>, pid: Option<u32>) {
    let mut out = [0u8; 8];
    if let Some(pid) = pid {
        out[0] = 1;
        out[4..8].copy_from_slice(&pid.to_le_bytes());
    }
    slot.set(mem, out);
}

/// The current form: `option<pid>` in and out, flags, a `join_status` out.
fn proc_join(
    cx: &mut Call<'_>,
    pid_ptr: Out<[u8; 8]>,
    flags: u32,
    status_ptr: Out<[u8; 6]>,
) -> Result<(), Errno> {
    let mem = &mut cx.mem;
    let which = which_child(mem, pid_ptr.addr())?;
    let nohang = flags & JOIN_NON_BLOCKING != 0;
    let process = Arc::clone(&cx.host.ctx.process);
    match process.join_child(which, nohang, Some(&cx.host.thread)) {
        Ok(Some((pid, status))) => {
            put_pid(mem, pid_ptr, Some(pid));
            put_status(mem, status_ptr, Some(status));
            Ok(())
        }
        Ok(None) => {
            // Nothing finished yet: some(0) tells older libcs "still running".
            put_pid(mem, pid_ptr, Some(0));
            put_status(mem, status_ptr, None);
            Ok(())
        }
        Err(e) => {
            put_status(mem, status_ptr, None);
            Err(join_errno(e))
        }
    }
}

/// The two-parameter form of 2022-23, as Wasmer's `lib/wasi/src/syscalls/wasix/proc_join.rs`
/// (commit 1405d7ff9909fbacf37dbff8cafccf1c0d3fc39e) defines it: `pid_ptr` holds a plain u32
/// pid, u32::MAX for any child, and receives the joined pid when joining any; the exit code
/// goes out as a u32, unshifted. Without such a child, ECHILD is both stored as the code (and
/// u32::MAX as the pid, when joining any) and returned.
fn proc_join_two_args(
    cx: &mut Call<'_>,
    pid_ptr: Out<u32>,
    code_ptr: Out<u32>,
) -> Result<(), Errno> {
    const ANY: u32 = u32::MAX;
    let mem = &mut cx.mem;
    let raw = mem.u32(pid_ptr.addr())?;
    let which = if raw == ANY {
        Child::Any
    } else {
        Child::Pid(raw)
    };
    let process = Arc::clone(&cx.host.ctx.process);
    match process.join_child(which, false, Some(&cx.host.thread)) {
        Ok(Some((pid, status))) => {
            if raw == ANY {
                pid_ptr.set(mem, pid);
            }
            code_ptr.set(mem, status.code() as u32);
            Ok(())
        }
        Ok(None) | Err(JoinError::NoChild) => {
            if raw == ANY {
                pid_ptr.set(mem, ANY);
            }
            code_ptr.set(mem, u32::from(Errno::Child.raw()));
            Err(Errno::Child)
        }
        Err(e) => Err(join_errno(e)),
    }
}
