//! Threads and futexes: wasi-threads `thread-spawn`, WASIX `thread_*` and `futex_*`, and the
//! host calls that replace raw `memory.atomic.wait*/notify` instructions.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use wasmix_fs::Errno;
use wasmix_process::WaitError;
use wasmtime::{Caller, Result, Trap};

use super::signal::{signal, signal_errno};
use super::{host_calls, Abi, Call, HostCalls, INTERNAL, WASI_THREADS};
use crate::futex::Woke;
use crate::host::{split, GuestMemory, Host};
use crate::mem::{GuestMem, Out};
use crate::signals;
use crate::snapshot as snapshots;
use crate::spawn::spawn_thread;
use crate::stack::Entry;
use crate::stack::Resumption;
use crate::tls::ThreadLocals;
use crate::unwind::Unwind;

/// Reads an `option<timestamp>` (tag byte, then a u64 at offset 8) as a relative deadline.
fn timeout(mem: &GuestMem, ptr: u32) -> Result<Option<Instant>, Errno> {
    if mem.u8(ptr)? != 1 {
        return Ok(None);
    }
    let ns = mem.u64(ptr + 8)?;
    Ok(Instant::now().checked_add(Duration::from_nanos(ns)))
}

fn wait_errno(e: WaitError) -> Errno {
    match e {
        WaitError::TimedOut => Errno::Timedout,
        _ => Errno::Intr,
    }
}

pub(super) fn add(calls: &mut HostCalls) -> Result<()> {
    calls.define_raw(WASI_THREADS, "thread-spawn", wasi_thread_spawn)?;
    calls.define_raw(Abi::Wasix.module(), "thread_exit", thread_exit)?;
    host_calls!(
        calls,
        Abi::Wasix,
        [
            thread_spawn_v2,
            thread_spawn,
            thread_id,
            thread_parallelism,
            thread_sleep,
            thread_join(AfterHandler),
            thread_signal,
            thread_local_create,
            thread_local_destroy,
            thread_local_set,
            thread_local_get,
            futex_wait,
            futex_wake,
            futex_wake_all,
        ]
    );
    calls.define_raw(INTERNAL, "atomic_wait32", atomic_wait32)?;
    calls.define_raw(INTERNAL, "atomic_wait64", atomic_wait64)?;
    calls.define_raw(INTERNAL, "atomic_notify", atomic_notify)?;
    Ok(())
}

/// wasi-threads `thread-spawn`: the new tid, or a negative errno on failure.
fn wasi_thread_spawn(mut caller: Caller<'_, Host>, arg: i32) -> Result<i32> {
    let r = spawn_thread(caller.data(), Entry::ThreadStart(arg));
    signals::deliver(&mut caller)?;
    Ok(match r {
        Ok(tid) => tid as i32,
        Err(e) => -i32::from(e.raw()),
    })
}

fn thread_spawn_v2(cx: &mut Call<'_>, start: i32, ret: Out<u32>) -> Result<(), Errno> {
    let tid = spawn_thread(cx.host, Entry::ThreadStart(start))?;
    ret.set(&mut cx.mem, tid);
    Ok(())
}

/// The 2023 form: user data (handed to `_start_thread`/`_react`), the stack's top and
/// bottom, the reactor flag.
fn thread_spawn(
    cx: &mut Call<'_>,
    user: u64,
    base: u64,
    _start: u64,
    reactor: i32,
    ret: Out<u32>,
) -> Result<(), Errno> {
    let entry = Entry::Legacy {
        user_data: user,
        stack_base: base,
        reactor: reactor & 1 != 0,
    };
    let tid = spawn_thread(cx.host, entry)?;
    ret.set(&mut cx.mem, tid);
    Ok(())
}

fn thread_id(cx: &mut Call<'_>, ret: Out<u32>) -> Result<(), Errno> {
    ret.set(&mut cx.mem, cx.host.thread.tid());
    Ok(())
}

fn thread_parallelism(cx: &mut Call<'_>, ret: Out<u32>) -> Result<(), Errno> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    ret.set(&mut cx.mem, n as u32);
    Ok(())
}

fn thread_sleep(cx: &mut Call<'_>, ns: i64) -> Result<(), Errno> {
    if super::snapshot_at(cx, &[wasmix_process::Trigger::Bootstrap]) {
        return Err(Errno::Intr);
    }
    cx.host
        .thread
        .sleep(Duration::from_nanos(ns.max(0) as u64))
        .map_err(wait_errno)
}

fn thread_join(cx: &mut Call<'_>, tid: u32) -> Result<(), Errno> {
    let host = &*cx.host;
    if tid == host.thread.tid() {
        return Err(Errno::Deadlk);
    }
    let process = &host.ctx.process;
    host.thread
        .wait_for(None, Some(&host.ctx.thread_exits), || {
            process.thread(tid).is_none().then_some(())
        })
        .map_err(wait_errno)
}

fn thread_signal(cx: &mut Call<'_>, tid: u32, sig: i32) -> Result<(), Errno> {
    let Some(sig) = signal(sig)? else {
        return Ok(());
    };
    let process = &cx.host.ctx.process;
    // Thread 0 is the main thread, as Wasmer numbered it (lib/wasi/src/state/thread.rs at
    // c95b4fee: ids from a seed starting at 0): a 2022 libc's raise() passes 0 before its
    // thread-local storage is set up. Our main thread's id is the pid; no thread is 0.
    let tid = if tid == 0 { process.pid() } else { tid };
    process.thread_signal(tid, sig).map_err(signal_errno)
}

/// Ends the calling thread; the last one ends the process with `code`.
fn thread_exit(caller: Caller<'_, Host>, code: i32) -> Result<()> {
    let process = &caller.data().ctx.process;
    if process.live_threads() <= 1 {
        process.exit(wasmix_process::ExitStatus::Exited(code));
    }
    Err(Unwind::ThreadExit.into())
}

fn locals(host: &Host) -> std::sync::MutexGuard<'_, ThreadLocals> {
    host.ctx
        .thread_locals
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

// The 2023 ABI's thread-local keys (see `tls`).

fn thread_local_create(cx: &mut Call<'_>, user: u64, ret: Out<u32>) -> Result<(), Errno> {
    let key = locals(cx.host).create(user)?;
    ret.set(&mut cx.mem, key);
    Ok(())
}

fn thread_local_destroy(cx: &mut Call<'_>, key: u32) -> Result<(), Errno> {
    locals(cx.host).destroy(key)
}

fn thread_local_set(cx: &mut Call<'_>, key: u32, value: u64) -> Result<(), Errno> {
    let tid = cx.host.thread.tid();
    locals(cx.host).set(tid, key, value)
}

fn thread_local_get(cx: &mut Call<'_>, key: u32, ret: Out<u64>) -> Result<(), Errno> {
    let tid = cx.host.thread.tid();
    let value = locals(cx.host).get(tid, key)?;
    ret.set(&mut cx.mem, value);
    Ok(())
}

fn futex_wait(
    cx: &mut Call<'_>,
    addr: u32,
    expected: i32,
    timeout_ptr: u32,
    ret: Out<u8>,
) -> Result<(), Errno> {
    let deadline = timeout(&cx.mem, timeout_ptr)?;
    let word = cx.mem.atomic_u32(addr)?;
    let host = &mut *cx.host;
    let interrupt = &host.interrupt;
    let woke = host.ctx.futexes.wait(
        &host.thread,
        u64::from(addr),
        || word.load(Ordering::SeqCst) == expected as u32,
        deadline,
        || interrupt.is_raised(),
        &mut host.futex_spin,
    );
    let woken = match woke {
        Woke::NotEqual | Woke::Woken => true,
        Woke::TimedOut => false,
        // A signal: a spurious wake-up, which futex users tolerate; the handler runs
        // before the call returns. A kill unwinds there too.
        Woke::Interrupted(_) => true,
    };
    ret.set(&mut cx.mem, woken as u8);
    Ok(())
}

fn futex_wake(cx: &mut Call<'_>, addr: u32, ret: Out<u8>) -> Result<(), Errno> {
    let n = cx.host.ctx.futexes.wake(u64::from(addr), 1);
    ret.set(&mut cx.mem, (n > 0) as u8);
    Ok(())
}

fn futex_wake_all(cx: &mut Call<'_>, addr: u32, ret: Out<u8>) -> Result<(), Errno> {
    let n = cx.host.ctx.futexes.wake(u64::from(addr), u32::MAX);
    ret.set(&mut cx.mem, (n > 0) as u8);
    Ok(())
}

/// The effective address of a rewritten atomic: base operand plus the instruction's offset,
/// checked as the instruction itself would be (bounds, alignment, shared memory).
fn atomic_addr(mem: &GuestMem, addr: i32, offset: i64, size: u64) -> Result<u32> {
    let ea = u64::from(addr as u32).checked_add(offset as u64);
    let Some(ea) = ea.filter(|ea| ea.saturating_add(size) <= mem.len() as u64) else {
        return Err(Trap::MemoryOutOfBounds.into());
    };
    if !ea.is_multiple_of(size) {
        return Err(Trap::HeapMisaligned.into());
    }
    Ok(ea as u32)
}

/// What `memory.atomic.wait*` returns: 0 woken ("ok"), 1 not-equal, 2 timed out.
fn wait_result(woke: Woke) -> i32 {
    match woke {
        Woke::Woken | Woke::Interrupted(_) => 0,
        Woke::NotEqual => 1,
        Woke::TimedOut => 2,
    }
}

fn raw_wait(
    caller: &mut Caller<'_, Host>,
    addr: i32,
    timeout_ns: i64,
    offset: i64,
    size: u64,
    expected: u64,
) -> Result<i32> {
    // A capture point for snapshots, like the blocking calls (see `dispatch`); rewound, the
    // wait starts again.
    if caller.data().stack.rewinding() {
        crate::capture::resumed(caller)?;
    } else if snapshots::wanted(caller.data()) {
        return snapshots::unwind(caller, Resumption::Restart);
    }
    let woke = {
        let (mem, host) = split(caller);
        if !matches!(host.memory, GuestMemory::Shared(_)) {
            return Err(wasmtime::Error::msg(
                "memory.atomic.wait on a memory that is not shared",
            ));
        }
        let ea = atomic_addr(&mem, addr, offset, size)?;
        let deadline = (timeout_ns >= 0)
            .then(|| Instant::now().checked_add(Duration::from_nanos(timeout_ns as u64)))
            .flatten();
        let thread = std::sync::Arc::clone(&host.thread);
        let interrupt = &host.interrupt;
        if size == 4 {
            let word = mem.atomic_u32(ea).map_err(|_| Trap::HeapMisaligned)?;
            host.ctx.futexes.wait(
                &thread,
                u64::from(ea),
                || u64::from(word.load(Ordering::SeqCst)) == expected,
                deadline,
                || interrupt.is_raised(),
                &mut host.futex_spin,
            )
        } else {
            let word = mem.atomic_u64(ea).map_err(|_| Trap::HeapMisaligned)?;
            host.ctx.futexes.wait(
                &thread,
                u64::from(ea),
                || word.load(Ordering::SeqCst) == expected,
                deadline,
                || interrupt.is_raised(),
                &mut host.futex_spin,
            )
        }
    };
    if matches!(woke, Woke::Interrupted(_)) && snapshots::wanted(caller.data()) {
        return snapshots::unwind(caller, Resumption::Restart);
    }
    signals::deliver(&mut *caller)?;
    Ok(wait_result(woke))
}

/// `memory.atomic.wait32` rewritten: like the instruction, it traps on a bad address and
/// answers 0/1/2 rather than an errno.
fn atomic_wait32(
    mut caller: Caller<'_, Host>,
    addr: i32,
    expected: i32,
    timeout: i64,
    offset: i64,
) -> Result<i32> {
    raw_wait(
        &mut caller,
        addr,
        timeout,
        offset,
        4,
        u64::from(expected as u32),
    )
}

fn atomic_wait64(
    mut caller: Caller<'_, Host>,
    addr: i32,
    expected: i64,
    timeout: i64,
    offset: i64,
) -> Result<i32> {
    raw_wait(&mut caller, addr, timeout, offset, 8, expected as u64)
}

/// `memory.atomic.notify` rewritten: the number of waiters woken.
fn atomic_notify(mut caller: Caller<'_, Host>, addr: i32, count: i32, offset: i64) -> Result<i32> {
    let (mem, host) = split(&mut caller);
    let ea = atomic_addr(&mem, addr, offset, 4)?;
    Ok(host.ctx.futexes.wake(u64::from(ea), count as u32) as i32)
}
