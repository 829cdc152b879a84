//! A busy poller, as event loops written for non-blocking I/O are: `poll` asks poll_oneoff
//! about stdin with a zero timeout, `read` makes non-blocking reads of it, over and over
//! until a line arrives; then it prints `got LINE after N polls` and exits. It says
//! `polling` first.
use std::io::Write;

use wasmix_guests::wasi;

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    println!("polling");
    std::io::stdout().flush().unwrap();
    let mut polls = 0u64;
    let mut buf = [0u8; 256];
    let mut line = Vec::new();
    if mode == "read" {
        // SAFETY: plain WASI calls on stdin.
        let flags = unsafe { wasi::fd_fdstat_get(0) }.unwrap().fs_flags;
        unsafe { wasi::fd_fdstat_set_flags(0, flags | wasi::FDFLAGS_NONBLOCK) }.unwrap();
    }
    while !line.ends_with(b"\n") {
        polls += 1;
        let readable = match mode.as_str() {
            "read" => true,
            _ => {
                let subs = [
                    wasi::Subscription {
                        userdata: 1,
                        u: wasi::SubscriptionU {
                            tag: wasi::EVENTTYPE_FD_READ.raw(),
                            u: wasi::SubscriptionUU {
                                fd_read: wasi::SubscriptionFdReadwrite { file_descriptor: 0 },
                            },
                        },
                    },
                    wasi::Subscription {
                        userdata: 2,
                        u: wasi::SubscriptionU {
                            tag: wasi::EVENTTYPE_CLOCK.raw(),
                            u: wasi::SubscriptionUU {
                                clock: wasi::SubscriptionClock {
                                    id: wasi::CLOCKID_MONOTONIC,
                                    timeout: 0,
                                    precision: 0,
                                    flags: 0,
                                },
                            },
                        },
                    },
                ];
                // SAFETY: zeroed events are valid for the call to fill.
                let mut out: [wasi::Event; 2] = unsafe { std::mem::zeroed() };
                let n = unsafe { wasi::poll_oneoff(subs.as_ptr(), out.as_mut_ptr(), 2) }.unwrap();
                out[..n].iter().any(|e| e.userdata == 1)
            }
        };
        if !readable {
            continue;
        }
        // SAFETY: reading into our own buffer.
        let iov = [wasi::Iovec { buf: buf.as_mut_ptr(), buf_len: buf.len() }];
        match unsafe { wasi::fd_read(0, &iov) } {
            Ok(0) => break,
            Ok(n) => line.extend_from_slice(&buf[..n]),
            Err(wasi::ERRNO_AGAIN) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    print!("got {} after {polls} polls\n", String::from_utf8_lossy(&line).trim_end());
}
