//! Waiting for a host descriptor without becoming deaf to signals: `poll(2)` on the descriptor
//! and on the thread's interrupt eventfd together.

use std::os::fd::{AsFd, BorrowedFd};

use rustix::event::{PollFd, PollFlags};
use wasmix_fs::abi::fdflags;
use wasmix_fs::{Errno, Node, OpenFile};

use crate::host::Host;

/// For a blocking stream, waits until `file` is readable (or writable); returns EINTR when a
/// signal or kill needs the thread. Files, devices and non-blocking descriptors return at once.
pub(crate) fn ready(host: &Host, file: &OpenFile, write: bool) -> Result<(), Errno> {
    let Node::Stream(stream) = file.node() else {
        return Ok(());
    };
    if file.flags() & fdflags::NONBLOCK != 0 || !file.may_block() {
        return Ok(());
    }
    wait_fds(host, &[(stream.as_fd(), write)], None).map(drop)
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
