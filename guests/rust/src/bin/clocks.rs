//! Clocks, randomness and sched_yield through raw calls.
use wasmix_guests::wasi;
use wasmix_guests::*;

fn main() {
    for id in [wasi::CLOCKID_REALTIME, wasi::CLOCKID_MONOTONIC, wasi::CLOCKID_PROCESS_CPUTIME_ID, wasi::CLOCKID_THREAD_CPUTIME_ID] {
        let res = ok("clock_res_get", unsafe { wasi::clock_res_get(id) });
        check(res > 0 && res <= 1_000_000_000, "resolution in (0, 1s]");
        let a = ok("clock_time_get", unsafe { wasi::clock_time_get(id, 1) });
        let b = ok("clock_time_get", unsafe { wasi::clock_time_get(id, 1) });
        check(b >= a, "clocks do not go backwards");
    }
    let real = ok("realtime", unsafe { wasi::clock_time_get(wasi::CLOCKID_REALTIME, 1) });
    check(real > 1_600_000_000_000_000_000, "realtime is wall-clock time");
    let bad = unsafe { wasi::wasi_snapshot_preview1::clock_time_get(42, 0, 0) };
    check(bad == wasi::ERRNO_INVAL.raw() as i32, "unknown clock is EINVAL");
    let bad = unsafe { wasi::wasi_snapshot_preview1::clock_res_get(42, 0) };
    check(bad == wasi::ERRNO_INVAL.raw() as i32, "unknown clock res is EINVAL");
    let mut buf = vec![0u8; 1 << 20];
    ok("random_get", unsafe { wasi::random_get(buf.as_mut_ptr(), buf.len()) });
    let zeros = buf.iter().filter(|b| **b == 0).count();
    check(zeros < buf.len() / 128, "random bytes look random");
    ok("sched_yield", unsafe { wasi::sched_yield() });
    let mono0 = ok("mono", unsafe { wasi::clock_time_get(wasi::CLOCKID_MONOTONIC, 1) });
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mono1 = ok("mono", unsafe { wasi::clock_time_get(wasi::CLOCKID_MONOTONIC, 1) });
    check(mono1 - mono0 >= 20_000_000, "sleep of 20 ms takes at least 20 ms");
    println!("clocks ok");
}
