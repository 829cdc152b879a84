//! WASIX epoll: `epoll_create`, `epoll_ctl`, `epoll_wait` over any host-backed descriptor
//! (sockets, pipes, eventfds, stdin), level- or edge-triggered, on a host epoll
//! (`wasmix_fs::epoll`). A wait blocks beside the thread's interrupt, so signals, kills and
//! snapshots reach it.
//!
//! ```text
//! __wasi_epoll_event_t (32 bytes)
//!   0  events  u32   WASIX epoll_type bits (IN 1, OUT 2, RDHUP 4, PRI 8, ERR 16, HUP 32,
//!                    ET 64, ONESHOT 128)
//!   8  data    24 bytes (ptr u32, fd u32, data1 u32, data2 u64), handed back as given
//! ```

use std::time::{Duration, Instant};

use wasmix_fs::epoll::{Ctl, Epoll, DATA_LEN};
use wasmix_fs::{Errno, OpenFile};
use wasmtime::Result;

use super::{host_calls, Abi, Call, HostCalls};
use crate::mem::Out;

const EVENT_LEN: u32 = 32;

pub(super) fn add(calls: &mut HostCalls) -> Result<()> {
    // A wait interrupted by a handled signal answers EINTR, as epoll_wait(2) does.
    host_calls!(calls, Abi::Wasix, [epoll_create, epoll_ctl, epoll_wait]);
    Ok(())
}

fn epoll_create(cx: &mut Call<'_>, ret: Out<u32>) -> Result<(), Errno> {
    let file = OpenFile::epoll(Epoll::new()?);
    let fd = cx.host.fs().insert(file, 0, 0)?;
    ret.set(&mut cx.mem, fd);
    Ok(())
}

fn epoll_ctl(cx: &mut Call<'_>, epfd: u32, op: u32, fd: u32, event: u32) -> Result<(), Errno> {
    let ep_file = cx.host.fs().file(epfd, 0)?;
    let ep = ep_file.as_epoll().ok_or(Errno::Inval)?;
    let target = cx.host.fs().file(fd, 0)?;
    let op = match op {
        0 => Ctl::Add,
        1 => Ctl::Modify,
        2 => Ctl::Delete,
        _ => return Err(Errno::Inval),
    };
    let (events, data) = if op == Ctl::Delete {
        (0, [0u8; DATA_LEN])
    } else {
        let raw = cx.mem.read_array::<{ EVENT_LEN as usize }>(event)?;
        let events = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let mut data = [0u8; DATA_LEN];
        data.copy_from_slice(&raw[8..32]);
        (events, data)
    };
    if target
        .as_epoll()
        .is_some_and(|other| std::ptr::eq(other, ep))
    {
        return Err(Errno::Inval);
    }
    ep.ctl(op, fd, &target, target.pollable_fd(), events, data)
}

/// The wait a `timeout` in ns means: `None` for ever (u64::MAX, as wasix-libc passes for
/// a negative timeout).
fn wait_for(timeout: u64) -> Option<Duration> {
    (timeout != u64::MAX).then(|| Duration::from_nanos(timeout))
}

fn epoll_wait(
    cx: &mut Call<'_>,
    epfd: u32,
    events: u32,
    max: u32,
    timeout: u64,
    ret: Out<u32>,
) -> Result<(), Errno> {
    if max == 0 || max > i32::MAX as u32 / EVENT_LEN {
        return Err(Errno::Inval);
    }
    cx.mem.check(events, max * EVENT_LEN)?;
    let ep_file = cx.host.fs().file(epfd, 0)?;
    let ep = ep_file.as_epoll().ok_or(Errno::Inval)?;
    let deadline = wait_for(timeout).map(|t| Instant::now() + t);
    let ready = loop {
        let ready = ep.ready(max as usize)?;
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if !ready.is_empty() || left == Some(Duration::ZERO) {
            break ready;
        }
        crate::blocking::wait_fds(cx.host, &[(ep.as_fd(), false)], left)?;
    };
    for (i, r) in ready.iter().enumerate() {
        let mut out = [0u8; EVENT_LEN as usize];
        out[0..4].copy_from_slice(&r.events.to_le_bytes());
        out[8..32].copy_from_slice(&r.data);
        cx.mem.write(events + i as u32 * EVENT_LEN, &out)?;
    }
    ret.set(&mut cx.mem, ready.len() as u32);
    Ok(())
}
