//! Bounds-checked access to a guest's linear memory. Every pointer and length a guest passes goes
//! through here, so a wild one becomes EFAULT, never a host fault.
//!
//! Two kinds of memory: a single-threaded instance's own memory, borrowed exclusively for the
//! call (handed out as slices), and a threaded process's shared memory, which other guest
//! threads may write at any moment. Rust references to bytes someone else writes concurrently
//! are undefined behaviour, so shared memory is only ever reached through raw pointers: values
//! and byte ranges are copied in or out, and the only views handed out are atomics.

use std::borrow::Cow;
use std::io::IoSlice;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64};

use wasmix_fs::Errno;

/// Most iovecs one call takes (POSIX's IOV_MAX, as on Linux).
pub const IOV_MAX: u32 = 1024;

/// Most bytes one write copies out of a shared memory.
pub const MAX_GATHER: usize = 16 << 20;

/// One host call's view of the guest's linear memory.
pub struct GuestMem<'a> {
    base: *mut u8,
    len: usize,
    /// Whether the bytes are borrowed exclusively (an instance's own memory), so slices of
    /// them may be handed out.
    exclusive: bool,
    _borrow: PhantomData<&'a mut [u8]>,
}

impl<'a> GuestMem<'a> {
    /// An instance's own memory, borrowed for the call.
    pub fn own(bytes: &'a mut [u8]) -> GuestMem<'a> {
        GuestMem {
            base: bytes.as_mut_ptr(),
            len: bytes.len(),
            exclusive: true,
            _borrow: PhantomData,
        }
    }

    /// A shared memory of `len` bytes at `base`.
    ///
    /// # Safety
    /// `base..base + len` must stay mapped and writable for `'a` (a shared memory is never
    /// shrunk or unmapped while a thread of its process runs). Other threads may write it.
    pub unsafe fn shared(base: *mut u8, len: usize) -> GuestMem<'a> {
        GuestMem {
            base,
            len,
            exclusive: false,
            _borrow: PhantomData,
        }
    }

    /// Bytes of memory.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Checks that `len` bytes at `ptr` lie in memory.
    pub fn check(&self, ptr: u32, len: u32) -> Result<(), Errno> {
        let end = (ptr as usize)
            .checked_add(len as usize)
            .ok_or(Errno::Fault)?;
        if end > self.len {
            return Err(Errno::Fault);
        }
        Ok(())
    }

    /// The raw address of `len` checked bytes at `ptr`.
    fn at(&self, ptr: u32, len: u32) -> Result<*mut u8, Errno> {
        self.check(ptr, len)?;
        // SAFETY: `ptr + len <= self.len`, so the offset stays inside the memory.
        Ok(unsafe { self.base.add(ptr as usize) })
    }

    /// `len` bytes at `ptr`: borrowed from an own memory, copied out of a shared one.
    pub fn bytes(&self, ptr: u32, len: u32) -> Result<Cow<'_, [u8]>, Errno> {
        let p = self.at(ptr, len)?;
        if self.exclusive {
            // SAFETY: in bounds, and the memory is borrowed exclusively by this view for 'a.
            Ok(Cow::Borrowed(unsafe {
                std::slice::from_raw_parts(p, len as usize)
            }))
        } else {
            let mut out = vec![0u8; len as usize];
            // SAFETY: in bounds; a raw copy, never a reference to bytes others may write.
            unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), len as usize) };
            Ok(Cow::Owned(out))
        }
    }

    /// Lets `fill` write into the `len` bytes at `ptr` and return how many it wrote: in place
    /// in an own memory; through a host buffer for a shared one, of which only the bytes
    /// written are copied back (the rest of the range keeps whatever other threads put there).
    pub fn fill<E>(
        &mut self,
        ptr: u32,
        len: u32,
        fill: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<usize, E>
    where
        E: From<Errno>,
    {
        let p = self.at(ptr, len)?;
        if self.exclusive {
            // SAFETY: in bounds, and borrowed exclusively (`&mut self`) for the closure's run.
            return fill(unsafe { std::slice::from_raw_parts_mut(p, len as usize) });
        }
        let mut buf = vec![0u8; len as usize];
        let n = fill(&mut buf)?.min(len as usize);
        // SAFETY: in bounds (`n <= len`); a raw copy into memory others may also write.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), p, n) };
        Ok(n)
    }

    fn array<const N: usize>(&self, ptr: u32) -> Result<[u8; N], Errno> {
        let p = self.at(ptr, N as u32)?;
        let mut out = [0u8; N];
        // SAFETY: `N` bytes in bounds; copied, never referenced.
        unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), N) };
        Ok(out)
    }

    pub fn u8(&self, ptr: u32) -> Result<u8, Errno> {
        Ok(self.array::<1>(ptr)?[0])
    }

    pub fn u16(&self, ptr: u32) -> Result<u16, Errno> {
        Ok(u16::from_le_bytes(self.array(ptr)?))
    }

    pub fn u32(&self, ptr: u32) -> Result<u32, Errno> {
        Ok(u32::from_le_bytes(self.array(ptr)?))
    }

    pub fn u64(&self, ptr: u32) -> Result<u64, Errno> {
        Ok(u64::from_le_bytes(self.array(ptr)?))
    }

    /// `N` bytes at `ptr`, copied.
    pub fn read_array<const N: usize>(&self, ptr: u32) -> Result<[u8; N], Errno> {
        self.array(ptr)
    }

    pub fn write(&mut self, ptr: u32, data: &[u8]) -> Result<(), Errno> {
        let len = u32::try_from(data.len()).map_err(|_| Errno::Fault)?;
        let p = self.at(ptr, len)?;
        // SAFETY: in bounds; `data` is host memory, so the ranges cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        Ok(())
    }

    pub fn put_u8(&mut self, ptr: u32, v: u8) -> Result<(), Errno> {
        self.write(ptr, &[v])
    }

    pub fn put_u32(&mut self, ptr: u32, v: u32) -> Result<(), Errno> {
        self.write(ptr, &v.to_le_bytes())
    }

    pub fn put_u64(&mut self, ptr: u32, v: u64) -> Result<(), Errno> {
        self.write(ptr, &v.to_le_bytes())
    }

    /// A result slot of a `T` at `ptr`, checked once here so the call can fill it in later
    /// without a second check.
    pub fn out<T: Value>(&self, ptr: u32) -> Result<Out<T>, Errno> {
        self.check(ptr, T::SIZE)?;
        Ok(Out {
            ptr,
            _value: PhantomData,
        })
    }

    /// The naturally aligned 32-bit word at `ptr`, for atomic access (EINVAL if misaligned).
    pub fn atomic_u32(&self, ptr: u32) -> Result<&AtomicU32, Errno> {
        let p = self.at(ptr, 4)?;
        if !(p as usize).is_multiple_of(4) {
            return Err(Errno::Inval);
        }
        // SAFETY: in bounds, aligned, and alive for the view's lifetime; guest threads access
        // the same word only through wasm atomics or plain loads and stores.
        Ok(unsafe { AtomicU32::from_ptr(p.cast::<u32>()) })
    }

    /// The naturally aligned 64-bit word at `ptr` (EINVAL if misaligned).
    pub fn atomic_u64(&self, ptr: u32) -> Result<&AtomicU64, Errno> {
        let p = self.at(ptr, 8)?;
        if !(p as usize).is_multiple_of(8) {
            return Err(Errno::Inval);
        }
        // SAFETY: as for `atomic_u32`.
        Ok(unsafe { AtomicU64::from_ptr(p.cast::<u64>()) })
    }

    /// The (pointer, length) pairs of an iovec array, every buffer checked.
    pub fn iovecs(&self, ptr: u32, count: u32) -> Result<Vec<(u32, u32)>, Errno> {
        let table = self.iovec_table(ptr, count)?;
        (0..count).map(|i| table.get(self, i)).collect()
    }

    /// An iovec array whose table and buffers are all in bounds (nothing allocated). More
    /// than [`IOV_MAX`] entries is EINVAL, as readv(2)/writev(2) answer on Linux: what one
    /// call may cost the host does not follow a count the guest chose.
    pub fn iovec_table(&self, ptr: u32, count: u32) -> Result<IovecTable, Errno> {
        if count > IOV_MAX {
            return Err(Errno::Inval);
        }
        self.check(ptr, count.checked_mul(8).ok_or(Errno::Fault)?)?;
        let table = IovecTable { ptr, count };
        for i in 0..count {
            let (p, l) = table.raw(self, i);
            self.check(p, l)?;
        }
        Ok(table)
    }

    /// Runs `write` over the buffers of an iovec array: borrowed in place from an own memory
    /// (no allocation for up to 16 buffers), gathered into one host copy from a shared one —
    /// at most [`MAX_GATHER`] bytes of it (the write is then partial, as a write may be), since
    /// iovecs may name the same bytes over and over.
    pub fn gather<R>(
        &self,
        ptr: u32,
        count: u32,
        write: impl FnOnce(&[IoSlice<'_>]) -> R,
    ) -> Result<R, Errno> {
        const ON_STACK: usize = 16;
        let table = self.iovec_table(ptr, count)?;
        if !self.exclusive {
            let mut all = Vec::new();
            for i in 0..count {
                let (p, l) = table.raw(self, i);
                let room = MAX_GATHER - all.len();
                if room == 0 {
                    break;
                }
                all.extend_from_slice(&self.bytes(p, l.min(room as u32))?);
            }
            return Ok(write(&[IoSlice::new(&all)]));
        }
        let slice = |i: u32| -> IoSlice<'_> {
            let (p, l) = table.raw(self, i);
            // SAFETY: checked in bounds by `iovec_table`; an own memory is borrowed
            // exclusively by this view, so shared slices of it are sound.
            IoSlice::new(unsafe {
                std::slice::from_raw_parts(self.base.add(p as usize), l as usize)
            })
        };
        if count as usize <= ON_STACK {
            let mut slices = [IoSlice::new(&[]); ON_STACK];
            for (i, s) in slices.iter_mut().enumerate().take(count as usize) {
                *s = slice(i as u32);
            }
            return Ok(write(&slices[..count as usize]));
        }
        let slices: Vec<IoSlice<'_>> = (0..count).map(slice).collect();
        Ok(write(&slices))
    }
}

/// An iovec array checked by [`GuestMem::iovec_table`].
#[derive(Clone, Copy, Debug)]
pub struct IovecTable {
    ptr: u32,
    count: u32,
}

impl IovecTable {
    pub fn len(self) -> u32 {
        self.count
    }

    /// Entry `i`'s (pointer, length).
    pub fn get(self, mem: &GuestMem, i: u32) -> Result<(u32, u32), Errno> {
        if i >= self.count {
            return Err(Errno::Fault);
        }
        Ok(self.raw(mem, i))
    }

    fn raw(self, mem: &GuestMem, i: u32) -> (u32, u32) {
        // In bounds: the table was checked when it was made, and memory never shrinks.
        let at = self.ptr + 8 * i;
        let e: [u8; 8] = mem.array(at).unwrap_or_default();
        let word = |o: usize| u32::from_le_bytes([e[o], e[o + 1], e[o + 2], e[o + 3]]);
        (word(0), word(4))
    }
}

/// A value a host call writes into guest memory, little-endian.
pub trait Value: Copy {
    /// Bytes it takes in guest memory.
    const SIZE: u32;
    /// Its bytes, little-endian.
    fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R;
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl Value for $t {
            const SIZE: u32 = std::mem::size_of::<$t>() as u32;
            fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
                f(&self.to_le_bytes())
            }
        }
    )*};
}
int_value!(u8, u16, u32, u64);

impl<const N: usize> Value for [u8; N] {
    const SIZE: u32 = N as u32;
    fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(&self)
    }
}

/// A checked result slot in guest memory (see [`GuestMem::out`]).
#[derive(Debug)]
pub struct Out<T> {
    ptr: u32,
    _value: PhantomData<T>,
}

impl<T> Clone for Out<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Out<T> {}

impl<T: Value> Out<T> {
    /// Fills the slot in. Linear memory never shrinks, so a slot checked earlier in the call
    /// is still in bounds of the same memory.
    pub fn set(self, mem: &mut GuestMem, value: T) {
        let written = value.with_bytes(|b| mem.write(self.ptr, b));
        debug_assert!(written.is_ok(), "a checked slot left memory");
    }

    /// The guest address of the slot.
    pub fn addr(self) -> u32 {
        self.ptr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_bounds_is_efault() {
        let mut buf = vec![0u8; 16];
        let mut m = GuestMem::own(&mut buf);
        assert_eq!(m.u32(13), Err(Errno::Fault));
        assert_eq!(m.u64(u32::MAX), Err(Errno::Fault));
        assert_eq!(m.bytes(8, u32::MAX).err(), Some(Errno::Fault));
        m.put_u32(12, 7).unwrap();
        assert_eq!(m.u32(12), Ok(7));
    }

    #[test]
    fn iovecs_are_checked_up_front() {
        let mut buf = vec![0u8; 64];
        buf[0..4].copy_from_slice(&32u32.to_le_bytes());
        buf[4..8].copy_from_slice(&16u32.to_le_bytes());
        buf[8..12].copy_from_slice(&60u32.to_le_bytes());
        buf[12..16].copy_from_slice(&8u32.to_le_bytes());
        let m = GuestMem::own(&mut buf);
        assert_eq!(m.iovecs(0, 1).unwrap(), vec![(32, 16)]);
        assert_eq!(m.iovecs(0, 2), Err(Errno::Fault));
        assert_eq!(m.iovecs(0, u32::MAX), Err(Errno::Inval));
    }

    #[test]
    fn more_iovecs_than_iov_max_are_einval_before_anything_is_read() {
        // A table of empty iovecs: in bounds, and 2^20 of them cost the host a vector of
        // 2^20 slices before (16 MiB), or one per entry scanned.
        let mut buf = vec![0u8; 8 << 20];
        let m = GuestMem::own(&mut buf);
        assert_eq!(m.iovec_table(0, IOV_MAX).map(IovecTable::len), Ok(IOV_MAX));
        assert_eq!(m.iovecs(0, IOV_MAX + 1), Err(Errno::Inval));
        assert_eq!(m.gather(0, 1 << 20, |b| b.len()), Err(Errno::Inval));
    }

    #[test]
    fn a_shared_memory_write_gathers_at_most_max_gather_bytes() {
        // 1024 iovecs naming the same 64 KiB: 64 MiB asked of a 64 KiB memory.
        let mut backing = vec![1u8; 64 << 10];
        for i in 0..1024usize {
            backing[i * 8..i * 8 + 4].copy_from_slice(&0u32.to_le_bytes());
            backing[i * 8 + 4..i * 8 + 8].copy_from_slice(&(64u32 << 10).to_le_bytes());
        }
        // SAFETY: `backing` outlives the view and nothing else touches it meanwhile.
        let m = unsafe { GuestMem::shared(backing.as_mut_ptr(), backing.len()) };
        let n = m
            .gather(0, 1024, |b| b.iter().map(|s| s.len()).sum::<usize>())
            .unwrap();
        assert_eq!(n, MAX_GATHER);
    }

    #[test]
    fn a_slot_is_checked_when_taken() {
        let mut buf = vec![0u8; 16];
        let mut m = GuestMem::own(&mut buf);
        assert_eq!(m.out::<u64>(9).err(), Some(Errno::Fault));
        let slot = m.out::<u64>(8).unwrap();
        slot.set(&mut m, 0x0102_0304_0506_0708);
        assert_eq!(m.u64(8), Ok(0x0102_0304_0506_0708));
    }

    #[test]
    fn shared_memory_is_copied_and_filled_only_where_written() {
        let mut backing = vec![7u8; 32];
        // SAFETY: `backing` outlives the view and nothing else touches it meanwhile.
        let mut m = unsafe { GuestMem::shared(backing.as_mut_ptr(), backing.len()) };
        assert!(matches!(m.bytes(0, 4).unwrap(), Cow::Owned(_)));
        let n = m
            .fill(4, 8, |buf| {
                buf[..3].copy_from_slice(b"abc");
                Ok::<usize, Errno>(3)
            })
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(m.bytes(4, 4).unwrap().as_ref(), b"abc\x07");
        assert_eq!(m.fill(30, 8, |_| Ok::<usize, Errno>(0)), Err(Errno::Fault));
    }
}
