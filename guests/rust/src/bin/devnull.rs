//! Writes one byte N times (argv[1], default 1,000,000) to a path (argv[2], default /dev/null).
use wasmix_guests::wasi;
use wasmix_guests::*;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let path = args.next().unwrap_or_else(|| "/dev/null".into());
    let (dir, name) = path.rsplit_once('/').unwrap_or_else(|| fail("absolute path expected"));
    let dir = preopen(if dir.is_empty() { "/" } else { dir }).unwrap_or_else(|| fail("directory not preopened"));
    let fd = ok("open", unsafe { wasi::path_open(dir, 0, name, 0, wasi::RIGHTS_FD_WRITE, 0, 0) });
    let byte = [b'x'];
    let iov = [wasi::Ciovec { buf: byte.as_ptr(), buf_len: 1 }];
    for _ in 0..n {
        unsafe { wasi::fd_write(fd, &iov) }.unwrap();
    }
}
