//! Resource limits, seen from inside: `alloc` takes memory 1 MiB at a time (the
//! allocator grows the linear memory) until the allocator says no, then prints
//! `allocated N MiB` and exits 0 — under `--max-memory` that is where the limit is, not a
//! crash. `spin` computes forever (for wall-clock and CPU limits).
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
        Some("spin") => {
            println!("spinning");
            let mut x = 1u64;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        _ => {
            eprintln!("usage: limits alloc | spin");
            std::process::exit(2);
        }
    }
}
