//! Which pages of a memory were written since the last look, found by the kernel.
//!
//! A range registered here is write-protected with userfaultfd in async mode
//! (`UFFD_FEATURE_WP_ASYNC`, Linux 6.7+): a write to a protected page is let through by the
//! kernel itself, which only clears the page's protection — no thread of ours handles the
//! fault, so the writer pays a minor fault, not a round trip to a handler thread.
//! [`WrittenPages::take`] then asks `PAGEMAP_SCAN` (with `PM_SCAN_WP_MATCHING`) for the
//! pages whose protection is gone and protects them again in the same call, each page
//! atomically under its page-table lock: a write either comes before (the page is
//! reported) or faults after (the page is reported next time); none is missed.
//!
//! The kernel cannot keep a page's old bytes for us in this mode: a page must be copied
//! before the threads that could write it run again. [`crate::wpcopy`] builds incremental
//! copies on it that way. Measured on the 2-vCPU VM (bench/incr_floor.sh): one call finds
//! and protects 655 written pages of 256 MiB in ~0.25 ms when the process's other threads
//! are stopped, 1.6-2 ms when one computes on the other vCPU (a TLB-shootdown interrupt per
//! 2 MiB with written pages), against 8-12 ms for one `UFFDIO_WRITEPROTECT` per page.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use linux_raw_sys::general::{
    page_region, pm_scan_arg, uffdio_api, uffdio_range, uffdio_register, uffdio_writeprotect,
    PAGE_IS_WRITTEN, PM_SCAN_CHECK_WPASYNC, PM_SCAN_WP_MATCHING, UFFDIO_REGISTER_MODE_WP, UFFD_API,
    UFFD_FEATURE_WP_ASYNC, UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
};
use rustix::ioctl::{ioctl, opcode, Opcode, Updater};

const PAGE: usize = 4096;
/// Regions asked for per `PAGEMAP_SCAN` call (a call that fills them all is followed by
/// another from where it stopped).
const REGIONS: usize = 512;
/// `UFFDIO_WRITEPROTECT_MODE_WP` (linux/userfaultfd.h).
const MODE_WP: u64 = 1;
const PAGEMAP_SCAN: Opcode = opcode::read_write::<pm_scan_arg>(b'f', 16);

/// Async-mode write protection over ranges of one memory at `base`, and the scan that
/// finds and re-protects the pages written.
pub(crate) struct WrittenPages {
    uffd: OwnedFd,
    pagemap: OwnedFd,
    base: usize,
}

impl WrittenPages {
    /// Opens async write protection for the memory at `base` (nothing registered yet).
    /// Fails where the kernel lacks it (before 6.7) or userfaultfd is not allowed.
    pub fn open(base: usize) -> io::Result<WrittenPages> {
        use rustix::mm::{userfaultfd, UserfaultfdFlags};
        // SAFETY: the descriptor only ever protects memory this module is given.
        let uffd = unsafe { userfaultfd(UserfaultfdFlags::CLOEXEC | UserfaultfdFlags::NONBLOCK) }?;
        let mut api = uffdio_api {
            api: u64::from(UFFD_API),
            features: u64::from(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_HUGETLBFS_SHMEM),
            ioctls: 0,
        };
        // SAFETY: the request matches UFFDIO_API's argument type.
        unsafe { call::<{ uffd_op(linux_raw_sys::ioctl::UFFDIO_API) }, _>(&uffd, &mut api) }?;
        let pagemap = rustix::fs::open(
            "/proc/self/pagemap",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        Ok(WrittenPages {
            uffd,
            pagemap,
            base,
        })
    }

    /// Registers `from..to` (byte offsets, page-aligned) and protects it: from now on a
    /// write there is found by [`WrittenPages::take`].
    pub fn cover(&self, from: usize, to: usize) -> io::Result<()> {
        let mut register = uffdio_register {
            range: self.range(from, to),
            mode: u64::from(UFFDIO_REGISTER_MODE_WP),
            ioctls: 0,
        };
        // SAFETY: the request matches UFFDIO_REGISTER's argument type.
        unsafe {
            call::<{ uffd_op(linux_raw_sys::ioctl::UFFDIO_REGISTER) }, _>(&self.uffd, &mut register)
        }?;
        let mut wp = uffdio_writeprotect {
            range: self.range(from, to),
            mode: MODE_WP,
        };
        // SAFETY: the request matches UFFDIO_WRITEPROTECT's argument type.
        unsafe {
            call::<{ uffd_op(linux_raw_sys::ioctl::UFFDIO_WRITEPROTECT) }, _>(&self.uffd, &mut wp)
        }?;
        Ok(())
    }

    /// Unregisters `from..to`: its protection goes, and writes there are no longer found.
    pub fn uncover(&self, from: usize, to: usize) -> io::Result<()> {
        let mut range = self.range(from, to);
        // SAFETY: the request matches UFFDIO_UNREGISTER's argument type.
        unsafe {
            call::<{ uffd_op(linux_raw_sys::ioctl::UFFDIO_UNREGISTER) }, _>(&self.uffd, &mut range)
        }?;
        Ok(())
    }

    /// Appends to `out` the pages (indices from the memory's start) of the covered range
    /// `from..to` written since they were covered or last taken, and protects them again.
    pub fn take(&self, from: usize, to: usize, out: &mut Vec<usize>) -> io::Result<()> {
        let mut regions = vec![
            page_region {
                start: 0,
                end: 0,
                categories: 0,
            };
            REGIONS
        ];
        let end = (self.base + to) as u64;
        let mut at = (self.base + from) as u64;
        while at < end {
            regions.iter_mut().for_each(|r| r.end = 0);
            let mut arg = pm_scan_arg {
                size: std::mem::size_of::<pm_scan_arg>() as u64,
                flags: u64::from(PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC),
                start: at,
                end,
                walk_end: 0,
                vec: regions.as_mut_ptr() as u64,
                vec_len: REGIONS as u64,
                max_pages: 0,
                category_inverted: 0,
                category_mask: u64::from(PAGE_IS_WRITTEN),
                category_anyof_mask: 0,
                return_mask: u64::from(PAGE_IS_WRITTEN),
            };
            // SAFETY: the request matches PAGEMAP_SCAN's argument type, and `vec` points at
            // `vec_len` regions that live through the call.
            unsafe { call::<PAGEMAP_SCAN, _>(&self.pagemap, &mut arg) }?;
            for r in regions.iter().take_while(|r| r.end > r.start) {
                let first = (r.start as usize - self.base) / PAGE;
                let last = (r.end as usize - self.base) / PAGE;
                out.extend(first..last);
            }
            if arg.walk_end <= at {
                return Err(io::Error::other("PAGEMAP_SCAN made no progress"));
            }
            at = arg.walk_end;
        }
        Ok(())
    }

    fn range(&self, from: usize, to: usize) -> uffdio_range {
        uffdio_range {
            start: (self.base + from) as u64,
            len: (to - from) as u64,
        }
    }
}

const fn uffd_op(raw: u32) -> Opcode {
    raw as Opcode
}

/// # Safety
/// `T` must be the argument type of the request `OP`.
unsafe fn call<const OP: Opcode, T>(fd: &OwnedFd, arg: &mut T) -> rustix::io::Result<()> {
    // SAFETY: as the caller vouches.
    unsafe { ioctl(fd.as_fd(), Updater::<OP, T>::new(arg)) }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use std::os::fd::OwnedFd;

    use rustix::fs::{memfd_create, MemfdFlags};
    use rustix::mm::{mmap, MapFlags, ProtFlags};

    /// A shared mapping of a fresh memfd, as adopted guest memory is.
    pub(crate) struct Shm {
        pub base: *mut u8,
        pub len: usize,
        _file: OwnedFd,
    }

    // SAFETY: the mapping is the test's own; threads write disjoint or atomic-free bytes
    // the test reasons about.
    unsafe impl Send for Shm {}
    // SAFETY: as above.
    unsafe impl Sync for Shm {}

    impl Shm {
        pub fn new(len: usize) -> Shm {
            let file = memfd_create("wpcopy-test", MemfdFlags::CLOEXEC).unwrap();
            rustix::fs::ftruncate(&file, len as u64).unwrap();
            // SAFETY: a fresh mapping of the test's own file.
            let base = unsafe {
                mmap(
                    std::ptr::null_mut(),
                    len,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::SHARED,
                    &file,
                    0,
                )
            }
            .unwrap()
            .cast::<u8>();
            Shm {
                base,
                len,
                _file: file,
            }
        }

        pub fn set(&self, at: usize, v: u8) {
            assert!(at < self.len);
            // SAFETY: inside the mapping.
            unsafe { self.base.add(at).write_volatile(v) }
        }

        pub fn get(&self, at: usize) -> u8 {
            assert!(at < self.len);
            // SAFETY: inside the mapping.
            unsafe { self.base.add(at).read_volatile() }
        }
    }

    impl Drop for Shm {
        fn drop(&mut self) {
            // SAFETY: the mapping made in `new`.
            unsafe { rustix::mm::munmap(self.base.cast(), self.len).unwrap() };
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::tests_support::Shm;
    use super::*;

    /// A scanner over `shm`, or `None` where this kernel has no async write protection
    /// (said on stderr; every other failure fails the test).
    pub(crate) fn scanner(shm: &Shm) -> Option<WrittenPages> {
        match WrittenPages::open(shm.base as usize) {
            Ok(w) => Some(w),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                eprintln!("no async userfaultfd write protection here ({e}): not tested");
                None
            }
            Err(e) => panic!("async write protection: {e}"),
        }
    }

    #[test]
    fn finds_exactly_the_pages_written_since_the_last_take() {
        let shm = Shm::new(1 << 20);
        let Some(w) = scanner(&shm) else { return };
        w.cover(0, shm.len).unwrap();
        let mut got = Vec::new();
        w.take(0, shm.len, &mut got).unwrap();
        assert!(got.is_empty(), "nothing written yet: {got:?}");
        for p in [3, 4, 100, 255] {
            shm.set(p * PAGE + 7, 1);
        }
        shm.set(100 * PAGE, 2);
        w.take(0, shm.len, &mut got).unwrap();
        assert_eq!(got, [3, 4, 100, 255]);
        // Taken pages are protected again: only new writes are found next.
        got.clear();
        shm.set(4 * PAGE, 3);
        w.take(0, shm.len, &mut got).unwrap();
        assert_eq!(got, [4]);
        got.clear();
        w.take(0, shm.len, &mut got).unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn more_written_runs_than_one_call_returns_are_all_found() {
        let pages = 4 * REGIONS;
        let shm = Shm::new(pages * PAGE);
        let Some(w) = scanner(&shm) else { return };
        w.cover(0, shm.len).unwrap();
        // Every other page: as many separate runs as pages written.
        let written: Vec<usize> = (0..pages).step_by(2).collect();
        for p in &written {
            shm.set(p * PAGE, 1);
        }
        let mut got = Vec::new();
        w.take(0, shm.len, &mut got).unwrap();
        assert_eq!(got, written);
    }

    #[test]
    fn an_uncovered_range_is_refused_and_unprotected() {
        let shm = Shm::new(64 * PAGE);
        let Some(w) = scanner(&shm) else { return };
        w.cover(0, 32 * PAGE).unwrap();
        let mut got = Vec::new();
        assert!(
            w.take(0, shm.len, &mut got).is_err(),
            "half the range is not covered"
        );
        w.uncover(0, 32 * PAGE).unwrap();
        // Writable again with nothing registered.
        shm.set(PAGE, 1);
        assert!(w.take(0, 32 * PAGE, &mut got).is_err());
    }
}
