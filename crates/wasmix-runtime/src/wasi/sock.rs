//! sock_* calls on sockets handed to the guest (preopened listeners and what they accept).

use std::os::fd::AsFd;

use rustix::net::{RecvFlags, SendFlags, Shutdown, SocketFlags};
use wasmix_fs::abi::{fdflags, rights, Filetype};
use wasmix_fs::{Errno, FileSystem, HostFd, Node, OpenFile};
use wasmtime::Result;

use super::{host_calls, narrow, Abi, Call, HostCalls};
use crate::mem::Out;

/// The socket behind `fd`: EBADF if closed, ENOTSOCK if it is something else.
fn socket(fs: &FileSystem, fd: u32, required: u64) -> Result<std::sync::Arc<OpenFile>, Errno> {
    let file = fs.file(fd, 0)?;
    match file.filetype()? {
        Filetype::SocketStream | Filetype::SocketDgram => {}
        _ => return Err(Errno::Notsock),
    }
    fs.file(fd, required)
}

/// Rights of a connected stream socket.
pub(crate) const SOCKET_RIGHTS: u64 =
    rights::STREAM_BASE | rights::SOCK_SHUTDOWN | rights::FD_FILESTAT_GET;

pub(super) fn add(calls: &mut HostCalls<'_>, abi: Abi) -> Result<()> {
    if abi != Abi::Preview0 {
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

fn sock_accept(cx: &mut Call<'_>, fd: u32, flags: i32, ret: Out<u32>) -> Result<(), Errno> {
    if super::snapshot_at(cx, &[wasmix_process::Trigger::Bootstrap]) {
        return Err(Errno::Intr);
    }
    let flags: u16 = narrow(flags)?;
    if flags & !fdflags::NONBLOCK != 0 {
        return Err(Errno::Inval);
    }
    let listener = socket(cx.host.fs(), fd, rights::SOCK_ACCEPT)?;
    // Waited for in poll(2) beside the thread's interrupt, so signals, kills and snapshots
    // reach a thread waiting for a connection (a blocking listener; EAGAIN otherwise).
    crate::blocking::ready(cx.host, &listener, false)?;
    let fs = cx.host.fs();
    let mut sflags = SocketFlags::CLOEXEC;
    if flags & fdflags::NONBLOCK != 0 {
        sflags |= SocketFlags::NONBLOCK;
    }
    let conn = rustix::net::accept_with(listener.host()?.as_fd(), sflags)?;
    let file = OpenFile::new(Node::Stream(HostFd::Owned(conn)), flags);
    let new = fs.insert(file, SOCKET_RIGHTS, 0)?;
    ret.set(&mut cx.mem, new);
    Ok(())
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
    if super::snapshot_at(cx, &[wasmix_process::Trigger::Bootstrap]) {
        return Err(Errno::Intr);
    }
    let sock = socket(cx.host.fs(), fd, rights::FD_READ)?;
    crate::blocking::ready(cx.host, &sock, false)?;
    let mut flags = RecvFlags::empty();
    if ri_flags & 1 != 0 {
        flags |= RecvFlags::PEEK;
    }
    if ri_flags & 2 != 0 {
        flags |= RecvFlags::WAITALL;
    }
    if ri_flags & !3 != 0 {
        return Err(Errno::Inval);
    }
    let list = cx.mem.iovecs(iovs, count)?;
    let mut total = 0usize;
    if let Some(&(p, l)) = list.iter().find(|(_, l)| *l > 0) {
        total = cx.mem.fill(p, l, |buf| {
            Ok::<usize, Errno>(rustix::net::recv(sock.host()?, buf, flags)?.0)
        })?;
    }
    ret_len.set(&mut cx.mem, total as u32);
    ret_flags.set(&mut cx.mem, 0);
    Ok(())
}

fn sock_send(
    cx: &mut Call<'_>,
    fd: u32,
    iovs: u32,
    count: u32,
    _si_flags: i32,
    ret: Out<u32>,
) -> Result<(), Errno> {
    let sock = socket(cx.host.fs(), fd, rights::FD_WRITE)?;
    crate::blocking::ready(cx.host, &sock, true)?;
    let list = cx.mem.iovecs(iovs, count)?;
    let mut total = 0usize;
    for (p, l) in list {
        let n = rustix::net::send(sock.host()?, &cx.mem.bytes(p, l)?, SendFlags::NOSIGNAL)?;
        total += n;
        if n < l as usize {
            break;
        }
    }
    ret.set(&mut cx.mem, total as u32);
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
