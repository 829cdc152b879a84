//! Waiting for a host descriptor without becoming deaf to signals: `poll(2)` on the descriptor
//! and on the thread's interrupt eventfd together. And CPU backoff for guests that poll
//! idly: a poll with no timeout, or a non-blocking read, that finds nothing right after the
//! last one did ([`idle_poll`]) waits a little instead — 1 ms, doubling to 100 ms, after
//! 500 ms of such polling (the process's `CpuBackoff`) — for the same descriptors, so what
//! arrives meanwhile still ends the wait at once; any real event resets it ([`progress`]).

use std::os::fd::{AsFd, BorrowedFd};

use rustix::event::{PollFd, PollFlags};
use wasmix_fs::abi::fdflags;
use wasmix_fs::{Errno, Node, OpenFile};

use crate::host::Host;

/// For a blocking stream, waits until `file` is readable (or writable); returns EINTR when a
/// signal or kill needs the thread. Files, devices and non-blocking descriptors return at once.
/// A socket's receive (or send) timeout bounds the wait: past it, EAGAIN, as on Linux.
pub(crate) fn ready(host: &Host, file: &OpenFile, write: bool) -> Result<(), Errno> {
    let Node::Stream(stream) = file.node() else {
        return Ok(());
    };
    if file.flags() & fdflags::NONBLOCK != 0 || !file.may_block() {
        return Ok(());
    }
    let timeout = if file.opened_socket() {
        let id = if write {
            rustix::net::sockopt::Timeout::Send
        } else {
            rustix::net::sockopt::Timeout::Recv
        };
        rustix::net::sockopt::socket_timeout(stream.as_fd(), id)
            .ok()
            .flatten()
    } else {
        None
    };
    let revents = wait_fds(host, &[(stream.as_fd(), write)], timeout)?;
    if revents.iter().all(|r| r.is_empty()) {
        return Err(Errno::Again);
    }
    Ok(())
}

/// Polls `fds` (each for reading, or writing when its flag is set) plus the thread's
/// interrupt, for at most `timeout` (`None`: until one is ready). Returns the revents of
/// `fds`, or EINTR.
pub(crate) fn wait_fds(
    host: &Host,
    fds: &[(BorrowedFd<'_>, bool)],
    timeout: Option<std::time::Duration>,
) -> Result<Vec<PollFlags>, Errno> {
    let Some(efd) = host.interrupt.eventfd() else {
        return Err(Errno::Nomem);
    };
    loop {
        // A snapshot wanting the thread counts too: the interrupt that asked for it may have
        // been taken already (by a signal delivered on the way here).
        if host.interrupt.is_raised() || host.thread.is_killed() || crate::snapshot::wanted(host) {
            return Err(Errno::Intr);
        }
        let mut set: Vec<PollFd<'_>> = fds
            .iter()
            .map(|(fd, write)| {
                let flags = if *write {
                    PollFlags::OUT
                } else {
                    PollFlags::IN
                };
                PollFd::from_borrowed_fd(*fd, flags)
            })
            .collect();
        set.push(PollFd::from_borrowed_fd(efd, PollFlags::IN));
        let ts = timeout.map(|t| rustix::time::Timespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: t.subsec_nanos() as _,
        });
        let _asleep = host.thread.checkpoint().sleep();
        match rustix::event::poll(&mut set, ts.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let (mine, interrupt) = set.split_at(fds.len());
        if !interrupt[0].revents().is_empty() {
            host.interrupt.drain();
            if host.interrupt.is_raised() || host.thread.is_killed() {
                return Err(Errno::Intr);
            }
        }
        let revents: Vec<PollFlags> = mine.iter().map(|p| p.revents()).collect();
        if revents.iter().any(|r| !r.is_empty()) || timeout.is_some() {
            return Ok(revents);
        }
    }
}

/// How close (from the return of one to the next) polls that find nothing must follow each
/// other to count as a busy poll: a program that does anything else in between is not idle.
const BACK_TO_BACK: std::time::Duration = std::time::Duration::from_millis(1);

/// A poll of `host`'s thread is about to find nothing (a zero timeout, or a non-blocking
/// read): how long it should wait for its descriptors instead, if the process has polled
/// idly, back to back, past the cool-off.
pub(crate) fn idle_poll(host: &Host) -> Option<std::time::Duration> {
    if !host.ctx.runtime.cpu_backoff() {
        return None;
    }
    let backoff = host.ctx.process.backoff();
    let now = std::time::Instant::now();
    match host.idle_poll_at {
        Some(t) if now.saturating_duration_since(t) < BACK_TO_BACK => backoff.idle_at(now),
        _ => {
            backoff.activity();
            None
        }
    }
}

/// After a poll: found something (`true`: the backoff starts over) or nothing (the time is
/// noted, for [`idle_poll`]).
pub(crate) fn polled(host: &mut Host, found: bool) {
    if found {
        host.ctx.process.backoff().activity();
        host.idle_poll_at = None;
    } else {
        host.idle_poll_at = Some(std::time::Instant::now());
    }
}
