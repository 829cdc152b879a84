//! Sockets in a snapshot: what a journal records of one, and the socket a restore makes of
//! that record. A socket's connection cannot be carried to another run, its address can: a
//! bound socket is bound to the same address again (and listens again if it listened),
//! where the caller's network policy lets it; a connected one comes back reset, so the
//! guest reads ECONNRESET as if its peer had dropped the connection.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};
use wasmix_journal::record;

use crate::errno::Errno;

/// Backlog a restored listener gets (the guest's own is not readable back from the host).
const BACKLOG: i32 = 128;

/// The record of socket `fd`.
pub(crate) fn describe(fd: &OwnedFd) -> Option<record::Node> {
    let stream = sockopt::socket_type(fd).ok()? == SocketType::STREAM;
    let local = rustix::net::getsockname(fd)
        .ok()
        .and_then(|a| SocketAddr::try_from(a).ok());
    let v6 = match local {
        Some(a) => a.is_ipv6(),
        None => sockopt::socket_domain(fd).ok()? == AddressFamily::INET6,
    };
    let connected = matches!(rustix::net::getpeername(fd), Ok(Some(_)));
    Some(record::Node::Socket {
        stream,
        v6,
        local: local.filter(|a| a.port() != 0).map(Into::into),
        listening: sockopt::socket_acceptconn(fd).unwrap_or(false),
        connected,
    })
}

/// A host socket (non-blocking) as `node` recorded it; `may_bind` says whether the run's
/// policy lets it bind where it was. `None`: it cannot come back (the address is taken or
/// refused) and is restored closed.
pub(crate) fn restore(
    node: &record::Node,
    may_bind: &dyn Fn(SocketAddr) -> bool,
) -> Result<Option<OwnedFd>, Errno> {
    let record::Node::Socket {
        stream,
        v6,
        local,
        listening,
        connected,
    } = node
    else {
        return Ok(None);
    };
    if *connected && *stream {
        return reset().map(Some);
    }
    let family = if *v6 {
        AddressFamily::INET6
    } else {
        AddressFamily::INET
    };
    let ty = if *stream {
        SocketType::STREAM
    } else {
        SocketType::DGRAM
    };
    let fd = rustix::net::socket_with(
        family,
        ty,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    if let Some(local) = local {
        let local = SocketAddr::from(*local);
        if !may_bind(local) {
            return Ok(None);
        }
        sockopt::set_socket_reuseaddr(&fd, true)?;
        if rustix::net::bind(&fd, &local).is_err() {
            return Ok(None);
        }
        if *listening {
            rustix::net::listen(&fd, BACKLOG)?;
        }
    }
    Ok(Some(fd))
}

/// A TCP socket whose peer reset the connection: made over loopback, the peer closing with
/// a zero linger (which sends a reset).
fn reset() -> Result<OwnedFd, Errno> {
    let flags = SocketFlags::CLOEXEC;
    let listener = rustix::net::socket_with(AddressFamily::INET, SocketType::STREAM, flags, None)?;
    rustix::net::bind(&listener, &SocketAddr::from(([127, 0, 0, 1], 0)))?;
    rustix::net::listen(&listener, 1)?;
    let at = SocketAddr::try_from(rustix::net::getsockname(&listener)?).map_err(|_| Errno::Io)?;
    let ours = rustix::net::socket_with(AddressFamily::INET, SocketType::STREAM, flags, None)?;
    rustix::net::connect(&ours, &at)?;
    let peer = rustix::net::accept_with(&listener, flags)?;
    sockopt::set_socket_linger(&peer, Some(Duration::ZERO))?;
    drop(peer);
    let mut nonblocking = rustix::fs::fcntl_getfl(ours.as_fd())?;
    nonblocking |= rustix::fs::OFlags::NONBLOCK;
    rustix::fs::fcntl_setfl(&ours, nonblocking)?;
    Ok(ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_listens_again_at_its_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = l.local_addr().unwrap();
        let node = describe(&OwnedFd::from(l)).unwrap();
        assert_eq!(
            node,
            record::Node::Socket {
                stream: true,
                v6: false,
                local: Some(at.into()),
                listening: true,
                connected: false
            }
        );
        let fd = restore(&node, &|a| a == at).unwrap().expect("rebound");
        assert!(sockopt::socket_acceptconn(&fd).unwrap());
        drop(std::net::TcpStream::connect(at).unwrap());
        // Refused by the policy: it comes back closed.
        drop(fd);
        assert!(restore(&node, &|_| false).unwrap().is_none());
    }

    #[test]
    fn a_connected_socket_comes_back_reset() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let node = describe(&OwnedFd::from(c)).unwrap();
        let fd = restore(&node, &|_| true).unwrap().unwrap();
        let mut buf = [0u8; 8];
        // The reset may still be on its way over loopback: wait for it to land.
        let mut pfd = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        rustix::event::poll(&mut pfd, None).unwrap();
        assert_eq!(
            rustix::io::read(&fd, &mut buf),
            Err(rustix::io::Errno::CONNRESET)
        );
    }
}
