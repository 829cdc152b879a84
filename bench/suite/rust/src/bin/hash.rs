//! Hashing: SHA-256 and BLAKE3 over 4 MiB a round, and a chain of short-message hashes.
use sha2::Digest;
use wasmix_suite::*;

fn main() {
    let rounds = start();
    let mut rng = Rng::new(11);
    let data: Vec<u8> = (0..(4 << 20)).map(|_| rng.next_u64() as u8).collect();
    let mut h = FNV_START;
    for round in 0..rounds {
        let mut sha = sha2::Sha256::new();
        sha.update((round as u64).to_le_bytes());
        sha.update(&data);
        h = fnv(&sha.finalize(), h);
        let mut b3 = blake3::Hasher::new();
        b3.update(&data);
        b3.update(&(round as u64).to_le_bytes());
        h = fnv(b3.finalize().as_bytes(), h);
        // Many short messages: the per-call overhead, as in password or Merkle hashing.
        let mut link = [0u8; 32];
        for _ in 0..20_000 {
            link = sha2::Sha256::digest(link).into();
        }
        h = fnv(&link, h);
    }
    report("hash", h);
}
