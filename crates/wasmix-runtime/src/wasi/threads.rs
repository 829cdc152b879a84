//! Threads and futexes: wasi-threads `thread-spawn`, WASIX `thread_*` and `futex_*`, and the
//! host calls that replace raw `memory.atomic.wait*/notify` instructions.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use wasmix_fs::Errno;
use wasmix_process::WaitError;
use wasmtime::{Caller, Result, Trap};

use super::proc::{signal, signal_errno};
use super::{syscall, Abi, HostCalls, INTERNAL, WASI_THREADS};
use crate::futex::Woke;
use crate::host::{split, Host, ThreadEnded};
use crate::mem::GuestMem;
use crate::running::{spawn_thread, Entry};
use crate::signals;

const WASIX: Abi = Abi::Wasix;

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

pub(super) fn add(linker: &mut HostCalls<'_>) -> Result<()> {
    // wasi-threads: the new tid, or a negative number on failure.
    linker.func_wrap(
        WASI_THREADS,
        "thread-spawn",
        |mut caller: Caller<'_, Host>, arg: i32| -> Result<i32> {
            let r = spawn_thread(caller.data(), Entry::ThreadStart(arg));
            signals::deliver(&mut caller)?;
            Ok(match r {
                Ok(tid) => tid as i32,
                Err(e) => -i32::from(e.raw()),
            })
        },
    )?;
    syscall!(
        linker,
        WASIX,
        "thread_spawn_v2",
        |host, mem, start: i32, ret: i32| {
            mem.slice(ret as u32, 4)?;
            let tid = spawn_thread(host, Entry::ThreadStart(start))?;
            mem.put_u32(ret as u32, tid)
        }
    );
    // The 2023 form: user data (handed to `_start_thread`/`_react`), the stack's top and
    // bottom, the reactor flag.
    syscall!(
        linker,
        WASIX,
        "thread_spawn",
        |host, mem, user: i64, base: i64, _start: i64, reactor: i32, ret: i32| {
            mem.slice(ret as u32, 4)?;
            let entry = Entry::Legacy {
                user_data: user as u64,
                stack_base: base as u64,
                reactor: reactor & 1 != 0,
            };
            let tid = spawn_thread(host, entry)?;
            mem.put_u32(ret as u32, tid)
        }
    );
    syscall!(linker, WASIX, "thread_id", |host, mem, ret: i32| {
        mem.put_u32(ret as u32, host.thread.tid())
    });
    syscall!(
        linker,
        WASIX,
        "thread_parallelism",
        |host, mem, ret: i32| {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            mem.put_u32(ret as u32, n as u32)
        }
    );
    syscall!(linker, WASIX, "thread_sleep", |host, mem, ns: i64| {
        host.thread
            .sleep(Duration::from_nanos(ns.max(0) as u64))
            .map_err(wait_errno)
    });
    syscall!(restart linker, WASIX.module(), "thread_join", |host, mem, tid: i32| {
        let tid = tid as u32;
        if tid == host.thread.tid() {
            return Err(Errno::Deadlk);
        }
        let process = &host.ctx.process;
        host.thread
            .wait_for(None, Some(&host.ctx.thread_exits), || {
                process.thread(tid).is_none().then_some(())
            })
            .map_err(wait_errno)
    });
    syscall!(
        linker,
        WASIX,
        "thread_signal",
        |host, mem, tid: i32, sig: i32| {
            let Some(sig) = signal(sig)? else {
                return Ok(());
            };
            host.ctx
                .process
                .thread_signal(tid as u32, sig)
                .map_err(signal_errno)
        }
    );
    linker.func_wrap(
        WASIX.module(),
        "thread_exit",
        |caller: Caller<'_, Host>, code: i32| -> Result<()> {
            let process = &caller.data().ctx.process;
            if process.live_threads() <= 1 {
                process.exit(wasmix_process::ExitStatus::Exited(code));
            }
            Err(ThreadEnded.into())
        },
    )?;
    thread_locals(linker)?;

    syscall!(
        linker,
        WASIX,
        "futex_wait",
        |host, mem, addr: i32, expected: i32, timeout_ptr: i32, ret: i32| {
            mem.slice(ret as u32, 1)?;
            let deadline = timeout(&mem, timeout_ptr as u32)?;
            let word = mem.atomic_u32(addr as u32)?;
            let woke = host.ctx.futexes.wait(
                &host.thread,
                u64::from(addr as u32),
                || word.load(Ordering::SeqCst) == expected as u32,
                deadline,
            );
            let woken = match woke {
                Woke::NotEqual | Woke::Woken => true,
                Woke::TimedOut => false,
                // A signal: a spurious wake-up, which futex users tolerate; the handler runs
                // before the call returns. A kill unwinds there too.
                Woke::Interrupted(_) => true,
            };
            mem.put_u8(ret as u32, woken as u8)
        }
    );
    syscall!(
        linker,
        WASIX,
        "futex_wake",
        |host, mem, addr: i32, ret: i32| {
            mem.slice(ret as u32, 1)?;
            let n = host.ctx.futexes.wake(u64::from(addr as u32), 1);
            mem.put_u8(ret as u32, (n > 0) as u8)
        }
    );
    syscall!(
        linker,
        WASIX,
        "futex_wake_all",
        |host, mem, addr: i32, ret: i32| {
            mem.slice(ret as u32, 1)?;
            let n = host.ctx.futexes.wake(u64::from(addr as u32), u32::MAX);
            mem.put_u8(ret as u32, (n > 0) as u8)
        }
    );

    atomics(linker)?;
    Ok(())
}

fn locals(host: &Host) -> std::sync::MutexGuard<'_, crate::tls::ThreadLocals> {
    host.ctx
        .thread_locals
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The 2023 ABI's thread-local keys (see `tls`).
fn thread_locals(linker: &mut HostCalls<'_>) -> Result<()> {
    syscall!(
        linker,
        WASIX,
        "thread_local_create",
        |host, mem, user: i64, ret: i32| {
            mem.slice(ret as u32, 4)?;
            let key = locals(host).create(user as u64)?;
            mem.put_u32(ret as u32, key)
        }
    );
    syscall!(
        linker,
        WASIX,
        "thread_local_destroy",
        |host, mem, key: i32| { locals(host).destroy(key as u32) }
    );
    syscall!(
        linker,
        WASIX,
        "thread_local_set",
        |host, mem, key: i32, value: i64| {
            let tid = host.thread.tid();
            locals(host).set(tid, key as u32, value as u64)
        }
    );
    syscall!(
        linker,
        WASIX,
        "thread_local_get",
        |host, mem, key: i32, ret: i32| {
            let tid = host.thread.tid();
            let value = locals(host).get(tid, key as u32)?;
            mem.put_u64(ret as u32, value)
        }
    );
    Ok(())
}

/// The effective address of a rewritten atomic: base operand plus the instruction's offset,
/// checked as the instruction itself would be (bounds, alignment, shared memory).
fn atomic_addr(bytes: &[u8], addr: i32, offset: i64, size: u64) -> Result<u32> {
    let ea = u64::from(addr as u32).checked_add(offset as u64);
    let Some(ea) = ea.filter(|ea| ea.saturating_add(size) <= bytes.len() as u64) else {
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
    let woke = {
        let (bytes, host) = split(caller);
        if !matches!(host.memory, crate::host::GuestMemory::Shared(_)) {
            return Err(wasmtime::Error::msg(
                "memory.atomic.wait on a memory that is not shared",
            ));
        }
        let ea = atomic_addr(bytes, addr, offset, size)?;
        let mem = GuestMem::new(bytes);
        let deadline = (timeout_ns >= 0)
            .then(|| Instant::now().checked_add(Duration::from_nanos(timeout_ns as u64)))
            .flatten();
        let thread = std::sync::Arc::clone(&host.thread);
        if size == 4 {
            let word = mem.atomic_u32(ea).map_err(|_| Trap::HeapMisaligned)?;
            host.ctx.futexes.wait(
                &thread,
                u64::from(ea),
                || u64::from(word.load(Ordering::SeqCst)) == expected,
                deadline,
            )
        } else {
            let word = mem.atomic_u64(ea).map_err(|_| Trap::HeapMisaligned)?;
            host.ctx.futexes.wait(
                &thread,
                u64::from(ea),
                || word.load(Ordering::SeqCst) == expected,
                deadline,
            )
        }
    };
    signals::deliver(&mut *caller)?;
    Ok(wait_result(woke))
}

fn atomics(linker: &mut HostCalls<'_>) -> Result<()> {
    linker.func_wrap(
        INTERNAL,
        "atomic_wait32",
        |mut caller: Caller<'_, Host>, addr: i32, expected: i32, timeout: i64, offset: i64| {
            raw_wait(
                &mut caller,
                addr,
                timeout,
                offset,
                4,
                u64::from(expected as u32),
            )
        },
    )?;
    linker.func_wrap(
        INTERNAL,
        "atomic_wait64",
        |mut caller: Caller<'_, Host>, addr: i32, expected: i64, timeout: i64, offset: i64| {
            raw_wait(&mut caller, addr, timeout, offset, 8, expected as u64)
        },
    )?;
    linker.func_wrap(
        INTERNAL,
        "atomic_notify",
        |mut caller: Caller<'_, Host>, addr: i32, count: i32, offset: i64| -> Result<i32> {
            let (bytes, host) = split(&mut caller);
            let ea = atomic_addr(bytes, addr, offset, 4)?;
            Ok(host.ctx.futexes.wake(u64::from(ea), count as u32) as i32)
        },
    )?;
    Ok(())
}
