//! Snapshot measurements inside the guest, read by bench/snapshot.sh:
//!
//! * `memory MIB`: fills MIB MiB with incompressible bytes, then times its own
//!   `proc_snapshot` (request → every thread runs again, the snapshot committed and durable),
//!   with a computing thread that measures the pause beside it.
//! * `durable MIB`: the same without the computing thread (which would take a CPU from the
//!   writer on a small machine).
//! * `idle N`: N threads blocked on a condition variable; times `proc_snapshot`.
//!
//! Each prints `snapshot_ns V` (until the snapshot is durable), `pause_ns V` (the longest
//! another, computing thread was held: from the request until every thread runs again) and,
//! right after the snapshot returns, `resumed_wall_ns V` (the realtime clock): a restored
//! run prints the latter too, so the harness can time a restore from its launch to the first
//! instruction after the snapshot.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

fn wall_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

fn snapshot(observe: bool) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    static GAP: AtomicU64 = AtomicU64::new(0);
    static RUNNING: AtomicBool = AtomicBool::new(false);
    // A computing thread that notes the longest it was held up.
    let observer = std::thread::spawn(move || {
        if !observe {
            RUNNING.store(true, Ordering::SeqCst);
            return;
        }
        let mut last = std::time::Instant::now();
        RUNNING.store(true, Ordering::SeqCst);
        while !DONE.load(Ordering::Relaxed) {
            let now = std::time::Instant::now();
            let gap = now.duration_since(last).as_nanos() as u64;
            GAP.fetch_max(gap, Ordering::Relaxed);
            last = now;
        }
    });
    while !RUNNING.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    GAP.store(0, Ordering::SeqCst);
    let t0 = std::time::Instant::now();
    let r = unsafe { wasix::proc_snapshot() };
    let after = wall_ns();
    let took = t0.elapsed().as_nanos();
    if let Err(e) = r {
        eprintln!("proc_snapshot: {e:?}");
        std::process::exit(1);
    }
    DONE.store(true, Ordering::SeqCst);
    observer.join().unwrap();
    println!("resumed_wall_ns {after}");
    println!("snapshot_ns {took}");
    println!("pause_ns {}", GAP.load(Ordering::SeqCst));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64);
    match args.get(1).map(String::as_str) {
        Some(mode @ ("memory" | "durable")) => {
            let mut bytes = vec![0u8; n << 20];
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
            for chunk in bytes.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
            }
            snapshot(mode == "memory");
            // Keep the bytes alive (and checked) past the snapshot.
            println!("check {}", bytes.iter().step_by(4096).fold(0u8, |a, b| a ^ b));
        }
        Some("idle") => {
            let gate = Arc::new((Mutex::new(false), Condvar::new()));
            let threads: Vec<_> = (0..n)
                .map(|_| {
                    let g = Arc::clone(&gate);
                    std::thread::spawn(move || {
                        let mut open = g.0.lock().unwrap();
                        while !*open {
                            open = g.1.wait(open).unwrap();
                        }
                    })
                })
                .collect();
            // Let them all block (a sleep is fine here: this is a measurement, not a test).
            std::thread::sleep(std::time::Duration::from_millis(100));
            snapshot(true);
            *gate.0.lock().unwrap() = true;
            gate.1.notify_all();
            for t in threads {
                t.join().unwrap();
            }
        }
        _ => {
            eprintln!("usage: snapbench memory MIB | idle THREADS");
            std::process::exit(2);
        }
    }
}
