//! An epoll instance: the guest's interest list over a host epoll.
//!
//! Each registration watches its own duplicate of the target's host descriptor, keyed by a
//! counter the host hands back with each event; the guest's 24-byte event data is kept
//! here and returned as given. The kernel so does readiness, level- and edge-triggering and
//! one-shot itself. Linux drops a registration once the file description is closed
//! everywhere; here a registration holds the description weakly and is dropped (its
//! duplicate closed) once the description is gone, before every wait and change.

use std::any::Any;
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use rustix::event::epoll;

use crate::errno::{Errno, FsResult};

/// What a registration holds its file description by: weakly, to see it closed.
type Description = Weak<dyn Any + Send + Sync>;

/// WASIX `epoll_type` bits.
pub mod events {
    /// Readable.
    pub const IN: u32 = 1 << 0;
    /// Writable.
    pub const OUT: u32 = 1 << 1;
    /// The peer shut down its writing half.
    pub const RDHUP: u32 = 1 << 2;
    /// Urgent data.
    pub const PRI: u32 = 1 << 3;
    /// An error.
    pub const ERR: u32 = 1 << 4;
    /// Hung up.
    pub const HUP: u32 = 1 << 5;
    /// Edge-triggered.
    pub const ET: u32 = 1 << 6;
    /// Reported once, then disabled until modified.
    pub const ONESHOT: u32 = 1 << 7;
}

const MAP: [(u32, epoll::EventFlags); 8] = [
    (events::IN, epoll::EventFlags::IN),
    (events::OUT, epoll::EventFlags::OUT),
    (events::RDHUP, epoll::EventFlags::RDHUP),
    (events::PRI, epoll::EventFlags::PRI),
    (events::ERR, epoll::EventFlags::ERR),
    (events::HUP, epoll::EventFlags::HUP),
    (events::ET, epoll::EventFlags::ET),
    (events::ONESHOT, epoll::EventFlags::ONESHOT),
];

fn to_host(bits: u32) -> FsResult<epoll::EventFlags> {
    let known = MAP.iter().fold(0, |a, (w, _)| a | w);
    if bits & !known != 0 {
        return Err(Errno::Inval);
    }
    Ok(MAP
        .iter()
        .filter(|(w, _)| bits & w != 0)
        .fold(epoll::EventFlags::empty(), |a, (_, h)| a | *h))
}

fn from_host(flags: epoll::EventFlags) -> u32 {
    MAP.iter()
        .filter(|(_, h)| flags.contains(*h))
        .fold(0, |a, (w, _)| a | w)
}

/// Bytes of the guest's event data (`__wasi_epoll_data_t`).
pub const DATA_LEN: usize = 24;

/// One registration.
struct Interest {
    /// The guest descriptor it was added under.
    fd: u32,
    file: Description,
    /// The duplicate the host epoll watches.
    watched: OwnedFd,
    data: [u8; DATA_LEN],
}

/// An epoll instance.
pub struct Epoll {
    host: OwnedFd,
    interest: Mutex<Interests>,
}

#[derive(Default)]
struct Interests {
    by_key: HashMap<u64, Interest>,
    next: u64,
}

/// A change to the interest list (`epoll_ctl`'s operation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctl {
    /// Add (EEXIST if there).
    Add,
    /// Change (ENOENT if not there).
    Modify,
    /// Remove (ENOENT if not there).
    Delete,
}

/// One ready registration, as `epoll_wait` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    /// WASIX event bits.
    pub events: u32,
    /// The event data it was registered with.
    pub data: [u8; DATA_LEN],
}

impl Epoll {
    /// A new, empty instance.
    pub fn new() -> FsResult<Epoll> {
        Ok(Epoll {
            host: epoll::create(epoll::CreateFlags::CLOEXEC)?,
            interest: Mutex::new(Interests::default()),
        })
    }

    /// The host epoll, readable while a registration is ready (to wait on beside others).
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.host.as_fd()
    }

    fn lock(&self) -> MutexGuard<'_, Interests> {
        self.interest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `op` for guest descriptor `fd`, open as the file description `file`, whose
    /// host descriptor to watch is `target` (`None`: it cannot be watched, as a regular
    /// file or directory cannot on Linux: EPERM), with WASIX `events` and the guest's event
    /// `data`. The caller refuses an epoll watching itself (EINVAL).
    pub fn ctl<T: Send + Sync + 'static>(
        &self,
        op: Ctl,
        fd: u32,
        file: &Arc<T>,
        target: Option<BorrowedFd<'_>>,
        events: u32,
        data: [u8; DATA_LEN],
    ) -> FsResult<()> {
        let mut list = self.lock();
        list.prune();
        let same = Arc::as_ptr(file) as *const ();
        let key = list
            .by_key
            .iter()
            .find(|(_, i)| i.fd == fd && std::ptr::eq(i.file.as_ptr() as *const (), same))
            .map(|(k, _)| *k);
        match (op, key) {
            (Ctl::Add, Some(_)) => Err(Errno::Exist),
            (Ctl::Modify | Ctl::Delete, None) => Err(Errno::Noent),
            (Ctl::Add, None) => {
                let target = target.ok_or(Errno::Perm)?;
                let watched = rustix::io::fcntl_dupfd_cloexec(target, 0)?;
                let key = list.next;
                list.next += 1;
                epoll::add(
                    &self.host,
                    &watched,
                    epoll::EventData::new_u64(key),
                    to_host(events)?,
                )?;
                list.by_key.insert(
                    key,
                    Interest {
                        fd,
                        file: Arc::downgrade(file) as Description,
                        watched,
                        data,
                    },
                );
                Ok(())
            }
            (Ctl::Modify, Some(key)) => {
                let flags = to_host(events)?;
                let i = list.by_key.get_mut(&key).ok_or(Errno::Noent)?;
                epoll::modify(
                    &self.host,
                    &i.watched,
                    epoll::EventData::new_u64(key),
                    flags,
                )?;
                i.data = data;
                Ok(())
            }
            (Ctl::Delete, Some(key)) => {
                // Closing the duplicate removes it from the host epoll.
                list.by_key.remove(&key);
                Ok(())
            }
        }
    }

    /// Up to `max` ready registrations, without waiting.
    pub fn ready(&self, max: usize) -> FsResult<Vec<Ready>> {
        let mut list = self.lock();
        list.prune();
        let mut buf = Vec::with_capacity(max.min(1024));
        let zero = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        loop {
            match epoll::wait(
                &self.host,
                rustix::buffer::spare_capacity(&mut buf),
                Some(&zero),
            ) {
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(buf
            .iter()
            .filter_map(|ev| {
                let i = list.by_key.get(&ev.data.u64())?;
                Some(Ready {
                    events: from_host(ev.flags),
                    data: i.data,
                })
            })
            .collect())
    }

    /// Registrations, for the record.
    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Interests {
    /// Drops registrations whose file description is closed everywhere.
    fn prune(&mut self) {
        self.by_key.retain(|_, i| i.file.strong_count() > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipe's read and write ends, each a description of its own.
    fn pipe() -> (Arc<OwnedFd>, Arc<OwnedFd>) {
        let (r, w) = rustix::pipe::pipe().unwrap();
        (Arc::new(r), Arc::new(w))
    }

    fn add(
        ep: &Epoll,
        op: Ctl,
        fd: u32,
        f: &Arc<OwnedFd>,
        ev: u32,
        data: [u8; DATA_LEN],
    ) -> FsResult<()> {
        ep.ctl(op, fd, f, Some(f.as_fd()), ev, data)
    }

    #[test]
    fn level_triggered_events_repeat_and_carry_the_guests_data() {
        let ep = Epoll::new().unwrap();
        let (r, w) = pipe();
        let data = [7u8; DATA_LEN];
        add(&ep, Ctl::Add, 3, &r, events::IN, data).unwrap();
        assert!(ep.ready(8).unwrap().is_empty());
        rustix::io::write(&*w, b"x").unwrap();
        for _ in 0..2 {
            assert_eq!(
                ep.ready(8).unwrap(),
                vec![Ready {
                    events: events::IN,
                    data
                }]
            );
        }
        assert_eq!(
            add(&ep, Ctl::Add, 3, &r, events::IN, data),
            Err(Errno::Exist)
        );
        assert_eq!(
            ep.ctl(Ctl::Add, 5, &r, None, events::IN, data),
            Err(Errno::Perm)
        );
    }

    #[test]
    fn edge_triggered_and_one_shot_report_once() {
        let ep = Epoll::new().unwrap();
        let (r, w) = pipe();
        add(&ep, Ctl::Add, 3, &r, events::IN | events::ET, [1; DATA_LEN]).unwrap();
        rustix::io::write(&*w, b"x").unwrap();
        assert_eq!(ep.ready(8).unwrap().len(), 1);
        assert!(ep.ready(8).unwrap().is_empty());
        add(
            &ep,
            Ctl::Modify,
            3,
            &r,
            events::IN | events::ONESHOT,
            [2; DATA_LEN],
        )
        .unwrap();
        assert_eq!(ep.ready(8).unwrap()[0].data, [2; DATA_LEN]);
        assert!(ep.ready(8).unwrap().is_empty());
    }

    #[test]
    fn closed_descriptions_and_deletions_leave_the_list() {
        let ep = Epoll::new().unwrap();
        let (r, w) = pipe();
        add(&ep, Ctl::Add, 4, &w, events::OUT, [0; DATA_LEN]).unwrap();
        assert_eq!(ep.ready(8).unwrap().len(), 1);
        add(&ep, Ctl::Delete, 4, &w, 0, [0; DATA_LEN]).unwrap();
        assert!(ep.ready(8).unwrap().is_empty());
        assert_eq!(
            add(&ep, Ctl::Delete, 4, &w, 0, [0; DATA_LEN]),
            Err(Errno::Noent)
        );
        add(&ep, Ctl::Add, 3, &r, events::IN, [0; DATA_LEN]).unwrap();
        drop(r);
        assert!(ep.ready(8).unwrap().is_empty());
        assert!(ep.is_empty());
        assert_eq!(
            add(&ep, Ctl::Add, 4, &w, 1 << 12, [0; DATA_LEN]),
            Err(Errno::Inval)
        );
    }
}
