//! The fd table: descriptor numbers → (open file description, rights, preopen name).
//!
//! A plain value: cloning it gives a child the same open file descriptions (fork), and every
//! change is one method call, so a journal can observe them.

use std::sync::Arc;

use crate::errno::{Errno, FsResult};
use crate::node::OpenFile;

/// One slot of the table.
#[derive(Clone)]
pub struct FdEntry {
    file: Arc<OpenFile>,
    rights_base: u64,
    rights_inheriting: u64,
    /// The guest path of a preopened directory (reported by `fd_prestat_*`).
    preopen: Option<String>,
    /// Closed by exec (`FD_CLOEXEC`); a property of the descriptor, not the description.
    cloexec: bool,
}

impl FdEntry {
    /// An entry for a newly opened file.
    pub fn new(file: OpenFile, rights_base: u64, rights_inheriting: u64) -> FdEntry {
        FdEntry {
            file: Arc::new(file),
            rights_base,
            rights_inheriting,
            preopen: None,
            cloexec: false,
        }
    }

    /// Whether exec closes this descriptor.
    pub fn cloexec(&self) -> bool {
        self.cloexec
    }

    /// An entry for a description some other entry may hold too (a restored table).
    pub fn shared(
        file: Arc<OpenFile>,
        rights_base: u64,
        rights_inheriting: u64,
        cloexec: bool,
    ) -> FdEntry {
        FdEntry {
            file,
            rights_base,
            rights_inheriting,
            preopen: None,
            cloexec,
        }
    }

    /// A copy for another descriptor number: same description and rights, with `cloexec` as
    /// given (dup clears it, as POSIX says). Only the original counts as a preopen.
    pub fn duplicate(&self, cloexec: bool) -> FdEntry {
        FdEntry {
            file: Arc::clone(&self.file),
            rights_base: self.rights_base,
            rights_inheriting: self.rights_inheriting,
            preopen: None,
            cloexec,
        }
    }

    /// Marks the entry as the preopen of `guest_path`.
    pub fn preopened(mut self, guest_path: impl Into<String>) -> FdEntry {
        self.preopen = Some(guest_path.into());
        self
    }

    /// The open file description.
    pub fn file(&self) -> &Arc<OpenFile> {
        &self.file
    }

    /// Rights on this descriptor.
    pub fn rights_base(&self) -> u64 {
        self.rights_base
    }

    /// Rights descriptors opened beneath it may get.
    pub fn rights_inheriting(&self) -> u64 {
        self.rights_inheriting
    }

    /// The guest path if this is a preopened directory.
    pub fn preopen(&self) -> Option<&str> {
        self.preopen.as_deref()
    }

    /// Fails with EBADF unless every bit of `required` is held (POSIX reports an fd opened
    /// without read access the same way).
    pub fn require(&self, required: u64) -> FsResult<&Arc<OpenFile>> {
        if self.rights_base & required == required {
            Ok(&self.file)
        } else {
            Err(Errno::Badf)
        }
    }

    /// Like [`FdEntry::require`] for path operations on a directory, where WASI says
    /// ENOTCAPABLE.
    pub fn require_dir(&self, required: u64) -> FsResult<&Arc<OpenFile>> {
        if !self.file.is_dir() {
            return Err(Errno::Notdir);
        }
        if self.rights_base & required == required {
            Ok(&self.file)
        } else {
            Err(Errno::Notcapable)
        }
    }
}

/// Descriptor numbers are handed out lowest-first, as POSIX requires.
#[derive(Clone, Default)]
pub struct FdTable {
    slots: Vec<Option<FdEntry>>,
    /// Upper bound on descriptors (EMFILE beyond it).
    limit: usize,
}

impl FdTable {
    /// Descriptors a process may hold at once unless told otherwise.
    pub const DEFAULT_LIMIT: usize = 1024;

    /// An empty table.
    pub fn new() -> FdTable {
        FdTable {
            slots: Vec::new(),
            limit: Self::DEFAULT_LIMIT,
        }
    }

    /// The entry at `fd` (EBADF if none).
    pub fn get(&self, fd: u32) -> FsResult<&FdEntry> {
        self.slots
            .get(fd as usize)
            .and_then(Option::as_ref)
            .ok_or(Errno::Badf)
    }

    fn get_mut(&mut self, fd: u32) -> FsResult<&mut FdEntry> {
        self.slots
            .get_mut(fd as usize)
            .and_then(Option::as_mut)
            .ok_or(Errno::Badf)
    }

    /// Installs `entry` at the lowest free number.
    pub fn insert(&mut self, entry: FdEntry) -> FsResult<u32> {
        self.insert_from(0, entry)
    }

    /// Installs `entry` at the lowest free number not below `min` (`F_DUPFD`); EMFILE when
    /// there is none under the limit.
    pub fn insert_from(&mut self, min: u32, entry: FdEntry) -> FsResult<u32> {
        let min = min as usize;
        if min >= self.limit {
            return Err(Errno::Inval);
        }
        if self.slots.len() < min {
            self.slots.resize_with(min, || None);
        }
        let fd = match self.slots[min..].iter().position(Option::is_none) {
            Some(free) => min + free,
            None if self.slots.len() < self.limit => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return Err(Errno::Mfile),
        };
        self.slots[fd] = Some(entry);
        Ok(fd as u32)
    }

    /// Installs `entry` at exactly `fd`, replacing what was there.
    pub fn insert_at(&mut self, fd: u32, entry: FdEntry) -> FsResult<Option<FdEntry>> {
        let fd = fd as usize;
        if fd >= self.limit {
            return Err(Errno::Badf);
        }
        if self.slots.len() <= fd {
            self.slots.resize_with(fd + 1, || None);
        }
        Ok(self.slots[fd].replace(entry))
    }

    /// Takes `fd` out of the table (EBADF if it is not open).
    pub fn remove(&mut self, fd: u32) -> FsResult<FdEntry> {
        let slot = self.slots.get_mut(fd as usize).ok_or(Errno::Badf)?;
        let entry = slot.take().ok_or(Errno::Badf)?;
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        Ok(entry)
    }

    /// `fd_renumber`: moves `from` onto `to`, closing what `to` held. Both must be open.
    pub fn renumber(&mut self, from: u32, to: u32) -> FsResult<()> {
        self.get(from)?;
        self.get(to)?;
        if from == to {
            return Ok(());
        }
        let entry = self.remove(from)?;
        self.insert_at(to, entry)?;
        Ok(())
    }

    /// `dup2`: makes `to` refer to what `from` refers to, closing what `to` held (it need not
    /// be open). The copy is not close-on-exec.
    pub fn duplicate_onto(&mut self, from: u32, to: u32) -> FsResult<()> {
        let entry = self.get(from)?.duplicate(false);
        if from != to {
            self.insert_at(to, entry)?;
        }
        Ok(())
    }

    /// Sets or clears close-on-exec on `fd`.
    pub fn set_cloexec(&mut self, fd: u32, cloexec: bool) -> FsResult<()> {
        self.get_mut(fd)?.cloexec = cloexec;
        Ok(())
    }

    /// Drops every close-on-exec descriptor (what exec and spawn leave a new image).
    pub fn close_on_exec(&mut self) {
        for slot in self.slots.iter_mut() {
            if slot.as_ref().is_some_and(|e| e.cloexec) {
                *slot = None;
            }
        }
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
    }

    /// Narrows the rights of `fd`; asking for a right it does not hold is ENOTCAPABLE.
    pub fn restrict_rights(&mut self, fd: u32, base: u64, inheriting: u64) -> FsResult<()> {
        let entry = self.get_mut(fd)?;
        if base & !entry.rights_base != 0 || inheriting & !entry.rights_inheriting != 0 {
            return Err(Errno::Notcapable);
        }
        entry.rights_base = base;
        entry.rights_inheriting = inheriting;
        Ok(())
    }

    /// Open descriptor numbers, ascending.
    pub fn fds(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{Device, Node};

    fn dev() -> FdEntry {
        FdEntry::new(OpenFile::new(Node::Device(Device::Null), 0), u64::MAX, 0)
    }

    #[test]
    fn lowest_free_number_is_reused() {
        let mut t = FdTable::new();
        assert_eq!(t.insert(dev()).unwrap(), 0);
        assert_eq!(t.insert(dev()).unwrap(), 1);
        assert_eq!(t.insert(dev()).unwrap(), 2);
        t.remove(1).unwrap();
        assert_eq!(t.insert(dev()).unwrap(), 1);
        assert!(matches!(t.remove(7), Err(Errno::Badf)));
    }

    #[test]
    fn renumber_moves_and_closes_target() {
        let mut t = FdTable::new();
        let a = t.insert(dev()).unwrap();
        let b = t.insert(dev()).unwrap();
        let file_a = Arc::clone(t.get(a).unwrap().file());
        t.renumber(a, b).unwrap();
        assert!(t.get(a).is_err());
        assert!(Arc::ptr_eq(t.get(b).unwrap().file(), &file_a));
        assert_eq!(t.renumber(b, 9), Err(Errno::Badf));
    }

    #[test]
    fn rights_only_shrink() {
        let mut t = FdTable::new();
        let fd = t
            .insert(FdEntry::new(
                OpenFile::new(Node::Device(Device::Null), 0),
                0b110,
                0,
            ))
            .unwrap();
        t.restrict_rights(fd, 0b100, 0).unwrap();
        assert_eq!(t.restrict_rights(fd, 0b110, 0), Err(Errno::Notcapable));
        assert_eq!(t.get(fd).unwrap().require(0b010).err(), Some(Errno::Badf));
    }

    #[test]
    fn clone_shares_open_file_descriptions() {
        let mut t = FdTable::new();
        let fd = t.insert(dev()).unwrap();
        let child = t.clone();
        assert!(Arc::ptr_eq(
            t.get(fd).unwrap().file(),
            child.get(fd).unwrap().file()
        ));
    }

    #[test]
    fn limit_gives_emfile() {
        let mut t = FdTable {
            slots: Vec::new(),
            limit: 2,
        };
        t.insert(dev()).unwrap();
        t.insert(dev()).unwrap();
        assert_eq!(t.insert(dev()).err(), Some(Errno::Mfile));
    }

    #[test]
    fn dup_from_min_and_cloexec_survive_only_until_exec() {
        let mut t = FdTable::new();
        let a = t.insert(dev()).unwrap();
        let copy = t.get(a).unwrap().duplicate(true);
        let b = t.insert_from(10, copy).unwrap();
        assert_eq!(b, 10);
        assert_eq!(t.insert_from(10, dev()).unwrap(), 11);
        t.duplicate_onto(a, 5).unwrap();
        assert!(!t.get(5).unwrap().cloexec());
        assert!(t.get(10).unwrap().cloexec());
        t.close_on_exec();
        assert_eq!(t.fds().collect::<Vec<_>>(), vec![a, 5, 11]);
        assert_eq!(t.insert_from(u32::MAX, dev()).err(), Some(Errno::Inval));
    }
}
