//! Clocks, randomness, sched_yield.

use super::HostCalls;
use rustix::time::ClockId;
use wasmix_fs::Errno;
use wasmtime::Result;

use super::{syscall, Abi};

pub(crate) fn clock_id(raw: i32) -> Result<ClockId, Errno> {
    Ok(match raw {
        0 => ClockId::Realtime,
        1 => ClockId::Monotonic,
        2 => ClockId::ProcessCPUTime,
        3 => ClockId::ThreadCPUTime,
        _ => return Err(Errno::Inval),
    })
}

pub(crate) fn now(id: ClockId) -> u64 {
    let t = rustix::time::clock_gettime(id);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

pub(super) fn add(linker: &mut HostCalls<'_>, abi: Abi) -> Result<()> {
    syscall!(
        linker,
        abi,
        "clock_res_get",
        |host, mem, id: i32, ret: i32| {
            let res = rustix::time::clock_getres(clock_id(id)?);
            let ns = (res.tv_sec as u64) * 1_000_000_000 + res.tv_nsec as u64;
            mem.put_u64(ret as u32, ns.max(1))
        }
    );
    syscall!(
        linker,
        abi,
        "clock_time_get",
        |host, mem, id: i32, _precision: i64, ret: i32| {
            mem.put_u64(ret as u32, now(clock_id(id)?))
        }
    );
    syscall!(
        linker,
        abi,
        "random_get",
        |host, mem, buf: i32, len: i32| {
            let out = mem.slice_mut(buf as u32, len as u32)?;
            getrandom::fill(out).map_err(|_| Errno::Io)
        }
    );
    syscall!(linker, abi, "sched_yield", |host, mem| {
        std::thread::yield_now();
        Ok(())
    });
    Ok(())
}
