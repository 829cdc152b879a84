//! proc_raise(argv[1]); prints "survived" if the signal's default action lets it.
fn main() {
    let sig: u8 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(15);
    let r = unsafe { wasmix_guests::wasi::wasi_snapshot_preview1::proc_raise(i32::from(sig)) };
    println!("survived {r:?}");
}
