//! Bounds-checked access to a guest's linear memory. Every pointer and length a guest passes goes
//! through here, so a wild one becomes EFAULT, never a host fault.

use wasmix_fs::Errno;

pub struct GuestMem<'a> {
    bytes: &'a mut [u8],
}

impl<'a> GuestMem<'a> {
    pub fn new(bytes: &'a mut [u8]) -> GuestMem<'a> {
        GuestMem { bytes }
    }

    fn range(&self, ptr: u32, len: u32) -> Result<std::ops::Range<usize>, Errno> {
        let start = ptr as usize;
        let end = start.checked_add(len as usize).ok_or(Errno::Fault)?;
        if end > self.bytes.len() {
            return Err(Errno::Fault);
        }
        Ok(start..end)
    }

    pub fn slice(&self, ptr: u32, len: u32) -> Result<&[u8], Errno> {
        let r = self.range(ptr, len)?;
        Ok(&self.bytes[r])
    }

    pub fn slice_mut(&mut self, ptr: u32, len: u32) -> Result<&mut [u8], Errno> {
        let r = self.range(ptr, len)?;
        Ok(&mut self.bytes[r])
    }

    fn array<const N: usize>(&self, ptr: u32) -> Result<[u8; N], Errno> {
        let s = self.slice(ptr, N as u32)?;
        Ok(s.try_into().expect("length checked"))
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

    pub fn write(&mut self, ptr: u32, data: &[u8]) -> Result<(), Errno> {
        let len = u32::try_from(data.len()).map_err(|_| Errno::Fault)?;
        self.slice_mut(ptr, len)?.copy_from_slice(data);
        Ok(())
    }

    pub fn put_u8(&mut self, ptr: u32, v: u8) -> Result<(), Errno> {
        self.write(ptr, &[v])
    }

    pub fn put_u16(&mut self, ptr: u32, v: u16) -> Result<(), Errno> {
        self.write(ptr, &v.to_le_bytes())
    }

    pub fn put_u32(&mut self, ptr: u32, v: u32) -> Result<(), Errno> {
        self.write(ptr, &v.to_le_bytes())
    }

    pub fn put_u64(&mut self, ptr: u32, v: u64) -> Result<(), Errno> {
        self.write(ptr, &v.to_le_bytes())
    }

    /// The naturally aligned 32-bit word at `ptr`, for atomic access (EINVAL if misaligned).
    pub fn atomic_u32(&self, ptr: u32) -> Result<&std::sync::atomic::AtomicU32, Errno> {
        let r = self.range(ptr, 4)?;
        let p = self.bytes[r].as_ptr();
        if !(p as usize).is_multiple_of(4) {
            return Err(Errno::Inval);
        }
        // SAFETY: in bounds, aligned, and borrowed from `self` for the returned lifetime; guest
        // threads access the same word only through wasm atomics or plain loads and stores.
        Ok(unsafe { std::sync::atomic::AtomicU32::from_ptr(p as *mut u32) })
    }

    /// The naturally aligned 64-bit word at `ptr` (EINVAL if misaligned).
    pub fn atomic_u64(&self, ptr: u32) -> Result<&std::sync::atomic::AtomicU64, Errno> {
        let r = self.range(ptr, 8)?;
        let p = self.bytes[r].as_ptr();
        if !(p as usize).is_multiple_of(8) {
            return Err(Errno::Inval);
        }
        // SAFETY: as for `atomic_u32`.
        Ok(unsafe { std::sync::atomic::AtomicU64::from_ptr(p as *mut u64) })
    }

    /// The (pointer, length) pairs of an iovec array.
    pub fn iovecs(&self, ptr: u32, count: u32) -> Result<Vec<(u32, u32)>, Errno> {
        let table = self.slice(ptr, count.checked_mul(8).ok_or(Errno::Fault)?)?;
        let list: Vec<(u32, u32)> = table
            .chunks_exact(8)
            .map(|c| {
                let p = u32::from_le_bytes(c[0..4].try_into().expect("4 bytes"));
                let l = u32::from_le_bytes(c[4..8].try_into().expect("4 bytes"));
                (p, l)
            })
            .collect();
        for &(p, l) in &list {
            self.range(p, l)?;
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_bounds_is_efault() {
        let mut buf = vec![0u8; 16];
        let mut m = GuestMem::new(&mut buf);
        assert_eq!(m.u32(13), Err(Errno::Fault));
        assert_eq!(m.u64(u32::MAX), Err(Errno::Fault));
        assert_eq!(m.slice(8, u32::MAX).err(), Some(Errno::Fault));
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
        let m = GuestMem::new(&mut buf);
        assert_eq!(m.iovecs(0, 1).unwrap(), vec![(32, 16)]);
        assert_eq!(m.iovecs(0, 2), Err(Errno::Fault));
        assert_eq!(m.iovecs(0, u32::MAX), Err(Errno::Fault));
    }
}
