//! A copy of a memory as it was at one instant, read while the process runs on.
//!
//! The memory is write-protected with userfaultfd; no page is copied or remapped up front.
//! The reader ([`WpCopy::read`]) then takes the memory chunk by chunk and releases each
//! chunk once read. A thread that writes a page not yet read faults into this module's
//! handler thread, which saves the page's old bytes and then lets the write through; the
//! reader takes saved pages instead of live ones. So every page is read as it was at the
//! instant of the copy, each costs at most one fault, and host memory is bounded by the
//! memory's size (each page is saved at most once).
//!
//! Protecting a memory costs time in proportion to its pages (~4 ms for 256 MiB), so it
//! happens in two steps: [`WpCopy::arm`] protects everything while the process still runs
//! (a write meanwhile only releases its page and notes it), and [`WpCopy::seal`] — the
//! instant of the copy, with every thread stopped — protects again just the pages released
//! since, and whatever the memory grew by. The stop then costs what the process wrote
//! between the two, not what it has.
//!
//! ```text
//!   arm ──► all protected ── threads run: a write releases its page (noted) ──┐
//!   seal (threads stopped): noted pages and growth protected again ◄──────────┘
//!     └─► threads resume
//!         reader:  chunk 0 ─ chunk 1 ─ …  (saved page, else live; then release the chunk)
//!         handler: write to page p of an unread chunk → save p, release p
//!                  write to page p of a read chunk    → release p
//! ```
//!
//! **Incremental copies.** A copy armed with `keep` does not end when it has been read: its
//! chunks stay protected, and the handler notes every page written since the seal (and
//! releases it), so the memory's writes are tracked until the next copy. That copy
//! ([`WpCopy::rearm`]) protects again only the pages noted, and holds just those (plus what
//! was written while arming, and growth): an incremental snapshot's pages, its cost
//! following what the process wrote, not what it has. [`WpCopy::held_pages`] says which
//! pages a copy holds; the first, full copy holds all. Tracking costs a write fault per page
//! first written after each seal; it ends when the copy is dropped, or when the mapping must
//! change ([`WpWaiter::wait_read`]) — the next copy is then a full one.
//!
//! ```text
//!   full copy (keep) ── read ──► tracking: a write releases its page, noted dirty
//!   rearm: dirty pages protected again ── seal ──► holds dirty ∪ written-while-arming ∪ growth
//! ```
//!
//! **Tracking by scan.** Where the kernel has async write protection ([`WrittenPages`],
//! Linux 6.7+), a kept copy hands its memory over to it chunk by chunk as the full copy is
//! read: a handover thread takes read chunks out of this module's registration and covers
//! them in async mode, where the kernel lets writes through itself (no round trip to the
//! handler). It does so a few chunks at a time with the writers held ([`Hold`]), so nothing
//! is written while a chunk is protected by neither; a chunk handed over unheld counts as
//! written whole. An increment then needs no re-protection call per page, which while the
//! process runs costs a TLB-shootdown interrupt into every CPU running it: the rearm, with
//! the writers held, hands over what is left and takes the written pages in one scan
//! (which protects them again), then copies them while the threads run; the seal, with the
//! threads stopped, takes again just the pages written since — during that copy — and
//! copies those. A page copied at the rearm and not taken at the seal was not written in
//! between, so every page is as it was at the seal; the reader takes all of them from the
//! copies, at once and where they lie ([`WpCopy::write_copied`]), not chunk by chunk.
//!
//! ```text
//!   full copy (keep) ── read chunk c ──► handover thread, writers held: c unregistered
//!                                         here, covered by the scanner
//!   rearm (writers held): rest handed over; scan → written pages, protected again
//!         (running):      copy them
//!   seal (stopped):  scan → written since the rearm; copy them (and growth, whole)
//! ```
//!
//! Needs userfaultfd with write protection on shared memory (Linux 5.19+; markers catch
//! first writes to pages never touched) and the right to use it (`CAP_SYS_PTRACE`, or
//! `vm.unprivileged_userfaultfd = 1`): [`WpCopy::arm`] fails otherwise, and callers fall
//! back to another way. The memory must stay mapped until the copy is read or dropped:
//! whoever unmaps or remaps it calls [`WpWaiter::wait_read`] first (which, before the seal,
//! cancels the copy instead).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use linux_raw_sys::general::{
    uffd_msg, uffdio_api, uffdio_range, uffdio_register, uffdio_writeprotect,
    UFFDIO_REGISTER_MODE_WP, UFFD_API, UFFD_EVENT_PAGEFAULT, UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
    UFFD_PAGEFAULT_FLAG_WP,
};
use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags};
use rustix::ioctl::{ioctl, Opcode, Updater};

use crate::wpscan::WrittenPages;

const PAGE: usize = 4096;
/// What the reader takes at once: a faulting thread waits at most for one chunk's copy.
pub(crate) const CHUNK: usize = 1 << 20;

/// How much is protected per call while arming (~0.15 ms each here).
const ARM_PIECE: usize = 4 << 20;

/// Rearming protects two written pages this close (in pages) in one call, over the clean
/// pages between: protecting a page again costs ~0.1 µs, a call's TLB shootdown into a CPU
/// running one of the process's threads ~10-20 µs (see [`WpCopy::rearm`]).
const REARM_GAP: usize = 32;

/// Chunks handed over to the scanner per hold of the writers (~60 µs a chunk here:
/// unregistering it, covering it again).
const HANDOVER_BATCH: usize = 4;

/// Stops the memory's writers until the guard it returns drops; `None` if it could not.
/// The argument says the calling thread is one of them (it counts as stopped).
pub(crate) type Hold = Arc<dyn Fn(bool) -> Option<Box<dyn Send>> + Send + Sync>;

/// `UFFDIO_WRITEPROTECT_MODE_WP` (linux/userfaultfd.h): protect rather than release.
const MODE_WP: u64 = 1;

/// Why a copy could not be taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WpError {
    /// userfaultfd is not available to this process, or lacks write protection.
    #[error("userfaultfd write protection is not available here ({0})")]
    Unavailable(io::Error),
    /// The memory could not be protected.
    #[error("write-protecting the memory failed: {0}")]
    Protect(io::Error),
    /// The armed copy was given up before its seal (the memory was about to be remapped).
    #[error("the armed copy was cancelled before it was sealed")]
    Cancelled,
}

/// The state both the reader and the handler change, under one lock.
struct State {
    /// The memory's length, as armed and then as sealed.
    len: usize,
    /// Whether the instant of the copy has passed (before it, writes only note pages).
    sealed: bool,
    /// Before the seal: pages written (and released) since the arming.
    released: Vec<usize>,
    /// Per chunk: read (and released) already.
    read: Vec<bool>,
    /// Pages written before their chunk was read: their bytes at the seal.
    saved: HashMap<usize, Box<[u8]>>,
    /// Every chunk is read, or the copy was dropped or cancelled: the protection is gone.
    finished: bool,
    /// Go on tracking writes once read (incremental copies).
    keep: bool,
    /// Every chunk is read and writes are being tracked (`keep`).
    tracking: bool,
    /// The mapping is about to change: end once read instead of tracking.
    ending: bool,
    /// By page: written since the seal (what the next incremental copy holds).
    dirty: Vec<bool>,
    /// After a rearm, until the seal: the pages the copy carries over from tracking.
    carried: Vec<usize>,
    /// By page, the pages this copy holds; `None`: every page (a full copy).
    held: Option<Vec<bool>>,
    /// Seals so far: 1 for the full copy, then one more per increment.
    generation: u64,
    /// Per chunk, as sealed: tracked by the scanner instead of the handler.
    switched: Vec<bool>,
    /// An increment found by the scanner, from its rearm until it is read: every page it
    /// holds has its bytes at the seal in `copies`.
    copied: bool,
    /// Those bytes.
    copies: Copies,
}

/// Copies of pages, in memory mapped and populated in one call and kept from one increment
/// to the next: fresh memory is slow to come by on a VM (2.3-2.9 ms for 658 pages copied
/// into new allocations; populating 4 MiB in one call still takes ~1.7 ms), against ~0.5 ms
/// for the copies themselves. So the room is made before the first increment, while the
/// full copy is read (see [`copies_for`]), and kept; an increment larger than it has grows
/// it once.
#[derive(Default)]
struct Copies {
    /// Where each page's copy is, by slot.
    slots: HashMap<usize, usize>,
    area: Option<Arc<Area>>,
}

/// The mapping copies are kept in; shared with a reader that writes them out straight from
/// it ([`WpCopy::write_copied`]), so that it stays mapped until that reader is done.
struct Area {
    at: *mut u8,
    len: usize,
}

// SAFETY: a plain mapping; who writes it when is the copy's protocol (under its lock, and
// never while a reader has it out).
unsafe impl Send for Area {}
// SAFETY: as above.
unsafe impl Sync for Area {}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `Copies::reserve`, no longer referred to.
        let _ = unsafe { rustix::mm::munmap(self.at.cast(), self.len) };
    }
}

/// The room for copies a kept copy of `len` bytes makes ready before its first increment:
/// 1/64 of the memory (an increment of up to ~1.5 % of its pages fits), at least 256 KiB
/// and at most 16 MiB.
fn copies_for(len: usize) -> usize {
    (len / 64 / PAGE).clamp(64, 4096)
}

impl Copies {
    /// Makes room for `more` pages beyond those held (keeping them).
    fn reserve(&mut self, more: usize) -> io::Result<()> {
        let want = (self.slots.len() + more) * PAGE;
        let have = self.area.as_ref().map_or(0, |a| a.len);
        if want <= have {
            return Ok(());
        }
        let len = want.max(have * 2).next_multiple_of(PAGE);
        use rustix::mm::{mmap_anonymous, MapFlags, ProtFlags};
        // SAFETY: a fresh private mapping, owned by this struct.
        let area = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::POPULATE,
            )
        }?
        .cast::<u8>();
        if let Some(old) = self.area.replace(Arc::new(Area { at: area, len })) {
            // SAFETY: both mappings are this struct's; the old one's held slots move over.
            unsafe { std::ptr::copy_nonoverlapping(old.at, area, self.slots.len() * PAGE) };
        }
        Ok(())
    }

    /// Copies the page at `from` in as page `page` (replacing an earlier copy of it).
    /// Room must have been reserved.
    ///
    /// # Safety
    /// `from` points at a readable page.
    unsafe fn put(&mut self, page: usize, from: *const u8) {
        let next = self.slots.len();
        let slot = *self.slots.entry(page).or_insert(next);
        let area = self.area.as_ref().expect("room reserved");
        assert!((slot + 1) * PAGE <= area.len, "room reserved");
        // SAFETY: the slot is inside the area; `from` as the caller vouches. Nobody reads
        // the area meanwhile: a reader's view of it ends before the copy can be rearmed.
        unsafe { std::ptr::copy_nonoverlapping(from, area.at.add(slot * PAGE), PAGE) };
    }

    fn get(&self, page: usize) -> Option<&[u8]> {
        Some(self.get_ptr(page)?.1)
    }

    /// Page `page`'s copy, with the area that holds it.
    fn get_ptr(&self, page: usize) -> Option<(&Arc<Area>, &[u8])> {
        let slot = *self.slots.get(&page)?;
        let area = self.area.as_ref()?;
        // SAFETY: a slot handed out by `put`, inside the area.
        Some((area, unsafe {
            std::slice::from_raw_parts(area.at.add(slot * PAGE), PAGE)
        }))
    }

    /// Forgets every copy (keeping the memory for the next increment).
    fn clear(&mut self) {
        self.slots.clear();
    }
}

impl State {
    fn holds(&self, page: usize) -> bool {
        self.held
            .as_ref()
            .is_none_or(|h| h.get(page).copied().unwrap_or(false))
    }
}

struct Shared {
    uffd: OwnedFd,
    base: usize,
    /// Kept copies where the kernel has async write protection: writes after the full
    /// copy are tracked by it, chunk by chunk as the copy is read (see [`Shared::switch`]).
    scanner: Option<WrittenPages>,
    /// Stops the memory's writers: for handing chunks over, and for an increment's scan.
    hold: Option<Hold>,
    state: Mutex<State>,
    changed: Condvar,
}

/// A copy of the memory at `base` as it was at its seal; see the module doc.
pub(crate) struct WpCopy {
    /// Unique in the host process (a writer matches increments to their base by it).
    id: u64,
    shared: Arc<Shared>,
    stop: OwnedFd,
    handler: Option<std::thread::JoinHandle<()>>,
    /// Hands read chunks of a kept copy over to the scanner (see [`hand_over`]).
    handover: Option<std::thread::JoinHandle<()>>,
}

/// A handle that waits for a copy to be read, without being able to read it.
#[derive(Clone)]
pub(crate) struct WpWaiter(Arc<Shared>);

impl WpWaiter {
    /// Blocks until the copy is read in full or dropped, so its memory may change mappings;
    /// a copy not sealed yet is cancelled at once (its seal then fails).
    pub fn wait_read(&self) {
        let mut st = self.0.lock();
        st.ending = true;
        if !st.sealed || st.tracking {
            self.0.finish(&mut st);
        }
        while !st.finished {
            st = self.0.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Whether the copy is still being read (or armed).
    #[cfg(test)]
    pub fn active(&self) -> bool {
        !self.0.lock().finished
    }
}

// SAFETY: the raw address is only used for the memory the copy was taken of, which the
// caller of `arm` keeps mapped; all other state (the copies' own mapping included) is
// behind the mutex.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `from..to` of the memory to the registered, protected range.
    fn cover(&self, from: usize, to: usize) -> io::Result<()> {
        let mut register = uffdio_register {
            range: uffdio_range {
                start: (self.base + from) as u64,
                len: (to - from) as u64,
            },
            mode: u64::from(UFFDIO_REGISTER_MODE_WP),
            ioctls: 0,
        };
        // SAFETY: the request matches UFFDIO_REGISTER's argument type.
        unsafe {
            uffd_ioctl::<{ uffd_op(linux_raw_sys::ioctl::UFFDIO_REGISTER) }, _>(
                &self.uffd,
                &mut register,
            )
        }?;
        // In pieces: a fault's release waits for the protect call in progress, so a thread
        // that writes while a large memory is armed is held for one piece, not for all.
        let mut at = from;
        while at < to {
            let end = (at + ARM_PIECE).min(to);
            protect(self, at, end - at, true)?;
            // Measured here (Linux 6.18): a thread that faults while this thread protects
            // piece after piece is not let through until this thread sleeps, however short
            // (a yield is not enough); without the pause it waits for the whole memory.
            std::thread::sleep(std::time::Duration::from_micros(1));
            at = end;
        }
        Ok(())
    }

    /// After a chunk is read: once all are, the copy finishes — or, kept, starts tracking.
    /// Whether the copy is done with (finished or tracking).
    fn chunk_done(&self, st: &mut State) -> bool {
        if !st.read.iter().all(|r| *r) {
            return false;
        }
        st.saved.clear();
        st.copied = false;
        st.copies.clear();
        if st.keep && !st.ending {
            if self.scanner.is_some() {
                let room = copies_for(st.len);
                if let Err(e) = st.copies.reserve(room) {
                    tracing::debug!("snapshot memory copy: no room for copies yet ({e})");
                }
            }
            st.tracking = true;
            self.changed.notify_all();
        } else {
            self.finish(st);
        }
        true
    }

    /// Releases what is still protected, unregisters, and wakes whoever waits.
    fn finish(&self, st: &mut State) {
        if st.finished {
            return;
        }
        // By runs of chunks: those the handler tracks, and those the scanner does.
        let mut at = 0;
        while at < st.len {
            let chunk = at / CHUNK;
            let scanned = st.switched.get(chunk).copied().unwrap_or(false);
            let mut end = at;
            while end < st.len && st.switched.get(end / CHUNK).copied().unwrap_or(false) == scanned
            {
                end = (end / CHUNK + 1) * CHUNK;
            }
            let end = end.min(st.len);
            match (&self.scanner, scanned) {
                (Some(scanner), true) => {
                    let _ = scanner.uncover(at, end);
                }
                _ => {
                    let _ = protect(self, at, end - at, false);
                    let _ = unregister(self, at, end);
                }
            }
            at = end;
        }
        st.read.iter_mut().for_each(|r| *r = true);
        st.saved.clear();
        st.released.clear();
        st.tracking = false;
        st.copied = false;
        st.copies = Copies::default();
        st.dirty = Vec::new();
        st.finished = true;
        self.changed.notify_all();
    }

    /// Hands chunk `chunk` of a kept copy from the handler over to the scanner, once it is
    /// read: unregisters it here and covers it there. `held`: the writers are stopped, so
    /// nothing is written in between; otherwise every page of the chunk counts as written
    /// (a write in between would be seen by neither).
    fn switch(&self, st: &mut State, chunk: usize, held: bool) -> io::Result<()> {
        let Some(scanner) = &self.scanner else {
            return Ok(());
        };
        let from = chunk * CHUNK;
        let to = (from + CHUNK).min(st.len);
        // Switched first: if covering fails, `finish` unregisters the chunk there.
        st.switched[chunk] = true;
        unregister(self, from, to)?;
        // Unregistering a write-protected range wakes no thread waiting on a fault there
        // (Linux 6.18 wakes only for missing-page registrations).
        wake(self, from, to)?;
        #[cfg(test)]
        tests_support::in_switch_window(self.base + from);
        scanner.cover(from, to)?;
        if !held {
            st.dirty[from / PAGE..to / PAGE]
                .iter_mut()
                .for_each(|d| *d = true);
        }
        Ok(())
    }

    /// The next read chunks of a kept copy not handed over to the scanner yet, at most
    /// [`HANDOVER_BATCH`] of them (all with `all`).
    fn unswitched(st: &State, all: bool) -> Vec<usize> {
        let ready = (0..st.read.len()).filter(|c| st.read[*c] && !st.switched[*c]);
        if all {
            ready.collect()
        } else {
            ready.take(HANDOVER_BATCH).collect()
        }
    }

    /// Hands `chunks` over to the scanner (those not handed over meanwhile); `held` as for
    /// [`Shared::switch`].
    fn switch_all(&self, st: &mut State, chunks: &[usize], held: bool) -> io::Result<()> {
        for &c in chunks {
            if !st.switched[c] {
                self.switch(st, c, held)?;
            }
        }
        self.changed.notify_all();
        Ok(())
    }

    /// [`WpCopy::rearm`] with the scanner: takes the pages written since the last seal (the
    /// scan protects them again) and copies them, while the process runs. A page written
    /// after its copy is found again by the seal, and copied again then.
    fn rearm_scanned(&self, st: MutexGuard<'_, State>, caller_writes: bool) -> Result<(), WpError> {
        let Some(scanner) = &self.scanner else {
            return Err(WpError::Cancelled);
        };
        drop(st);
        let held = self.hold.as_ref().and_then(|h| h(caller_writes));
        let was_held = held.is_some();
        let started = std::time::Instant::now();
        let mut st = self.lock();
        if st.finished || !st.tracking {
            return Err(WpError::Cancelled);
        }
        // What the handover has not reached yet is handed over now, in the same hold.
        let rest = Shared::unswitched(&st, true);
        if let Err(e) = self.switch_all(&mut st, &rest, was_held) {
            self.finish(&mut st);
            return Err(WpError::Protect(e));
        }
        let mut carried: Vec<usize> = st
            .dirty
            .iter()
            .enumerate()
            .filter_map(|(p, d)| d.then_some(p))
            .collect();
        let len = st.len;
        st.tracking = false;
        st.sealed = false;
        st.copied = true;
        st.saved.clear();
        st.dirty.iter_mut().for_each(|d| *d = false);
        drop(st);
        let noted = carried.len();
        let taken = scanner.take(0, len, &mut carried);
        drop(held);
        if let Err(e) = taken {
            self.finish(&mut self.lock());
            return Err(WpError::Protect(e));
        }
        carried.sort_unstable();
        carried.dedup();
        let scanned = started.elapsed();
        let mut copies = std::mem::take(&mut self.lock().copies);
        copies.clear();
        // With room for what the seal takes again, so it need not allocate while the
        // threads are stopped.
        if let Err(e) = copies.reserve(carried.len() + (carried.len() / 8).max(64)) {
            self.finish(&mut self.lock());
            return Err(WpError::Protect(e));
        }
        for &p in &carried {
            // SAFETY: the page is in the mapped memory (the caller of `arm` keeps it so); a
            // racing write makes the copy stale, and the seal then takes the page again.
            unsafe { copies.put(p, (self.base + p * PAGE) as *const u8) };
        }
        tracing::debug!(
            "snapshot memory copy: rearm took {} pages ({noted} noted) in {scanned:?} (threads \
             held: {was_held}), copied in {:?}",
            carried.len(),
            started.elapsed() - scanned
        );
        let mut st = self.lock();
        if st.finished {
            return Err(WpError::Cancelled);
        }
        st.copies = copies;
        st.carried = carried;
        Ok(())
    }

    /// [`WpCopy::seal`] of an increment armed by [`Shared::rearm_scanned`]: takes and copies
    /// the pages written since the rearm, and copies whatever the memory grew by whole.
    fn seal_scanned(&self, st: &mut State, len: usize) -> Result<(), WpError> {
        let Some(scanner) = &self.scanner else {
            self.finish(st);
            return Err(WpError::Cancelled);
        };
        let mut taken = Vec::new();
        let grown = st.len / PAGE..len / PAGE;
        let scanning = std::time::Instant::now();
        let covered = scanner
            .take(0, st.len, &mut taken)
            .and_then(|()| match len > st.len {
                true => scanner.cover(st.len, len),
                false => Ok(()),
            });
        if let Err(e) = covered {
            self.finish(st);
            return Err(WpError::Protect(e));
        }
        let scanned = scanning.elapsed();
        let found = taken.len();
        taken.extend(grown);
        if let Err(e) = st.copies.reserve(taken.len()) {
            self.finish(st);
            return Err(WpError::Protect(e));
        }
        for &p in &taken {
            // SAFETY: the page is in the mapped memory; no thread writes it now.
            unsafe { st.copies.put(p, (self.base + p * PAGE) as *const u8) };
        }
        tracing::debug!(
            "snapshot memory copy: seal took {found} pages again, {} grown, scanned in {scanned:?}",
            taken.len() - found
        );
        let mut held = vec![false; len / PAGE];
        for p in st.carried.drain(..).chain(taken) {
            held[p] = true;
        }
        st.held = Some(held);
        st.len = len;
        st.read = vec![false; len.div_ceil(CHUNK)];
        st.switched = vec![true; st.read.len()];
        st.dirty = vec![false; len / PAGE];
        st.generation += 1;
        st.sealed = true;
        Ok(())
    }
}

/// Wakes the threads waiting on a fault in `from..to` of the copy's memory.
fn wake(s: &Shared, from: usize, to: usize) -> io::Result<()> {
    let mut range = uffdio_range {
        start: (s.base + from) as u64,
        len: (to - from) as u64,
    };
    // SAFETY: the request matches UFFDIO_WAKE's argument type.
    unsafe { uffd_ioctl::<{ uffd_op(linux_raw_sys::ioctl::UFFDIO_WAKE) }, _>(&s.uffd, &mut range) }
        .map_err(Into::into)
}

/// Unregisters `from..to` of the copy's memory from its handler.
fn unregister(s: &Shared, from: usize, to: usize) -> io::Result<()> {
    let mut range = uffdio_range {
        start: (s.base + from) as u64,
        len: (to - from) as u64,
    };
    // SAFETY: the request matches UFFDIO_UNREGISTER's argument type.
    unsafe {
        uffd_ioctl::<{ uffd_op(linux_raw_sys::ioctl::UFFDIO_UNREGISTER) }, _>(&s.uffd, &mut range)
    }
    .map_err(Into::into)
}

impl WpCopy {
    /// Write-protects `len` bytes at `base` (page-aligned, shared memory) and starts the
    /// handler, while the process may still run: until [`WpCopy::seal`], a write only
    /// releases and notes its page. With `keep`, writes are tracked after the copy is read,
    /// for [`WpCopy::rearm`].
    ///
    /// # Safety
    /// The range must be mapped readable and writable, and stay mapped until the copy is
    /// cancelled or dropped (or read, without `keep`).
    pub unsafe fn arm(
        base: *mut u8,
        len: usize,
        keep: bool,
        hold: Option<Hold>,
    ) -> Result<WpCopy, WpError> {
        // SAFETY: as the caller vouches.
        unsafe { WpCopy::arm_with(base, len, keep, true, hold) }
    }

    /// [`WpCopy::arm`]; `scan`: a kept copy may track writes with [`WrittenPages`].
    ///
    /// # Safety
    /// As for [`WpCopy::arm`].
    unsafe fn arm_with(
        base: *mut u8,
        len: usize,
        keep: bool,
        scan: bool,
        hold: Option<Hold>,
    ) -> Result<WpCopy, WpError> {
        let base = base as usize;
        assert!(
            base.is_multiple_of(PAGE) && len.is_multiple_of(PAGE),
            "unaligned memory"
        );
        let uffd = open().map_err(WpError::Unavailable)?;
        let scanner = if keep && scan {
            WrittenPages::open(base)
                .inspect_err(|e| {
                    tracing::debug!("snapshot memory copy: no async write protection ({e})");
                })
                .ok()
        } else {
            None
        };
        let shared = Arc::new(Shared {
            uffd,
            base,
            scanner,
            hold,
            state: Mutex::new(State {
                len,
                sealed: false,
                released: Vec::new(),
                read: Vec::new(),
                saved: HashMap::new(),
                finished: false,
                keep,
                tracking: false,
                ending: false,
                dirty: Vec::new(),
                carried: Vec::new(),
                held: None,
                generation: 0,
                switched: Vec::new(),
                copied: false,
                copies: Copies::default(),
            }),
            changed: Condvar::new(),
        });
        let fail = |shared: &Shared, e: WpError| {
            shared.finish(&mut shared.lock());
            e
        };
        // The handler runs before anything is protected: a thread that writes meanwhile
        // is let through at once.
        let stop = eventfd(0, EventfdFlags::CLOEXEC)
            .map_err(|e| fail(&shared, WpError::Protect(e.into())))?;
        let handler = stop
            .try_clone()
            .and_then(|stop| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name("wasmix-wp-copy".into())
                    .spawn(move || handle(&shared, &stop))
            })
            .map_err(|e| fail(&shared, WpError::Protect(e)))?;
        let handover = if copy_scans(&shared) {
            let mine = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name("wasmix-wp-handover".into())
                .spawn(move || hand_over(&mine));
            match spawned {
                Ok(h) => Some(h),
                Err(e) => {
                    let _ = rustix::io::write(&stop, &1u64.to_ne_bytes());
                    let _ = handler.join();
                    return Err(fail(&shared, WpError::Protect(e)));
                }
            }
        } else {
            None
        };
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let copy = WpCopy {
            id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            shared,
            stop,
            handler: Some(handler),
            handover,
        };
        if let Err(e) = copy.shared.cover(0, len) {
            return Err(WpError::Unavailable(e));
        }
        Ok(copy)
    }

    /// Makes now the instant of the copy, the memory `len` bytes long now: protects again
    /// the pages written since the arming, and what the memory grew by.
    ///
    /// # Safety
    /// No thread may write the memory during the call; the memory's first `len` bytes are
    /// mapped and stay so, as for [`WpCopy::arm`].
    pub unsafe fn seal(&self, len: usize) -> Result<(), WpError> {
        let s = &self.shared;
        let mut st = s.lock();
        if st.finished {
            return Err(WpError::Cancelled);
        }
        if st.sealed || len < st.len || !len.is_multiple_of(PAGE) {
            s.finish(&mut st);
            return Err(WpError::Protect(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot seal {len} bytes of a copy armed for {}", st.len),
            )));
        }
        if st.copied {
            return s.seal_scanned(&mut st, len);
        }
        let mut pages = std::mem::take(&mut st.released);
        pages.sort_unstable();
        pages.dedup();
        // An increment holds what it carried over, what was written while it was armed,
        // and growth (added below).
        let rearmed = st.generation > 0;
        if rearmed {
            let mut held = vec![false; len / PAGE];
            for p in st.carried.drain(..).chain(pages.iter().copied()) {
                if let Some(h) = held.get_mut(p) {
                    *h = true;
                }
            }
            held[st.len / PAGE..].iter_mut().for_each(|h| *h = true);
            st.held = Some(held);
        }
        let mut i = 0;
        while i < pages.len() {
            let mut j = i + 1;
            while j < pages.len() && pages[j] == pages[j - 1] + 1 {
                j += 1;
            }
            let run = (pages[i] * PAGE, (pages[j - 1] + 1) * PAGE);
            if let Err(e) = protect(s, run.0, run.1 - run.0, true) {
                s.finish(&mut st);
                return Err(WpError::Protect(e));
            }
            i = j;
        }
        if len > st.len {
            if let Err(e) = s.cover(st.len, len) {
                s.finish(&mut st);
                return Err(WpError::Protect(e));
            }
            st.len = len;
        }
        st.read = vec![false; len.div_ceil(CHUNK)];
        st.switched = vec![false; st.read.len()];
        st.dirty = if st.keep {
            vec![false; len / PAGE]
        } else {
            Vec::new()
        };
        st.generation += 1;
        st.sealed = true;
        Ok(())
    }

    /// Starts the next, incremental copy of a tracking copy, while the process may run:
    /// protects again the pages written since the last seal (a write meanwhile releases and
    /// notes its page, as when arming); [`WpCopy::seal`] follows. Waits until the last copy
    /// is read. Fails if the copy no longer tracks (it was cancelled or ended): take a full
    /// copy then.
    ///
    /// `hold` keeps the process's threads off the memory while its guard lives (`None`: it
    /// could not), for the one step that is much faster with them stopped: the scan that
    /// takes the written pages where the kernel tracks them (~0.25 ms for 256 MiB, against
    /// 1.6-2.3 ms beside a running thread, whose CPU every re-protection interrupts). Without
    /// it the scan runs beside them, and is as correct.
    pub fn rearm(&self, caller_writes: bool) -> Result<(), WpError> {
        let s = &self.shared;
        let mut st = s.lock();
        while st.sealed && !st.tracking && !st.finished {
            st = s.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if st.finished || !st.tracking {
            return Err(WpError::Cancelled);
        }
        if s.scanner.is_some() {
            return s.rearm_scanned(st, caller_writes);
        }
        let carried: Vec<usize> = st
            .dirty
            .iter()
            .enumerate()
            .filter_map(|(p, d)| d.then_some(p))
            .collect();
        st.tracking = false;
        st.sealed = false;
        st.saved.clear();
        st.dirty.iter_mut().for_each(|d| *d = false);
        drop(st);
        // Protected outside the lock, so faults meanwhile are noted as the spans go on. A
        // span takes in carried pages up to REARM_GAP apart, over the clean pages between
        // (still protected: protecting them again changes nothing but costs a page-table
        // update each). Measured here with 655 pages spread at random over 256 MiB beside a
        // computing thread: one call per run of pages 0.8-9.6 ms, spans over gaps of up to
        // 32 pages 1.1-6.4 ms, 128 pages 3.3-5.3 ms, whole 64 MiB spans 6-8 ms.
        let mut i = 0;
        while i < carried.len() {
            let mut j = i + 1;
            while j < carried.len()
                && carried[j] - carried[j - 1] <= REARM_GAP
                && carried[j] - carried[i] < ARM_PIECE / PAGE
            {
                j += 1;
            }
            let span = carried[j - 1] + 1 - carried[i];
            if let Err(e) = protect(s, carried[i] * PAGE, span * PAGE, true) {
                s.finish(&mut s.lock());
                return Err(WpError::Protect(e));
            }
            if span >= 64 {
                // As in `cover`: a thread faulting meanwhile gets through while we sleep.
                std::thread::sleep(std::time::Duration::from_micros(1));
            }
            i = j;
        }
        let mut st = s.lock();
        if st.finished {
            return Err(WpError::Cancelled);
        }
        st.carried = carried;
        Ok(())
    }

    /// The pages (by index) this copy holds, as sealed: `None` for every page (a full
    /// copy), else those written since the copy before it.
    pub fn held_pages(&self) -> Option<Vec<bool>> {
        self.shared.lock().held.clone()
    }

    /// Its id, unique in the host process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Seals so far (1 for a full copy, one more per [`WpCopy::rearm`]).
    pub fn generation(&self) -> u64 {
        self.shared.lock().generation
    }

    /// Whether the copy was read and now tracks writes (it can be rearmed).
    #[cfg(test)]
    pub fn tracking(&self) -> bool {
        self.shared.lock().tracking
    }

    /// Whether the scanner, not the handler, tracks its writes.
    #[cfg(test)]
    pub fn scans(&self) -> bool {
        let st = self.shared.lock();
        self.shared.scanner.is_some() && st.switched.iter().all(|c| *c)
    }

    /// Waits until the handover thread is done (every chunk of a kept copy handed over to
    /// the scanner, or the copy ended).
    #[cfg(test)]
    pub fn wait_handed_over(&self) {
        let s = &self.shared;
        let mut st = s.lock();
        while s.scanner.is_some()
            && st.keep
            && !st.finished
            && !st.ending
            && st.switched.iter().any(|c| !*c)
        {
            st = s.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Stops tracking (the next copy must be a full one): releases and unregisters.
    pub fn end(&self) {
        self.shared.finish(&mut self.shared.lock());
    }

    /// Marks the chunk at `offset` read without copying it: none of its pages is held.
    pub fn skip(&self, offset: usize) {
        let s = &self.shared;
        let mut st = s.lock();
        assert!(st.sealed, "a copy is read after its seal");
        if st.finished {
            return;
        }
        if let Some(r) = st.read.get_mut(offset / CHUNK) {
            *r = true;
        }
        if st.keep && s.scanner.is_some() {
            // For the handover.
            s.changed.notify_all();
        }
        s.chunk_done(&mut st);
    }

    /// The copy's length in bytes (as sealed).
    pub fn len(&self) -> usize {
        self.shared.lock().len
    }

    /// A handle that can wait for this copy to be read.
    pub fn waiter(&self) -> WpWaiter {
        WpWaiter(Arc::clone(&self.shared))
    }

    /// Copies the chunk at `offset` (a multiple of [`CHUNK`] below the length) into `buf`
    /// (its length: the chunk's, shorter at the end) as it was at the seal, and releases
    /// it. Reading the last chunk finishes the copy.
    pub fn read(&self, offset: usize, buf: &mut Vec<u8>) {
        self.read_some(offset, None, buf);
    }

    /// Like [`WpCopy::read`], but copies only the chunk's pages `held` says (by page from
    /// the chunk's start), one after the other into `buf`: what an increment takes of a
    /// chunk, without copying the rest of it.
    pub fn read_pages(&self, offset: usize, held: &[bool], buf: &mut Vec<u8>) {
        self.read_some(offset, Some(held), buf);
    }

    /// For an increment found by the scanner (see the module doc), instead of reading it
    /// chunk by chunk: calls `write` with every page it holds, as it was at the seal,
    /// straight from where the pages were copied — as runs `(first page, bytes)` in page
    /// order, each of pages consecutive both in the memory and in the copies — then
    /// releases the copy as reading its last chunk does. `None`, with nothing called or
    /// released, for any other copy (or one already read).
    pub fn write_copied<R>(&self, write: impl FnOnce(&[(usize, &[u8])]) -> R) -> Option<R> {
        let s = &self.shared;
        let (pages, areas) = {
            let st = s.lock();
            assert!(st.sealed, "a copy is read after its seal");
            if st.finished || !st.copied || st.read.iter().any(|r| *r) {
                return None;
            }
            let held = st.held.as_ref()?;
            // (page, where its bytes are, which mapping: an area, or the memory itself)
            let mut pages: Vec<(usize, *const u8, usize)> = Vec::new();
            let mut areas: Vec<Arc<Area>> = Vec::new();
            for page in (0..held.len()).filter(|p| held[*p]) {
                pages.push(match st.copies.get_ptr(page) {
                    Some((area, bytes)) => {
                        let k = match areas.iter().position(|a| Arc::ptr_eq(a, area)) {
                            Some(k) => k,
                            None => {
                                areas.push(Arc::clone(area));
                                areas.len() - 1
                            }
                        };
                        (page, bytes.as_ptr(), k)
                    }
                    // Every page held has a copy; were one missing, the live page is as it
                    // was at the seal unless written since, as `read_some` takes it.
                    None => (page, (s.base + page * PAGE) as *const u8, usize::MAX),
                });
            }
            (pages, areas)
        };
        // Without the lock, so a thread that faults meanwhile is not held for the write:
        // the copies stay put (a rearm waits until the copy is read, below) and mapped
        // (`areas`).
        let mut runs: Vec<(usize, &[u8])> = Vec::new();
        let mut i = 0;
        while i < pages.len() {
            let mut j = i + 1;
            while j < pages.len()
                && pages[j].0 == pages[j - 1].0 + 1
                && pages[j].1 == pages[j - 1].1.wrapping_add(PAGE)
                && pages[j].2 == pages[i].2
            {
                j += 1;
            }
            // SAFETY: pages i..j lie one after the other in one mapping that `areas` (or
            // the memory's owner) keeps mapped until this returns.
            runs.push((pages[i].0, unsafe {
                std::slice::from_raw_parts(pages[i].1, (j - i) * PAGE)
            }));
            i = j;
        }
        let written = write(&runs);
        drop(runs);
        drop(areas);
        let mut st = s.lock();
        if !st.finished {
            st.read.iter_mut().for_each(|r| *r = true);
            s.changed.notify_all();
            s.chunk_done(&mut st);
        }
        Some(written)
    }

    fn read_some(&self, offset: usize, held: Option<&[bool]>, buf: &mut Vec<u8>) {
        let s = &self.shared;
        buf.clear();
        let (end, copied) = {
            let st = s.lock();
            assert!(st.sealed, "a copy is read after its seal");
            assert!(
                offset.is_multiple_of(CHUNK) && offset < st.len,
                "chunk {offset} out of range"
            );
            if st.finished {
                return;
            }
            ((offset + CHUNK).min(st.len), st.copied)
        };
        let pages = (offset / PAGE)..(end / PAGE);
        let wanted = |page: usize| held.is_none_or(|h| h.get(page - offset / PAGE) == Some(&true));
        if copied {
            // Found by the scanner: every held page was copied by the rearm or the seal.
            let mut st = s.lock();
            for page in pages.filter(|p| wanted(*p)) {
                match st.copies.get(page) {
                    Some(bytes) => buf.extend_from_slice(bytes),
                    None => {
                        // Not held after all (a caller's `held` wider than the copy's).
                        // SAFETY: inside the mapped memory.
                        let live = unsafe {
                            std::slice::from_raw_parts((s.base + page * PAGE) as *const u8, PAGE)
                        };
                        buf.extend_from_slice(live);
                    }
                }
            }
            st.read[offset / CHUNK] = true;
            s.chunk_done(&mut st);
            return;
        }
        // Copied without the lock, so a thread that faults meanwhile is not held for it.
        // A page the handler releases during the copy may be read torn, but it was saved
        // before its release, and its saved bytes replace it below.
        // SAFETY: the range is mapped (the caller of `arm` keeps it so); racing writes to
        // it are the guest's, and only ever replaced, never trusted, as said above.
        let live =
            unsafe { std::slice::from_raw_parts((s.base + offset) as *const u8, end - offset) };
        let mut placed = Vec::new();
        if held.is_none() {
            buf.extend_from_slice(live);
        } else {
            for page in pages.clone().filter(|p| wanted(*p)) {
                let at = page * PAGE - offset;
                placed.push(page);
                buf.extend_from_slice(&live[at..at + PAGE]);
            }
        }
        let mut st = s.lock();
        if !st.saved.is_empty() {
            // By where each page sits in `buf`: every page of the chunk, or those placed.
            let sited: Vec<(usize, usize)> = match held {
                None => pages.map(|p| (p, p * PAGE - offset)).collect(),
                Some(_) => placed
                    .iter()
                    .enumerate()
                    .map(|(k, p)| (*p, k * PAGE))
                    .collect(),
            };
            for (page, at) in sited {
                if let Some(old) = st.saved.remove(&page) {
                    buf[at..at + PAGE].copy_from_slice(&old);
                }
            }
        }
        st.read[offset / CHUNK] = true;
        let keep = st.keep;
        if keep && s.scanner.is_some() {
            // For the handover.
            s.changed.notify_all();
        }
        if s.chunk_done(&mut st) || keep {
            // Finished; or tracking writes from now on, so the chunk stays protected.
            return;
        }
        drop(st);
        if let Err(e) = protect(s, offset, end - offset, false) {
            // Threads that write there wait until the copy finishes (unregistering wakes them).
            tracing::warn!("snapshot memory copy: releasing a chunk failed ({e})");
        }
    }
}

impl Drop for WpCopy {
    fn drop(&mut self) {
        self.shared.finish(&mut self.shared.lock());
        let _ = rustix::io::write(&self.stop, &1u64.to_ne_bytes());
        if let Some(h) = self.handler.take() {
            let _ = h.join();
        }
        // It sees the copy finished (at most a hold's wait from now).
        if let Some(h) = self.handover.take() {
            let _ = h.join();
        }
    }
}

/// Whether `shared` is a kept copy whose writes the scanner is to track.
fn copy_scans(shared: &Shared) -> bool {
    shared.scanner.is_some() && shared.lock().keep
}

/// The handover thread of a kept copy with a scanner: as the full copy is read, hands its
/// read chunks over to the scanner, a few at a time while the writers are held (a hold of
/// ~0.25 ms), so the reader — the snapshot's way to durable — does not wait for it. Ends
/// once every chunk is handed over (an increment's rearm hands over what is left itself),
/// or when the copy ends.
fn hand_over(s: &Shared) {
    // The process waits while it holds: it must get a CPU at once, as the handler does.
    crate::sched::urgent();
    let (mut holds, mut longest) = (0, std::time::Duration::ZERO);
    loop {
        let batch = {
            let mut st = s.lock();
            loop {
                if st.finished || st.ending {
                    return;
                }
                if st.sealed && !st.switched.is_empty() && st.switched.iter().all(|c| *c) {
                    return;
                }
                let batch = Shared::unswitched(&st, false);
                if st.sealed && !batch.is_empty() {
                    break batch;
                }
                st = s.changed.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        };
        let asked = std::time::Instant::now();
        let held = s.hold.as_ref().and_then(|h| h(false));
        let mut st = s.lock();
        if st.finished || st.ending || !st.sealed {
            return;
        }
        if let Err(e) = s.switch_all(&mut st, &batch, held.is_some()) {
            tracing::warn!("snapshot memory copy: tracking by scan failed ({e})");
            st.ending = true;
            s.changed.notify_all();
            return;
        }
        let done = st.switched.iter().all(|c| *c);
        drop(st);
        if held.is_some() {
            holds += 1;
            longest = longest.max(asked.elapsed());
        }
        drop(held);
        if done {
            tracing::debug!(
                "snapshot memory copy: handed over to the scanner in {holds} holds, the \
                 longest {longest:?}"
            );
        }
    }
}

/// Opens a userfaultfd with write protection for shared memory.
fn open() -> io::Result<OwnedFd> {
    use rustix::mm::{userfaultfd, UserfaultfdFlags};
    // SAFETY: the descriptor only ever protects memory this module is given.
    let uffd = unsafe { userfaultfd(UserfaultfdFlags::CLOEXEC | UserfaultfdFlags::NONBLOCK) }?;
    let mut api = uffdio_api {
        api: u64::from(UFFD_API),
        features: u64::from(UFFD_FEATURE_WP_HUGETLBFS_SHMEM),
        ioctls: 0,
    };
    // SAFETY: the request matches UFFDIO_API's argument type.
    unsafe { uffd_ioctl::<{ uffd_op(linux_raw_sys::ioctl::UFFDIO_API) }, _>(&uffd, &mut api) }?;
    Ok(uffd)
}

const fn uffd_op(raw: u32) -> Opcode {
    raw as Opcode
}

/// # Safety
/// `T` must be the argument type of the request `OP`.
unsafe fn uffd_ioctl<const OP: Opcode, T>(fd: &OwnedFd, arg: &mut T) -> rustix::io::Result<()> {
    // SAFETY: as the caller vouches.
    unsafe { ioctl(fd.as_fd(), Updater::<OP, T>::new(arg)) }
}

/// Protects (or releases) `len` bytes at `offset` of the copy's memory. Releasing wakes the
/// threads that wait on a fault there.
fn protect(s: &Shared, offset: usize, len: usize, on: bool) -> io::Result<()> {
    let mut wp = uffdio_writeprotect {
        range: uffdio_range {
            start: (s.base + offset) as u64,
            len: len as u64,
        },
        mode: if on { MODE_WP } else { 0 },
    };
    // SAFETY: the request matches UFFDIO_WRITEPROTECT's argument type.
    unsafe {
        uffd_ioctl::<{ uffd_op(linux_raw_sys::ioctl::UFFDIO_WRITEPROTECT) }, _>(&s.uffd, &mut wp)
    }
    .map_err(Into::into)
}

/// The handler thread: saves each page written before its chunk was read, then lets the
/// write through. Ends when `stop` is signalled.
fn handle(s: &Shared, stop: &OwnedFd) {
    crate::sched::urgent();
    loop {
        let mut fds = [
            PollFd::new(&s.uffd, PollFlags::IN),
            PollFd::new(stop, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                tracing::error!("snapshot memory copy: polling its faults failed ({e})");
                return;
            }
        }
        if !fds[1].revents().is_empty() {
            return;
        }
        loop {
            let mut msg = std::mem::MaybeUninit::<uffd_msg>::zeroed();
            // SAFETY: reading into the message's own bytes.
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(
                    msg.as_mut_ptr().cast::<u8>(),
                    std::mem::size_of::<uffd_msg>(),
                )
            };
            match rustix::io::read(&s.uffd, &mut *bytes) {
                Ok(n) if n == std::mem::size_of::<uffd_msg>() => {}
                Ok(_) => break,
                Err(rustix::io::Errno::AGAIN) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    tracing::error!("snapshot memory copy: reading its faults failed ({e})");
                    return;
                }
            }
            // SAFETY: the kernel filled a whole message; zeroed bytes are valid for it too.
            let msg = unsafe { msg.assume_init() };
            if u32::from(msg.event) != UFFD_EVENT_PAGEFAULT {
                continue;
            }
            // SAFETY: a page fault message's argument is its `pagefault` member.
            let fault = unsafe { msg.arg.pagefault };
            if fault.flags & u64::from(UFFD_PAGEFAULT_FLAG_WP) == 0 {
                continue;
            }
            let addr = fault.address as usize;
            let mut st = s.lock();
            if st.finished || addr < s.base || addr >= s.base + st.len {
                // Unregistering woke every waiting thread already.
                continue;
            }
            let page = (addr - s.base) / PAGE;
            if st.switched.get(page * PAGE / CHUNK) == Some(&true) {
                // The scanner's now; unregistering it woke the writer.
                continue;
            }
            if !st.sealed {
                st.released.push(page);
            } else {
                // Kept copies note it for the next increment, whether being read or not.
                if let Some(d) = st.dirty.get_mut(page) {
                    *d = true;
                }
            }
            if st.sealed
                && !st.tracking
                && st.holds(page)
                && !st.read[page * PAGE / CHUNK]
                && !st.saved.contains_key(&page)
            {
                // SAFETY: the page is mapped and still write-protected: unchanged since the
                // seal.
                let old = unsafe {
                    std::slice::from_raw_parts((s.base + page * PAGE) as *const u8, PAGE)
                };
                st.saved.insert(page, old.into());
            }
            // Released under the lock, so a seal never misses a page released before it.
            if let Err(e) = protect(s, page * PAGE, PAGE, false) {
                tracing::error!("snapshot memory copy: releasing a page failed ({e})");
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) use crate::wpscan::tests_support::Shm;

    /// What runs in a chunk's handover window: called with the chunk's address.
    pub(crate) type WindowWrite = Box<dyn FnMut(usize) + Send>;

    /// Runs while a chunk being handed over to the scanner is protected by neither the
    /// handler nor the scanner (tests only; a hook that is not the test's own memory's
    /// must leave other chunks alone, as tests run side by side).
    pub(crate) static SWITCH_WINDOW: std::sync::Mutex<Option<WindowWrite>> =
        std::sync::Mutex::new(None);

    pub(crate) fn in_switch_window(chunk: usize) {
        if let Some(write) = SWITCH_WINDOW
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            write(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;

    /// Arms and seals at once.
    ///
    /// # Safety
    /// As for [`WpCopy::arm`] and [`WpCopy::seal`].
    unsafe fn take(base: *mut u8, len: usize) -> Result<WpCopy, WpError> {
        // SAFETY: as the caller vouches.
        let copy = unsafe { WpCopy::arm(base, len, false, None) }?;
        // SAFETY: as the caller vouches.
        unsafe { copy.seal(len) }?;
        Ok(copy)
    }

    fn read_all(copy: &WpCopy) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for at in (0..copy.len()).step_by(CHUNK) {
            copy.read(at, &mut buf);
            out.extend_from_slice(&buf);
        }
        out
    }

    fn pattern(i: usize) -> u8 {
        (i / PAGE % 251) as u8 + 1
    }

    #[test]
    fn reads_the_memory_as_it_was_while_another_thread_rewrites_all_of_it() {
        let len = 8 * CHUNK + 3 * PAGE;
        let shm = Shm::new(len);
        // Every page touched but the last three, which were never (their first write after
        // the copy must be caught too).
        for p in 0..(len / PAGE - 3) {
            shm.set(p * PAGE + 17, pattern(p * PAGE));
        }
        // SAFETY: the test's own mapping, no writer during the call, mapped throughout.
        let copy = unsafe { take(shm.base, len) }.expect("userfaultfd available");
        std::thread::scope(|s| {
            s.spawn(|| {
                // Back to front, so the writer meets unread chunks first.
                for p in (0..len / PAGE).rev() {
                    shm.set(p * PAGE + 17, 0xEE);
                }
            });
            let got = read_all(&copy);
            for p in 0..len / PAGE {
                let want = if p < len / PAGE - 3 {
                    pattern(p * PAGE)
                } else {
                    0
                };
                assert_eq!(got[p * PAGE + 17], want, "page {p}");
            }
        });
        assert!(
            !copy.waiter().active(),
            "reading every chunk finishes the copy"
        );
        drop(copy);
        // SAFETY: inside the mapping.
        assert_eq!(unsafe { shm.base.add(17).read_volatile() }, 0xEE);
    }

    #[test]
    fn pages_written_before_their_chunk_is_read_are_saved_once() {
        let len = 2 * CHUNK;
        let shm = Shm::new(len);
        shm.set(5, 1);
        // SAFETY: as above.
        let copy = unsafe { take(shm.base, len) }.unwrap();
        // Two writes to one page: only the bytes from before the first are kept.
        shm.set(5, 2);
        shm.set(5, 3);
        shm.set(CHUNK + 5, 4);
        let got = read_all(&copy);
        assert_eq!((got[5], got[CHUNK + 5]), (1, 0));
        // SAFETY: inside the mapping.
        assert_eq!(unsafe { shm.base.add(5).read_volatile() }, 3);
    }

    #[test]
    fn dropping_an_unread_copy_releases_the_memory_and_wakes_waiters() {
        let len = 4 * CHUNK;
        let shm = Shm::new(len);
        // SAFETY: as above.
        let copy = unsafe { take(shm.base, len) }.unwrap();
        let waiter = copy.waiter();
        assert!(waiter.active());
        let mut buf = Vec::new();
        copy.read(0, &mut buf);
        assert_eq!(buf.len(), CHUNK);
        std::thread::scope(|s| {
            let w = waiter.clone();
            let t = s.spawn(move || w.wait_read());
            drop(copy);
            t.join().unwrap();
        });
        assert!(!waiter.active());
        for p in 0..len / PAGE {
            shm.set(p * PAGE, 9);
        }
    }

    #[test]
    fn writes_between_arming_and_sealing_are_in_the_copy_and_growth_is_covered() {
        let len = 4 * CHUNK;
        let shm = Shm::new(len);
        shm.set(7, 1);
        // Armed for the first chunk only: the memory "grows" to four before the seal.
        // SAFETY: the test's own mapping, mapped throughout.
        let copy = unsafe { WpCopy::arm(shm.base, CHUNK, false, None) }.unwrap();
        // Written after arming but before the instant of the copy: part of it.
        shm.set(7, 2);
        shm.set(3 * CHUNK + 1, 3);
        // SAFETY: no other writer; mapped throughout.
        unsafe { copy.seal(len) }.unwrap();
        assert_eq!(copy.len(), len);
        // After the seal: not part of it, in the armed part or in the grown part.
        shm.set(7, 4);
        shm.set(3 * CHUNK + 1, 5);
        let got = read_all(&copy);
        assert_eq!((got[7], got[3 * CHUNK + 1]), (2, 3));
    }

    #[test]
    fn remapping_before_the_seal_cancels_the_copy() {
        let shm = Shm::new(CHUNK);
        // SAFETY: the test's own mapping, mapped throughout.
        let copy = unsafe { WpCopy::arm(shm.base, CHUNK, false, None) }.unwrap();
        // What a fork or an unmap does first: it must not wait for a seal that may never
        // come (the round waits for the forking thread).
        copy.waiter().wait_read();
        shm.set(0, 1);
        // SAFETY: as above.
        let sealed = unsafe { copy.seal(CHUNK) };
        assert!(matches!(sealed, Err(WpError::Cancelled)));
        // A seal shorter than the armed length is refused, not trusted.
        // SAFETY: as above.
        let again = unsafe { WpCopy::arm(shm.base, CHUNK, false, None) }.unwrap();
        // SAFETY: as above.
        assert!(unsafe { again.seal(CHUNK / 2) }.is_err());
        shm.set(0, 2);
    }

    /// The hold of a test with no other writer: the test's own thread, which does not
    /// write while the copy hands chunks over ([`read_held`] waits for that).
    fn still() -> Option<Hold> {
        Some(Arc::new(|_| Some(Box::new(()) as Box<dyn Send>)))
    }

    /// Where a test's writer thread passes for each write, and a hold stops it: a writer
    /// marks itself writing, then looks for holders; a holder counts itself in, then waits
    /// for the writer to be out (both sequentially consistent: one of them sees the other).
    #[derive(Default)]
    struct Gate {
        holders: std::sync::atomic::AtomicUsize,
        writing: std::sync::atomic::AtomicBool,
    }

    impl Gate {
        /// Runs `write` unless held (then `false`).
        fn pass(&self, write: impl FnOnce()) -> bool {
            use std::sync::atomic::Ordering::SeqCst;
            self.writing.store(true, SeqCst);
            let open = self.holders.load(SeqCst) == 0;
            if open {
                write();
            }
            self.writing.store(false, SeqCst);
            open
        }

        fn hold(gate: &Arc<Gate>) -> Box<dyn Send> {
            use std::sync::atomic::Ordering::SeqCst;
            struct Held(Arc<Gate>);
            impl Drop for Held {
                fn drop(&mut self) {
                    self.0.holders.fetch_sub(1, SeqCst);
                }
            }
            gate.holders.fetch_add(1, SeqCst);
            while gate.writing.load(SeqCst) {
                std::thread::yield_now();
            }
            Box::new(Held(Arc::clone(gate)))
        }
    }

    /// Runs `test` with a kept copy's writes tracked by its handler, then by the scanner
    /// (where this kernel has async write protection).
    fn both_ways(test: fn(bool)) {
        test(false);
        let shm = Shm::new(PAGE);
        if crate::wpscan::tests::scanner(&shm).is_some() {
            test(true);
        }
    }

    /// Reads every chunk the copy holds pages of (skipping the rest), as a snapshot writer
    /// does; returns (page, first byte) of each held page.
    fn read_held(copy: &WpCopy) -> Vec<(usize, u8)> {
        let held = copy.held_pages();
        let mut out = Vec::new();
        let copied = copy.write_copied(|runs| {
            for (first, bytes) in runs {
                let pages = bytes.chunks(PAGE).enumerate();
                out.extend(pages.map(|(k, page)| (first + k, page[0])));
            }
        });
        if copied.is_some() {
            copy.wait_handed_over();
            return out;
        }
        let mut buf = Vec::new();
        for at in (0..copy.len()).step_by(CHUNK) {
            let pages = at / PAGE..(at + CHUNK).min(copy.len()) / PAGE;
            let mine: Vec<usize> = pages
                .filter(|p| held.as_ref().is_none_or(|h| h[*p]))
                .collect();
            if mine.is_empty() {
                copy.skip(at);
                continue;
            }
            match &held {
                None => {
                    copy.read(at, &mut buf);
                    out.extend(mine.iter().map(|p| (*p, buf[p * PAGE - at])));
                }
                Some(h) => {
                    let first = at / PAGE;
                    let last = (at + CHUNK).min(copy.len()) / PAGE;
                    copy.read_pages(at, &h[first..last], &mut buf);
                    out.extend(mine.iter().enumerate().map(|(k, p)| (*p, buf[k * PAGE])));
                }
            }
        }
        copy.wait_handed_over();
        out
    }

    #[test]
    fn a_kept_copy_tracks_writes_and_its_increment_holds_exactly_them() {
        both_ways(a_kept_copy_tracks_writes_and_its_increment_holds_exactly_them_by);
    }

    fn a_kept_copy_tracks_writes_and_its_increment_holds_exactly_them_by(scan: bool) {
        let len = 4 * CHUNK;
        let shm = Shm::new(len);
        shm.set(0, 1);
        // SAFETY: the test's own mapping, mapped throughout; no writer during the seals.
        let copy = unsafe { WpCopy::arm_with(shm.base, len, true, scan, still()) }.unwrap();
        // SAFETY: as above.
        unsafe { copy.seal(len) }.unwrap();
        assert_eq!(copy.held_pages(), None, "the first copy is a full one");
        assert_eq!(copy.generation(), 1);
        // Written while it is read: noted for the next increment.
        shm.set(3 * CHUNK, 7);
        assert_eq!(read_held(&copy).len(), len / PAGE);
        assert!(copy.tracking(), "read, it goes on tracking");
        assert_eq!(copy.scans(), scan);
        assert!(copy.waiter().active());
        // Written while tracking (twice to one page: one fault, noted once).
        shm.set(5 * PAGE, 8);
        shm.set(5 * PAGE + 1, 8);
        shm.set(CHUNK + 9 * PAGE, 9);
        copy.rearm(false).unwrap();
        // Written while armed, before the seal: part of this increment.
        shm.set(2 * CHUNK, 10);
        // SAFETY: as above.
        unsafe { copy.seal(len) }.unwrap();
        // After the seal: not part of it (but of the next).
        shm.set(5 * PAGE, 11);
        shm.set(PAGE, 12);
        let held: Vec<usize> = copy
            .held_pages()
            .unwrap()
            .iter()
            .enumerate()
            .filter_map(|(p, h)| h.then_some(p))
            .collect();
        let want = [5, CHUNK / PAGE + 9, 2 * CHUNK / PAGE, 3 * CHUNK / PAGE];
        let mut want = want.to_vec();
        want.sort_unstable();
        assert_eq!(held, want);
        let got = read_held(&copy);
        assert_eq!(
            got,
            [
                (5, 8),
                (CHUNK / PAGE + 9, 9),
                (2 * CHUNK / PAGE, 10),
                (3 * CHUNK / PAGE, 7)
            ]
        );
        assert_eq!(copy.generation(), 2);
        // The next increment holds what was written after that seal.
        copy.rearm(false).unwrap();
        // SAFETY: as above.
        unsafe { copy.seal(len) }.unwrap();
        assert_eq!(read_held(&copy), [(1, 12), (5, 11)]);
    }

    /// Rearming protects nearby written pages in one call over the clean pages between
    /// them: the increment still holds exactly the written pages, and a clean page inside
    /// such a span, written later, is tracked for the next one.
    #[test]
    fn rearming_over_clean_pages_between_written_ones_tracks_exactly_the_writes() {
        both_ways(rearming_over_clean_pages_between_written_ones_tracks_exactly_the_writes_by);
    }

    fn rearming_over_clean_pages_between_written_ones_tracks_exactly_the_writes_by(scan: bool) {
        let len = 2 * CHUNK;
        let shm = Shm::new(len);
        // SAFETY: the test's own mapping, mapped throughout; no writer during the seals.
        let copy = unsafe { WpCopy::arm_with(shm.base, len, true, scan, still()) }.unwrap();
        // SAFETY: as above.
        unsafe { copy.seal(len) }.unwrap();
        read_held(&copy);
        // Close together (one span), and one far off (a span of its own).
        let near = [10, 10 + REARM_GAP / 2, 10 + REARM_GAP];
        let far = 10 + REARM_GAP + 4 * REARM_GAP;
        for (k, p) in near.iter().chain([&far]).enumerate() {
            shm.set(p * PAGE, k as u8 + 1);
        }
        copy.rearm(false).unwrap();
        // SAFETY: as above.
        unsafe { copy.seal(len) }.unwrap();
        assert_eq!(
            read_held(&copy),
            [(near[0], 1), (near[1], 2), (near[2], 3), (far, 4)]
        );
        // A clean page inside the span, and a written one, after that seal.
        shm.set((near[0] + 1) * PAGE, 5);
        shm.set(near[1] * PAGE, 6);
        copy.rearm(false).unwrap();
        // SAFETY: as above.
        unsafe { copy.seal(len) }.unwrap();
        assert_eq!(read_held(&copy), [(near[0] + 1, 5), (near[1], 6)]);
    }

    #[test]
    fn a_kept_copy_grows_with_the_memory_and_ends_when_the_mapping_must_change() {
        both_ways(a_kept_copy_grows_with_the_memory_and_ends_when_the_mapping_must_change_by);
    }

    fn a_kept_copy_grows_with_the_memory_and_ends_when_the_mapping_must_change_by(scan: bool) {
        let len = 2 * CHUNK;
        let shm = Shm::new(len);
        // Tracks the first chunk only; the memory "grows" to two before the next seal.
        // SAFETY: the test's own mapping, mapped throughout; no writer during the seals.
        let copy = unsafe { WpCopy::arm_with(shm.base, CHUNK, true, scan, still()) }.unwrap();
        // SAFETY: as above.
        unsafe { copy.seal(CHUNK) }.unwrap();
        read_held(&copy);
        shm.set(CHUNK + 3 * PAGE, 4);
        copy.rearm(false).unwrap();
        // SAFETY: as above.
        unsafe { copy.seal(len) }.unwrap();
        let held = copy.held_pages().unwrap();
        assert!(
            held[CHUNK / PAGE..].iter().all(|h| *h),
            "growth is held whole"
        );
        assert!(!held[..CHUNK / PAGE].iter().any(|h| *h));
        let got = read_held(&copy);
        assert_eq!(got.len(), CHUNK / PAGE);
        assert!(got.contains(&(CHUNK / PAGE + 3, 4)));
        // A remap ends the tracking: writes go through, and no increment can follow.
        copy.waiter().wait_read();
        assert!(!copy.waiter().active());
        shm.set(0, 5);
        assert!(matches!(copy.rearm(false), Err(WpError::Cancelled)));
    }

    /// Increments taken while another thread writes at random (between seals, and while
    /// each increment is armed and read) compose with the full copy to the memory as it
    /// was at each seal: with the writer held for handovers and scans, and without.
    #[test]
    fn increments_compose_to_the_memory_at_each_seal_while_a_thread_writes() {
        both_ways(|scan| racing_writer(scan, true));
        both_ways(|scan| racing_writer(scan, false));
    }

    fn racing_writer(scan: bool, holds: bool) {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
        let len = 4 * CHUNK;
        let shm = Arc::new(Shm::new(len));
        let bytes = |shm: &Shm| {
            // SAFETY: the test's own mapping; read while its writer is held.
            unsafe { std::slice::from_raw_parts(shm.base, shm.len) }.to_vec()
        };
        let gate = Arc::new(Gate::default());
        let hold: Option<Hold> = holds.then(|| {
            let gate = Arc::clone(&gate);
            Arc::new(move |_| Some(Gate::hold(&gate))) as Hold
        });
        // SAFETY: the test's own mapping, mapped throughout; the writer is held for seals.
        let copy = unsafe { WpCopy::arm_with(shm.base, len, true, scan, hold) }.unwrap();
        // SAFETY: as above.
        unsafe { copy.seal(len) }.unwrap();
        let bytes_at_seal = bytes(&shm);
        let done = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(0));
        let writer = {
            let (shm, gate, done, writes) = (
                Arc::clone(&shm),
                Arc::clone(&gate),
                Arc::clone(&done),
                Arc::clone(&writes),
            );
            std::thread::spawn(move || {
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
                while !done.load(SeqCst) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let at = (x as usize) % shm.len;
                    if gate.pass(|| shm.set(at, (x >> 56) as u8)) {
                        writes.fetch_add(1, SeqCst);
                    } else {
                        std::thread::yield_now();
                    }
                }
            })
        };
        // The full copy read while the thread writes (the scanner takes over chunk by chunk).
        let want = bytes_at_seal;
        let mut image = vec![0u8; len];
        let mut buf = Vec::new();
        for at in (0..len).step_by(CHUNK) {
            copy.read(at, &mut buf);
            image[at..at + buf.len()].copy_from_slice(&buf);
        }
        assert!(image == want, "the full copy is the memory at its seal");
        for round in 0..6 {
            // Some writes before the rearm, then more while it runs.
            let from = writes.load(SeqCst);
            while writes.load(SeqCst) < from + 200 {
                std::thread::yield_now();
            }
            copy.rearm(false).unwrap();
            let held = Gate::hold(&gate);
            let want = bytes(&shm);
            // SAFETY: as above; the writer is held.
            unsafe { copy.seal(len) }.unwrap();
            drop(held);
            let held = copy.held_pages().unwrap();
            // Every other round straight from the copies, as the snapshot writer takes an
            // increment the scanner found; else chunk by chunk.
            let from_copies = round % 2 == 0
                && copy
                    .write_copied(|runs| {
                        for (first, bytes) in runs {
                            let to = first * PAGE;
                            image[to..to + bytes.len()].copy_from_slice(bytes);
                        }
                    })
                    .is_some();
            assert_eq!(from_copies, scan && round % 2 == 0);
            let chunks = if from_copies { 0 } else { len };
            for at in (0..chunks).step_by(CHUNK) {
                let first = at / PAGE;
                let mine = &held[first..first + CHUNK / PAGE];
                if !mine.iter().any(|h| *h) {
                    copy.skip(at);
                    continue;
                }
                copy.read_pages(at, mine, &mut buf);
                let pages = mine.iter().enumerate().filter(|(_, h)| **h);
                for (k, (p, _)) in pages.enumerate() {
                    let to = (first + p) * PAGE;
                    image[to..to + PAGE].copy_from_slice(&buf[k * PAGE..(k + 1) * PAGE]);
                }
            }
            let wrong = (0..len / PAGE)
                .filter(|p| image[p * PAGE..(p + 1) * PAGE] != want[p * PAGE..(p + 1) * PAGE])
                .count();
            assert_eq!(
                wrong, 0,
                "round {round} (holds: {holds}): pages differing from the memory at the seal"
            );
        }
        done.store(true, SeqCst);
        writer.join().unwrap();
        assert_eq!(copy.scans(), scan);
    }

    /// A chunk handed over to the scanner without the writers held counts as written
    /// whole: a page written while neither the handler nor the scanner protects it is in
    /// the next increment.
    #[test]
    fn a_chunk_handed_over_unheld_is_in_the_next_increment_whole() {
        let len = 2 * CHUNK;
        let shm = Shm::new(len);
        if crate::wpscan::tests::scanner(&shm).is_none() {
            return;
        }
        // SAFETY: the test's own mapping, mapped throughout; no writer during the seals.
        let copy = unsafe { WpCopy::arm_with(shm.base, len, true, true, None) }.unwrap();
        // SAFETY: as above.
        unsafe { copy.seal(len) }.unwrap();
        let (from, to) = (shm.base as usize, shm.base as usize + len);
        *SWITCH_WINDOW.lock().unwrap() = Some(Box::new(move |chunk: usize| {
            if (from..to).contains(&chunk) {
                // SAFETY: the first page of a chunk of the test's mapping.
                unsafe { (chunk as *mut u8).add(5).write_volatile(42) }
            }
        }));
        read_held(&copy);
        *SWITCH_WINDOW.lock().unwrap() = None;
        assert!(copy.scans());
        copy.rearm(false).unwrap();
        // SAFETY: as above.
        unsafe { copy.seal(len) }.unwrap();
        assert_eq!(shm.get(5), 42);
        assert_eq!(shm.get(CHUNK + 5), 42);
        let held = copy.held_pages().unwrap();
        assert!(held.iter().all(|h| *h), "every page of both chunks");
    }
}
