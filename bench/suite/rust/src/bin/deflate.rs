//! Compression: deflates and inflates generated prose with flate2 (miniz_oxide), 1 MiB a
//! round, at two levels.
use std::io::{Read, Write};
use wasmix_suite::*;

fn main() {
    let rounds = start();
    let mut rng = Rng::new(7);
    let mut h = FNV_START;
    for round in 0..rounds {
        let text = rng.text(1 << 20);
        let level = if round % 2 == 0 { 6 } else { 1 };
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
        enc.write_all(&text).unwrap();
        let packed = enc.finish().unwrap();
        let mut back = Vec::with_capacity(text.len());
        flate2::read::DeflateDecoder::new(&packed[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, text, "round trip");
        h = fnv(&packed, h);
    }
    report("deflate", h);
}
