//! Clocks, randomness, sched_yield.

use rustix::time::ClockId;
use wasmix_fs::Errno;
use wasmtime::Result;

use super::{host_calls, Abi, Call, HostCalls};
use crate::mem::Out;

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

pub(super) fn add(calls: &mut HostCalls, abi: Abi) -> Result<()> {
    host_calls!(
        calls,
        abi,
        [clock_res_get, clock_time_get, random_get, sched_yield]
    );
    Ok(())
}

fn clock_res_get(cx: &mut Call<'_>, id: i32, ret: Out<u64>) -> Result<(), Errno> {
    let res = rustix::time::clock_getres(clock_id(id)?);
    let ns = (res.tv_sec as u64) * 1_000_000_000 + res.tv_nsec as u64;
    ret.set(&mut cx.mem, ns.max(1));
    Ok(())
}

/// `non-deterministic`: the snapshot is taken before the program's first clock or random
/// call, whose answer a restore could not reproduce; a restore makes the call afresh.
fn non_deterministic(cx: &mut Call<'_>) -> Result<(), Errno> {
    if super::snapshot_at(cx, &[wasmix_process::Trigger::NonDeterministicCall]) {
        return Err(Errno::Intr);
    }
    Ok(())
}

fn clock_time_get(cx: &mut Call<'_>, id: i32, _precision: i64, ret: Out<u64>) -> Result<(), Errno> {
    let id = clock_id(id)?;
    non_deterministic(cx)?;
    let mut t = now(id);
    if id == ClockId::Monotonic {
        // A restored process's clock goes on from its snapshot's.
        t = t.saturating_add(cx.host.ctx.clock_offset());
    }
    ret.set(&mut cx.mem, t);
    Ok(())
}

fn random_get(cx: &mut Call<'_>, buf: u32, len: u32) -> Result<(), Errno> {
    non_deterministic(cx)?;
    cx.mem.fill(buf, len, |out| {
        getrandom::fill(out).map_err(|_| Errno::Io)?;
        Ok::<usize, Errno>(out.len())
    })?;
    Ok(())
}

fn sched_yield(_: &mut Call<'_>) -> Result<(), Errno> {
    std::thread::yield_now();
    Ok(())
}
