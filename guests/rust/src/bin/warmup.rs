//! A program that takes about a second to start — it builds a table of 8 Mi entries, each
//! the end of a chain of hashing — and then serves: for every line `N` on stdin it prints
//! `N table[N]`. What `--snapshot-on first-stdin` is for: its snapshot is taken where it
//! starts reading, so a restore skips the second (bench/instant.sh measures both).
use std::io::BufRead;

const ENTRIES: usize = 8 << 20;
const ROUNDS: u32 = 60;

fn main() {
    let mut table = vec![0u32; ENTRIES];
    let mut x: u32 = 0x9E37_79B9;
    for (i, slot) in table.iter_mut().enumerate() {
        for _ in 0..ROUNDS {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x = x.wrapping_add(i as u32);
        }
        *slot = x;
    }
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        match line.trim().parse::<usize>() {
            Ok(n) if n < ENTRIES => println!("{n} {}", table[n]),
            _ => println!("? {line}"),
        }
    }
}
