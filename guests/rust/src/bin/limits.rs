//! Resource limits, seen from inside: `alloc` takes memory 1 MiB at a time (the
//! allocator grows the linear memory) until the allocator says no, then prints
//! `allocated N MiB` and exits 0 — under `--max-memory` that is where the limit is, not a
//! crash. `spin` computes forever (for wall-clock and CPU limits); `spin-catch` too, with a
//! signal handler that says `got signal N` and goes on. `open-fifo PATH` says `opening` and
//! opens PATH for writing (a FIFO: it waits for a reader). `hold-and-spawn N` takes N MiB,
//! then runs `limits alloc` as a child (from /bin) while holding it, and says how its child
//! ended: two processes under one total limit. `handler-spin` computes forever inside a
//! SIGUSR1 handler (`in handler` first; any other signal exits there with 128+N); `join-sleeper` spawns `child sleep` and says
//! `joining` as it waits for it.
use std::sync::atomic::{AtomicBool, Ordering};

use wasmix_guests::proc;

/// Takes memory 1 MiB at a time, touched, until the allocator says no or `most` MiB.
fn take(most: usize) -> Vec<Vec<u8>> {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    while kept.len() < most {
        let mut block = Vec::new();
        if block.try_reserve_exact(1 << 20).is_err() {
            break;
        }
        block.resize(1 << 20, 1);
        kept.push(block);
    }
    kept
}

/// Set by `handler-spin`: the handler then never returns.
static HANDLER_SPINS: AtomicBool = AtomicBool::new(false);

#[no_mangle]
pub extern "C" fn __wasm_signal(sig: i32) {
    if HANDLER_SPINS.load(Ordering::SeqCst) {
        if sig != 10 {
            // Any other signal (a SIGTERM arriving inside the SIGUSR1 handler) ends the
            // process, as SIGTERM's default action would.
            std::process::exit(128 + sig);
        }
        let _ = proc::write_fd(1, b"in handler\n");
        spin();
    }
    let _ = proc::write_fd(1, format!("got signal {sig}\n").as_bytes());
}

fn spin() -> ! {
    let mut x = 1u64;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("alloc") => {
            let kept = take(usize::MAX);
            println!("allocated {} MiB", kept.len());
        }
        Some("hold-and-spawn") => {
            let n = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(0);
            let kept = take(n);
            println!("holding {} MiB", kept.len());
            match proc::spawn("limits", &["limits", "alloc"], &[], &[], &[]) {
                Ok(pid) => {
                    let (_, _, status) = proc::join(Some(pid), false);
                    println!("child: {status:?}");
                }
                Err(errno) => println!("spawn: errno {errno}"),
            }
            std::hint::black_box(&kept);
        }
        Some(mode @ ("spin" | "spin-catch")) => {
            if mode == "spin-catch" {
                proc::register_signal_callback();
            }
            println!("spinning");
            spin();
        }
        Some("handler-spin") => {
            HANDLER_SPINS.store(true, Ordering::SeqCst);
            proc::register_signal_callback();
            proc::raise(10); // SIGUSR1 (WASI numbering)
            println!("the handler returned");
        }
        Some("join-sleeper") => {
            let pid = proc::spawn("child", &["child", "sleep", "100000000"], &[], &[], &[])
                .unwrap_or_else(|e| panic!("spawn: errno {e}"));
            println!("joining");
            let _ = proc::join(Some(pid), false);
        }
        Some("open-fifo") => {
            let path = std::env::args().nth(2).unwrap_or_default();
            println!("opening");
            let opened = std::fs::OpenOptions::new().write(true).open(&path);
            println!("opened: {}", opened.is_ok());
        }
        _ => {
            eprintln!("usage: limits alloc | hold-and-spawn MIB | handler-spin | join-sleeper | spin | spin-catch | open-fifo PATH");
            std::process::exit(2);
        }
    }
}
