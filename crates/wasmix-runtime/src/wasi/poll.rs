//! poll_oneoff over clocks and descriptor readiness.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::PollFlags;
use rustix::time::ClockId;
use wasmix_fs::abi::rights;
use wasmix_fs::{Errno, OpenFile};
use wasmtime::Result;

use super::clock::{clock_id, now};
use super::{host_calls, Abi, Call, HostCalls};
use crate::host::{Host, Sleep};
use crate::mem::{GuestMem, Out};

const EVENT_CLOCK: u8 = 0;
const EVENT_FD_READ: u8 = 1;
const EVENT_FD_WRITE: u8 = 2;
const HANGUP: u16 = 1;

struct Event {
    userdata: u64,
    error: Errno_,
    kind: u8,
    nbytes: u64,
    flags: u16,
}

type Errno_ = Option<Errno>;

enum Sub {
    Clock {
        userdata: u64,
        deadline: Instant,
    },
    Fd {
        userdata: u64,
        kind: u8,
        file: Arc<OpenFile>,
    },
}

fn subscription_size(abi: Abi) -> u32 {
    match abi {
        Abi::Preview1 | Abi::Wasix => 48,
        Abi::Preview0 => 56,
    }
}

/// Decodes a clock subscription into a deadline on the monotonic clock.
fn clock_deadline(mem: &GuestMem, at: u32, abi: Abi) -> Result<Instant, Errno> {
    let base = match abi {
        Abi::Preview1 | Abi::Wasix => at + 16,
        Abi::Preview0 => at + 24,
    };
    let id = clock_id(mem.u32(base)? as i32)?;
    let timeout = mem.u64(base + 8)?;
    let abstime = mem.u16(base + 24)? & 1 != 0;
    let wait = if abstime {
        let current = match id {
            ClockId::Realtime => now(ClockId::Realtime),
            other => now(other),
        };
        timeout.saturating_sub(current)
    } else {
        timeout
    };
    // Saturate far-future timeouts instead of overflowing Instant.
    let wait = Duration::from_nanos(wait.min(u64::MAX / 4));
    Ok(Instant::now()
        .checked_add(wait)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(1 << 32)))
}

fn put_event(mem: &mut GuestMem, at: u32, e: &Event) -> Result<(), Errno> {
    let mut out = [0u8; 32];
    out[0..8].copy_from_slice(&e.userdata.to_le_bytes());
    out[8..10].copy_from_slice(&e.error.map_or(0, |x| x.raw()).to_le_bytes());
    out[10] = e.kind;
    out[16..24].copy_from_slice(&e.nbytes.to_le_bytes());
    out[24..26].copy_from_slice(&e.flags.to_le_bytes());
    mem.write(at, &out)
}

/// Most subscriptions one `poll_oneoff` takes (~4 MiB of host memory at most).
const MAX_SUBSCRIPTIONS: u32 = 65_536;

fn poll(
    host: &mut Host,
    mem: &mut GuestMem,
    input: u32,
    output: u32,
    count: u32,
    abi: Abi,
) -> Result<u32, Errno> {
    // Each subscription costs the host a few words while the call lasts; past the bound a
    // guest-chosen count would cost it gigabytes (poll(2) answers EINVAL past its limit too).
    if count == 0 || count > MAX_SUBSCRIPTIONS {
        return Err(Errno::Inval);
    }
    let size = subscription_size(abi);
    mem.check(input, count.checked_mul(size).ok_or(Errno::Fault)?)?;
    mem.check(output, count.checked_mul(32).ok_or(Errno::Fault)?)?;

    let mut ready = Vec::new();
    let mut subs = Vec::new();
    for i in 0..count {
        let at = input + i * size;
        let userdata = mem.u64(at)?;
        let kind = mem.u8(at + 8)?;
        match kind {
            EVENT_CLOCK => match clock_deadline(mem, at, abi) {
                Ok(deadline) => subs.push(Sub::Clock { userdata, deadline }),
                Err(e) => ready.push(Event {
                    userdata,
                    error: Some(e),
                    kind,
                    nbytes: 0,
                    flags: 0,
                }),
            },
            EVENT_FD_READ | EVENT_FD_WRITE => {
                let fd = mem.u32(at + 16)?;
                match host.fs().file(fd, rights::POLL_FD_READWRITE) {
                    Ok(file) => subs.push(Sub::Fd {
                        userdata,
                        kind,
                        file,
                    }),
                    Err(e) => ready.push(Event {
                        userdata,
                        error: Some(e),
                        kind,
                        nbytes: 0,
                        flags: 0,
                    }),
                }
            }
            _ => return Err(Errno::Inval),
        }
    }

    // Regular files and synthetic devices are always ready; streams are asked of the host.
    let mut waiting = Vec::new();
    for sub in &subs {
        if let Sub::Fd {
            userdata,
            kind,
            file,
        } = sub
        {
            match file.pollable_fd() {
                None => {
                    let nbytes = if *kind == EVENT_FD_READ {
                        file.readable_bytes()
                    } else {
                        0
                    };
                    ready.push(Event {
                        userdata: *userdata,
                        error: None,
                        kind: *kind,
                        nbytes,
                        flags: 0,
                    });
                }
                Some(_) => waiting.push((*userdata, *kind, Arc::clone(file))),
            }
        }
    }
    let sleep_only = subs.iter().all(|s| matches!(s, Sub::Clock { .. })) && ready.is_empty();
    if sleep_only {
        if let Some(sleep) = host.pending.take_sleep() {
            if sleep.subscriptions == input && sleep.deadlines.len() == subs.len() {
                for (sub, d) in subs.iter_mut().zip(sleep.deadlines) {
                    if let Sub::Clock { deadline, .. } = sub {
                        *deadline = d;
                    }
                }
            }
        }
    }
    // A poll of descriptors with a zero timeout that finds none ready is what a busy poller
    // makes: past the backoff's cool-off it waits for them a while instead (CPU backoff).
    let entered = Instant::now();
    let min_deadline = |subs: &[Sub]| {
        subs.iter()
            .filter_map(|s| match s {
                Sub::Clock { deadline, .. } => Some(*deadline),
                _ => None,
            })
            .min()
    };
    let zero_timeout = !waiting.is_empty()
        && ready.is_empty()
        && min_deadline(&subs).is_some_and(|d| d <= entered);
    if zero_timeout && no_fd_ready(&waiting) {
        if let Some(wait) = crate::blocking::idle_poll(host) {
            for sub in subs.iter_mut() {
                if let Sub::Clock { deadline, .. } = sub {
                    *deadline = (*deadline).max(entered + wait);
                }
            }
        }
    }
    let deadline = min_deadline(&subs);
    let interrupted = |host: &mut Host, subs: &[Sub]| {
        if sleep_only {
            let deadlines = subs
                .iter()
                .filter_map(|s| match s {
                    Sub::Clock { deadline, .. } => Some(*deadline),
                    _ => None,
                })
                .collect();
            host.pending.set_sleep(Sleep {
                subscriptions: input,
                deadlines,
            });
        }
        Errno::Intr
    };

    loop {
        let timeout = if !ready.is_empty() {
            Some(Duration::ZERO)
        } else {
            deadline.map(|d| d.saturating_duration_since(Instant::now()))
        };
        if waiting.is_empty() {
            if let Some(t) = timeout {
                if host.thread.sleep(t).is_err() {
                    return Err(interrupted(host, &subs));
                }
            } else if ready.is_empty() {
                // Nothing can ever become ready.
                return Err(Errno::Inval);
            }
        } else {
            let fds: Vec<_> = waiting
                .iter()
                .map(|(_, kind, file)| {
                    let fd = file.pollable_fd().expect("checked pollable");
                    (fd, *kind != EVENT_FD_READ)
                })
                .collect();
            let revents = crate::blocking::wait_fds(host, &fds, timeout)?;
            drop(fds);
            for ((userdata, kind, file), rev) in waiting.iter().zip(revents) {
                if rev.is_empty() {
                    continue;
                }
                let error = if rev.contains(PollFlags::NVAL) {
                    Some(Errno::Badf)
                } else {
                    None
                };
                let flags = if rev.contains(PollFlags::HUP) {
                    HANGUP
                } else {
                    0
                };
                let nbytes = if *kind == EVENT_FD_READ {
                    bytes_available(file)
                } else {
                    0
                };
                ready.push(Event {
                    userdata: *userdata,
                    error,
                    kind: *kind,
                    nbytes,
                    flags,
                });
            }
        }
        let now = Instant::now();
        for sub in &subs {
            if let Sub::Clock { userdata, deadline } = sub {
                if *deadline <= now {
                    ready.push(Event {
                        userdata: *userdata,
                        error: None,
                        kind: EVENT_CLOCK,
                        nbytes: 0,
                        flags: 0,
                    });
                }
            }
        }
        if !ready.is_empty() {
            break;
        }
    }
    if zero_timeout {
        crate::blocking::polled(host, ready.iter().any(|e| e.kind != EVENT_CLOCK));
    }
    for (i, e) in ready.iter().enumerate() {
        put_event(mem, output + 32 * i as u32, e)?;
    }
    Ok(ready.len() as u32)
}

/// Whether none of `waiting` is ready right now (a poll(2) with a zero timeout).
fn no_fd_ready(waiting: &[(u64, u8, Arc<OpenFile>)]) -> bool {
    let mut fds: Vec<rustix::event::PollFd<'_>> = waiting
        .iter()
        .filter_map(|(_, kind, file)| {
            let flags = if *kind == EVENT_FD_READ {
                PollFlags::IN
            } else {
                PollFlags::OUT
            };
            file.pollable_fd()
                .map(|fd| rustix::event::PollFd::from_borrowed_fd(fd, flags))
        })
        .collect();
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(0))
}

fn bytes_available(file: &OpenFile) -> u64 {
    let Some(fd) = file.pollable_fd() else {
        return 0;
    };
    rustix::io::ioctl_fionread(fd.as_fd()).unwrap_or(0)
}

pub(super) fn add(calls: &mut HostCalls, abi: Abi) -> Result<()> {
    // A sleep (clock subscriptions only) interrupted by a handled signal resumes with the time
    // it had left: Rust's std treats EINTR from a sleep as fatal, and POSIX allows it. A poll
    // that watches descriptors returns EINTR, so event loops see the signal.
    host_calls!(calls, abi, [poll_oneoff(Sleep)]);
    Ok(())
}

fn poll_oneoff(
    cx: &mut Call<'_>,
    input: u32,
    output: u32,
    count: u32,
    ret: Out<u32>,
) -> Result<(), Errno> {
    if super::snapshot_at(cx, &[wasmix_process::Trigger::Bootstrap]) {
        return Err(Errno::Intr);
    }
    let n = poll(cx.host, &mut cx.mem, input, output, count, cx.abi)?;
    ret.set(&mut cx.mem, n);
    Ok(())
}
