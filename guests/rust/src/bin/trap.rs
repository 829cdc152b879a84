//! Traps inside a named function so the backtrace has something to show.
#[inline(never)]
#[no_mangle]
pub extern "C" fn deliberately_unreachable(x: u32) -> u32 {
    if x > 1 {
        std::process::abort();
    }
    x
}

fn main() {
    let n = std::env::args().count() as u32 + 1;
    println!("{}", deliberately_unreachable(std::hint::black_box(n)));
}
