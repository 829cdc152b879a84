//! Signals: raising one on the calling thread (`proc_raise`, every ABI), sending one to a
//! process, interval timers, the guest's signal entry point and the inherited ignore list.

use std::time::Duration;

use wasmix_fs::Errno;
use wasmix_process::{Disposition, Signal, SignalError};
use wasmtime::{Caller, Result};

use super::command::text;
use super::{host_calls, Abi, Call, HostCalls};
use crate::host::{split, Host};
use crate::mem::Out;
use crate::signals;

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

/// `proc_raise`, which every ABI generation has.
pub(super) fn add(calls: &mut HostCalls, abi: Abi) -> Result<()> {
    host_calls!(calls, abi, [proc_raise]);
    Ok(())
}

/// The WASIX signal calls.
pub(super) fn add_wasix(calls: &mut HostCalls) -> Result<()> {
    host_calls!(
        calls,
        Abi::Wasix,
        [
            proc_signal,
            proc_raise_interval,
            proc_signals_sizes_get,
            proc_signals_get,
        ]
    );
    calls.define_raw(Abi::Wasix.module(), "callback_signal", callback_signal)?;
    Ok(())
}

/// Raised on the calling thread: a handler runs before the call returns, a fatal default
/// action ends the process before it does.
fn proc_raise(cx: &mut Call<'_>, sig: i32) -> Result<(), Errno> {
    let Some(sig) = signal(sig)? else {
        return Ok(());
    };
    let tid = cx.host.thread.tid();
    cx.host
        .ctx
        .process
        .thread_signal(tid, sig)
        .map_err(signal_errno)
}

fn proc_signal(cx: &mut Call<'_>, pid: u32, sig: i32) -> Result<(), Errno> {
    let target = cx
        .host
        .ctx
        .runtime
        .control()
        .lookup(pid)
        .ok_or(Errno::Srch)?;
    match signal(sig)? {
        Some(sig) => target.signal(sig).map_err(signal_errno),
        None => Ok(()), // kill(pid, 0): existence check
    }
}

/// `sig` every `interval_ms` milliseconds (once, unless `repeat`); 0 disarms.
fn proc_raise_interval(
    cx: &mut Call<'_>,
    sig: i32,
    interval_ms: i64,
    repeat: i32,
) -> Result<(), Errno> {
    let sig = signal(sig)?.ok_or(Errno::Inval)?;
    let interval = (interval_ms > 0).then(|| Duration::from_millis(interval_ms as u64));
    cx.host
        .ctx
        .process
        .signal_interval(sig, interval, repeat & 1 != 0);
    Ok(())
}

/// Registers the guest export signals are delivered to (a name in guest memory).
fn callback_signal(mut caller: Caller<'_, Host>, ptr: i32, len: i32) -> Result<()> {
    {
        let (mem, host) = split(&mut caller);
        if let Ok(name) = text(&mem, ptr as u32, len as u32) {
            let name = name.trim_end_matches('\0').to_owned();
            host.handlers.forget_entry();
            host.ctx.set_signal_callback(name);
        }
    }
    signals::deliver(&mut caller)
}

fn proc_signals_sizes_get(cx: &mut Call<'_>, ret: Out<u32>) -> Result<(), Errno> {
    let n = ignored(cx.host).len();
    ret.set(&mut cx.mem, n as u32);
    Ok(())
}

/// `(signal, disposition)` byte pairs of the signals the process ignores.
fn proc_signals_get(cx: &mut Call<'_>, buf: u32) -> Result<(), Errno> {
    let pairs: Vec<u8> = ignored(cx.host)
        .iter()
        .flat_map(|s| [s.number(), 1])
        .collect();
    cx.mem.write(buf, &pairs)
}

/// Signals the calling process ignores (what a spawned or exec'd program inherits).
fn ignored(host: &Host) -> Vec<Signal> {
    host.ctx
        .process
        .dispositions()
        .iter()
        .enumerate()
        .filter(|(_, d)| **d == Disposition::Ignore)
        .filter_map(|(i, _)| Signal::new(i as u8))
        .collect()
}
