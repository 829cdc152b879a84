//! The synthetic /dev: null, zero, full, urandom — as a preopen of its own, or inside a
//! mount at `/` (then paths go through that preopen as `dev/NAME`).
use wasmix_guests::wasi;
use wasmix_guests::*;

fn main() {
    let (dev, prefix) = match (preopen("/dev"), preopen("/")) {
        (Some(dev), _) => (dev, ""),
        (None, Some(root)) => (root, "dev/"),
        (None, None) => fail("no /dev"),
    };
    let at = |name: &str| format!("{prefix}{name}");
    let rw = wasi::RIGHTS_FD_READ | wasi::RIGHTS_FD_WRITE | wasi::RIGHTS_FD_FILESTAT_GET;
    let open = |name: &str| ok(name, unsafe { wasi::path_open(dev, 0, &at(name), 0, rw, 0, 0) });
    let mut buf = [7u8; 64];
    let null = open("null");
    check(read_some(null, &mut buf) == Ok(0), "null reads EOF");
    check(write_all(null, b"gone") == 4, "null swallows writes");
    check(ok("stat", unsafe { wasi::fd_filestat_get(null) }).filetype == wasi::FILETYPE_CHARACTER_DEVICE, "null is a char device");
    let zero = open("zero");
    check(read_some(zero, &mut buf) == Ok(64) && buf == [0u8; 64], "zero reads zeros");
    let full = open("full");
    let c = wasi::Ciovec { buf: buf.as_ptr(), buf_len: 1 };
    check(unsafe { wasi::fd_write(full, &[c]) } == Err(wasi::ERRNO_NOSPC), "full is ENOSPC");
    let rnd = open("urandom");
    check(read_some(rnd, &mut buf) == Ok(64) && buf != [0u8; 64], "urandom reads bytes");
    expect_errno("missing node", unsafe { wasi::path_open(dev, 0, &at("sda"), 0, rw, 0, 0) }, &[wasi::ERRNO_NOENT]);
    expect_errno("create in /dev", unsafe { wasi::path_create_directory(dev, &at("x")) }, &[wasi::ERRNO_PERM, wasi::ERRNO_NOTCAPABLE]);
    expect_errno("escape /dev", unsafe { wasi::path_open(dev, 0, "../etc/passwd", 0, rw, 0, 0) }, &[wasi::ERRNO_PERM, wasi::ERRNO_NOTCAPABLE]);
    println!("dev ok");
}
