//! args_* and environ_*.

use wasmix_fs::Errno;
use wasmtime::Result;

use super::{host_calls, Abi, Call, HostCalls};
use crate::mem::GuestMem;

fn sizes(list: &[Vec<u8>], mem: &mut GuestMem, count_ptr: u32, size_ptr: u32) -> Result<(), Errno> {
    let count = u32::try_from(list.len()).map_err(|_| Errno::Overflow)?;
    let size: usize = list.iter().map(|s| s.len() + 1).sum();
    mem.put_u32(count_ptr, count)?;
    mem.put_u32(size_ptr, u32::try_from(size).map_err(|_| Errno::Overflow)?)
}

/// Writes NUL-terminated strings into `buf` and their addresses into `ptrs`.
fn strings(list: &[Vec<u8>], mem: &mut GuestMem, ptrs: u32, buf: u32) -> Result<(), Errno> {
    let mut at = buf;
    for (i, s) in list.iter().enumerate() {
        let slot = ptrs.checked_add(4 * i as u32).ok_or(Errno::Fault)?;
        mem.put_u32(slot, at)?;
        mem.write(at, s)?;
        let end = at.checked_add(s.len() as u32).ok_or(Errno::Fault)?;
        mem.put_u8(end, 0)?;
        at = end.checked_add(1).ok_or(Errno::Fault)?;
    }
    Ok(())
}

pub(super) fn add(calls: &mut HostCalls, abi: Abi) -> Result<()> {
    host_calls!(
        calls,
        abi,
        [args_sizes_get, args_get, environ_sizes_get, environ_get]
    );
    Ok(())
}

fn args_sizes_get(cx: &mut Call<'_>, argc: u32, size: u32) -> Result<(), Errno> {
    sizes(&cx.host.ctx.args, &mut cx.mem, argc, size)
}

fn args_get(cx: &mut Call<'_>, argv: u32, buf: u32) -> Result<(), Errno> {
    strings(&cx.host.ctx.args, &mut cx.mem, argv, buf)
}

/// `first-environ`: the snapshot is taken before the program first looks at its
/// environment, so a restore reads the new run's.
fn first_environ(cx: &mut Call<'_>) -> Result<(), Errno> {
    if super::snapshot_at(cx, &[wasmix_process::Trigger::FirstEnviron]) {
        return Err(Errno::Intr);
    }
    Ok(())
}

fn environ_sizes_get(cx: &mut Call<'_>, count: u32, size: u32) -> Result<(), Errno> {
    first_environ(cx)?;
    sizes(&cx.host.ctx.env, &mut cx.mem, count, size)
}

fn environ_get(cx: &mut Call<'_>, envp: u32, buf: u32) -> Result<(), Errno> {
    first_environ(cx)?;
    strings(&cx.host.ctx.env, &mut cx.mem, envp, buf)
}
