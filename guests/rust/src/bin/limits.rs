//! Resource limits, seen from inside: `alloc` takes memory 1 MiB at a time (the
//! allocator grows the linear memory) until the allocator says no, then prints
//! `allocated N MiB` and exits 0 — under `--max-memory` that is where the limit is, not a
//! crash. `spin` computes forever (for wall-clock and CPU limits); `spin-catch` too, with a
//! signal handler that says `got signal N` and goes on. `open-fifo PATH` says `opening` and
//! opens PATH for writing (a FIFO: it waits for a reader).
use wasmix_guests::proc;

#[no_mangle]
pub extern "C" fn __wasm_signal(sig: i32) {
    let _ = proc::write_fd(1, format!("got signal {sig}\n").as_bytes());
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("alloc") => {
            let mut kept: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut block = Vec::new();
                if block.try_reserve_exact(1 << 20).is_err() {
                    break;
                }
                // Touch it, so the memory is really there.
                block.resize(1 << 20, 1);
                kept.push(block);
            }
            println!("allocated {} MiB", kept.len());
        }
        Some(mode @ ("spin" | "spin-catch")) => {
            if mode == "spin-catch" {
                proc::register_signal_callback();
            }
            println!("spinning");
            let mut x = 1u64;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        Some("open-fifo") => {
            let path = std::env::args().nth(2).unwrap_or_default();
            println!("opening");
            let opened = std::fs::OpenOptions::new().write(true).open(&path);
            println!("opened: {}", opened.is_ok());
        }
        _ => {
            eprintln!("usage: limits alloc | spin | spin-catch | open-fifo PATH");
            std::process::exit(2);
        }
    }
}
