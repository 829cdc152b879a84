//! sock_* calls on sockets handed to the guest (preopened listeners and what they accept).

use std::os::fd::AsFd;

use super::HostCalls;
use rustix::net::{RecvFlags, SendFlags, Shutdown, SocketFlags};
use wasmix_fs::abi::{fdflags, rights, Filetype};
use wasmix_fs::{Errno, FileSystem, HostFd, Node, OpenFile};
use wasmtime::Result;

use super::{narrow, syscall, Abi};

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

pub(super) fn add(linker: &mut HostCalls<'_>, abi: Abi) -> Result<()> {
    if abi != Abi::Preview0 {
        syscall!(
            linker,
            abi,
            "sock_accept",
            |host, mem, fd: i32, flags: i32, ret: i32| {
                let flags: u16 = narrow(flags)?;
                if flags & !fdflags::NONBLOCK != 0 {
                    return Err(Errno::Inval);
                }
                let listener = socket(&host.fs, fd as u32, rights::SOCK_ACCEPT)?;
                let mut sflags = SocketFlags::CLOEXEC;
                if flags & fdflags::NONBLOCK != 0 {
                    sflags |= SocketFlags::NONBLOCK;
                }
                let conn = rustix::net::accept_with(listener.host()?.as_fd(), sflags)?;
                let file = OpenFile::new(Node::Stream(HostFd::Owned(conn)), flags);
                let new = host.fs.insert(file, SOCKET_RIGHTS, 0)?;
                mem.put_u32(ret as u32, new)
            }
        );
    }
    syscall!(
        linker,
        abi,
        "sock_recv",
        |host, mem, fd: i32, iovs: i32, count: i32, ri_flags: i32, ret_len: i32, ret_flags: i32| {
            let sock = socket(&host.fs, fd as u32, rights::FD_READ)?;
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
            let list = mem.iovecs(iovs as u32, count as u32)?;
            let mut total = 0usize;
            if let Some(&(p, l)) = list.iter().find(|(_, l)| *l > 0) {
                let buf = mem.slice_mut(p, l)?;
                total = rustix::net::recv(sock.host()?, buf, flags)?.0;
            }
            mem.put_u32(ret_len as u32, total as u32)?;
            mem.put_u16(ret_flags as u32, 0)
        }
    );
    syscall!(
        linker,
        abi,
        "sock_send",
        |host, mem, fd: i32, iovs: i32, count: i32, _si_flags: i32, ret: i32| {
            let sock = socket(&host.fs, fd as u32, rights::FD_WRITE)?;
            let list = mem.iovecs(iovs as u32, count as u32)?;
            let mut total = 0usize;
            for (p, l) in list {
                let n = rustix::net::send(sock.host()?, mem.slice(p, l)?, SendFlags::NOSIGNAL)?;
                total += n;
                if n < l as usize {
                    break;
                }
            }
            mem.put_u32(ret as u32, total as u32)
        }
    );
    syscall!(
        linker,
        abi,
        "sock_shutdown",
        |host, mem, fd: i32, how: i32| {
            let sock = socket(&host.fs, fd as u32, rights::SOCK_SHUTDOWN)?;
            let how = match how {
                1 => Shutdown::Read,
                2 => Shutdown::Write,
                3 => Shutdown::Both,
                _ => return Err(Errno::Inval),
            };
            Ok(rustix::net::shutdown(sock.host()?, how)?)
        }
    );
    Ok(())
}
