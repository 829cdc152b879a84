//! Takes snapshot after snapshot while it changes half a megabyte of memory: what the
//! crash-consistency test kills the runtime in the middle of, over and over. Only the final
//! line is printed, so a run restored any number of times prints what a straight run does.
//!
//! `snapshots N`: N rounds (default 40).

fn main() {
    let rounds: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(40);
    let mut state = vec![0u64; 1 << 16];
    for round in 0..rounds {
        for (j, x) in state.iter_mut().enumerate() {
            *x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(round ^ j as u64);
        }
        // Without a journal this answers ENOTSUP, and the run goes on the same.
        let _ = unsafe { wasix::proc_snapshot() };
    }
    let sum = state.iter().fold(0u64, |a, b| a.rotate_left(5) ^ b);
    println!("done {rounds} {sum:016x}");
}
