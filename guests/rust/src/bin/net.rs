//! WASIX sockets from a guest: a TCP echo server and client, UDP, an epoll server
//! multiplexing many clients, accept interrupted by a signal, what the network policy
//! refuses, `resolve`, an HTTP server sending a file, and a pre-fork worker pool.
//!
//! Addresses are built as wasix-libc builds them (`common/net.h`): the port passed in is the
//! host-order value, little-endian; a port handed back is in network order (as Wasmer writes
//! it, and as older wasix-libc copies it into `sin_port`).
use std::sync::atomic::{AtomicU32, Ordering};

use wasmix_guests::proc;
use wasmix_guests::{check, fail};

mod x {
    #[link(wasm_import_module = "wasix_32v1")]
    extern "C" {
        pub fn sock_open(af: i32, ty: i32, proto: i32, ret: i32) -> i32;
        pub fn sock_pair(af: i32, ty: i32, proto: i32, ret0: i32, ret1: i32) -> i32;
        pub fn sock_bind(fd: i32, addr: i32) -> i32;
        pub fn sock_listen(fd: i32, backlog: i32) -> i32;
        pub fn sock_accept_v2(fd: i32, flags: i32, ret_fd: i32, ret_addr: i32) -> i32;
        pub fn sock_connect(fd: i32, addr: i32) -> i32;
        pub fn sock_addr_local(fd: i32, ret: i32) -> i32;
        pub fn sock_addr_peer(fd: i32, ret: i32) -> i32;
        pub fn sock_recv_from(
            fd: i32,
            iovs: i32,
            n: i32,
            flags: i32,
            ret_len: i32,
            ret_flags: i32,
            ret_addr: i32,
        ) -> i32;
        pub fn sock_send_to(fd: i32, iovs: i32, n: i32, flags: i32, addr: i32, ret: i32) -> i32;
        pub fn sock_send_file(out: i32, input: i32, offset: i64, count: i64, ret: i32) -> i32;
        pub fn sock_set_opt_flag(fd: i32, opt: i32, flag: i32) -> i32;
        pub fn sock_get_opt_flag(fd: i32, opt: i32, ret: i32) -> i32;
        pub fn sock_set_opt_size(fd: i32, opt: i32, size: i64) -> i32;
        pub fn sock_get_opt_size(fd: i32, opt: i32, ret: i32) -> i32;
        pub fn sock_set_opt_time(fd: i32, opt: i32, time: i32) -> i32;
        pub fn sock_get_opt_time(fd: i32, opt: i32, ret: i32) -> i32;
        pub fn resolve(host: i32, len: i32, port: i32, addrs: i32, n: i32, ret: i32) -> i32;
        pub fn epoll_create(ret: i32) -> i32;
        pub fn fd_event(initial: i64, flags: i32, ret: i32) -> i32;
        pub fn epoll_ctl(epfd: i32, op: i32, fd: i32, event: i32) -> i32;
        pub fn epoll_wait(epfd: i32, events: i32, max: i32, timeout: i64, ret: i32) -> i32;
    }
}

const INET4: i32 = 1;
const STREAM: i32 = 1;
const DGRAM: i32 = 2;
const NONBLOCK: i32 = 4;
const EAGAIN: i32 = 6;

/// An `__wasi_addr_port_t`, with room for every variant.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Addr([u8; 112]);

impl Addr {
    fn v4(ip: [u8; 4], port: u16) -> Addr {
        let mut a = Addr([0; 112]);
        a.0[0] = INET4 as u8;
        a.0[2..4].copy_from_slice(&port.to_le_bytes());
        a.0[4..8].copy_from_slice(&ip);
        a
    }
    fn v6(ip: [u8; 16], port: u16) -> Addr {
        let mut a = Addr([0; 112]);
        a.0[0] = 2;
        a.0[2..4].copy_from_slice(&port.to_le_bytes());
        a.0[4..20].copy_from_slice(&ip);
        a
    }
    fn unix(path: &str) -> Addr {
        let mut a = Addr([0; 112]);
        a.0[0] = 3;
        a.0[2..2 + path.len()].copy_from_slice(path.as_bytes());
        a
    }
    fn empty() -> Addr {
        Addr([0; 112])
    }
    fn ptr(&self) -> i32 {
        self.0.as_ptr() as i32
    }
    /// For the host to write into.
    fn out(&mut self) -> i32 {
        self.0.as_mut_ptr() as i32
    }
    /// The port handed back: network order.
    fn port(&self) -> u16 {
        u16::from_be_bytes([self.0[2], self.0[3]])
    }
    fn ip(&self) -> [u8; 4] {
        [self.0[4], self.0[5], self.0[6], self.0[7]]
    }
}

fn errno(what: &str, e: i32) {
    if e != 0 {
        fail(&format!("{what}: errno {e}"));
    }
}

fn socket(ty: i32) -> u32 {
    let mut fd = 0u32;
    errno("sock_open", unsafe { x::sock_open(INET4, ty, 0, &mut fd as *mut u32 as i32) });
    fd
}

fn local(fd: u32) -> Addr {
    let mut a = Addr::empty();
    errno("sock_addr_local", unsafe { x::sock_addr_local(fd as i32, a.out()) });
    a
}

/// A listening TCP socket on 127.0.0.1 at an ephemeral port, announced on stdout.
fn listener() -> u32 {
    let fd = socket(STREAM);
    errno("reuse_addr", unsafe { x::sock_set_opt_flag(fd as i32, 2, 1) });
    errno("sock_bind", unsafe { x::sock_bind(fd as i32, Addr::v4([127, 0, 0, 1], 0).ptr()) });
    errno("sock_listen", unsafe { x::sock_listen(fd as i32, 128) });
    println!("listening {}", local(fd).port());
    fd
}

fn accept(fd: u32, flags: i32) -> Result<(u32, Addr), i32> {
    let (mut conn, mut peer) = (0u32, Addr::empty());
    match unsafe { x::sock_accept_v2(fd as i32, flags, &mut conn as *mut u32 as i32, peer.out()) } {
        0 => Ok((conn, peer)),
        e => Err(e),
    }
}

fn connect(port: u16) -> Result<u32, i32> {
    let fd = socket(STREAM);
    match unsafe { x::sock_connect(fd as i32, Addr::v4([127, 0, 0, 1], port).ptr()) } {
        0 => Ok(fd),
        e => Err(e),
    }
}

fn write_all(fd: u32, mut data: &[u8]) {
    while !data.is_empty() {
        let n = proc::write_fd(fd, data).unwrap_or_else(|e| fail(&format!("write: {e:?}")));
        data = &data[n..];
    }
}

fn echo(conn: u32) {
    let mut buf = [0u8; 4096];
    loop {
        let n = proc::read_fd(conn, &mut buf).unwrap_or_else(|e| fail(&format!("read: {e:?}")));
        if n == 0 {
            break;
        }
        write_all(conn, &buf[..n]);
    }
}

fn port_arg() -> u16 {
    std::env::args()
        .nth(2)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| fail("need a port"))
}

static ALARMS: AtomicU32 = AtomicU32::new(0);

#[no_mangle]
pub extern "C" fn __wasm_signal(_sig: i32) {
    ALARMS.fetch_add(1, Ordering::SeqCst);
    if std::env::args().nth(1).as_deref() == Some("accept-signal") {
        let _ = proc::write_fd(1, b"alarm during accept\n");
    }
}

fn main() {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    match scenario.as_str() {
        "tcp-server" => {
            let l = listener();
            let (conn, peer) = accept(l, 0).unwrap_or_else(|e| fail(&format!("accept {e}")));
            println!("peer {:?}", peer.ip());
            echo(conn);
            proc::close(conn);
            println!("server done");
        }
        "tcp-client" => {
            let port = port_arg();
            let fd = connect(port).unwrap_or_else(|e| fail(&format!("connect {e}")));
            let mut peer = Addr::empty();
            errno("sock_addr_peer", unsafe { x::sock_addr_peer(fd as i32, peer.out()) });
            check(peer.port() == port, "peer port");
            write_all(fd, b"ping over tcp\n");
            let mut buf = [0u8; 64];
            let n = proc::read_fd(fd, &mut buf).unwrap_or_else(|e| fail(&format!("read {e:?}")));
            print!("reply {}", String::from_utf8_lossy(&buf[..n]));
        }
        "udp" => {
            let (rx, tx) = (socket(DGRAM), socket(DGRAM));
            errno("bind rx", unsafe { x::sock_bind(rx as i32, Addr::v4([127, 0, 0, 1], 0).ptr()) });
            errno("bind tx", unsafe { x::sock_bind(tx as i32, Addr::v4([127, 0, 0, 1], 0).ptr()) });
            let to = Addr::v4([127, 0, 0, 1], local(rx).port());
            let msg = b"datagram one";
            let iov = [msg.as_ptr() as u32, msg.len() as u32];
            let mut sent = 0u32;
            errno("sock_send_to", unsafe {
                x::sock_send_to(tx as i32, iov.as_ptr() as i32, 1, 0, to.ptr(), &mut sent as *mut u32 as i32)
            });
            let mut buf = [0u8; 64];
            let iov = [buf.as_mut_ptr() as u32, buf.len() as u32];
            let (mut n, mut flags, mut from) = (0u32, 0u16, Addr::empty());
            errno("sock_recv_from", unsafe {
                x::sock_recv_from(
                    rx as i32,
                    iov.as_ptr() as i32,
                    1,
                    0,
                    &mut n as *mut u32 as i32,
                    &mut flags as *mut u16 as i32,
                    from.out(),
                )
            });
            let mut ty = 0u64;
            errno("SO_TYPE", unsafe { x::sock_get_opt_size(rx as i32, 25, &mut ty as *mut u64 as i32) });
            println!(
                "udp sent {sent} got {:?} from the sender's port: {} (type {ty})",
                String::from_utf8_lossy(&buf[..n as usize]),
                from.port() == local(tx).port()
            );
            // A datagram spread over two buffers with room for 9 of its 12 bytes.
            let msg = b"datagram two";
            let iov = [msg.as_ptr() as u32, msg.len() as u32];
            errno("sock_send_to", unsafe {
                x::sock_send_to(tx as i32, iov.as_ptr() as i32, 1, 0, to.ptr(), &mut sent as *mut u32 as i32)
            });
            let (mut a, mut b) = ([0u8; 5], [0u8; 4]);
            let iovs = [a.as_mut_ptr() as u32, 5, b.as_mut_ptr() as u32, 4];
            errno("sock_recv_from", unsafe {
                x::sock_recv_from(
                    rx as i32,
                    iovs.as_ptr() as i32,
                    2,
                    0,
                    &mut n as *mut u32 as i32,
                    &mut flags as *mut u16 as i32,
                    0,
                )
            });
            println!(
                "two buffers got {n} bytes {:?} + {:?}, truncated flag {flags}",
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b)
            );
        }
        "epoll-server" => {
            let clients: u32 = port_arg().into();
            let l = listener();
            unsafe {
                let mut ep = 0u32;
                errno("epoll_create", x::epoll_create(&mut ep as *mut u32 as i32));
                let add = |fd: u32, events: u32| {
                    let mut ev = [0u8; 32];
                    ev[0..4].copy_from_slice(&events.to_le_bytes());
                    ev[12..16].copy_from_slice(&fd.to_le_bytes());
                    ev[24..32].copy_from_slice(&(u64::from(fd) << 32 | 0xabcd).to_le_bytes());
                    errno("epoll_ctl", x::epoll_ctl(ep as i32, 0, fd as i32, ev.as_ptr() as i32));
                };
                errno("nonblock", match wasi::fd_fdstat_set_flags(l, NONBLOCK as u16) {
                    Ok(()) => 0,
                    Err(e) => e.raw() as i32,
                });
                add(l, 1);
                let (mut served, mut most_at_once) = (0u32, 0u32);
                let mut events = [[0u8; 32]; 64];
                let mut buf = [0u8; 4096];
                while served < clients {
                    let mut n = 0u32;
                    errno("epoll_wait", x::epoll_wait(ep as i32, events.as_mut_ptr() as i32, 64, -1, &mut n as *mut u32 as i32));
                    most_at_once = most_at_once.max(n);
                    for ev in &events[..n as usize] {
                        let fd = u32::from_le_bytes(ev[12..16].try_into().unwrap());
                        let data2 = u64::from_le_bytes(ev[24..32].try_into().unwrap());
                        check(data2 == u64::from(fd) << 32 | 0xabcd, "event data comes back");
                        if fd == l {
                            while let Ok((c, _)) = accept(l, NONBLOCK) {
                                // Edge-triggered: each wake-up reads until EAGAIN.
                                add(c, 1 | 4 | 64);
                            }
                            continue;
                        }
                        loop {
                            match proc::read_fd(fd, &mut buf) {
                                Ok(0) => {
                                    let _ = x::epoll_ctl(ep as i32, 2, fd as i32, 0);
                                    proc::close(fd);
                                    served += 1;
                                    break;
                                }
                                Ok(k) => write_all(fd, &buf[..k]),
                                Err(e) if e.raw() as i32 == EAGAIN => break,
                                Err(e) => fail(&format!("read: {e:?}")),
                            }
                        }
                    }
                }
                println!("epoll served {served} clients (events at once > 1: {})", most_at_once > 1);
            }
        }
        "accept-signal" => {
            let l = listener();
            proc::register_signal_callback();
            check(proc::raise_interval(proc::SIGALRM, 100, false) == 0, "alarm");
            let (conn, _) = accept(l, 0).unwrap_or_else(|e| fail(&format!("accept {e}")));
            println!("accepted after {} alarm(s)", ALARMS.load(Ordering::SeqCst));
            proc::close(conn);
        }
        "denied" => {
            let port = port_arg();
            println!("connect errno {}", connect(port).err().unwrap_or(0));
            let fd = socket(STREAM);
            let e = unsafe { x::sock_bind(fd as i32, Addr::v4([0, 0, 0, 0], port).ptr()) };
            println!("bind errno {e}");
            let u = socket(DGRAM);
            let msg = b"x";
            let iov = [msg.as_ptr() as u32, 1u32];
            let mut sent = 0u32;
            let e = unsafe {
                x::sock_send_to(u as i32, iov.as_ptr() as i32, 1, 0, Addr::v4([127, 0, 0, 1], port).ptr(), &mut sent as *mut u32 as i32)
            };
            println!("send_to errno {e}");
        }
        "resolve" => {
            let name = std::env::args().nth(2).unwrap_or_else(|| "localhost".into());
            let mut entries = [[0u8; 18]; 8];
            let mut n = 0u32;
            let e = unsafe {
                x::resolve(name.as_ptr() as i32, name.len() as i32, 0, entries.as_mut_ptr() as i32, 8, &mut n as *mut u32 as i32)
            };
            if e != 0 {
                println!("resolve {name}: errno {e}");
                return;
            }
            for a in &entries[..n as usize] {
                match a[0] {
                    1 => println!("{name} {}.{}.{}.{}", a[2], a[3], a[4], a[5]),
                    2 => println!("{name} {}", std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&a[2..18]).unwrap())),
                    t => println!("{name} family {t}"),
                }
            }
        }
        "http" => {
            // Serves FILE (a guest path) to COUNT requests.
            let file = std::env::args().nth(2).unwrap_or_else(|| fail("need a file"));
            let count: u32 = std::env::args().nth(3).and_then(|c| c.parse().ok()).unwrap_or(1);
            let l = listener();
            let body = std::fs::File::open(&file).unwrap_or_else(|e| fail(&format!("open: {e}")));
            let size = body.metadata().map(|m| m.len()).unwrap_or(0);
            use std::os::wasi::io::AsRawFd;
            for _ in 0..count {
                let (conn, _) = accept(l, 0).unwrap_or_else(|e| fail(&format!("accept {e}")));
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match proc::read_fd(conn, &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                if !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    proc::close(conn); // the client left before asking
                    continue;
                }
                let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {size}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n");
                // sock_send, not fd_write: a client that left is no reason for SIGPIPE.
                let iov = [wasi::Ciovec { buf: head.as_ptr(), buf_len: head.len() }];
                if unsafe { wasi::sock_send(conn, &iov, 0) }.is_ok() {
                    let mut sent = 0u64;
                    let e = unsafe {
                        x::sock_send_file(conn as i32, body.as_raw_fd(), 0, size as i64, &mut sent as *mut u64 as i32)
                    };
                    check(e != 0 || sent == size, "whole file sent");
                }
                proc::close(conn);
            }
            println!("http served {count}");
        }
        "prefork" => {
            // N workers forked after listening; each serves one connection with its pid.
            let workers: u32 = port_arg().into();
            let l = listener();
            let mut kids = Vec::new();
            for _ in 0..workers {
                match proc::fork(true) {
                    Ok(0) => {
                        let (conn, _) = accept(l, 0).unwrap_or_else(|e| fail(&format!("accept {e}")));
                        write_all(conn, format!("worker {}\n", proc::pid()).as_bytes());
                        proc::close(conn);
                        std::process::exit(0);
                    }
                    Ok(pid) => kids.push(pid),
                    Err(e) => fail(&format!("fork {e}")),
                }
            }
            println!("workers ready");
            for pid in kids {
                let (e, _, _) = proc::join(Some(pid), false);
                check(e == 0, "join");
            }
            println!("pool done");
        }
        "options" => {
            // Options set and read back; a receive timeout; poll_oneoff on a socket.
            let t = socket(STREAM);
            let u = socket(DGRAM);
            let flag = |fd: u32, opt: i32| {
                let mut v = 9u8;
                errno("get flag", unsafe { x::sock_get_opt_flag(fd as i32, opt, &mut v as *mut u8 as i32) });
                v
            };
            let size = |fd: u32, opt: i32| {
                let mut v = 0u64;
                errno("get size", unsafe { x::sock_get_opt_size(fd as i32, opt, &mut v as *mut u64 as i32) });
                v
            };
            unsafe {
                errno("keepalive", x::sock_set_opt_flag(t as i32, 12, 1));
                errno("nodelay", x::sock_set_opt_flag(t as i32, 3, 1));
                errno("rcvbuf", x::sock_set_opt_size(t as i32, 15, 65536));
            }
            // A linger of 3 s, and a 50 ms receive timeout (option_timestamp: tag, then ns at 8).
            let mut ts = [0u8; 16];
            ts[0] = 1;
            ts[8..16].copy_from_slice(&3_000_000_000u64.to_le_bytes());
            errno("linger", unsafe { x::sock_set_opt_time(t as i32, 13, ts.as_ptr() as i32) });
            let mut back = [0u8; 16];
            errno("get linger", unsafe { x::sock_get_opt_time(t as i32, 13, back.as_mut_ptr() as i32) });
            ts[8..16].copy_from_slice(&50_000_000u64.to_le_bytes());
            errno("rcvtimeo", unsafe { x::sock_set_opt_time(u as i32, 19, ts.as_ptr() as i32) });
            println!(
                "keepalive {} nodelay {} rcvbuf>=65536 {} linger {}s type {}/{} listening {}",
                flag(t, 12),
                flag(t, 3),
                size(t, 15) >= 65536,
                u64::from_le_bytes(back[8..16].try_into().unwrap()) / 1_000_000_000,
                size(t, 25),
                size(u, 25),
                flag(t, 10)
            );
            errno("bind", unsafe { x::sock_bind(u as i32, Addr::v4([127, 0, 0, 1], 0).ptr()) });
            let t0 = proc::now_ns();
            let mut buf = [0u8; 8];
            let r = proc::read_fd(u, &mut buf);
            let waited_ms = (proc::now_ns() - t0) / 1_000_000;
            println!(
                "recv with a 50 ms timeout: errno {} after >= 50 ms: {}",
                r.err().map_or(0, |e| e.raw()),
                waited_ms >= 45
            );
            // poll_oneoff: a socket pair end is not readable, then is.
            let (mut a, mut b) = (0u32, 0u32);
            errno("sock_pair", unsafe {
                x::sock_pair(3, STREAM, 0, &mut a as *mut u32 as i32, &mut b as *mut u32 as i32)
            });
            let readable = |fd: u32| {
                let subs = [
                    wasi::Subscription {
                        userdata: 1,
                        u: wasi::SubscriptionU {
                            tag: wasi::EVENTTYPE_FD_READ.raw(),
                            u: wasi::SubscriptionUU { fd_read: wasi::SubscriptionFdReadwrite { file_descriptor: fd } },
                        },
                    },
                    wasi::Subscription {
                        userdata: 2,
                        u: wasi::SubscriptionU {
                            tag: wasi::EVENTTYPE_CLOCK.raw(),
                            u: wasi::SubscriptionUU {
                                clock: wasi::SubscriptionClock { id: wasi::CLOCKID_MONOTONIC, timeout: 20_000_000, precision: 0, flags: 0 },
                            },
                        },
                    },
                ];
                let mut events: [wasi::Event; 2] = unsafe { std::mem::zeroed() };
                let n = unsafe { wasi::poll_oneoff(subs.as_ptr(), events.as_mut_ptr(), 2) }.unwrap_or(0);
                events[..n].iter().any(|e| e.userdata == 1)
            };
            let before = readable(b);
            write_all(a, b"x");
            println!("poll_oneoff on a socket: readable before {before}, after a write {}", readable(b));
        }
        "spawn-worker" => {
            // The listener handed to a spawned child (as its fd 10), which accepts on it.
            let l = listener();
            let ops = [proc::FdOp::dup2(l, 10)];
            let pid = proc::spawn("net", &["net", "accept-on", "10"], &[], &ops, &[])
                .unwrap_or_else(|e| fail(&format!("spawn {e}")));
            println!("spawned");
            let (e, _, status) = proc::join(Some(pid), false);
            check(e == 0 && status == proc::Status::Exited(0), "the worker ended well");
            println!("worker done");
        }
        "accept-on" => {
            let fd: u32 = port_arg().into();
            let (conn, _) = accept(fd, 0).unwrap_or_else(|e| fail(&format!("accept {e}")));
            write_all(conn, b"a spawned child accepted\n");
            proc::close(conn);
        }
        "send-forever" => {
            // sock_send_file of an endless file (/zero/zero, a host /dev mounted) to a client
            // that reads as fast as it can: only the alarm's handler can stop it.
            let l = listener();
            let (conn, _) = accept(l, 0).unwrap_or_else(|e| fail(&format!("accept {e}")));
            let zero = std::fs::File::open("/zero/zero").unwrap_or_else(|e| fail(&format!("open: {e}")));
            use std::os::wasi::io::AsRawFd;
            proc::register_signal_callback();
            check(proc::raise_interval(proc::SIGALRM, 200, false) == 0, "alarm");
            let mut sent = 0u64;
            let e = unsafe {
                x::sock_send_file(conn as i32, zero.as_raw_fd(), 0, i64::MAX, &mut sent as *mut u64 as i32)
            };
            println!("send_file ended: errno {e}, some sent: {}, alarms {}", sent > 0, ALARMS.load(Ordering::SeqCst));
            proc::close(conn);
        }
        "tcp6" => {
            // Over IPv6 loopback: listener, client, accepted peer, addresses both ways.
            let loopback = std::net::Ipv6Addr::LOCALHOST.octets();
            let open6 = || {
                let mut fd = 0u32;
                errno("sock_open", unsafe { x::sock_open(2, STREAM, 0, &mut fd as *mut u32 as i32) });
                fd
            };
            let l = open6();
            errno("bind", unsafe { x::sock_bind(l as i32, Addr::v6(loopback, 0).ptr()) });
            errno("listen", unsafe { x::sock_listen(l as i32, 8) });
            let at = local(l);
            let c = open6();
            errno("connect", unsafe { x::sock_connect(c as i32, Addr::v6(loopback, at.port()).ptr()) });
            let (conn, peer) = accept(l, 0).unwrap_or_else(|e| fail(&format!("accept {e}")));
            write_all(c, b"over ipv6\n");
            let mut buf = [0u8; 32];
            let n = proc::read_fd(conn, &mut buf).unwrap_or_else(|e| fail(&format!("read {e:?}")));
            print!("{}", String::from_utf8_lossy(&buf[..n]));
            println!(
                "families {} {}, peer is the client: {}, loopback: {}",
                at.0[0],
                peer.0[0],
                peer.port() == local(c).port(),
                peer.0[4..20] == loopback
            );
        }
        "unix" => {
            // A unix stream socket bound to a path in a mount, connected to, accepted.
            let path = std::env::args().nth(2).unwrap_or_else(|| fail("need a path"));
            let unix_socket = || {
                let mut fd = 0u32;
                errno("sock_open", unsafe { x::sock_open(3, STREAM, 0, &mut fd as *mut u32 as i32) });
                fd
            };
            let (server, client) = (unix_socket(), unix_socket());
            errno("bind", unsafe { x::sock_bind(server as i32, Addr::unix(&path).ptr()) });
            errno("listen", unsafe { x::sock_listen(server as i32, 8) });
            errno("connect", unsafe { x::sock_connect(client as i32, Addr::unix(&path).ptr()) });
            let (conn, _) = accept(server, 0).unwrap_or_else(|e| fail(&format!("accept {e}")));
            write_all(client, b"over a unix socket\n");
            let mut buf = [0u8; 64];
            let n = proc::read_fd(conn, &mut buf).unwrap_or_else(|e| fail(&format!("read {e:?}")));
            print!("{}", String::from_utf8_lossy(&buf[..n]));
            let escape = unsafe { x::sock_bind(unix_socket() as i32, Addr::unix("/nowhere/s").ptr()) };
            println!("bind outside the mounts: errno {escape}");
            // A symlink in the mount pointing at a socket elsewhere is not followed.
            if let Some(link) = std::env::args().nth(3) {
                let e = unsafe { x::sock_connect(unix_socket() as i32, Addr::unix(&link).ptr()) };
                println!("connect through a symlink: errno {e}");
            }
        }
        "epoll-kinds" => unsafe {
            // epoll over a pipe, an eventfd and stdin, with a timeout first.
            let mut ep = 0u32;
            errno("epoll_create", x::epoll_create(&mut ep as *mut u32 as i32));
            let (r, w) = proc::pipe();
            let mut efd = 0u32;
            errno("fd_event", x::fd_event(0, 0, &mut efd as *mut u32 as i32));
            for (fd, tag) in [(r, 1u64), (efd, 2), (0, 3)] {
                let mut ev = [0u8; 32];
                ev[0] = 1;
                ev[24..32].copy_from_slice(&tag.to_le_bytes());
                errno("epoll_ctl", x::epoll_ctl(ep as i32, 0, fd as i32, ev.as_ptr() as i32));
            }
            let wait = |timeout_ns: i64| {
                let mut out = [[0u8; 32]; 8];
                let mut n = 0u32;
                errno("epoll_wait", x::epoll_wait(ep as i32, out.as_mut_ptr() as i32, 8, timeout_ns, &mut n as *mut u32 as i32));
                let mut tags: Vec<u64> = out[..n as usize]
                    .iter()
                    .map(|e| u64::from_le_bytes(e[24..32].try_into().unwrap()))
                    .collect();
                tags.sort_unstable();
                tags
            };
            let t0 = proc::now_ns();
            let none = wait(30_000_000);
            println!("nothing ready within 30 ms: {:?} (waited >= 30 ms: {})", none, proc::now_ns() - t0 >= 29_000_000);
            write_all(w, b"p");
            write_all(efd, &1u64.to_le_bytes());
            println!("pipe and eventfd ready: {:?}", wait(-1));
            let mut b = [0u8; 8];
            let _ = proc::read_fd(r, &mut b);
            let _ = proc::read_fd(efd, &mut b);
            println!("stdin ready: {:?}", wait(-1));
        },
        "snapshot-conn" => {
            // Echoes one read, takes a snapshot, then reads again: a restored process finds
            // its connection reset.
            let l = listener();
            let (conn, _) = accept(l, 0).unwrap_or_else(|e| fail(&format!("accept {e}")));
            let mut buf = [0u8; 64];
            let n = proc::read_fd(conn, &mut buf).unwrap_or_else(|e| fail(&format!("read: {e:?}")));
            write_all(conn, &buf[..n]);
            let _ = unsafe { wasmix_guests::wasix::proc_snapshot() };
            match proc::read_fd(conn, &mut buf) {
                Ok(n) => println!("after the snapshot: read {n} bytes"),
                Err(e) => println!("after the snapshot: read errno {}", e.raw()),
            }
        }
        "bench-tcp" => {
            // Guest to guest over loopback: a forked child sends MiB MiB, the parent
            // receives them; the parent times accept to EOF.
            let mib: u64 = port_arg().into();
            let l = listener();
            let port = local(l).port();
            match proc::fork(true) {
                Ok(0) => {
                    let fd = connect(port).unwrap_or_else(|e| fail(&format!("connect {e}")));
                    let chunk = vec![7u8; 64 << 10];
                    for _ in 0..mib * 16 {
                        write_all(fd, &chunk);
                    }
                    proc::close(fd);
                    std::process::exit(0);
                }
                Ok(pid) => {
                    let (conn, _) = accept(l, 0).unwrap_or_else(|e| fail(&format!("accept {e}")));
                    let t0 = proc::now_ns();
                    let mut buf = vec![0u8; 64 << 10];
                    let mut got = 0u64;
                    loop {
                        match proc::read_fd(conn, &mut buf) {
                            Ok(0) => break,
                            Ok(n) => got += n as u64,
                            Err(e) => fail(&format!("read: {e:?}")),
                        }
                    }
                    let secs = (proc::now_ns() - t0) as f64 / 1e9;
                    proc::join(Some(pid), false);
                    check(got == mib << 20, "every byte arrived");
                    println!("tcp_throughput {:.1}", got as f64 / (1 << 20) as f64 / secs);
                }
                Err(e) => fail(&format!("fork {e}")),
            }
        }
        "bench-epoll" => {
            // Round trips through a child waiting in epoll_wait on a socket pair: the wake-up
            // latency, twice over (median, µs).
            let rounds: u32 = port_arg().into();
            let (mut a, mut b) = (0u32, 0u32);
            errno("sock_pair", unsafe {
                x::sock_pair(3, STREAM, 0, &mut a as *mut u32 as i32, &mut b as *mut u32 as i32)
            });
            match proc::fork(true) {
                Ok(0) => unsafe {
                    let mut ep = 0u32;
                    errno("epoll_create", x::epoll_create(&mut ep as *mut u32 as i32));
                    let mut ev = [0u8; 32];
                    ev[0] = 1;
                    errno("epoll_ctl", x::epoll_ctl(ep as i32, 0, b as i32, ev.as_ptr() as i32));
                    let mut out = [0u8; 32];
                    let mut byte = [0u8; 1];
                    for _ in 0..rounds {
                        let mut n = 0u32;
                        errno("epoll_wait", x::epoll_wait(ep as i32, out.as_mut_ptr() as i32, 1, -1, &mut n as *mut u32 as i32));
                        let _ = proc::read_fd(b, &mut byte);
                        write_all(b, &byte);
                    }
                    std::process::exit(0);
                },
                Ok(pid) => {
                    let mut times = Vec::with_capacity(rounds as usize);
                    let mut byte = [1u8; 1];
                    for _ in 0..rounds {
                        let t0 = proc::now_ns();
                        write_all(a, &byte);
                        let _ = proc::read_fd(a, &mut byte);
                        times.push(proc::now_ns() - t0);
                    }
                    proc::join(Some(pid), false);
                    times.sort_unstable();
                    println!("epoll_round_trip_p50 {:.1}", times[times.len() / 2] as f64 / 1e3);
                }
                Err(e) => fail(&format!("fork {e}")),
            }
        }
        _ => fail("unknown scenario"),
    }
}
