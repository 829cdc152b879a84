//! std threads over shared memory: locks, condition variables, barriers, thread-locals; and
//! how a thread's exit or trap ends the whole process. The first argument picks the scenario.
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread;

thread_local! {
    static MINE: Cell<u64> = const { Cell::new(0) };
}

fn basic() {
    const THREADS: u64 = 8;
    const EACH: u64 = 2000;
    let counter = Arc::new(Mutex::new(0u64));
    let atomic = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let (counter, atomic, barrier) = (counter.clone(), atomic.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                for _ in 0..EACH {
                    *counter.lock().unwrap() += 1;
                    atomic.fetch_add(1, Ordering::Relaxed);
                    MINE.with(|m| m.set(m.get() + 1));
                }
                MINE.with(|m| m.get()) + i * 0
            })
        })
        .collect();
    let locals: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    println!("mutex sum {}", *counter.lock().unwrap());
    println!("atomic sum {}", atomic.load(Ordering::Relaxed));
    println!("thread-locals each {}", locals.iter().all(|l| *l == EACH));
    println!("main thread-local {}", MINE.with(|m| m.get()));

    // A condition variable hand-off, many rounds (producer/consumer).
    let pair = Arc::new((Mutex::new((0u32, false)), Condvar::new()));
    let p2 = pair.clone();
    let consumer = thread::spawn(move || {
        let (lock, cv) = &*p2;
        let mut seen = 0u32;
        loop {
            let mut g = lock.lock().unwrap();
            while g.0 == seen && !g.1 {
                g = cv.wait(g).unwrap();
            }
            if g.0 == seen && g.1 {
                return seen;
            }
            seen = g.0;
            cv.notify_all();
        }
    });
    {
        let (lock, cv) = &*pair;
        for i in 1..=500u32 {
            let mut g = lock.lock().unwrap();
            g.0 = i;
            cv.notify_all();
            while g.0 == i && i != 500 {
                let (ng, _) = cv.wait_timeout(g, std::time::Duration::from_millis(50)).unwrap();
                g = ng;
                break;
            }
        }
        let mut g = lock.lock().unwrap();
        g.1 = true;
        cv.notify_all();
    }
    println!("condvar rounds {}", consumer.join().unwrap());
    println!("parallelism>0 {}", thread::available_parallelism().map(|n| n.get() > 0).unwrap_or(false));
}

fn main() {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    match scenario.as_str() {
        "basic" => basic(),
        "exit-in-thread" => {
            let t = thread::spawn(|| {
                thread::sleep(std::time::Duration::from_millis(20));
                std::process::exit(7);
            });
            t.join().unwrap();
            println!("not reached");
        }
        "trap-in-thread" => {
            let t = thread::spawn(|| {
                thread::sleep(std::time::Duration::from_millis(20));
                std::process::abort();
            });
            let _ = t.join();
            println!("not reached");
        }
        "main-returns" => {
            // Returning from main ends the process even with threads still blocked.
            let pair = Arc::new((Mutex::new(()), Condvar::new()));
            for _ in 0..3 {
                let p = pair.clone();
                thread::spawn(move || {
                    let g = p.0.lock().unwrap();
                    let _g = p.1.wait(g).unwrap();
                });
            }
            thread::sleep(std::time::Duration::from_millis(20));
            println!("main done");
        }
        "parked" => {
            // Every thread parks in a raw atomic wait (std's Condvar); only a signal or kill
            // can end this process.
            let pair = Arc::new((Mutex::new(false), Condvar::new()));
            let waiting = Arc::new(AtomicU64::new(0));
            for _ in 0..4 {
                let (p, n) = (pair.clone(), waiting.clone());
                thread::spawn(move || {
                    let g = p.0.lock().unwrap();
                    n.fetch_add(1, Ordering::SeqCst);
                    let _g = p.1.wait_while(g, |done| !*done).unwrap();
                });
            }
            while waiting.load(Ordering::SeqCst) < 4 {
                thread::yield_now();
            }
            // Each thread held the lock until its wait released it: all four are parked.
            drop(pair.0.lock().unwrap());
            println!("parked");
            let g = pair.0.lock().unwrap();
            let _g = pair.1.wait_while(g, |done| !*done).unwrap();
        }
        "spawn-many" => {
            // Spawns threads until the runtime refuses (EAGAIN), then joins them.
            let stop = Arc::new((Mutex::new(false), Condvar::new()));
            let mut handles = Vec::new();
            loop {
                let s = stop.clone();
                match thread::Builder::new().spawn(move || {
                    let g = s.0.lock().unwrap();
                    let _g = s.1.wait_while(g, |d| !*d).unwrap();
                }) {
                    Ok(h) => handles.push(h),
                    Err(e) => {
                        println!("spawned {} then: {}", handles.len(), e.kind());
                        break;
                    }
                }
                if handles.len() > 10_000 {
                    println!("no limit");
                    break;
                }
            }
            *stop.0.lock().unwrap() = true;
            stop.1.notify_all();
            for h in handles {
                h.join().unwrap();
            }
            println!("joined all");
        }
        "alloc" => {
            // A thread takes memory 1 MiB at a time until the allocator says no (the shared
            // memory cannot grow): under --max-memory, where the limit is.
            let n = thread::spawn(|| {
                let mut kept: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut block = Vec::new();
                    if block.try_reserve_exact(1 << 20).is_err() {
                        return kept.len();
                    }
                    block.resize(1 << 20, 1);
                    kept.push(block);
                }
            })
            .join()
            .unwrap();
            println!("allocated {n} MiB");
        }
        other => {
            eprintln!("unknown scenario {other}");
            std::process::exit(2);
        }
    }
}
