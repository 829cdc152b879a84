//! What every program of the suite shares: its size argument, a deterministic input
//! generator, and the one line of output (a checksum, so runs under different runtimes can
//! be compared). With the `signal` feature the program registers a signal handler first, as
//! a WASIX program with handlers does.

/// The workload's scale, the program's first argument (default 1).
pub fn scale() -> usize {
    let arg = std::env::args().nth(1);
    let n = arg.as_deref().map_or(Ok(1), str::parse::<usize>);
    match n {
        Ok(n) if n > 0 => n,
        _ => {
            eprintln!("usage: PROGRAM [SCALE]: SCALE is a positive whole number");
            std::process::exit(2);
        }
    }
}

/// Starts the program: registers the signal handler in the `signal` variant.
pub fn start() -> usize {
    #[cfg(feature = "signal")]
    {
        // What a WASIX libc's `signal()` does on its first handler.
        let name = "__wasm_signal";
        // SAFETY: the runtime reads `name.len()` bytes at `name`, which live meanwhile.
        unsafe { callback_signal(name.as_ptr() as i32, name.len() as i32) };
    }
    scale()
}

#[cfg(feature = "signal")]
#[link(wasm_import_module = "wasix_32v1")]
extern "C" {
    fn callback_signal(name: i32, len: i32);
}

#[cfg(feature = "signal")]
#[no_mangle]
pub extern "C" fn __wasm_signal(_sig: i32) {}

/// A small, fast, deterministic generator (xorshift64*), so inputs are the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A word of lowercase letters, 2 to 9 long.
    pub fn word(&mut self) -> String {
        let len = 2 + self.below(8) as usize;
        (0..len)
            .map(|_| (b'a' + self.below(26) as u8) as char)
            .collect()
    }

    /// `n` bytes of text made of words, compressible like prose.
    pub fn text(&mut self, n: usize) -> Vec<u8> {
        let vocab: Vec<String> = (0..512).map(|_| self.word()).collect();
        let mut out = Vec::with_capacity(n + 16);
        while out.len() < n {
            out.extend_from_slice(vocab[self.below(512) as usize].as_bytes());
            out.push(if self.below(12) == 0 { b'\n' } else { b' ' });
        }
        out.truncate(n);
        out
    }
}

/// FNV-1a, for the checksum lines.
pub fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Prints the program's result line.
pub fn report(name: &str, value: u64) {
    println!("{name} {value:016x}");
}
