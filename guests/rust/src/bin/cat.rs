//! Copies stdin to stdout.
use std::io::{Read, Write};
fn main() {
    let mut buf = vec![0u8; 65536];
    let (mut i, mut o) = (std::io::stdin().lock(), std::io::stdout().lock());
    loop {
        match i.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => o.write_all(&buf[..n]).unwrap(),
            Err(e) => {
                eprintln!("read: {e}");
                std::process::exit(1)
            }
        }
    }
}
