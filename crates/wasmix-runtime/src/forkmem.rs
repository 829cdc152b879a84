//! Copy-on-write linear memory for `fork`.
//!
//! wasmtime reserves the whole 4 GiB range of a 32-bit memory up front and grows it in place
//! with `mprotect`. A memory that may be forked is *adopted*: its reserved range is replaced by
//! a mapping of a memfd (bytes so far copied in once), so every page it ever has lives in that
//! file. Growth keeps working: wasmtime's `mprotect` now opens pages of the file.
//!
//! The first fork freezes the file: the parent's mapping becomes `MAP_PRIVATE` over it and the
//! child maps it `MAP_PRIVATE` too, so both share every page until one writes it — the kernel's
//! own copy-on-write, no bytes copied. Nobody writes the file after that. A later fork of a
//! frozen memory maps the same file again and copies only the pages its parent has written
//! since the freeze (the anonymous pages of the parent's mapping, read off
//! `/proc/self/pagemap`).
//!
//! Other threads of a forking process keep running; a page one of them writes while it is
//! being copied may reach the child half-written, a race of the guest's own making, as with a
//! native fork racing a writer on another core.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use rustix::fs::{memfd_create, MemfdFlags};
use rustix::mm::{mmap, mprotect, MapFlags, MprotectFlags, ProtFlags};

use crate::wpcopy::{Hold, WpCopy, WpError, WpWaiter};

/// The address range of one linear memory: `len` bytes accessible now, `span` bytes reserved
/// for it by the engine (all of which the memory may grow into).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Region {
    pub base: *mut u8,
    pub len: usize,
    pub span: usize,
}

/// A memory whose pages live in a file, so forks can share them.
pub(crate) struct ForkMemory {
    file: Arc<OwnedFd>,
    /// How the memory is mapped now; held while the mapping changes or a copy is armed.
    mapping: Mutex<Mapping>,
    /// The write-protected copy of this memory being read, if any: the mapping must not
    /// change until it is read.
    copy: Mutex<Option<WpWaiter>>,
    /// The copy tracking this memory's writes since the last snapshot (incremental
    /// snapshots), until the mapping changes.
    tracker: Mutex<Option<Arc<WpCopy>>>,
}

/// How a memory is mapped.
#[derive(Default)]
struct Mapping {
    /// It maps the file privately (frozen file, own writes kept apart).
    private: bool,
    /// It is being unmapped: no more copies or remaps.
    retired: bool,
    /// Its accessible length when last seen here (adopted, forked or armed).
    len: usize,
}

impl std::fmt::Debug for ForkMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForkMemory").finish_non_exhaustive()
    }
}

impl ForkMemory {
    /// Moves `region`'s bytes into a new file and maps the file over the whole region.
    ///
    /// # Safety
    /// `region` must be exactly the range the engine reserved for one linear memory, and no
    /// other thread may use the memory during the call.
    pub unsafe fn adopt(region: Region) -> io::Result<ForkMemory> {
        let file = memfd_create("wasmix-memory", MemfdFlags::CLOEXEC)?;
        rustix::fs::ftruncate(&file, region.span as u64)?;
        // SAFETY: the caller vouches for `base..base+len` being the accessible memory.
        let bytes = unsafe { std::slice::from_raw_parts(region.base, region.len) };
        write_nonzero_pages(&file, bytes)?;
        // SAFETY: replaces the engine's reservation with an equally sized mapping of the
        // file holding the same bytes.
        unsafe { map(region, &file, MapFlags::SHARED) }?;
        Ok(ForkMemory {
            file: Arc::new(file),
            mapping: Mutex::new(Mapping {
                len: region.len,
                ..Mapping::default()
            }),
            copy: Mutex::new(None),
            tracker: Mutex::new(None),
        })
    }

    /// Gives `child` (a freshly reserved memory grown to the parent's size) a copy-on-write
    /// copy of `parent`, this memory's current range.
    ///
    /// # Safety
    /// Both regions must be whole engine reservations as in [`ForkMemory::adopt`]; `child`
    /// must not be in use.
    pub unsafe fn fork(&self, parent: Region, child: Region) -> io::Result<ForkMemory> {
        let mut mapping = self.mapping.lock().unwrap_or_else(|e| e.into_inner());
        if mapping.retired {
            return Err(io::Error::other("the memory is being unmapped"));
        }
        // No copy is read from the mapping while it changes.
        self.settle();
        mapping.len = parent.len;
        if !mapping.private {
            // SAFETY: the same file and bytes, mapped privately from now on.
            unsafe { map(parent, &self.file, MapFlags::PRIVATE) }?;
            mapping.private = true;
            // SAFETY: as above, for the child.
            unsafe { map(child, &self.file, MapFlags::PRIVATE) }?;
        } else {
            // SAFETY: as above.
            unsafe { map(child, &self.file, MapFlags::PRIVATE) }?;
            for (offset, len) in written_runs(parent)? {
                // SAFETY: both ranges lie within the accessible parts of their regions.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        parent.base.add(offset),
                        child.base.add(offset),
                        len,
                    )
                };
            }
        }
        Ok(ForkMemory {
            file: Arc::clone(&self.file),
            mapping: Mutex::new(Mapping {
                private: true,
                retired: false,
                len: parent.len,
            }),
            copy: Mutex::new(None),
            tracker: Mutex::new(None),
        })
    }
}

/// A read-only, copy-on-write view of a memory as it was when it was taken: what a snapshot
/// writes out in the background while the process runs on.
pub(crate) struct FrozenView {
    base: *mut u8,
    len: usize,
    span: usize,
    _memory: ForkMemory,
}

// SAFETY: the view is a private mapping owned by this value; nothing else writes it, and it
// is only read (through `bytes`).
unsafe impl Send for FrozenView {}

impl FrozenView {
    /// The memory's bytes as they were.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `base..base+len` is mapped readable for the view's life and never written.
        unsafe { std::slice::from_raw_parts(self.base, self.len) }
    }
}

impl Drop for FrozenView {
    fn drop(&mut self) {
        // SAFETY: the mapping made by `ForkMemory::freeze`, unused from here on.
        let _ = unsafe { rustix::mm::munmap(self.base.cast(), self.span) };
    }
}

impl ForkMemory {
    /// A view of `memory` as it is now, at the cost of a fork's mapping (the first time, a
    /// remap; later, a copy of the pages written since the first): the memory goes on
    /// copy-on-write, and the view keeps what it held.
    ///
    /// # Safety
    /// `memory` must be this memory's whole engine reservation and no thread may use the
    /// memory during the call.
    pub unsafe fn freeze(&self, memory: Region) -> io::Result<FrozenView> {
        let page = rustix::param::page_size();
        let span = memory.len.div_ceil(page).max(1) * page;
        // SAFETY: a fresh mapping of our own, replaced by the fork's mapping below.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                span,
                ProtFlags::empty(),
                MapFlags::PRIVATE,
            )?
        }
        .cast::<u8>();
        let view = Region {
            base,
            len: memory.len,
            span,
        };
        // SAFETY: both are whole reservations; the view is ours alone.
        let mapped = unsafe { self.fork(memory, view) };
        match mapped {
            Ok(m) => Ok(FrozenView {
                base,
                len: memory.len,
                span,
                _memory: m,
            }),
            Err(e) => {
                // SAFETY: the mapping made above.
                let _ = unsafe { rustix::mm::munmap(base.cast(), span) };
                Err(e)
            }
        }
    }
}

impl ForkMemory {
    /// Arms a copy of `memory` that costs no copying (see [`crate::wpcopy`]): the memory is
    /// write-protected now, while it may still be in use, and the copy is of the instant of
    /// its [`WpCopy::seal`]. Until the copy is read (or dropped), forks and freezes of this
    /// memory wait for it, and so must whoever unmaps the memory ([`ForkMemory::retire`]);
    /// before its seal, they cancel it instead.
    ///
    /// `incremental`: the copy goes on tracking writes once read, and the next call makes
    /// an increment of it (the pages written since) — unless the mapping changed since,
    /// which ends the tracking: a full copy again.
    ///
    /// `hold` stops the process's threads for a moment, for what is much cheaper with them
    /// stopped (see [`WpCopy::rearm`]); `caller_writes`: the calling thread is one of them.
    ///
    /// # Safety
    /// `memory` must lie within this memory's accessible range.
    pub unsafe fn arm(
        &self,
        memory: Region,
        incremental: bool,
        hold: Option<Hold>,
        caller_writes: bool,
    ) -> Result<Arc<WpCopy>, WpError> {
        let mut mapping = self.mapping.lock().unwrap_or_else(|e| e.into_inner());
        if mapping.retired {
            return Err(WpError::Cancelled);
        }
        let tracker = self
            .tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(t) = tracker.filter(|_| incremental) {
            // Waits for the last copy to be read; fails if it stopped tracking.
            if t.rearm(caller_writes).is_ok() {
                mapping.len = memory.len;
                *self.copy.lock().unwrap_or_else(|e| e.into_inner()) = Some(t.waiter());
                return Ok(t);
            }
        }
        self.settle();
        // SAFETY: as the caller vouches; the mapping stays until the copy is read (or, kept,
        // until it is dropped or ended), as everyone who changes it settles first (under the
        // lock held here).
        let copy = Arc::new(unsafe { WpCopy::arm(memory.base, memory.len, incremental, hold) }?);
        mapping.len = memory.len;
        *self.copy.lock().unwrap_or_else(|e| e.into_inner()) = Some(copy.waiter());
        if incremental {
            *self.tracker.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&copy));
        }
        Ok(copy)
    }

    /// The memory's accessible length when last seen (it may have grown since).
    pub fn len_hint(&self) -> usize {
        self.mapping.lock().unwrap_or_else(|e| e.into_inner()).len
    }

    /// Before the memory is unmapped: waits until no copy of it is being read, and refuses
    /// copies and remaps from now on.
    pub fn retire(&self) {
        let mut mapping = self.mapping.lock().unwrap_or_else(|e| e.into_inner());
        mapping.retired = true;
        self.settle();
    }

    /// Waits until no copy of this memory is being read (cancels one not sealed yet, ends
    /// the tracking of writes).
    fn settle(&self) {
        let copy = self.copy.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(c) = copy {
            c.wait_read();
        }
        drop(
            self.tracker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
    }
}

/// Maps `file` over all of `region`, accessible up to its length.
///
/// # Safety
/// `region` must be a whole engine reservation not in use by another thread.
unsafe fn map(region: Region, file: &OwnedFd, flags: MapFlags) -> io::Result<()> {
    // SAFETY: the caller owns the range; MAP_FIXED replaces what was there in one step.
    unsafe {
        mmap(
            region.base.cast(),
            region.span,
            ProtFlags::empty(),
            flags | MapFlags::FIXED,
            file.as_fd(),
            0,
        )?;
        if region.len > 0 {
            mprotect(
                region.base.cast(),
                region.len,
                MprotectFlags::READ | MprotectFlags::WRITE,
            )?;
        }
    }
    Ok(())
}

/// Writes `bytes` into `file` at the same offsets, skipping all-zero pages (a fresh file
/// reads as zeros already, and untouched memory costs no file pages then).
fn write_nonzero_pages(file: &OwnedFd, bytes: &[u8]) -> io::Result<()> {
    let page = rustix::param::page_size();
    let mut start = None;
    let flush = |from: usize, to: usize| -> io::Result<()> {
        let mut at = from;
        while at < to {
            let n = rustix::io::pwrite(file, &bytes[at..to], at as u64)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            at += n;
        }
        Ok(())
    };
    for (i, chunk) in bytes.chunks(page).enumerate() {
        let zero = is_zero(chunk);
        match (zero, start) {
            (false, None) => start = Some(i * page),
            (true, Some(s)) => {
                flush(s, i * page)?;
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        flush(s, bytes.len())?;
    }
    Ok(())
}

/// Whether every byte is 0: or-folded by words so the loop vectorises (a byte loop that stops
/// at the first non-zero byte costs ~1 ns per byte, milliseconds per process start), block
/// by block, stopping at the first block with data: a cold page with data costs its first
/// cache lines, not all of them (~1 µs a page here, half an increment's writer's time).
pub(crate) fn is_zero(bytes: &[u8]) -> bool {
    // SAFETY: any bytes are a valid u64 when aligned; align_to hands back the unaligned ends.
    let (head, words, tail) = unsafe { bytes.align_to::<u64>() };
    head.iter().chain(tail).fold(0u8, |a, b| a | b) == 0
        && words
            .chunks(ZERO_BLOCK)
            .all(|block| block.iter().fold(0u64, |a, w| a | w) == 0)
}

/// Words [`is_zero`] folds before it looks at the result: four cache lines.
const ZERO_BLOCK: usize = 32;

/// Byte ranges (offset, length) of `region` that its mapping holds privately: pages written
/// since the file was frozen. Read from `/proc/self/pagemap`: a page that is present (bit 63)
/// and not file-backed (bit 61), or swapped out (bit 62), is the mapping's own copy.
fn written_runs(region: Region) -> io::Result<Vec<(usize, usize)>> {
    use std::os::unix::fs::FileExt;
    let page = rustix::param::page_size();
    let pages = region.len.div_ceil(page);
    let pagemap = std::fs::File::open("/proc/self/pagemap")?;
    let mut entries = vec![0u8; pages * 8];
    pagemap.read_exact_at(&mut entries, (region.base as usize / page * 8) as u64)?;
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, e) in entries.chunks_exact(8).enumerate() {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(e);
        let e = u64::from_ne_bytes(raw);
        let own = (e >> 63 & 1 == 1 && e >> 61 & 1 == 0) || e >> 62 & 1 == 1;
        if !own {
            continue;
        }
        let offset = i * page;
        let len = page.min(region.len - offset);
        match runs.last_mut() {
            Some((o, l)) if *o + *l == offset => *l += len,
            _ => runs.push((offset, len)),
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reservation shaped like the engine's: `span` bytes, the first `len` accessible.
    struct Reservation(Region);

    impl Reservation {
        fn new(len: usize, span: usize) -> Reservation {
            // SAFETY: a fresh anonymous mapping owned by this value.
            let base = unsafe {
                rustix::mm::mmap_anonymous(
                    std::ptr::null_mut(),
                    span,
                    ProtFlags::empty(),
                    MapFlags::PRIVATE,
                )
                .unwrap()
            };
            // SAFETY: inside the mapping just made.
            unsafe {
                mprotect(base, len, MprotectFlags::READ | MprotectFlags::WRITE).unwrap();
            }
            Reservation(Region {
                base: base.cast(),
                len,
                span,
            })
        }

        fn get(&self, at: usize) -> u8 {
            assert!(at < self.0.len);
            // SAFETY: inside the accessible part of the mapping.
            unsafe { self.0.base.add(at).read() }
        }

        fn set(&self, at: usize, v: u8) {
            assert!(at < self.0.len);
            // SAFETY: inside the accessible part of the mapping, used by one test thread.
            unsafe { self.0.base.add(at).write(v) }
        }
    }

    impl Drop for Reservation {
        fn drop(&mut self) {
            // SAFETY: the mapping made in `new`.
            unsafe { rustix::mm::munmap(self.0.base.cast(), self.0.span).unwrap() };
        }
    }

    const MIB: usize = 1 << 20;

    #[test]
    fn fork_copies_contents_and_then_each_side_writes_alone() {
        let parent = Reservation::new(4 * MIB, 64 * MIB);
        parent.set(12345, 7);
        parent.set(3 * MIB, 9);
        // SAFETY: a whole reservation of this test's own, no other user.
        let mem = unsafe { ForkMemory::adopt(parent.0) }.unwrap();
        assert_eq!(parent.get(12345), 7, "adoption keeps the bytes");

        let child = Reservation::new(4 * MIB, 64 * MIB);
        // SAFETY: whole reservations of this test, the target unused by anyone else.
        let child_mem = unsafe { mem.fork(parent.0, child.0) }.unwrap();
        assert_eq!(child.get(12345), 7);
        assert_eq!(child.get(3 * MIB), 9);
        child.set(12345, 1);
        parent.set(3 * MIB, 2);
        assert_eq!(parent.get(12345), 7, "the child's write stays in the child");
        assert_eq!(
            child.get(3 * MIB),
            9,
            "the parent's write stays in the parent"
        );

        // A second fork of the (now frozen) parent sees what the parent wrote since.
        parent.set(100, 5);
        let second = Reservation::new(4 * MIB, 64 * MIB);
        // SAFETY: whole reservations of this test, the target unused by anyone else.
        let _m2 = unsafe { mem.fork(parent.0, second.0) }.unwrap();
        assert_eq!(second.get(100), 5);
        assert_eq!(second.get(3 * MIB), 2);
        assert_eq!(second.get(12345), 7);

        // A grandchild from the child sees the child's writes.
        let grand = Reservation::new(4 * MIB, 64 * MIB);
        // SAFETY: whole reservations of this test, the target unused by anyone else.
        let _m3 = unsafe { child_mem.fork(child.0, grand.0) }.unwrap();
        assert_eq!(grand.get(12345), 1);
    }

    #[test]
    fn zero_pages_are_told_apart_from_others_at_any_alignment() {
        let mut page = vec![0u8; 4100];
        assert!(is_zero(&page[1..4097]));
        page[4096] = 1;
        assert!(!is_zero(&page[1..4097]));
        assert!(is_zero(&page[..4096]));
        page[2] = 1;
        assert!(!is_zero(&page[..3]));
        // One byte set anywhere — first block, a middle one, the last, the unaligned ends.
        for at in [0, 7, 8, 255, 256, 1000, 2047, 4000, 4095] {
            let mut page = vec![0u8; 4096];
            assert!(is_zero(&page));
            page[at] = 0x80;
            assert!(!is_zero(&page), "byte {at}");
            assert!(!is_zero(&page[at.min(3)..]), "byte {at}, unaligned");
        }
    }

    #[test]
    fn growth_after_adoption_lands_in_the_file() {
        let mut parent = Reservation::new(MIB, 16 * MIB);
        // SAFETY: a whole reservation of this test's own, no other user.
        let mem = unsafe { ForkMemory::adopt(parent.0) }.unwrap();
        // What the engine's memory.grow does: open more of the reservation.
        // SAFETY: the range lies inside the reservation made by this test.
        unsafe {
            mprotect(
                parent.0.base.add(MIB).cast(),
                MIB,
                MprotectFlags::READ | MprotectFlags::WRITE,
            )
            .unwrap()
        };
        parent.0.len = 2 * MIB;
        parent.set(MIB + 10, 3);
        let mut child = Reservation::new(MIB, 16 * MIB);
        child.0.len = 2 * MIB;
        // SAFETY: whole reservations of this test, the target unused by anyone else.
        let _c = unsafe { mem.fork(parent.0, child.0) }.unwrap();
        assert_eq!(child.get(MIB + 10), 3);
    }

    #[test]
    fn a_fork_waits_for_a_sealed_copy_and_cancels_an_armed_one() {
        let parent = Reservation::new(2 * MIB, 16 * MIB);
        parent.set(10, 1);
        // SAFETY: a whole reservation of this test's own, no other user.
        let mem = unsafe { ForkMemory::adopt(parent.0) }.unwrap();

        // Armed, not sealed: the fork goes ahead and the copy is given up.
        // SAFETY: the accessible range of this test's memory.
        let armed = unsafe { mem.arm(parent.0, false, None, false) }.unwrap();
        let child = Reservation::new(2 * MIB, 16 * MIB);
        // SAFETY: whole reservations of this test, the target unused by anyone else.
        let _c = unsafe { mem.fork(parent.0, child.0) }.unwrap();
        // SAFETY: nobody writes the memory meanwhile.
        assert!(unsafe { armed.seal(parent.0.len) }.is_err());
        drop(armed);

        // Sealed: the fork waits until the copy is read, which sees the memory as sealed.
        // SAFETY: as above.
        let copy = unsafe { mem.arm(parent.0, false, None, false) }.unwrap();
        // SAFETY: as above.
        unsafe { copy.seal(parent.0.len) }.unwrap();
        parent.set(10, 2);
        let forked = std::sync::atomic::AtomicBool::new(false);
        struct Shared(Region);
        // SAFETY: the region is this test's; the forking thread only maps over it.
        unsafe impl Sync for Shared {}
        impl Shared {
            fn region(&self) -> Region {
                self.0
            }
        }
        let from = Shared(parent.0);
        std::thread::scope(|s| {
            s.spawn(|| {
                let second = Reservation::new(2 * MIB, 16 * MIB);
                // SAFETY: as above.
                let _m = unsafe { mem.fork(from.region(), second.0) }.unwrap();
                forked.store(true, std::sync::atomic::Ordering::SeqCst);
                assert_eq!(second.get(10), 2);
            });
            let mut buf = Vec::new();
            copy.read(0, &mut buf);
            assert_eq!(buf[10], 1, "the copy holds the sealed bytes");
            assert!(
                !forked.load(std::sync::atomic::Ordering::SeqCst),
                "the fork waits while the copy is read"
            );
            copy.read(crate::wpcopy::CHUNK, &mut buf);
        });
        assert!(forked.load(std::sync::atomic::Ordering::SeqCst));
    }
}
