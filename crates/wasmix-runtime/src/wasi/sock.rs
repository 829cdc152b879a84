//! Sockets: preview1's `sock_accept`/`sock_recv`/`sock_send`/`sock_shutdown`, and WASIX's
//! BSD sockets (`wasix_32v1`: open, bind, listen, accept, connect, the datagram calls,
//! options, multicast, socket pairs, `resolve`) on host sockets, under the run's network
//! policy (`net::policy`).
//!
//! Sockets wasmix opens or accepts keep their host descriptor non-blocking. A call on one
//! the guest sees as blocking tries, and on EAGAIN waits for readiness beside the thread's
//! interrupt (so signals, kills and snapshots reach it) and tries again — also when another
//! process sharing the socket took the connection or the data first. Receive and send
//! timeouts (`SO_RCVTIMEO`, `SO_SNDTIMEO`) bound those waits, as the host's own socket
//! holds them.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::net::sockopt;
use rustix::net::{
    AddressFamily, Protocol, RecvFlags, SendFlags, Shutdown, SocketAddrAny, SocketFlags, SocketType,
};
use wasmix_fs::abi::{fdflags, rights, Filetype};
use wasmix_fs::{Errno, FileSystem, HostFd, Node, OpenFile};
use wasmtime::Result;

use super::{host_calls, narrow, older, Abi, Call, HostCalls, Restart};
use crate::mem::{GuestMem, Out};
use crate::net::addr::{self, family, SockAddr};
use crate::net::policy::{Allowed, NetOp};

/// The socket behind `fd`: EBADF if closed, ENOTSOCK if it is something else.
fn socket(fs: &FileSystem, fd: u32, required: u64) -> Result<Arc<OpenFile>, Errno> {
    let file = fs.file(fd, 0)?;
    match file.filetype()? {
        Filetype::SocketStream | Filetype::SocketDgram => {}
        _ => return Err(Errno::Notsock),
    }
    fs.file(fd, required)
}

/// Rights of a connected stream socket.
pub(crate) const SOCKET_RIGHTS: u64 = rights::SOCKET_BASE;

pub(super) fn add(calls: &mut HostCalls, abi: Abi) -> Result<()> {
    if abi == Abi::Preview1 {
        host_calls!(calls, abi, [sock_accept(AfterHandler)]);
    }
    // Restarted after a handler, as reads and writes are (SA_RESTART).
    host_calls!(
        calls,
        abi,
        [
            sock_recv(AfterHandler),
            sock_send(AfterHandler),
            sock_shutdown
        ]
    );
    Ok(())
}

/// The WASIX socket calls. `wasix_32v1.sock_accept` is the four-parameter `sock_accept_v2`
/// (Wasmer `lib/wasix/src/lib.rs` binds both names to it); the three-parameter preview1
/// form is kept as its older generation.
pub(super) fn add_wasix(calls: &mut HostCalls) -> Result<()> {
    let (wasix, restart) = (Abi::Wasix, Restart::AfterHandler);
    calls.define(wasix, "sock_accept", sock_accept_v2, restart)?;
    calls.define(wasix, &older("sock_accept", 3), sock_accept, restart)?;
    host_calls!(
        calls,
        wasix,
        [
            sock_accept_v2(AfterHandler),
            sock_open,
            sock_pair,
            sock_bind,
            sock_listen,
            sock_connect,
            sock_recv_from(AfterHandler),
            sock_send_to(AfterHandler),
            sock_send_file(AfterHandler),
            sock_status,
            sock_addr_local,
            sock_addr_peer,
            sock_set_opt_flag,
            sock_get_opt_flag,
            sock_set_opt_time,
            sock_get_opt_time,
            sock_set_opt_size,
            sock_get_opt_size,
            sock_join_multicast_v4,
            sock_leave_multicast_v4,
            sock_join_multicast_v6,
            sock_leave_multicast_v6,
            resolve,
        ]
    );
    Ok(())
}

/// Runs `op` on `file` until it does not answer EAGAIN, waiting for readiness between tries
/// while the guest sees the socket as blocking (unless `dont_wait`), for at most the
/// socket's timeout in that direction.
fn retry<T>(
    host: &crate::host::Host,
    file: &OpenFile,
    write: bool,
    dont_wait: bool,
    mut op: impl FnMut() -> Result<T, Errno>,
) -> Result<T, Errno> {
    let waits = file.waits() && !dont_wait;
    let fd = file.pollable_fd().ok_or(Errno::Notsock)?;
    let timeout = if waits {
        let id = if write {
            sockopt::Timeout::Send
        } else {
            sockopt::Timeout::Recv
        };
        sockopt::socket_timeout(fd, id).ok().flatten()
    } else {
        None
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        match op() {
            Err(Errno::Again) if waits => {
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                if left == Some(Duration::ZERO) {
                    return Err(Errno::Again);
                }
                crate::blocking::wait_fds(host, &[(fd, write)], left)?;
            }
            r => return r,
        }
    }
}

/// The address the guest passed at `ptr` (an `__wasi_addr_port_t`).
fn read_addr(mem: &GuestMem, ptr: u32) -> Result<SockAddr, Errno> {
    let tag = mem.u8(ptr)?;
    let len = addr::addr_port_len(tag) as u32;
    addr::decode_addr_port(&mem.bytes(ptr, len)?)
}

/// Writes `a` for the guest at `ptr` (nothing when `ptr` is 0, a caller that wants none).
fn write_addr(mem: &mut GuestMem, ptr: u32, a: &SockAddr) -> Result<(), Errno> {
    if ptr == 0 {
        return Ok(());
    }
    mem.write(ptr, &addr::encode_addr_port(a))
}

fn from_host(a: Option<SocketAddrAny>) -> SockAddr {
    let Some(a) = a else {
        return SockAddr::Unspec;
    };
    match a.address_family() {
        AddressFamily::INET | AddressFamily::INET6 => {
            SocketAddr::try_from(a).map_or(SockAddr::Unspec, SockAddr::Ip)
        }
        // The host path is the directory's `/proc/self/fd/N/NAME`, not the guest's: a unix
        // socket reads as unnamed.
        AddressFamily::UNIX => SockAddr::Unix(Vec::new()),
        _ => SockAddr::Unspec,
    }
}

/// Checks `op` on `to` against the policy: the rule that allows it is traced; a refusal is
/// `refused` (what a firewalled Linux program sees), with a warning naming what to grant.
fn permit(cx: &Call<'_>, op: NetOp, to: SocketAddr, refused: Errno) -> Result<(), Errno> {
    match cx.host.ctx.runtime.network().check(op, to) {
        Some(Allowed::Everything) => Ok(()),
        Some(Allowed::Rule(rule)) => {
            tracing::debug!(target: "wasmix::net", "{op} {to}: allowed by --net-allow {rule}");
            Ok(())
        }
        None => {
            tracing::warn!(
                target: "wasmix::net",
                "{op} {to}: refused ({refused:?}) by the network policy; allow it with --net \
                 or --net-allow {op}=HOST:PORT"
            );
            Err(refused)
        }
    }
}

/// The IP address `a` names: EINVAL for none, EAFNOSUPPORT for a unix path where only an
/// IP address will do (sending a datagram to a path).
fn ip_of(a: SockAddr) -> Result<SocketAddr, Errno> {
    match a {
        SockAddr::Ip(ip) => Ok(ip),
        SockAddr::Unix(_) => Err(Errno::Afnosupport),
        SockAddr::Unspec => Err(Errno::Inval),
    }
}

/// The host address a guest's unix socket path stands for, with the descriptor it goes
/// through (which must stay open while the call uses the address). Not network: a path
/// inside the guest's mounts, as a file is. To bind, `/proc/self/fd/N/NAME` through the
/// directory opened within its mount (bind never follows a symlink there). To connect,
/// `/proc/self/fd/M` of the socket file itself, opened without following a symlink and
/// checked to be a socket, so nothing in a mount can point a connection outside it.
/// Unnamed and abstract addresses (an empty path) are EINVAL.
fn unix_addr(
    cx: &Call<'_>,
    path: &[u8],
    connect: bool,
) -> Result<(OwnedFd, rustix::net::SocketAddrUnix), Errno> {
    use std::os::fd::AsRawFd;
    if path.is_empty() {
        return Err(Errno::Inval);
    }
    let path = std::str::from_utf8(path).map_err(|_| Errno::Ilseq)?;
    let (dir, name) = cx.host.fs().socket_dir(path)?;
    let (via, host) = if connect {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = rustix::fs::openat(&dir, name.as_str(), flags, Mode::empty())?;
        let kind = rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&file)?.st_mode);
        if kind != rustix::fs::FileType::Socket {
            return Err(Errno::Connrefused);
        }
        let host = format!("/proc/self/fd/{}", file.as_raw_fd());
        (file, host)
    } else {
        let host = format!("/proc/self/fd/{}/{name}", dir.as_raw_fd());
        (dir, host)
    };
    if host.len() > addr::UNIX_PATH_MAX {
        return Err(Errno::Nametoolong);
    }
    let at = rustix::net::SocketAddrUnix::new(host.as_str())?;
    Ok((via, at))
}

/// Installs a host socket (non-blocking already) as a guest descriptor.
fn install(cx: &Call<'_>, fd: OwnedFd, guest_flags: u16) -> Result<u32, Errno> {
    let file = OpenFile::socket(fd, guest_flags & fdflags::NONBLOCK);
    cx.host.fs().insert(file, SOCKET_RIGHTS, SOCKET_RIGHTS)
}

fn accept_on(cx: &mut Call<'_>, fd: u32, flags: i32) -> Result<(u32, SockAddr), Errno> {
    if super::snapshot_at(cx, &[wasmix_process::Trigger::Bootstrap]) {
        return Err(Errno::Intr);
    }
    let flags: u16 = narrow(flags)?;
    if flags & !fdflags::NONBLOCK != 0 {
        return Err(Errno::Inval);
    }
    let listener = socket(cx.host.fs(), fd, rights::SOCK_ACCEPT)?;
    if !matches!(listener.node(), Node::Stream(HostFd::Owned(_))) {
        return Err(Errno::Notsock);
    }
    // A listener handed over blocking (--tcplisten) is waited for first, so its accept
    // never blocks the host thread unless another process took the connection.
    crate::blocking::ready(cx.host, &listener, false)?;
    let (conn, peer) = retry(cx.host, &listener, false, false, || {
        Ok(rustix::net::acceptfrom_with(
            listener.host()?,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        )?)
    })?;
    Ok((install(cx, conn, flags)?, from_host(peer)))
}

fn sock_accept(cx: &mut Call<'_>, fd: u32, flags: i32, ret: Out<u32>) -> Result<(), Errno> {
    let (new, _) = accept_on(cx, fd, flags)?;
    ret.set(&mut cx.mem, new);
    Ok(())
}

fn sock_accept_v2(
    cx: &mut Call<'_>,
    fd: u32,
    flags: i32,
    ret_fd: Out<u32>,
    ret_addr: u32,
) -> Result<(), Errno> {
    // Checked before a connection is taken from the queue, so a wild pointer loses none.
    cx.mem.check(ret_addr, addr::ADDR_PORT_IP as u32)?;
    let (new, peer) = accept_on(cx, fd, flags)?;
    ret_fd.set(&mut cx.mem, new);
    write_addr(&mut cx.mem, ret_addr, &peer)
}

/// `(af, type, proto)` as the host takes them.
fn host_kind(
    af: i32,
    ty: i32,
    pt: i32,
) -> Result<(AddressFamily, SocketType, Option<Protocol>), Errno> {
    let af = match narrow::<u8>(af)? {
        family::INET4 => AddressFamily::INET,
        family::INET6 => AddressFamily::INET6,
        family::UNIX => AddressFamily::UNIX,
        _ => return Err(Errno::Afnosupport),
    };
    // 1 stream, 2 datagram, 4 seqpacket (unix only), 3 raw (refused). 0 is a datagram too:
    // the 2022 ABI numbered datagram 0 (Wasmer `lib/wasi-types/src/net.rs` @ 75a98ab1,
    // `__WASI_SOCK_TYPE_DGRAM = 0`), and today's leaves 0 unused.
    let ty = match ty {
        1 => SocketType::STREAM,
        0 | 2 => SocketType::DGRAM,
        4 if af == AddressFamily::UNIX => SocketType::SEQPACKET,
        3 | 4 => return Err(Errno::Notsup),
        _ => return Err(Errno::Inval),
    };
    let proto = match pt {
        0 => None,
        6 if ty == SocketType::STREAM && af != AddressFamily::UNIX => {
            Some(rustix::net::ipproto::TCP)
        }
        17 if ty == SocketType::DGRAM && af != AddressFamily::UNIX => {
            Some(rustix::net::ipproto::UDP)
        }
        _ => return Err(Errno::Protonosupport),
    };
    Ok((af, ty, proto))
}

fn sock_open(cx: &mut Call<'_>, af: i32, ty: i32, pt: i32, ret: Out<u32>) -> Result<(), Errno> {
    let (af, ty, proto) = host_kind(af, ty, pt)?;
    let fd = rustix::net::socket_with(af, ty, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK, proto)?;
    let new = install(cx, fd, 0)?;
    ret.set(&mut cx.mem, new);
    Ok(())
}

fn sock_pair(
    cx: &mut Call<'_>,
    af: i32,
    ty: i32,
    pt: i32,
    ret0: Out<u32>,
    ret1: Out<u32>,
) -> Result<(), Errno> {
    // Unnamed and connected to each other only, whatever family the guest asked for (the
    // host pairs unix sockets alone): no network is involved.
    let (_, ty, _) = host_kind(af, ty, if pt == 0 { 0 } else { pt })?;
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        ty,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    let first = install(cx, a, 0)?;
    let second = match install(cx, b, 0) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = cx.host.fs().close(first);
            return Err(e);
        }
    };
    ret0.set(&mut cx.mem, first);
    ret1.set(&mut cx.mem, second);
    Ok(())
}

fn sock_bind(cx: &mut Call<'_>, fd: u32, at: u32) -> Result<(), Errno> {
    let sock = socket(cx.host.fs(), fd, rights::SOCK_BIND)?;
    if let SockAddr::Unix(path) = read_addr(&cx.mem, at)? {
        let (_dir, at) = unix_addr(cx, &path, false)?;
        return Ok(rustix::net::bind(sock.host()?, &at)?);
    }
    let to = ip_of(read_addr(&cx.mem, at)?)?;
    permit(cx, NetOp::Bind, to, Errno::Acces)?;
    Ok(rustix::net::bind(sock.host()?, &to)?)
}

fn sock_listen(cx: &mut Call<'_>, fd: u32, backlog: u32) -> Result<(), Errno> {
    let sock = socket(cx.host.fs(), fd, rights::SOCK_LISTEN)?;
    // `first-listen`: captured just before, so a restore listens at once (the bound socket
    // is bound again) and serves.
    if super::snapshot_at(cx, &[wasmix_process::Trigger::FirstListen]) {
        return Err(Errno::Intr);
    }
    // Listening on an unbound socket binds it to an ephemeral port: the policy rules on that.
    if let SockAddr::Ip(local) = from_host(rustix::net::getsockname(sock.host()?).ok()) {
        if local.port() == 0 {
            permit(cx, NetOp::Bind, local, Errno::Acces)?;
        }
    }
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    Ok(rustix::net::listen(sock.host()?, backlog)?)
}

fn sock_connect(cx: &mut Call<'_>, fd: u32, at: u32) -> Result<(), Errno> {
    let sock = socket(cx.host.fs(), fd, rights::SOCK_CONNECT)?;
    if let SockAddr::Unix(path) = read_addr(&cx.mem, at)? {
        let (_file, at) = unix_addr(cx, &path, true)?;
        // A full backlog answers EAGAIN at once; a blocking guest tries again.
        return retry(cx.host, &sock, true, false, || {
            Ok(rustix::net::connect(sock.host()?, &at)?)
        });
    }
    let to = ip_of(read_addr(&cx.mem, at)?)?;
    permit(cx, NetOp::Connect, to, Errno::Connrefused)?;
    match rustix::net::connect(sock.host()?, &to) {
        Err(rustix::io::Errno::INPROGRESS) if sock.waits() => {}
        r => return Ok(r?),
    }
    // A blocking connect: wait until it is done (the send timeout bounds it, as on Linux),
    // then its outcome is the socket's error.
    let fd_ = sock.host()?;
    let timeout = sockopt::socket_timeout(fd_, sockopt::Timeout::Send)
        .ok()
        .flatten();
    let revents = crate::blocking::wait_fds(cx.host, &[(fd_, true)], timeout)?;
    if revents.iter().all(|r| r.is_empty()) {
        return Err(Errno::Timedout);
    }
    match sockopt::socket_error(fd_)? {
        Ok(()) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Receive flags: PEEK 1, WAITALL 2, DATA_TRUNCATED 4 (ignored), DONT_WAIT 8.
fn recv_flags(ri_flags: i32) -> Result<(RecvFlags, bool), Errno> {
    if ri_flags & !0xf != 0 {
        return Err(Errno::Inval);
    }
    let mut flags = RecvFlags::empty();
    if ri_flags & 1 != 0 {
        flags |= RecvFlags::PEEK;
    }
    if ri_flags & 2 != 0 {
        flags |= RecvFlags::WAITALL;
    }
    Ok((flags, ri_flags & 8 != 0))
}

/// `roflags`: the datagram was longer than the buffers and its tail was dropped.
const RO_DATA_TRUNCATED: u16 = 1;

/// What one receive got.
struct Received {
    bytes: usize,
    /// `roflags`.
    flags: u16,
    from: SockAddr,
}

/// Receives into the iovecs. A stream fills the first non-empty one (a short read, as
/// `fd_read` does); a datagram is spread over all of them, so none of it is lost that they
/// have room for, and its truncation is reported.
fn receive(
    cx: &mut Call<'_>,
    fd: u32,
    iovs: u32,
    count: u32,
    ri_flags: i32,
    need: u64,
) -> Result<Received, Errno> {
    if super::snapshot_at(cx, &[wasmix_process::Trigger::Bootstrap]) {
        return Err(Errno::Intr);
    }
    let sock = socket(cx.host.fs(), fd, need)?;
    let (mut flags, dont_wait) = recv_flags(ri_flags)?;
    if dont_wait {
        flags |= RecvFlags::DONTWAIT;
    }
    let list: Vec<(u32, u32)> = cx
        .mem
        .iovecs(iovs, count)?
        .into_iter()
        .filter(|(_, l)| *l > 0)
        .collect();
    let Some(&(p, l)) = list.first() else {
        return Ok(Received {
            bytes: 0,
            flags: 0,
            from: SockAddr::Unspec,
        });
    };
    let datagram = sockopt::socket_type(sock.host()?)? != SocketType::STREAM;
    if datagram {
        // The kernel says how long the datagram was (MSG_TRUNC), not just what fit.
        flags |= RecvFlags::TRUNC;
    }
    // A host-blocking socket (one handed over) is waited for first.
    if !dont_wait {
        crate::blocking::ready(cx.host, &sock, false)?;
    }
    let mut from = None;
    let mut whole = 0usize;
    let bytes = if datagram && list.len() > 1 {
        let room: usize = list.iter().map(|(_, l)| *l as usize).sum();
        let mut buf = vec![0u8; room.min(crate::mem::MAX_GATHER)];
        let n = retry(cx.host, &sock, false, dont_wait, || {
            let (n, len, sender) = rustix::net::recvfrom(sock.host()?, &mut buf[..], flags)?;
            (whole, from) = (len, sender);
            Ok(n)
        })?;
        let mut at = 0;
        for (p, l) in &list {
            let take = (*l as usize).min(n - at);
            cx.mem.write(*p, &buf[at..at + take])?;
            at += take;
            if at == n {
                break;
            }
        }
        n
    } else {
        retry(cx.host, &sock, false, dont_wait, || {
            cx.mem.fill(p, l, |buf| {
                let (n, len, sender) = rustix::net::recvfrom(sock.host()?, buf, flags)?;
                (whole, from) = (len, sender);
                Ok::<usize, Errno>(n)
            })
        })?
    };
    let truncated = datagram && whole > bytes;
    Ok(Received {
        bytes,
        flags: if truncated { RO_DATA_TRUNCATED } else { 0 },
        from: from_host(from),
    })
}

fn sock_recv(
    cx: &mut Call<'_>,
    fd: u32,
    iovs: u32,
    count: u32,
    ri_flags: i32,
    ret_len: Out<u32>,
    ret_flags: Out<u16>,
) -> Result<(), Errno> {
    let got = receive(cx, fd, iovs, count, ri_flags, rights::FD_READ)?;
    ret_len.set(&mut cx.mem, got.bytes as u32);
    ret_flags.set(&mut cx.mem, got.flags);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn sock_recv_from(
    cx: &mut Call<'_>,
    fd: u32,
    iovs: u32,
    count: u32,
    ri_flags: i32,
    ret_len: Out<u32>,
    ret_flags: Out<u16>,
    ret_addr: u32,
) -> Result<(), Errno> {
    if ret_addr != 0 {
        cx.mem.check(ret_addr, addr::ADDR_PORT_IP as u32)?;
    }
    let got = receive(cx, fd, iovs, count, ri_flags, rights::FD_READ)?;
    ret_len.set(&mut cx.mem, got.bytes as u32);
    ret_flags.set(&mut cx.mem, got.flags);
    write_addr(&mut cx.mem, ret_addr, &got.from)
}

/// Sends every byte of `data` (a blocking socket waits for room; a non-blocking one sends
/// what fits); bytes sent, or the error if none were.
fn send_all(
    cx: &Call<'_>,
    sock: &OpenFile,
    data: &[u8],
    dont_wait: bool,
    to: Option<SocketAddr>,
) -> Result<usize, Errno> {
    let mut sent = 0;
    while sent < data.len() || data.is_empty() {
        let rest = &data[sent..];
        let r = retry(cx.host, sock, true, dont_wait, || {
            let fd = sock.host()?;
            Ok(match to {
                Some(to) => rustix::net::sendto(fd, rest, SendFlags::NOSIGNAL, &to)?,
                None => rustix::net::send(fd, rest, SendFlags::NOSIGNAL)?,
            })
        });
        match r {
            Ok(n) => sent += n,
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
        // A datagram goes whole or not at all; a non-blocking stream sends what fits.
        if to.is_some() || data.is_empty() || !sock.waits() || dont_wait {
            break;
        }
    }
    Ok(sent)
}

fn sock_send(
    cx: &mut Call<'_>,
    fd: u32,
    iovs: u32,
    count: u32,
    si_flags: i32,
    ret: Out<u32>,
) -> Result<(), Errno> {
    let sock = socket(cx.host.fs(), fd, rights::FD_WRITE)?;
    crate::blocking::ready(cx.host, &sock, true)?;
    let data = gather(&cx.mem, iovs, count)?;
    let n = send_all(cx, &sock, &data, si_flags & 1 != 0, None)?;
    ret.set(&mut cx.mem, n as u32);
    Ok(())
}

/// The iovecs' bytes, in order, as one buffer (a datagram must go in one call).
fn gather(mem: &GuestMem, iovs: u32, count: u32) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    for (p, l) in mem.iovecs(iovs, count)? {
        if out.len() + l as usize > crate::mem::MAX_GATHER {
            return Err(Errno::Msgsize);
        }
        out.extend_from_slice(&mem.bytes(p, l)?);
    }
    Ok(out)
}

fn sock_send_to(
    cx: &mut Call<'_>,
    fd: u32,
    iovs: u32,
    count: u32,
    si_flags: i32,
    at: u32,
    ret: Out<u32>,
) -> Result<(), Errno> {
    let sock = socket(cx.host.fs(), fd, rights::FD_WRITE)?;
    let to = if at == 0 {
        None
    } else {
        let to = ip_of(read_addr(&cx.mem, at)?)?;
        permit(cx, NetOp::Connect, to, Errno::Acces)?;
        Some(to)
    };
    let data = gather(&cx.mem, iovs, count)?;
    let n = send_all(cx, &sock, &data, si_flags & 1 != 0, to)?;
    ret.set(&mut cx.mem, n as u32);
    Ok(())
}

fn sock_send_file(
    cx: &mut Call<'_>,
    out_fd: u32,
    in_fd: u32,
    offset: u64,
    count: u64,
    ret: Out<u64>,
) -> Result<(), Errno> {
    let sock = socket(cx.host.fs(), out_fd, rights::FD_WRITE)?;
    let input = cx.host.fs().file(in_fd, rights::FD_READ)?;
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    while total < count {
        // A long transfer to a fast reader never waits: look for signals and kills between
        // chunks, so it stays interruptible (a partial count, or EINTR before any byte).
        if cx.host.interrupt.is_raised() || cx.host.thread.is_killed() {
            if total == 0 {
                return Err(Errno::Intr);
            }
            break;
        }
        let want = buf
            .len()
            .min((count - total).min(usize::MAX as u64) as usize);
        let n = match rustix::io::pread(input.host()?, &mut buf[..want], offset + total) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if total == 0 => return Err(e.into()),
            Err(_) => break,
        };
        let sent = match send_all(cx, &sock, &buf[..n], false, None) {
            Ok(s) => s,
            Err(e) if total == 0 => return Err(e),
            Err(_) => break,
        };
        total += sent as u64;
        if sent < n {
            break;
        }
    }
    ret.set(&mut cx.mem, total);
    Ok(())
}

fn sock_shutdown(cx: &mut Call<'_>, fd: u32, how: i32) -> Result<(), Errno> {
    let sock = socket(cx.host.fs(), fd, rights::SOCK_SHUTDOWN)?;
    let how = match how {
        1 => Shutdown::Read,
        2 => Shutdown::Write,
        3 => Shutdown::Both,
        _ => return Err(Errno::Inval),
    };
    Ok(rustix::net::shutdown(sock.host()?, how)?)
}

/// `sock_status`: 1 (opened), or 3 (failed) when the socket holds an error.
fn sock_status(cx: &mut Call<'_>, fd: u32, ret: Out<u8>) -> Result<(), Errno> {
    let sock = socket(cx.host.fs(), fd, 0)?;
    let failed = matches!(sockopt::socket_error(sock.host()?), Ok(Err(_)));
    ret.set(&mut cx.mem, if failed { 3 } else { 1 });
    Ok(())
}

fn sock_addr_local(cx: &mut Call<'_>, fd: u32, ret: u32) -> Result<(), Errno> {
    let sock = socket(cx.host.fs(), fd, 0)?;
    let local = from_host(Some(rustix::net::getsockname(sock.host()?)?));
    write_addr(&mut cx.mem, ret, &local)
}

fn sock_addr_peer(cx: &mut Call<'_>, fd: u32, ret: u32) -> Result<(), Errno> {
    let sock = socket(cx.host.fs(), fd, 0)?;
    let peer = rustix::net::getpeername(sock.host()?)?.ok_or(Errno::Notconn)?;
    write_addr(&mut cx.mem, ret, &from_host(Some(peer)))
}

/// `sock_option` numbers.
mod opt {
    pub const REUSE_PORT: i32 = 1;
    pub const REUSE_ADDR: i32 = 2;
    pub const NO_DELAY: i32 = 3;
    pub const ONLY_V6: i32 = 5;
    pub const BROADCAST: i32 = 6;
    pub const MULTICAST_LOOP_V4: i32 = 7;
    pub const MULTICAST_LOOP_V6: i32 = 8;
    pub const LISTENING: i32 = 10;
    pub const LAST_ERROR: i32 = 11;
    pub const KEEP_ALIVE: i32 = 12;
    pub const LINGER: i32 = 13;
    pub const OOB_INLINE: i32 = 14;
    pub const RECV_BUF_SIZE: i32 = 15;
    pub const SEND_BUF_SIZE: i32 = 16;
    pub const RECV_TIMEOUT: i32 = 19;
    pub const SEND_TIMEOUT: i32 = 20;
    pub const CONNECT_TIMEOUT: i32 = 21;
    pub const ACCEPT_TIMEOUT: i32 = 22;
    pub const TTL: i32 = 23;
    pub const MULTICAST_TTL_V4: i32 = 24;
    pub const TYPE: i32 = 25;
    pub const PROTO: i32 = 26;
}

fn sock_set_opt_flag(cx: &mut Call<'_>, fd: u32, option: i32, flag: i32) -> Result<(), Errno> {
    let sock = socket(cx.host.fs(), fd, 0)?;
    let (s, on) = (sock.host()?, flag != 0);
    let set = match option {
        opt::REUSE_PORT => sockopt::set_socket_reuseport,
        opt::REUSE_ADDR => sockopt::set_socket_reuseaddr,
        opt::NO_DELAY => sockopt::set_tcp_nodelay,
        opt::ONLY_V6 => sockopt::set_ipv6_v6only,
        opt::BROADCAST => sockopt::set_socket_broadcast,
        opt::MULTICAST_LOOP_V4 => sockopt::set_ip_multicast_loop,
        opt::MULTICAST_LOOP_V6 => sockopt::set_ipv6_multicast_loop,
        opt::KEEP_ALIVE => sockopt::set_socket_keepalive,
        opt::OOB_INLINE => sockopt::set_socket_oobinline,
        _ => return Err(Errno::Inval),
    };
    Ok(set(s, on)?)
}

fn sock_get_opt_flag(cx: &mut Call<'_>, fd: u32, option: i32, ret: Out<u8>) -> Result<(), Errno> {
    let sock = socket(cx.host.fs(), fd, 0)?;
    let s = sock.host()?;
    let on = match option {
        opt::REUSE_PORT => sockopt::socket_reuseport(s)?,
        opt::REUSE_ADDR => sockopt::socket_reuseaddr(s)?,
        opt::NO_DELAY => sockopt::tcp_nodelay(s)?,
        opt::ONLY_V6 => sockopt::ipv6_v6only(s)?,
        opt::BROADCAST => sockopt::socket_broadcast(s)?,
        opt::MULTICAST_LOOP_V4 => sockopt::ip_multicast_loop(s)?,
        opt::MULTICAST_LOOP_V6 => sockopt::ipv6_multicast_loop(s)?,
        opt::KEEP_ALIVE => sockopt::socket_keepalive(s)?,
        opt::OOB_INLINE => sockopt::socket_oobinline(s)?,
        opt::LISTENING => sockopt::socket_acceptconn(s)?,
        opt::LAST_ERROR => sockopt::socket_error(s)?.is_err(),
        _ => return Err(Errno::Inval),
    };
    ret.set(&mut cx.mem, u8::from(on));
    Ok(())
}

/// The host timeout a time option is: accept waits as long as receives do and connect as
/// long as sends do, as on Linux.
fn timeout_of(option: i32) -> Option<sockopt::Timeout> {
    match option {
        opt::RECV_TIMEOUT | opt::ACCEPT_TIMEOUT => Some(sockopt::Timeout::Recv),
        opt::SEND_TIMEOUT | opt::CONNECT_TIMEOUT => Some(sockopt::Timeout::Send),
        _ => None,
    }
}

/// An `option_timestamp` (tag u8, then ns as u64 at 8): `None` for tag 0.
fn sock_set_opt_time(cx: &mut Call<'_>, fd: u32, option: i32, at: u32) -> Result<(), Errno> {
    let sock = socket(cx.host.fs(), fd, 0)?;
    let raw = cx.mem.read_array::<16>(at)?;
    let value = match raw[0] {
        0 => None,
        1 => Some(Duration::from_nanos(u64::from_le_bytes(
            raw[8..16].try_into().map_err(|_| Errno::Inval)?,
        ))),
        _ => return Err(Errno::Inval),
    };
    let s = sock.host()?;
    if option == opt::LINGER {
        return Ok(sockopt::set_socket_linger(s, value)?);
    }
    let id = timeout_of(option).ok_or(Errno::Inval)?;
    // A zero timeout means none to the host; the guest's zero means "at once".
    let value = value.map(|d| d.max(Duration::from_micros(1)));
    Ok(sockopt::set_socket_timeout(s, id, value)?)
}

fn sock_get_opt_time(
    cx: &mut Call<'_>,
    fd: u32,
    option: i32,
    ret: Out<[u8; 16]>,
) -> Result<(), Errno> {
    let sock = socket(cx.host.fs(), fd, 0)?;
    let s = sock.host()?;
    let value = if option == opt::LINGER {
        sockopt::socket_linger(s)?
    } else {
        sockopt::socket_timeout(s, timeout_of(option).ok_or(Errno::Inval)?)?
    };
    let mut out = [0u8; 16];
    if let Some(d) = value {
        out[0] = 1;
        out[8..16].copy_from_slice(&(d.as_nanos().min(u128::from(u64::MAX)) as u64).to_le_bytes());
    }
    ret.set(&mut cx.mem, out);
    Ok(())
}

fn sock_set_opt_size(cx: &mut Call<'_>, fd: u32, option: i32, size: u64) -> Result<(), Errno> {
    let sock = socket(cx.host.fs(), fd, 0)?;
    let s = sock.host()?;
    let n = usize::try_from(size).map_err(|_| Errno::Inval)?;
    let n32 = u32::try_from(size).map_err(|_| Errno::Inval)?;
    let r = match option {
        opt::RECV_BUF_SIZE => sockopt::set_socket_recv_buffer_size(s, n),
        opt::SEND_BUF_SIZE => sockopt::set_socket_send_buffer_size(s, n),
        opt::TTL => sockopt::set_ip_ttl(s, n32),
        opt::MULTICAST_TTL_V4 => sockopt::set_ip_multicast_ttl(s, n32),
        _ => return Err(Errno::Inval),
    };
    Ok(r?)
}

fn sock_get_opt_size(cx: &mut Call<'_>, fd: u32, option: i32, ret: Out<u64>) -> Result<(), Errno> {
    let sock = socket(cx.host.fs(), fd, 0)?;
    let s = sock.host()?;
    let v = match option {
        opt::RECV_BUF_SIZE => sockopt::socket_recv_buffer_size(s)? as u64,
        opt::SEND_BUF_SIZE => sockopt::socket_send_buffer_size(s)? as u64,
        opt::TTL => u64::from(sockopt::ip_ttl(s)?),
        opt::MULTICAST_TTL_V4 => u64::from(sockopt::ip_multicast_ttl(s)?),
        opt::TYPE => match sockopt::socket_type(s)? {
            SocketType::STREAM => 1,
            SocketType::DGRAM => 2,
            SocketType::SEQPACKET => 4,
            _ => 0,
        },
        opt::PROTO => u64::from(sockopt::socket_protocol(s)?.map_or(0, |p| p.as_raw().get())),
        _ => return Err(Errno::Inval),
    };
    ret.set(&mut cx.mem, v);
    Ok(())
}

fn multicast_v4(
    cx: &mut Call<'_>,
    fd: u32,
    group: u32,
    iface: u32,
    join: bool,
) -> Result<(), Errno> {
    let sock = socket(cx.host.fs(), fd, 0)?;
    let group = addr::decode_ip4(cx.mem.read_array::<4>(group)?);
    let iface = addr::decode_ip4(cx.mem.read_array::<4>(iface)?);
    let s = sock.host()?;
    let r = if join {
        sockopt::set_ip_add_membership(s, &group, &iface)
    } else {
        sockopt::set_ip_drop_membership(s, &group, &iface)
    };
    Ok(r?)
}

fn sock_join_multicast_v4(cx: &mut Call<'_>, fd: u32, group: u32, iface: u32) -> Result<(), Errno> {
    multicast_v4(cx, fd, group, iface, true)
}

fn sock_leave_multicast_v4(
    cx: &mut Call<'_>,
    fd: u32,
    group: u32,
    iface: u32,
) -> Result<(), Errno> {
    multicast_v4(cx, fd, group, iface, false)
}

fn multicast_v6(
    cx: &mut Call<'_>,
    fd: u32,
    group: u32,
    iface: u32,
    join: bool,
) -> Result<(), Errno> {
    let sock = socket(cx.host.fs(), fd, 0)?;
    let group = addr::decode_ip6(cx.mem.read_array::<16>(group)?);
    let s = sock.host()?;
    let r = if join {
        sockopt::set_ipv6_add_membership(s, &group, iface)
    } else {
        sockopt::set_ipv6_drop_membership(s, &group, iface)
    };
    Ok(r?)
}

fn sock_join_multicast_v6(cx: &mut Call<'_>, fd: u32, group: u32, iface: u32) -> Result<(), Errno> {
    multicast_v6(cx, fd, group, iface, true)
}

fn sock_leave_multicast_v6(
    cx: &mut Call<'_>,
    fd: u32,
    group: u32,
    iface: u32,
) -> Result<(), Errno> {
    multicast_v6(cx, fd, group, iface, false)
}

/// Longest host name `resolve` takes (DNS's limit).
const MAX_HOST_NAME: u32 = 253;

/// `resolve(host, host_len, port, addrs, naddrs, ret)`: up to `naddrs` addresses of `host`,
/// 18-byte `__wasi_addr_ip_t` entries; the number written. `localhost` is the loopback
/// addresses whatever the host's resolver says; other names need the policy's leave.
fn resolve(
    cx: &mut Call<'_>,
    host: u32,
    host_len: u32,
    port: i32,
    addrs: u32,
    naddrs: u32,
    ret: Out<u32>,
) -> Result<(), Errno> {
    if host_len > MAX_HOST_NAME {
        return Err(Errno::Inval);
    }
    let name =
        String::from_utf8(cx.mem.bytes(host, host_len)?.into_owned()).map_err(|_| Errno::Inval)?;
    let name = name.trim_end_matches('\0');
    let table = naddrs
        .checked_mul(addr::ADDR_IP as u32)
        .ok_or(Errno::Fault)?;
    cx.mem.check(addrs, table)?;
    if !cx.host.ctx.runtime.network().may_resolve(name) {
        tracing::warn!(
            target: "wasmix::net",
            "resolve {name}: refused by the network policy; allow it with --net or --net-allow resolve={name}"
        );
        return Err(Errno::Acces);
    }
    let port = u16::try_from(port).unwrap_or(0);
    let mut found: Vec<IpAddr> = if name.eq_ignore_ascii_case("localhost") {
        vec![
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ]
    } else {
        // The host resolver blocks without heed of signals; names are short-lived lookups.
        (name, port)
            .to_socket_addrs()
            .map_err(|_| Errno::Noent)?
            .map(|a| a.ip())
            .collect()
    };
    let mut seen = std::collections::HashSet::new();
    found.retain(|ip| seen.insert(*ip));
    let n = found.len().min(naddrs as usize);
    for (i, ip) in found.iter().take(n).enumerate() {
        cx.mem.write(
            addrs + (i * addr::ADDR_IP) as u32,
            &addr::encode_addr_ip(*ip),
        )?;
    }
    ret.set(&mut cx.mem, n as u32);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accepted_connection_names_its_peer() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_conn, peer) = rustix::net::acceptfrom_with(&l, SocketFlags::CLOEXEC).unwrap();
        assert_eq!(from_host(peer), SockAddr::Ip(c.local_addr().unwrap()));
    }
}
