//! Snapshot measurements inside the guest, read by bench/snapshot.sh:
//!
//! * `memory MIB`: fills MIB MiB with incompressible bytes, then times its own
//!   `proc_snapshot` (request → every thread runs again, the snapshot committed and durable),
//!   with a computing thread that measures the pause beside it.
//! * `durable MIB`: the same without the computing thread (which would take a CPU from the
//!   writer on a small machine).
//! * `idle N`: N threads blocked on a condition variable; times `proc_snapshot`.
//! * `swaps MIB` (a test, not a measurement): a thread swaps random pairs of a MIB MiB
//!   permutation without pause while the main thread takes three snapshots, prints
//!   `snapshot done`, and waits for a line on stdin; then it stops the swapper and prints
//!   whether the array is still a permutation — which a restored run's memory is only if
//!   every page of it was written as it was at one instant.
//!
//! * `incremental MIB PERMILLE`: fills MIB MiB as `durable` does and snapshots it (a full
//!   snapshot), then rewrites PERMILLE ‰ of its pages (spread at random) and times a second,
//!   incremental one, with the computing thread beside it. The second set of figures is the
//!   increment's. Each page chosen gets 8 new bytes; `incremental-whole` rewrites it whole;
//!   `incremental-durable` is `incremental` without the computing thread (as `durable` is
//!   `memory` without it).
//! * `pattern SEED ROUNDS MIB` (a test): MIB MiB, then ROUNDS rounds of writes at random
//!   (from SEED: runs of pages rewritten, some zeroed, some single bytes), a snapshot after
//!   each; then prints `hash H` of the whole buffer and `snapshot done`, and waits for a
//!   line on stdin. A run restored from the last snapshot prints the same `hash` if the
//!   snapshots (a full one and increments on it) compose to the memory as it was.
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
    static GAP_END: AtomicU64 = AtomicU64::new(0);
    // Called again (an increment after a full snapshot): a fresh observer.
    DONE.store(false, Ordering::SeqCst);
    RUNNING.store(false, Ordering::SeqCst);
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
            if gap > GAP.fetch_max(gap, Ordering::Relaxed) {
                GAP_END.store(wall_ns() as u64, Ordering::Relaxed);
            }
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
    // When the longest pause ended (realtime clock), to line it up with the runtime's trace.
    println!("pause_end_wall_ns {}", GAP_END.load(Ordering::SeqCst));
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
        Some(mode @ ("incremental" | "incremental-whole" | "incremental-durable")) => {
            let permille: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10);
            // Page-aligned, so a page chosen is one page of the memory: 4096 bytes rewritten
            // off a page boundary would dirty two.
            let mut storage = vec![0u8; (n << 20) + 4096];
            let skip = storage.as_ptr().align_offset(4096);
            let bytes = &mut storage[skip..skip + (n << 20)];
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
            let mut next = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            for chunk in bytes.chunks_mut(8) {
                chunk.copy_from_slice(&next().to_le_bytes()[..chunk.len()]);
            }
            snapshot(false);
            let pages = bytes.len() / 4096;
            for _ in 0..pages * permille / 1000 {
                let p = (next() as usize) % pages;
                if mode != "incremental-whole" {
                    bytes[p * 4096..p * 4096 + 8].copy_from_slice(&next().to_le_bytes());
                } else {
                    for chunk in bytes[p * 4096..(p + 1) * 4096].chunks_mut(8) {
                        chunk.copy_from_slice(&next().to_le_bytes());
                    }
                }
            }
            snapshot(mode != "incremental-durable");
            println!("check {}", bytes.iter().step_by(4096).fold(0u8, |a, b| a ^ b));
        }
        Some("pattern") => {
            let seed: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
            let rounds: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(3);
            let mib: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(8);
            pattern(seed, rounds, mib);
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
        Some("swaps") => swaps(n),
        _ => {
            eprintln!(
                "usage: snapbench memory MIB | durable MIB | incremental MIB PERMILLE | \
                 idle THREADS | swaps MIB | pattern SEED ROUNDS MIB"
            );
            std::process::exit(2);
        }
    }
}

fn pattern(seed: u64, rounds: usize, mib: usize) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut bytes = vec![0u8; mib << 20];
    let pages = bytes.len() / 4096;
    for round in 0..rounds {
        // A different mix each round: many or few runs, long or short, some zeroed.
        let runs = 1 + (next() as usize) % 64;
        for _ in 0..runs {
            let start = (next() as usize) % pages;
            let len = 1 + (next() as usize) % if next() % 4 == 0 { 64 } else { 3 };
            let end = (start + len).min(pages);
            let how = next() % 4;
            for p in start..end {
                let page = &mut bytes[p * 4096..(p + 1) * 4096];
                match how {
                    0 => page.fill(0),
                    1 => page[(next() as usize) % 4096] = next() as u8,
                    _ => {
                        for chunk in page.chunks_mut(8) {
                            chunk.copy_from_slice(&next().to_le_bytes());
                        }
                    }
                }
            }
        }
        if let Err(e) = unsafe { wasix::proc_snapshot() } {
            eprintln!("proc_snapshot (round {round}): {e:?}");
            std::process::exit(1);
        }
    }
    // FNV-1a over the whole buffer: what a restored run must see too.
    let hash = bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    println!("hash {hash:016x}");
    println!("snapshot done");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
}

fn swaps(mib: usize) {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    static STOP: AtomicBool = AtomicBool::new(false);
    static STARTED: AtomicBool = AtomicBool::new(false);
    let n = (mib << 20) / 4;
    // Atomics only so two threads may share the array; each element is written by the
    // swapper alone.
    let values: Arc<Vec<AtomicU32>> = Arc::new((0..n as u32).map(AtomicU32::new).collect());
    let swapper = {
        let values = Arc::clone(&values);
        std::thread::spawn(move || {
            let mut x: u64 = 0x2545_F491_4F6C_DD1D;
            STARTED.store(true, Ordering::SeqCst);
            while !STOP.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let (i, j) = ((x as usize) % n, ((x >> 32) as usize) % n);
                let a = values[i].load(Ordering::Relaxed);
                let b = values[j].load(Ordering::Relaxed);
                values[i].store(b, Ordering::Relaxed);
                values[j].store(a, Ordering::Relaxed);
            }
        })
    };
    while !STARTED.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    // Three in a row: each later one arms a memory the previous one has just released.
    for _ in 0..3 {
        if let Err(e) = unsafe { wasix::proc_snapshot() } {
            eprintln!("proc_snapshot: {e:?}");
            std::process::exit(1);
        }
    }
    println!("snapshot done");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    STOP.store(true, Ordering::SeqCst);
    swapper.join().unwrap();
    let mut seen = vec![false; n];
    for v in values.iter() {
        let v = v.load(Ordering::Relaxed) as usize;
        if v >= n || seen[v] {
            println!("broken: {v} out of place");
            std::process::exit(1);
        }
        seen[v] = true;
    }
    println!("permutation intact");
}

