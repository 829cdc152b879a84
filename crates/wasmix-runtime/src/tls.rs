//! Thread-local keys of the 2023 WASIX ABI (`thread_local_*`): the host keeps one value per
//! (thread, key); when a thread ends, values it set are handed to the guest's
//! `_thread_local_destroy(user_data, value)` export, as the libc of that era expects.

use std::collections::HashMap;

use wasmix_fs::Errno;
use wasmix_process::Tid;

#[derive(Default)]
pub(crate) struct ThreadLocals {
    /// key → the user data given at creation (the destructor's argument).
    keys: HashMap<u32, u64>,
    values: HashMap<(Tid, u32), u64>,
    next: u32,
}

impl ThreadLocals {
    pub fn create(&mut self, user_data: u64) -> Result<u32, Errno> {
        self.next = self.next.checked_add(1).ok_or(Errno::Again)?;
        self.keys.insert(self.next, user_data);
        Ok(self.next)
    }

    pub fn destroy(&mut self, key: u32) -> Result<(), Errno> {
        self.keys.remove(&key).ok_or(Errno::Inval)?;
        self.values.retain(|(_, k), _| *k != key);
        Ok(())
    }

    pub fn set(&mut self, tid: Tid, key: u32, value: u64) -> Result<(), Errno> {
        if !self.keys.contains_key(&key) {
            return Err(Errno::Inval);
        }
        self.values.insert((tid, key), value);
        Ok(())
    }

    pub fn get(&self, tid: Tid, key: u32) -> Result<u64, Errno> {
        if !self.keys.contains_key(&key) {
            return Err(Errno::Inval);
        }
        Ok(self.values.get(&(tid, key)).copied().unwrap_or(0))
    }

    /// Every key with its user data and the values threads hold under it (for a snapshot).
    pub fn describe(&self) -> Vec<wasmix_journal::record::ThreadLocalKey> {
        let mut keys: Vec<_> = self
            .keys
            .iter()
            .map(|(&key, &user_data)| {
                let mut values: Vec<(u32, u64)> = self
                    .values
                    .iter()
                    .filter(|((_, k), _)| *k == key)
                    .map(|((t, _), v)| (*t, *v))
                    .collect();
                values.sort_unstable();
                wasmix_journal::record::ThreadLocalKey {
                    key,
                    user_data,
                    values,
                }
            })
            .collect();
        keys.sort_by_key(|k| k.key);
        keys
    }

    /// The keys and values a snapshot recorded; new keys are numbered after them.
    pub fn restore(recorded: &[wasmix_journal::record::ThreadLocalKey]) -> ThreadLocals {
        let mut t = ThreadLocals::default();
        for k in recorded {
            t.keys.insert(k.key, k.user_data);
            t.next = t.next.max(k.key);
            for &(tid, v) in &k.values {
                t.values.insert((tid, k.key), v);
            }
        }
        t
    }

    /// The keys, and `tid`'s values as the values of `child` (the thread fork leaves).
    pub fn fork(&self, tid: Tid, child: Tid) -> ThreadLocals {
        ThreadLocals {
            keys: self.keys.clone(),
            values: self
                .values
                .iter()
                .filter(|((t, _), _)| *t == tid)
                .map(|((_, k), v)| ((child, *k), *v))
                .collect(),
            next: self.next,
        }
    }

    /// Takes the (user data, value) pairs `tid` leaves behind that need destroying.
    pub fn take_thread(&mut self, tid: Tid) -> Vec<(u64, u64)> {
        let mine: Vec<(u32, u64)> = self
            .values
            .iter()
            .filter(|((t, _), v)| *t == tid && **v != 0)
            .map(|((_, k), v)| (*k, *v))
            .collect();
        self.values.retain(|(t, _), _| *t != tid);
        mine.into_iter()
            .filter_map(|(k, v)| self.keys.get(&k).map(|ud| (*ud, v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_per_thread_and_handed_back_at_exit() {
        let mut t = ThreadLocals::default();
        let k = t.create(77).unwrap();
        t.set(1, k, 5).unwrap();
        t.set(2, k, 6).unwrap();
        assert_eq!(t.get(1, k), Ok(5));
        assert_eq!(t.get(3, k), Ok(0));
        assert_eq!(t.take_thread(2), vec![(77, 6)]);
        assert_eq!(t.get(2, k), Ok(0));
        t.destroy(k).unwrap();
        assert_eq!(t.get(1, k), Err(Errno::Inval));
        assert_eq!(t.set(1, 99, 1), Err(Errno::Inval));
    }

    #[test]
    fn keys_and_values_survive_a_snapshot() {
        let mut t = ThreadLocals::default();
        let a = t.create(10).unwrap();
        let b = t.create(20).unwrap();
        t.set(1, a, 5).unwrap();
        t.set(2, b, 6).unwrap();
        let mut back = ThreadLocals::restore(&t.describe());
        assert_eq!(back.get(1, a), Ok(5));
        assert_eq!(back.get(2, b), Ok(6));
        assert_eq!(back.take_thread(2), vec![(20, 6)]);
        assert!(
            back.create(30).unwrap() > b,
            "new keys come after the restored ones"
        );
    }
}
