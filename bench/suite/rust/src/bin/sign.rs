//! Signatures: Ed25519 (ed25519-dalek) key derivation, signing and verifying, 200 messages
//! a round.
use ed25519_dalek::{Signer, SigningKey, Verifier};
use wasmix_suite::*;

fn main() {
    let rounds = start();
    let mut rng = Rng::new(13);
    let mut h = FNV_START;
    for _ in 0..rounds {
        let mut seed = [0u8; 32];
        seed.iter_mut().for_each(|b| *b = rng.next_u64() as u8);
        let key = SigningKey::from_bytes(&seed);
        let public = key.verifying_key();
        for i in 0..200u32 {
            let mut msg = rng.text(64 + (i as usize % 200));
            msg.extend_from_slice(&i.to_le_bytes());
            let sig = key.sign(&msg);
            public.verify(&msg, &sig).expect("a valid signature");
            h = fnv(&sig.to_bytes(), h);
        }
    }
    report("sign", h);
}
