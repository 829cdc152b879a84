//! The control plane: id allocation, limits, the process table, family-wide termination.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use crate::ids::{LimitError, Pid, Tid};
use crate::process::{ExitStatus, Process, Registry};
use crate::signal::Signal;
use crate::sync::lock;
use crate::thread::Thread;
use crate::timer::{Delivery, TimerService};

/// Ids stay within what the WASIX ABI can carry (a positive i32).
const MAX_ID: u32 = i32::MAX as u32;

/// Resource limits, checked on every spawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Processes that may exist at once (zombies included: they still hold their pid).
    pub max_processes: usize,
    /// Threads that may run at once, across all processes.
    pub max_threads: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_processes: 1024,
            max_threads: 4096,
        }
    }
}

/// Ids are distinct small integers: a multiplicative hash spreads them well and costs one
/// multiply, where SipHash costs dozens of cycles on every spawn and reap.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type IdBuild = BuildHasherDefault<IdHasher>;
type Table = HashMap<Pid, Arc<Process>, IdBuild>;

/// Hands out pids and tids from one counter. Until the counter first wraps, an id cannot be in
/// use, so allocation is one atomic add; after 2^31 ids, each allocation searches for an id no
/// process or thread holds.
struct Ids {
    next: AtomicU32,
    wrapped: AtomicBool,
    /// Where the search resumes after wrapping.
    cursor: Mutex<u32>,
}

impl Ids {
    /// Takes `id` for a restored process or thread: it must be free, and the counter moves
    /// past it so it is not handed out again.
    fn claim(&self, id: u32, table: &Table) -> Result<u32, LimitError> {
        let in_use = table.contains_key(&id) || table.values().any(|p| p.thread(id).is_some());
        if in_use || !(1..=MAX_ID).contains(&id) {
            return Err(LimitError::InUse(id));
        }
        self.next.fetch_max(id + 1, Ordering::AcqRel);
        Ok(id)
    }

    fn allocate(&self, table: &Table) -> Result<u32, LimitError> {
        if !self.wrapped.load(Ordering::Acquire) {
            let id = self.next.fetch_add(1, Ordering::AcqRel);
            if (1..=MAX_ID).contains(&id) {
                return Ok(id);
            }
            self.wrapped.store(true, Ordering::Release);
        }
        let mut cursor = lock(&self.cursor);
        let in_use =
            |id: u32| table.contains_key(&id) || table.values().any(|p| p.thread(id).is_some());
        for _ in 0..MAX_ID {
            let id = *cursor;
            *cursor = if *cursor >= MAX_ID { 1 } else { *cursor + 1 };
            if !in_use(id) {
                return Ok(id);
            }
        }
        Err(LimitError::IdsExhausted)
    }
}

pub(crate) struct ControlInner {
    limits: Limits,
    ids: Ids,
    table: Mutex<Table>,
    threads: AtomicUsize,
    root: Mutex<Weak<Process>>,
    timers: OnceLock<TimerService>,
    me: Weak<ControlInner>,
}

impl ControlInner {
    /// A new tid (`wanted`, for a restore, else the next free one); `table` is the locked
    /// process table when the caller holds it.
    fn allocate_id(&self, table: Option<&Table>, wanted: Option<Tid>) -> Result<Tid, LimitError> {
        if self.threads.fetch_add(1, Ordering::AcqRel) >= self.limits.max_threads {
            self.threads.fetch_sub(1, Ordering::AcqRel);
            return Err(LimitError::TooManyThreads);
        }
        let pick = |t: &Table| match wanted {
            Some(id) => self.ids.claim(id, t),
            None => self.ids.allocate(t),
        };
        let id = match table {
            Some(t) => pick(t),
            None => pick(&lock(&self.table)),
        };
        id.inspect_err(|_| {
            self.threads.fetch_sub(1, Ordering::AcqRel);
        })
    }

    pub(crate) fn allocate_thread_id(&self, wanted: Option<Tid>) -> Result<Tid, LimitError> {
        self.allocate_id(None, wanted)
    }

    pub(crate) fn release_thread_id(&self, _tid: Tid) {
        // The id is free once its thread left its process's list (the wrap-around search
        // looks there); only the count changes here.
        self.threads.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn lookup(&self, pid: Pid) -> Option<Arc<Process>> {
        lock(&self.table).get(&pid).cloned()
    }

    /// Drops a reaped process from the table and frees its pid.
    pub(crate) fn remove(&self, pid: Pid) {
        if lock(&self.table).remove(&pid).is_some() {
            // The main thread's id is the pid: it counted as a thread until now.
            self.threads.fetch_sub(1, Ordering::AcqRel);
        }
    }

    pub(crate) fn adopt_orphans(&self, orphans: Vec<Arc<Process>>) {
        if orphans.is_empty() {
            return;
        }
        match lock(&self.root)
            .upgrade()
            .filter(|r| r.try_status().is_none())
        {
            Some(root) => root.adopt(orphans, &root),
            None => {
                // No init to reap them: finished orphans are released now, live ones when they end.
                for o in orphans {
                    o.clear_parent();
                    if o.try_status().is_some() {
                        self.remove(o.pid());
                    }
                }
            }
        }
    }

    /// The timer service, started on first use; `None` if the host cannot start its thread.
    /// (Two racing first uses may both start one; the loser's thread stops when it is dropped.)
    pub(crate) fn timers(&self) -> Option<&TimerService> {
        if let Some(t) = self.timers.get() {
            return Some(t);
        }
        let me = self.me.clone();
        let started = TimerService::start(Box::new(move |pid, sig| {
            let Some(control) = me.upgrade() else {
                return Delivery::Stop;
            };
            match control.lookup(pid) {
                Some(p) => {
                    let _ = p.signal(sig);
                    Delivery::Delivered
                }
                None => Delivery::NoProcess,
            }
        }))?;
        Some(self.timers.get_or_init(|| started))
    }
}

impl Registry for ControlInner {
    fn allocate_thread_id(&self, wanted: Option<Tid>) -> Result<Tid, LimitError> {
        ControlInner::allocate_thread_id(self, wanted)
    }

    fn release_thread_id(&self, tid: Tid) {
        ControlInner::release_thread_id(self, tid)
    }

    fn adopt_orphans(&self, orphans: Vec<Arc<Process>>) {
        ControlInner::adopt_orphans(self, orphans)
    }

    fn remove(&self, pid: Pid) {
        ControlInner::remove(self, pid)
    }

    fn set_timer(
        &self,
        pid: Pid,
        sig: Signal,
        first: Option<Duration>,
        every: Option<Duration>,
    ) -> Option<Duration> {
        self.timers()?.set(pid, sig, first, every)
    }

    fn timers(&self, pid: Pid) -> Vec<(Signal, Duration, Option<Duration>)> {
        self.timers.get().map_or_else(Vec::new, |t| t.list(pid))
    }
}

/// The control plane: every process of one wasmix instance.
#[derive(Clone)]
pub struct ControlPlane {
    inner: Arc<ControlInner>,
}

impl Default for ControlPlane {
    fn default() -> Self {
        ControlPlane::new(Limits::default())
    }
}

impl ControlPlane {
    /// An empty control plane enforcing `limits`.
    pub fn new(limits: Limits) -> ControlPlane {
        let inner = Arc::new_cyclic(|me| ControlInner {
            limits,
            ids: Ids {
                next: AtomicU32::new(1),
                wrapped: AtomicBool::new(false),
                cursor: Mutex::new(1),
            },
            table: Mutex::new(HashMap::default()),
            threads: AtomicUsize::new(0),
            root: Mutex::new(Weak::new()),
            timers: OnceLock::new(),
            me: me.clone(),
        });
        ControlPlane { inner }
    }

    /// Creates a process with its main thread (tid = pid) as a child of `parent`. The first
    /// process created without a parent becomes the root, which adopts orphans.
    pub fn spawn(
        &self,
        parent: Option<&Arc<Process>>,
        module_hash: [u8; 32],
    ) -> Result<Arc<Process>, LimitError> {
        self.spawn_with(parent, module_hash, None)
    }

    /// Like [`ControlPlane::spawn`], with pid `pid` (a restored process keeps its pid);
    /// [`LimitError::InUse`] if something holds it.
    pub fn spawn_as(
        &self,
        pid: Pid,
        parent: Option<&Arc<Process>>,
        module_hash: [u8; 32],
    ) -> Result<Arc<Process>, LimitError> {
        self.spawn_with(parent, module_hash, Some(pid))
    }

    /// A zombie child of `parent` with pid `pid` that ended with `status` (a restored one):
    /// there for its parent to reap, and nobody is signalled.
    pub fn spawn_zombie(
        &self,
        pid: Pid,
        parent: &Arc<Process>,
        module_hash: [u8; 32],
        status: ExitStatus,
    ) -> Result<Arc<Process>, LimitError> {
        let process = self.spawn_with(Some(parent), module_hash, Some(pid))?;
        process.rest_as_zombie(status);
        Ok(process)
    }

    fn spawn_with(
        &self,
        parent: Option<&Arc<Process>>,
        module_hash: [u8; 32],
        wanted: Option<Pid>,
    ) -> Result<Arc<Process>, LimitError> {
        let c = &self.inner;
        if parent.is_some_and(|p| p.is_exiting()) {
            return Err(LimitError::ShuttingDown);
        }
        let process = {
            let mut table = lock(&c.table);
            if table.len() >= c.limits.max_processes {
                return Err(LimitError::TooManyProcesses);
            }
            let pid = c.allocate_id(Some(&table), wanted)?;
            let dispositions = parent.map(|p| p.dispositions());
            let process = Arc::new(Process::new(
                pid,
                module_hash,
                Arc::downgrade(c) as Weak<dyn Registry>,
                parent,
                dispositions,
            ));
            table.insert(pid, Arc::clone(&process));
            process
        };
        let pid = process.pid();
        process.checkpoint().register_thread(false);
        process.add_thread(Arc::new(Thread::new(
            pid,
            Arc::clone(process.checkpoint()),
            crate::SigSet::EMPTY,
        )));
        match parent {
            Some(p) => p.add_child(Arc::clone(&process)),
            None => {
                let mut root = lock(&c.root);
                if root.upgrade().is_none() {
                    *root = Arc::downgrade(&process);
                }
            }
        }
        Ok(process)
    }

    /// The process `pid`, zombies included.
    pub fn lookup(&self, pid: Pid) -> Option<Arc<Process>> {
        self.inner.lookup(pid)
    }

    /// The root process (init), if any.
    pub fn root(&self) -> Option<Arc<Process>> {
        lock(&self.inner.root).upgrade()
    }

    /// Processes in the table, zombies included.
    pub fn process_count(&self) -> usize {
        lock(&self.inner.table).len()
    }

    /// Threads alive across all processes (a zombie's main-thread id counts until reaped).
    pub fn thread_count(&self) -> usize {
        self.inner.threads.load(Ordering::Acquire)
    }

    /// Ends process `pid` with `status`; `false` if there is no such process.
    pub fn terminate(&self, pid: Pid, status: ExitStatus) -> bool {
        match self.lookup(pid) {
            Some(p) => {
                p.exit(status);
                true
            }
            None => false,
        }
    }

    /// Ends `pid` and all its descendants, deepest first.
    pub fn terminate_family(&self, pid: Pid, status: ExitStatus) -> bool {
        let Some(p) = self.lookup(pid) else {
            return false;
        };
        for child in p.children() {
            self.terminate_family(child, status);
        }
        p.exit(status);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_gets_the_ids_it_asks_for_and_they_are_not_handed_out_again() {
        let cp = ControlPlane::default();
        let p = cp.spawn_as(7, None, [0; 32]).unwrap();
        assert_eq!(p.pid(), 7);
        let t = p.spawn_thread_as(9, crate::SigSet::EMPTY).unwrap();
        assert_eq!(t.tid(), 9);
        assert_eq!(
            p.spawn_thread_as(9, crate::SigSet::EMPTY).err(),
            Some(LimitError::InUse(9))
        );
        assert_eq!(
            cp.spawn_as(7, None, [0; 32]).err(),
            Some(LimitError::InUse(7))
        );
        let next = cp.spawn(None, [0; 32]).unwrap();
        assert_eq!(next.pid(), 10, "allocation goes on past the claimed ids");
    }

    #[test]
    fn ids_wrap_without_reusing_live_ones() {
        let cp = ControlPlane::default();
        cp.inner.ids.next.store(MAX_ID - 1, Ordering::Release);
        let root = cp.spawn(None, [0; 32]).unwrap();
        assert_eq!(root.pid(), MAX_ID - 1);
        let t = root.spawn_thread(crate::SigSet::EMPTY, false).unwrap();
        assert_eq!(t.tid(), MAX_ID);
        // Past the end: the search starts at 1 and skips ids still held.
        let mut seen = vec![root.pid(), t.tid()];
        for _ in 0..5 {
            let c = cp.spawn(Some(&root), [0; 32]).unwrap();
            assert!(!seen.contains(&c.pid()), "id {} reused while held", c.pid());
            seen.push(c.pid());
        }
        assert!(
            seen[2..].iter().all(|id| *id < 10),
            "wrapped to small ids: {seen:?}"
        );
        // A released id becomes available again.
        let first_child = cp.lookup(seen[2]).unwrap();
        first_child.exit(ExitStatus::Exited(0));
        first_child.thread_exited(first_child.pid());
        root.join_child(crate::Child::Pid(seen[2]), false, None)
            .unwrap();
        *lock(&cp.inner.ids.cursor) = 1;
        let again = cp.spawn(Some(&root), [0; 32]).unwrap();
        assert_eq!(again.pid(), seen[2]);
    }
}
