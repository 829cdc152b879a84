//! The control plane: id allocation, limits, the process table, family-wide termination.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::process::{ExitStatus, Pid, Process};
use crate::sync::lock;
use crate::thread::{Thread, Tid};
use crate::timer::TimerService;

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

/// A spawn refused; every variant means EAGAIN to a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// The process limit is reached.
    #[error("too many processes")]
    TooManyProcesses,
    /// The thread limit is reached.
    #[error("too many threads")]
    TooManyThreads,
    /// Every id is in use.
    #[error("no free process or thread id")]
    IdsExhausted,
    /// The process (or the control plane) is going away.
    #[error("the process is exiting")]
    ShuttingDown,
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

struct Ids {
    next: u32,
    live: HashSet<u32, IdBuild>,
}

impl Ids {
    fn allocate(&mut self) -> Result<u32, LimitError> {
        for _ in 0..=MAX_ID {
            let id = self.next;
            self.next = if self.next >= MAX_ID {
                1
            } else {
                self.next + 1
            };
            if self.live.insert(id) {
                return Ok(id);
            }
        }
        Err(LimitError::IdsExhausted)
    }
}

pub(crate) struct ControlInner {
    limits: Limits,
    ids: Mutex<Ids>,
    table: Mutex<HashMap<Pid, Arc<Process>, IdBuild>>,
    threads: AtomicUsize,
    root: Mutex<Weak<Process>>,
    timers: OnceLock<TimerService>,
    me: Weak<ControlInner>,
}

impl ControlInner {
    pub(crate) fn allocate_thread_id(&self) -> Result<Tid, LimitError> {
        if self.threads.fetch_add(1, Ordering::AcqRel) >= self.limits.max_threads {
            self.threads.fetch_sub(1, Ordering::AcqRel);
            return Err(LimitError::TooManyThreads);
        }
        lock(&self.ids).allocate().inspect_err(|_| {
            self.threads.fetch_sub(1, Ordering::AcqRel);
        })
    }

    pub(crate) fn release_thread_id(&self, tid: Tid) {
        self.threads.fetch_sub(1, Ordering::AcqRel);
        lock(&self.ids).live.remove(&tid);
    }

    pub(crate) fn lookup(&self, pid: Pid) -> Option<Arc<Process>> {
        lock(&self.table).get(&pid).cloned()
    }

    /// Drops a reaped process from the table and frees its pid.
    pub(crate) fn remove(&self, pid: Pid) {
        if lock(&self.table).remove(&pid).is_some() {
            // The main thread's id is the pid: it counted as a thread until now.
            self.threads.fetch_sub(1, Ordering::AcqRel);
            lock(&self.ids).live.remove(&pid);
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

    pub(crate) fn timers(&self) -> &TimerService {
        self.timers
            .get_or_init(|| TimerService::start(self.me.clone()))
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
            ids: Mutex::new(Ids {
                next: 1,
                live: HashSet::default(),
            }),
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
        let c = &self.inner;
        if parent.is_some_and(|p| p.is_exiting()) {
            return Err(LimitError::ShuttingDown);
        }
        let pid = {
            let mut table = lock(&c.table);
            if table.len() >= c.limits.max_processes {
                return Err(LimitError::TooManyProcesses);
            }
            let pid = c.allocate_thread_id()?;
            let dispositions = parent.map(|p| p.dispositions());
            let process = Arc::new(Process::new(
                pid,
                module_hash,
                Arc::downgrade(c),
                parent,
                dispositions,
            ));
            table.insert(pid, process);
            pid
        };
        let process = c.lookup(pid).expect("just inserted");
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
