//! A compute-bound guest for the speed comparison: sieve + hashing, result printed.
fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20_000_000);
    let mut sieve = vec![true; n + 1];
    sieve[0] = false;
    sieve[1] = false;
    let mut i = 2;
    while i * i <= n {
        if sieve[i] {
            let mut j = i * i;
            while j <= n {
                sieve[j] = false;
                j += i;
            }
        }
        i += 1;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut count = 0u64;
    for (k, p) in sieve.iter().enumerate() {
        if *p {
            count += 1;
            h = (h ^ k as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    for _ in 0..30 {
        for k in 0..n as u64 / 8 {
            h = (h.rotate_left(5) ^ k).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    println!("{count} {h:x}");
}
