//! Accepts one connection on the first preopened socket and echoes what it reads until EOF.
use wasmix_guests::wasi;
use wasmix_guests::*;

fn main() {
    let listener = (3u32..64)
        .find(|fd| {
            unsafe { wasi::fd_fdstat_get(*fd) }
                .map(|s| s.fs_filetype == wasi::FILETYPE_SOCKET_STREAM)
                .unwrap_or(false)
        })
        .unwrap_or_else(|| fail("no preopened socket"));
    expect_errno("recv on a listener", unsafe {
        let mut b = [0u8; 1];
        wasi::sock_recv(listener, &[wasi::Iovec { buf: b.as_mut_ptr(), buf_len: 1 }], 0)
    }.map(|_| ()), &[wasi::ERRNO_NOTCONN, wasi::ERRNO_BADF, wasi::ERRNO_INVAL]);
    if std::env::args().nth(1).as_deref() == Some("announce") {
        // For tests that must know it is (about to be) blocked in its accept.
        println!("accepting");
    }
    let conn = ok("sock_accept", unsafe { wasi::sock_accept(listener, 0) });
    let mut buf = [0u8; 1024];
    loop {
        let iov = [wasi::Iovec { buf: buf.as_mut_ptr(), buf_len: buf.len() }];
        let (n, _) = ok("sock_recv", unsafe { wasi::sock_recv(conn, &iov, 0) });
        if n == 0 {
            break;
        }
        let out = [wasi::Ciovec { buf: buf.as_ptr(), buf_len: n }];
        ok("sock_send", unsafe { wasi::sock_send(conn, &out, 0) });
    }
    ok("sock_shutdown", unsafe { wasi::sock_shutdown(conn, wasi::SDFLAGS_WR) });
    expect_errno("shutdown stdout", unsafe { wasi::sock_shutdown(1, wasi::SDFLAGS_WR) }, &[wasi::ERRNO_NOTSOCK]);
    expect_errno("shutdown closed", unsafe { wasi::sock_shutdown(77, wasi::SDFLAGS_WR) }, &[wasi::ERRNO_BADF]);
    println!("echo done");
}
