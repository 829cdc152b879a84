//! Signal handlers through the WASIX callback: raised, thread-directed, from interval timers
//! into a pure compute loop, SIGPIPE, and Ctrl-C while blocked reading stdin.
use std::sync::atomic::{AtomicU32, Ordering};

use wasmix_guests::proc;
use wasmix_guests::{check, fail};

static COUNTS: [AtomicU32; 32] = [const { AtomicU32::new(0) }; 32];

#[no_mangle]
pub extern "C" fn __wasm_signal(sig: i32) {
    COUNTS[sig as usize & 31].fetch_add(1, Ordering::SeqCst);
    if sig == proc::SIGINT {
        // Async-signal-safe enough for a test: one write.
        let _ = proc::write_fd(1, b"got SIGINT\n");
    }
}

fn count(sig: i32) -> u32 {
    // Volatile: on single-threaded wasm32-wasip1 atomics are plain loads, which the compiler
    // may hoist out of a loop that makes no calls; a handler changes it behind the loop's back.
    unsafe { std::ptr::read_volatile(COUNTS[sig as usize].as_ptr()) }
}

/// A loop with no host calls: only asynchronous delivery can run the handler.
#[inline(never)]
fn spin_until(sig: i32, n: u32) -> u64 {
    let mut x = 1u64;
    let mut i = 0u64;
    while count(sig) < n {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        i += 1;
    }
    x
}

fn main() {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    match scenario.as_str() {
        "handler" => {
            proc::register_signal_callback();
            check(proc::raise(proc::SIGUSR1) == 0, "raise");
            println!("after raise: usr1={}", count(proc::SIGUSR1));
            check(proc::thread_signal(proc::tid(), proc::SIGUSR2) == 0, "thread_signal");
            println!("after thread_signal: usr2={}", count(proc::SIGUSR2));
            check(proc::signal(proc::pid(), proc::SIGTERM) == 0, "proc_signal self");
            println!("after proc_signal: term={}", count(proc::SIGTERM));
            println!("kill 0 (existence) errno={}", proc::signal(proc::pid(), 0));
            println!("bad signal errno={}", proc::raise(99));
        }
        "interval" => {
            proc::register_signal_callback();
            check(proc::raise_interval(proc::SIGALRM, 5, true) == 0, "interval");
            let x = spin_until(proc::SIGALRM, 5);
            proc::raise_interval(proc::SIGALRM, 0, false);
            println!("alarms in a compute loop: {} ({})", count(proc::SIGALRM) >= 5, x & 1 < 2);
        }
        "snapshot-timer" => {
            // An interval timer armed before a snapshot fires in the process restored from
            // it; the handler and the signal mask come along too.
            proc::register_signal_callback();
            check(proc::raise_interval(proc::SIGALRM, 30, true) == 0, "interval");
            let before = count(proc::SIGALRM);
            let r = unsafe { wasmix_guests::wasix::proc_snapshot() };
            let after_snapshot = count(proc::SIGALRM);
            // Bounded: a timer that did not come back must fail the test, not hang it.
            let t0 = proc::now_ms();
            while count(proc::SIGALRM) < after_snapshot + 3 && proc::now_ms() - t0 < 5000.0 {}
            proc::raise_interval(proc::SIGALRM, 0, false);
            println!(
                "snapshot {:?}; alarms kept coming: {}",
                r.map_err(|e| e.name()),
                count(proc::SIGALRM) >= before + 3
            );
        }
        "oneshot" => {
            proc::register_signal_callback();
            proc::raise_interval(proc::SIGALRM, 20, false);
            let t0 = proc::now_ms();
            while proc::now_ms() - t0 < 150.0 {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            println!("one-shot alarms: {}", count(proc::SIGALRM));
        }
        "default-alarm" => {
            proc::raise_interval(proc::SIGALRM, 10, false);
            spin_until(proc::SIGALRM, 1);
            fail("survived SIGALRM");
        }
        "sigpipe" => {
            proc::register_signal_callback();
            let (r, w) = proc::pipe();
            proc::close(r);
            let e = proc::write_fd(w, b"nobody reads").err();
            println!("write errno={:?} sigpipe={}", e.map(|e| e.raw()), count(proc::SIGPIPE));
        }
        "sigpipe-default" => {
            let (r, w) = proc::pipe();
            proc::close(r);
            let _ = proc::write_fd(w, b"nobody reads");
            fail("survived SIGPIPE");
        }
        "wait-int" => {
            proc::register_signal_callback();
            println!("ready");
            let mut buf = [0u8; 64];
            // Blocks in the host kernel; SIGINT runs the handler and the read goes on.
            let n = proc::read_fd(0, &mut buf).unwrap_or_else(|e| fail(&format!("read: {e:?}")));
            println!("read {n} bytes after {} SIGINT", count(proc::SIGINT));
        }
        "wait-default" => {
            println!("ready");
            let mut buf = [0u8; 64];
            let _ = proc::read_fd(0, &mut buf);
            println!("not killed");
        }
        "spin-default" => {
            println!("ready");
            spin_until(proc::SIGUSR1, 1);
        }
        other => fail(&format!("unknown scenario {other}")),
    }
}
