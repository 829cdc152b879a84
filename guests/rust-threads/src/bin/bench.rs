//! Measurements inside the guest (one run prints one line: `NAME value unit`), compared by
//! bench/wasix.sh with the same operations done natively.
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use wasix::wasix_32v1 as x;
use wasmix_guests::proc;

fn futex_wait(word: &AtomicU32, expected: u32) {
    let mut woken = 0u8;
    let none = [0u64; 2];
    unsafe {
        x::futex_wait(
            word.as_ptr() as i32,
            expected as i32,
            none.as_ptr() as i32,
            &mut woken as *mut u8 as i32,
        )
    };
}

fn futex_wake(word: &AtomicU32) {
    let mut woken = 0u8;
    unsafe { x::futex_wake(word.as_ptr() as i32, &mut woken as *mut u8 as i32) };
}

static HANDLED_AT: AtomicU64 = AtomicU64::new(0);
static HANDLED: AtomicU32 = AtomicU32::new(0);

#[no_mangle]
pub extern "C" fn __wasm_signal(_sig: i32) {
    HANDLED_AT.store(proc::now_ns(), Ordering::SeqCst);
    HANDLED.fetch_add(1, Ordering::SeqCst);
}

// wasi-libc's own pthreads (what a C program gets), beside Rust's `thread::spawn` on them.
extern "C" {
    fn pthread_create(
        thread: *mut usize,
        attr: *const u8,
        start: extern "C" fn(*mut u8) -> *mut u8,
        arg: *mut u8,
    ) -> i32;
    fn pthread_join(thread: usize, ret: *mut *mut u8) -> i32;
}

extern "C" fn empty(_: *mut u8) -> *mut u8 {
    std::ptr::null_mut()
}

fn percentiles(mut v: Vec<u64>) -> (u64, u64) {
    v.sort_unstable();
    (v[v.len() / 2], v[v.len() * 99 / 100])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    match args.get(1).map(String::as_str).unwrap_or("") {
        "threads" => {
            let t0 = proc::now_ns();
            for _ in 0..n {
                thread::spawn(|| {}).join().unwrap();
            }
            println!("thread_spawn_join {} ns", (proc::now_ns() - t0) / n);
        }
        "pthreads" => {
            // The same as bench/native_wasix.c's `threads`: pthread_create + pthread_join of
            // an empty thread, with libc's default attributes.
            let t0 = proc::now_ns();
            for _ in 0..n {
                let mut t = 0usize;
                // SAFETY: wasi-libc's pthread calls with a valid out-pointer and no attributes.
                unsafe {
                    assert_eq!(
                        pthread_create(&mut t, std::ptr::null(), empty, std::ptr::null_mut()),
                        0
                    );
                    assert_eq!(pthread_join(t, std::ptr::null_mut()), 0);
                }
            }
            println!("pthread_create_join {} ns", (proc::now_ns() - t0) / n);
        }
        "futex-parked" => {
            // For the kill table: the main thread waits on a WASIX futex nobody wakes.
            let word = AtomicU32::new(0);
            println!("parked");
            loop {
                futex_wait(&word, 0);
            }
        }
        "futex" => {
            // Ping-pong: the word goes 0 → 1 (main) → 2 (peer) → 3 ...; each side waits for
            // its turn on the WASIX futex.
            let word = Arc::new(AtomicU32::new(0));
            let w2 = word.clone();
            let rounds = n as u32;
            let peer = thread::spawn(move || {
                for i in 0..rounds {
                    let want = 2 * i + 1;
                    loop {
                        let v = w2.load(Ordering::SeqCst);
                        if v == want {
                            break;
                        }
                        futex_wait(&w2, v);
                    }
                    w2.store(want + 1, Ordering::SeqCst);
                    futex_wake(&w2);
                }
            });
            let t0 = proc::now_ns();
            for i in 0..rounds {
                word.store(2 * i + 1, Ordering::SeqCst);
                futex_wake(&word);
                loop {
                    let v = word.load(Ordering::SeqCst);
                    if v == 2 * i + 2 {
                        break;
                    }
                    futex_wait(&word, v);
                }
            }
            let dt = proc::now_ns() - t0;
            peer.join().unwrap();
            println!("futex_one_way {} ns", dt / (2 * n));
        }
        "signal-blocked" | "signal-compute" => {
            let compute = args[1] == "signal-compute";
            proc::register_signal_callback();
            let main_tid = proc::tid();
            let sent_at = Arc::new(AtomicU64::new(0));
            let go = Arc::new(AtomicU32::new(0));
            let (s2, g2) = (sent_at.clone(), go.clone());
            let rounds = n as u32;
            let sender = thread::spawn(move || {
                for i in 0..rounds {
                    // Wait until main is waiting (or spinning) for round i.
                    // Polls with sleeps, not spins: a spinning sender could hold the core the
                    // woken receiver needs.
                    while g2.load(Ordering::SeqCst) != i + 1 {
                        thread::sleep(std::time::Duration::from_micros(50));
                    }
                    thread::sleep(std::time::Duration::from_micros(200));
                    s2.store(proc::now_ns(), Ordering::SeqCst);
                    proc::thread_signal(main_tid, proc::SIGUSR1);
                }
            });
            let park = AtomicU32::new(0);
            let mut lat = Vec::with_capacity(n as usize);
            for i in 0..rounds {
                go.store(i + 1, Ordering::SeqCst);
                if compute {
                    // No host calls: only the epoch deadline brings the handler in.
                    let mut x = 1u64;
                    while HANDLED.load(Ordering::SeqCst) < i + 1 {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    }
                    std::hint::black_box(x);
                } else {
                    while HANDLED.load(Ordering::SeqCst) < i + 1 {
                        futex_wait(&park, 0); // blocked in a host call until the signal
                    }
                }
                lat.push(HANDLED_AT.load(Ordering::SeqCst) - sent_at.load(Ordering::SeqCst));
            }
            sender.join().unwrap();
            let (p50, p99) = percentiles(lat);
            let what = if compute { "compute" } else { "blocked" };
            println!("signal_{what}_p50 {p50} ns");
            println!("signal_{what}_p99 {p99} ns");
        }
        other => {
            eprintln!("unknown bench {other}");
            std::process::exit(2);
        }
    }
}
