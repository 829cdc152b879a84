//! args_* and environ_*.

use super::HostCalls;
use wasmix_fs::Errno;
use wasmtime::Result;

use super::{syscall, Abi};
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

pub(super) fn add(linker: &mut HostCalls<'_>, abi: Abi) -> Result<()> {
    syscall!(
        linker,
        abi,
        "args_sizes_get",
        |host, mem, argc: i32, size: i32| {
            sizes(&host.ctx.args, &mut mem, argc as u32, size as u32)
        }
    );
    syscall!(linker, abi, "args_get", |host, mem, argv: i32, buf: i32| {
        strings(&host.ctx.args, &mut mem, argv as u32, buf as u32)
    });
    syscall!(
        linker,
        abi,
        "environ_sizes_get",
        |host, mem, count: i32, size: i32| {
            sizes(&host.ctx.env, &mut mem, count as u32, size as u32)
        }
    );
    syscall!(
        linker,
        abi,
        "environ_get",
        |host, mem, envp: i32, buf: i32| {
            strings(&host.ctx.env, &mut mem, envp as u32, buf as u32)
        }
    );
    Ok(())
}
