//! The WASIX calls that capture or leave the calling thread's stack: `proc_fork` (fork and
//! vfork), `stack_checkpoint` / `stack_restore` (setjmp / longjmp).
//!
//! A capturing call runs twice: first it starts the unwind (the run loop does the work once
//! the stack is captured), then, rewound, it returns the outcome the run loop chose.

use wasmix_fs::Errno;
use wasmtime::{Caller, Result};

use super::{errno, Abi, HostCalls};
use crate::capture;
use crate::host::{split, Host};
use crate::mem::GuestMem;
use crate::signals;
use crate::stack::{Capture, Outcome, Resumption};
use crate::unwind::Unwind;

/// `__wasi_stack_snapshot_t`: `{user: u64, hash: [u8; 16]}`.
const SNAPSHOT_SIZE: u32 = 24;

pub(super) fn add(calls: &mut HostCalls) -> Result<()> {
    let wasix = Abi::Wasix.module();
    calls.define_raw(wasix, "proc_fork", proc_fork)?;
    calls.define_raw(wasix, "stack_checkpoint", stack_checkpoint)?;
    calls.define_raw(wasix, "stack_restore", stack_restore)?;
    Ok(())
}

/// Writes a resumed call's outcome with `put`, then acts on signals that waited for the
/// rewind to end.
fn finish(
    caller: &mut Caller<'_, Host>,
    resume: Resumption,
    put: impl FnOnce(&mut GuestMem, u64) -> Result<(), Errno>,
) -> Result<i32> {
    // These calls are never captured by a snapshot (which restarts only blocking calls), so
    // a restart here could only be a confused rewind: report it as interrupted.
    let outcome: Outcome = match resume {
        Resumption::Return(o) => o,
        Resumption::Restart => Err(Errno::Intr),
    };
    let r = outcome.and_then(|v| put(&mut split(caller).0, v));
    if caller.data().interrupt.is_raised() {
        signals::deliver(&mut *caller)?;
    }
    Ok(errno(r))
}

/// Whether `len` bytes at `ptr` lie in the guest's memory.
fn valid(caller: &mut Caller<'_, Host>, ptr: i32, len: u32) -> bool {
    split(caller).0.check(ptr as u32, len).is_ok()
}

/// fork (`copy_memory` set) or vfork; the child's pid, 0 in the child, goes to `pid_ptr`.
fn proc_fork(mut caller: Caller<'_, Host>, copy_memory: i32, pid_ptr: i32) -> Result<i32> {
    if let Some(resume) = capture::resumed(&mut caller)? {
        return finish(&mut caller, resume, |mem, pid| {
            mem.put_u32(pid_ptr as u32, pid as u32)
        });
    }
    if !valid(&mut caller, pid_ptr, 4) {
        return Ok(errno(Err(Errno::Fault)));
    }
    let capture = Capture::Fork {
        copy_memory: copy_memory != 0,
    };
    Ok(errno(capture::begin_unwind(&mut caller, capture)?))
}

/// setjmp: captures the stack for the `jmp_buf` at `snapshot`; returns 0 now and, when a
/// longjmp comes back here, its value through `ret_ptr`.
fn stack_checkpoint(mut caller: Caller<'_, Host>, snapshot: i32, ret_ptr: i32) -> Result<i32> {
    if let Some(outcome) = capture::resumed(&mut caller)? {
        return finish(&mut caller, outcome, |mem, v| {
            mem.put_u64(ret_ptr as u32, v)
        });
    }
    if !valid(&mut caller, snapshot, SNAPSHOT_SIZE) || !valid(&mut caller, ret_ptr, 8) {
        return Ok(errno(Err(Errno::Fault)));
    }
    let capture = Capture::Setjmp {
        buf: snapshot as u32,
    };
    Ok(errno(capture::begin_unwind(&mut caller, capture)?))
}

/// longjmp. It cannot fail back to its caller: a jmp_buf the host did not fill in on this
/// thread ends the process, naming the reason.
fn stack_restore(mut caller: Caller<'_, Host>, snapshot: i32, value: i64) -> Result<()> {
    let buf = snapshot as u32;
    let key = split(&mut caller)
        .0
        .read_array::<16>(buf.wrapping_add(8))
        .ok();
    let refuse = |caller: &Caller<'_, Host>, why: String| {
        capture::stack_error(caller.data(), format!("longjmp refused: {why}"))
    };
    let Some(key) = key else {
        return Err(refuse(
            &caller,
            format!("the jmp_buf at {buf:#x} is outside memory"),
        ));
    };
    let Some(sp) = capture::stack_pointer(&mut caller) else {
        return Err(refuse(
            &caller,
            "the module's stack cannot be captured".into(),
        ));
    };
    let target = caller
        .data_mut()
        .stack
        .setjmps_mut()
        .take_target(buf, key, sp);
    let snapshot = target.map_err(|r| refuse(&caller, r.to_string()))?;
    // As longjmp(3): a value of 0 makes setjmp return 1.
    let value = if value == 0 { 1 } else { value as u64 };
    Err(Unwind::LongJump { snapshot, value }.into())
}
