//! Processes: identity, family, threads, exit status, signals and joining.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use crate::backoff::CpuBackoff;
use crate::checkpoint::Coordinator;
use crate::ids::Tid;
use crate::ids::{LimitError, Pid};
use crate::signal::{Action, DefaultAction, Disposition, SigSet, Signal, MAX_SIGNAL};
use crate::sync::{lock, wait};
use crate::thread::{Thread, WaitError, WaitQueue};

/// What a process asks of the control plane that made it: ids for its threads, the process
/// table, the timer service. Implemented by `control`; a trait so the process need not
/// import the table that holds it.
pub(crate) trait Registry: Send + Sync {
    /// A tid for a new thread (counted against the thread limit): `wanted` (a restore),
    /// else the next free one.
    fn allocate_thread_id(&self, wanted: Option<Tid>) -> Result<Tid, LimitError>;
    /// A thread other than a main thread has left.
    fn release_thread_id(&self, tid: Tid);
    /// Children of an ended process go to the root process.
    fn adopt_orphans(&self, orphans: Vec<Arc<Process>>);
    /// A reaped process leaves the table (its pid is free again).
    fn remove(&self, pid: Pid);
    /// Arms (first after `first`, then every `every`), re-arms or cancels the interval timer
    /// raising `sig` in `pid`; the time the previous one still had. `None` when no timer
    /// service can run.
    fn set_timer(
        &self,
        pid: Pid,
        sig: Signal,
        first: Option<Duration>,
        every: Option<Duration>,
    ) -> Option<Duration>;

    /// The armed timers of `pid`: signal, time left, period.
    fn timers(&self, pid: Pid) -> Vec<(Signal, Duration, Option<Duration>)>;
}

/// Sees every signal sent to a process before it takes effect (the runtime's snapshot
/// triggers: a snapshot first, then the signal). A trait so the process model need not know
/// what a snapshot is.
pub trait SignalTap: Send + Sync {
    /// `sig` is about to be sent to `process` (to thread `to`, or process-directed). `true`:
    /// the tap took it and will send it later with [`Process::signal_now`] or
    /// [`Process::thread_signal_now`]; `false`: it goes on at once.
    fn take(&self, process: &Arc<Process>, to: Option<Tid>, sig: Signal) -> bool;
}

/// How a process ended. The first status set sticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Exited(i32),
    /// A signal's default action (or SIGKILL) ended it.
    Signaled(Signal),
}

impl ExitStatus {
    /// The status a shell reports: the code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + i32::from(s.number()),
        }
    }

    /// Whether it exited with code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }
}

/// Why a join returned without a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// There is no child to wait for (ECHILD).
    #[error("no child process to wait for")]
    NoChild,
    /// A signal arrived (EINTR).
    #[error("interrupted by a signal")]
    Interrupted,
    /// The waiting process itself is being killed.
    #[error("the waiting process was killed")]
    Killed,
}

impl From<WaitError> for JoinError {
    fn from(e: WaitError) -> JoinError {
        match e {
            WaitError::Killed => JoinError::Killed,
            _ => JoinError::Interrupted,
        }
    }
}

/// Which children a join waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Child {
    /// Any child (`waitpid(-1)`).
    Any,
    /// This one.
    Pid(Pid),
}

/// Signal errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// SIGKILL and SIGSTOP cannot be caught or ignored (EINVAL).
    #[error("{0:?} cannot be caught or ignored")]
    Uncatchable(Signal),
    /// No such thread in the process (ESRCH).
    #[error("no such thread")]
    NoSuchThread,
}

struct Family {
    parent: Weak<Process>,
    ppid: Pid,
    children: Vec<Arc<Process>>,
}

#[derive(Default)]
struct ExitState {
    /// Host threads blocked in `wait_exit` (notifying costs a syscall; skip it for none).
    waiting: usize,
    status: Option<ExitStatus>,
    finished: bool,
    wakers: Vec<std::task::Waker>,
}

struct Signals {
    dispositions: [Disposition; MAX_SIGNAL as usize + 1],
    /// Process-directed signals every thread blocks, kept until one unblocks them.
    pending: SigSet,
    stopped: bool,
}

/// One process.
pub struct Process {
    pid: Pid,
    module_hash: [u8; 32],
    control: Weak<dyn Registry>,
    family: Mutex<Family>,
    /// Sorted by tid; a handful per process, so a vector beats a map.
    threads: Mutex<Vec<Arc<Thread>>>,
    exit: Mutex<ExitState>,
    exit_cv: Condvar,
    exit_queue: WaitQueue,
    child_queue: WaitQueue,
    /// Async joiners of children, woken with `child_queue`.
    child_wakers: Mutex<Vec<std::task::Waker>>,
    stop_queue: WaitQueue,
    signals: Mutex<Signals>,
    waiting_for_children: AtomicUsize,
    finalized: AtomicBool,
    checkpoint: Arc<Coordinator>,
    backoff: CpuBackoff,
    tap: Mutex<Option<Arc<dyn SignalTap>>>,
}

impl Process {
    pub(crate) fn new(
        pid: Pid,
        module_hash: [u8; 32],
        control: Weak<dyn Registry>,
        parent: Option<&Arc<Process>>,
        dispositions: Option<[Disposition; MAX_SIGNAL as usize + 1]>,
    ) -> Process {
        Process {
            pid,
            module_hash,
            control,
            family: Mutex::new(Family {
                parent: parent.map(Arc::downgrade).unwrap_or_default(),
                ppid: parent.map_or(0, |p| p.pid),
                children: Vec::new(),
            }),
            threads: Mutex::new(Vec::new()),
            exit: Mutex::new(ExitState::default()),
            exit_cv: Condvar::new(),
            exit_queue: WaitQueue::new(),
            child_queue: WaitQueue::new(),
            child_wakers: Mutex::new(Vec::new()),
            stop_queue: WaitQueue::new(),
            signals: Mutex::new(Signals {
                dispositions: dispositions.unwrap_or_default(),
                pending: SigSet::EMPTY,
                stopped: false,
            }),
            waiting_for_children: AtomicUsize::new(0),
            finalized: AtomicBool::new(false),
            checkpoint: Arc::new(Coordinator::new()),
            // A busy poller's wait grows to 100 ms: a tenth of a second is the most an event
            // outside the descriptors it polls (a futex wake, a timer) is noticed late.
            backoff: CpuBackoff::new(Duration::from_millis(500), Duration::from_millis(100)),
            tap: Mutex::new(None),
        }
    }

    /// Its id.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Its parent's id (the root's after re-parenting; 0 for the root itself).
    pub fn ppid(&self) -> Pid {
        lock(&self.family).ppid
    }

    /// Its parent, if it still exists.
    pub fn parent(&self) -> Option<Arc<Process>> {
        lock(&self.family).parent.upgrade()
    }

    /// Ids of its children, zombies included.
    pub fn children(&self) -> Vec<Pid> {
        lock(&self.family).children.iter().map(|c| c.pid).collect()
    }

    /// Its children, zombies included, oldest first.
    pub fn child_processes(&self) -> Vec<Arc<Process>> {
        lock(&self.family).children.clone()
    }

    /// Whether it has ended and waits to be reaped: its status is final and its threads are
    /// gone.
    pub fn is_zombie(&self) -> bool {
        self.try_status().is_some()
    }

    /// Hash of the module it runs.
    pub fn module_hash(&self) -> [u8; 32] {
        self.module_hash
    }

    /// Process-directed signals pending because every thread blocks them.
    pub fn pending_signals(&self) -> SigSet {
        lock(&self.signals).pending
    }

    /// Its checkpoint barrier.
    pub fn checkpoint(&self) -> &Arc<Coordinator> {
        &self.checkpoint
    }

    /// Opens a capture round (every thread records its state at its next safe point; see
    /// [`Coordinator::request_capture`]) and wakes every thread so that waiting ones notice.
    pub fn request_capture(
        &self,
        trigger: crate::checkpoint::Trigger,
        after: crate::checkpoint::After,
        action: crate::checkpoint::SnapshotAction,
    ) -> Result<crate::checkpoint::Ticket, crate::checkpoint::CheckpointError> {
        let ticket = self.checkpoint.request_capture(trigger, after, action)?;
        for t in self.threads() {
            t.wake_for_capture();
        }
        Ok(ticket)
    }

    /// Its CPU backoff.
    pub fn backoff(&self) -> &CpuBackoff {
        &self.backoff
    }

    /// Its main thread (tid = pid), while it runs.
    pub fn main_thread(&self) -> Option<Arc<Thread>> {
        self.thread(self.pid)
    }

    /// The live thread `tid`.
    pub fn thread(&self, tid: Tid) -> Option<Arc<Thread>> {
        let threads = lock(&self.threads);
        threads
            .binary_search_by_key(&tid, |t| t.tid())
            .ok()
            .map(|i| Arc::clone(&threads[i]))
    }

    /// Its live threads, by id.
    pub fn threads(&self) -> Vec<Arc<Thread>> {
        lock(&self.threads).clone()
    }

    /// How many threads are alive.
    pub fn live_threads(&self) -> usize {
        lock(&self.threads).len()
    }

    pub(crate) fn add_thread(&self, thread: Arc<Thread>) {
        let mut threads = lock(&self.threads);
        let at = threads.partition_point(|t| t.tid() < thread.tid());
        threads.insert(at, thread);
    }

    /// Starts a new thread with `mask` as its blocked set (a new thread inherits its creator's).
    /// `from_member` says a thread of this process asks (so a checkpoint in progress does not
    /// wait for it).
    pub fn spawn_thread(
        self: &Arc<Self>,
        mask: SigSet,
        from_member: bool,
    ) -> Result<Arc<Thread>, LimitError> {
        self.spawn_thread_with(None, mask, from_member)
    }

    /// Like [`Process::spawn_thread`], with tid `tid` (a restored thread keeps its tid).
    pub fn spawn_thread_as(
        self: &Arc<Self>,
        tid: Tid,
        mask: SigSet,
    ) -> Result<Arc<Thread>, LimitError> {
        self.spawn_thread_with(Some(tid), mask, false)
    }

    fn spawn_thread_with(
        self: &Arc<Self>,
        wanted: Option<Tid>,
        mask: SigSet,
        from_member: bool,
    ) -> Result<Arc<Thread>, LimitError> {
        let control = self.control.upgrade().ok_or(LimitError::ShuttingDown)?;
        if self.is_exiting() {
            return Err(LimitError::ShuttingDown);
        }
        let tid = control.allocate_thread_id(wanted)?;
        self.checkpoint.register_thread(from_member);
        let thread = Arc::new(Thread::new(tid, Arc::clone(&self.checkpoint), mask));
        self.add_thread(Arc::clone(&thread));
        if self.is_exiting() {
            thread.kill();
        }
        Ok(thread)
    }

    /// A thread has finished (returned, trapped or unwound after a kill). The last one out
    /// finalises the process.
    pub fn thread_exited(&self, tid: Tid) {
        let (thread, last) = {
            let mut threads = lock(&self.threads);
            match threads.binary_search_by_key(&tid, |t| t.tid()) {
                Ok(i) => (threads.remove(i), threads.is_empty()),
                Err(_) => return,
            }
        };
        // Thread-directed signals die with the thread, as in POSIX.
        thread.mark_exited();
        self.checkpoint.unregister_thread();
        if tid != self.pid {
            if let Some(c) = self.control.upgrade() {
                c.release_thread_id(tid);
            }
        }
        if last {
            self.finalize();
        }
    }

    /// Whether an exit status has been set (threads are being torn down).
    pub fn is_exiting(&self) -> bool {
        lock(&self.exit).status.is_some()
    }

    /// Ends the process with `status` (unless it already has one): every thread is killed, so
    /// every blocked wait returns.
    pub fn exit(&self, status: ExitStatus) {
        {
            let mut ex = lock(&self.exit);
            if ex.status.is_none() {
                ex.status = Some(status);
                if ex.waiting > 0 {
                    // Whoever waits for the decision (`wait_status`) need not wait for the
                    // threads to unwind.
                    self.exit_cv.notify_all();
                }
            }
        }
        let none_left = {
            let threads = lock(&self.threads);
            for t in threads.iter() {
                t.kill();
            }
            threads.is_empty()
        };
        // Killed threads wake by themselves, stopped ones included.
        if none_left {
            self.finalize();
        }
    }

    /// Runs exactly once, when the last thread is gone.
    fn finalize(&self) {
        if self.finalized.swap(true, Ordering::AcqRel) {
            return;
        }
        let (wakers, waiting) = {
            let mut ex = lock(&self.exit);
            ex.status.get_or_insert(ExitStatus::Exited(0));
            ex.finished = true;
            (std::mem::take(&mut ex.wakers), ex.waiting)
        };
        if waiting > 0 {
            self.exit_cv.notify_all();
        }
        for w in wakers {
            w.wake();
        }
        self.exit_queue.wake_all();
        let control = self.control.upgrade();
        // Orphans go to the root process, as they would go to init.
        let (orphans, parent) = {
            let mut f = lock(&self.family);
            (std::mem::take(&mut f.children), f.parent.upgrade())
        };
        if let Some(c) = &control {
            c.adopt_orphans(orphans);
        }
        if let Some(parent) = parent {
            parent.notify_child_event();
            let _ = parent.signal(Signal::CHLD);
        } else if let Some(c) = &control {
            // Nobody will reap a parentless process: release it now.
            c.remove(self.pid);
        }
    }

    /// Makes a process just created (with its main thread, never run) a zombie that ended
    /// with `status`, quietly: its parent is neither signalled nor woken, as a restored
    /// zombie's parent heard of it before the snapshot.
    pub(crate) fn rest_as_zombie(&self, status: ExitStatus) {
        {
            let mut ex = lock(&self.exit);
            ex.status = Some(status);
            ex.finished = true;
        }
        self.finalized.store(true, Ordering::Release);
        for t in std::mem::take(&mut *lock(&self.threads)) {
            t.mark_exited();
            self.checkpoint.unregister_thread();
        }
    }

    /// Records a freshly spawned child (its own family already names this parent).
    pub(crate) fn add_child(&self, child: Arc<Process>) {
        lock(&self.family).children.push(child);
    }

    pub(crate) fn adopt(&self, children: Vec<Arc<Process>>, self_arc: &Arc<Process>) {
        if children.is_empty() {
            return;
        }
        let any_finished = children.iter().any(|c| c.try_status().is_some());
        for c in &children {
            let mut f = lock(&c.family);
            f.parent = Arc::downgrade(self_arc);
            f.ppid = self.pid;
        }
        lock(&self.family).children.extend(children);
        if any_finished {
            self.notify_child_event();
        }
    }

    pub(crate) fn clear_parent(&self) {
        let mut f = lock(&self.family);
        f.parent = Weak::new();
        f.ppid = 0;
    }

    fn notify_child_event(&self) {
        self.child_queue.wake_all();
        let wakers = std::mem::take(&mut *lock(&self.child_wakers));
        for w in wakers {
            w.wake();
        }
    }

    /// The exit status without waiting (`None` while it runs).
    pub fn try_join(&self) -> Option<ExitStatus> {
        self.try_status()
    }

    /// `waitpid(-1)`: the next child to finish, reaped.
    pub fn join_any_child(
        self: &Arc<Self>,
        waiter: Option<&Arc<Thread>>,
    ) -> Result<(Pid, ExitStatus), JoinError> {
        self.join_child(Child::Any, false, waiter)
            .map(|r| r.expect("a blocking join returns a child"))
    }

    /// Resolves with the next child matching `which` to finish (reaped), or ECHILD.
    pub fn join_child_async(self: &Arc<Self>, which: Child) -> JoinChild {
        JoinChild {
            process: Arc::clone(self),
            which,
        }
    }

    /// The exit status once every thread is gone.
    pub fn try_status(&self) -> Option<ExitStatus> {
        let ex = lock(&self.exit);
        if ex.finished {
            ex.status
        } else {
            None
        }
    }

    /// Its exit status once decided (its threads may still be unwinding).
    pub fn decided_status(&self) -> Option<ExitStatus> {
        lock(&self.exit).status
    }

    /// Blocks the calling host thread until the process's exit status is decided (its
    /// threads may still be unwinding).
    pub fn wait_status(&self) -> ExitStatus {
        let mut ex = lock(&self.exit);
        loop {
            if let Some(status) = ex.status {
                return status;
            }
            ex.waiting += 1;
            ex = wait(&self.exit_cv, ex, None);
            ex.waiting -= 1;
        }
    }

    /// Blocks the calling host thread until the process has ended.
    pub fn wait_exit(&self) -> ExitStatus {
        let mut ex = lock(&self.exit);
        loop {
            if ex.finished {
                return ex.status.expect("finished implies a status");
            }
            ex.waiting += 1;
            ex = wait(&self.exit_cv, ex, None);
            ex.waiting -= 1;
        }
    }

    /// Like [`Process::wait_exit`], giving up after `limit` (`None`: still running then).
    pub fn wait_exit_timeout(&self, limit: Duration) -> Option<ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        let mut ex = lock(&self.exit);
        loop {
            if ex.finished {
                return ex.status;
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            ex.waiting += 1;
            ex = wait(&self.exit_cv, ex, Some(deadline));
            ex.waiting -= 1;
        }
    }

    /// Kills the process and every descendant it has (children first, so none is orphaned
    /// to run on).
    pub fn kill_tree(self: &Arc<Self>) {
        let children: Vec<Arc<Process>> = lock(&self.family).children.clone();
        for c in children {
            c.kill_tree();
        }
        let _ = self.signal_now(Signal::KILL);
    }

    /// Resolves when the process has ended.
    pub fn exited(self: &Arc<Self>) -> Exited {
        Exited {
            process: Arc::clone(self),
        }
    }

    /// `join` from a guest thread: interruptible by signals and kills.
    pub fn join(&self, waiter: &Arc<Thread>) -> Result<ExitStatus, JoinError> {
        Ok(waiter.wait_for(None, Some(&self.exit_queue), || self.try_status())?)
    }

    /// POSIX `waitpid`: reaps a finished child matching `which` and returns it. With `nohang`,
    /// `Ok(None)` when none has finished yet. `waiter` is the guest thread that waits (its
    /// signals interrupt the wait); `None` waits on behalf of the host, uninterrupted.
    pub fn join_child(
        self: &Arc<Self>,
        which: Child,
        nohang: bool,
        waiter: Option<&Arc<Thread>>,
    ) -> Result<Option<(Pid, ExitStatus)>, JoinError> {
        let poll = || -> Option<Result<(Pid, ExitStatus), JoinError>> {
            let mut fam = lock(&self.family);
            let mut matching = fam
                .children
                .iter()
                .filter(|c| which == Child::Any || which == Child::Pid(c.pid))
                .peekable();
            matching.peek()?;
            let found = matching.find_map(|c| c.try_status().map(|s| (Arc::clone(c), s)));
            let (child, status) = found?;
            fam.children.retain(|c| c.pid != child.pid);
            drop(fam);
            self.reap(&child);
            Some(Ok((child.pid, status)))
        };
        let has_match = || {
            lock(&self.family)
                .children
                .iter()
                .any(|c| which == Child::Any || which == Child::Pid(c.pid))
        };
        if !has_match() {
            return Err(JoinError::NoChild);
        }
        if nohang {
            return poll().transpose().map_err(|e: JoinError| e);
        }
        self.waiting_for_children.fetch_add(1, Ordering::AcqRel);
        let _guard = Decrement(&self.waiting_for_children);
        let mut poll_or_gone =
            || poll().or_else(|| (!has_match()).then_some(Err(JoinError::NoChild)));
        let r = match waiter {
            Some(t) => t.wait_for(None, Some(&self.child_queue), &mut poll_or_gone),
            None => {
                let host = Arc::new(Thread::new(0, Arc::new(Coordinator::new()), SigSet::full()));
                host.wait_uninterruptible(Some(&self.child_queue), &mut poll_or_gone)
            }
        };
        match r {
            Ok(Ok(v)) => Ok(Some(v)),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(e.into()),
        }
    }

    /// Reaps every child, waiting for each; returns them in the order they were reaped.
    pub fn join_children(
        self: &Arc<Self>,
        waiter: Option<&Arc<Thread>>,
    ) -> Result<Vec<(Pid, ExitStatus)>, JoinError> {
        let mut out = Vec::new();
        loop {
            match self.join_child(Child::Any, false, waiter) {
                Ok(Some(x)) => out.push(x),
                Ok(None) => unreachable!("blocking join returns a child"),
                Err(JoinError::NoChild) => return Ok(out),
                Err(e) => return Err(e),
            }
        }
    }

    fn reap(&self, child: &Process) {
        if let Some(c) = self.control.upgrade() {
            c.remove(child.pid);
        }
    }

    /// Whether a thread of this process is blocked waiting for children (SIGINT then goes to
    /// them: the foreground-job rule).
    pub fn is_waiting_for_children(&self) -> bool {
        self.waiting_for_children.load(Ordering::Acquire) > 0
    }

    // ---- signals ---------------------------------------------------------------------------

    /// The current disposition of `sig`.
    pub fn disposition(&self, sig: Signal) -> Disposition {
        lock(&self.signals).dispositions[sig.number() as usize]
    }

    /// Sets the disposition of `sig`; returns the previous one.
    pub fn set_disposition(&self, sig: Signal, d: Disposition) -> Result<Disposition, SignalError> {
        if sig.is_uncatchable() && d != Disposition::Default {
            return Err(SignalError::Uncatchable(sig));
        }
        let mut s = lock(&self.signals);
        Ok(std::mem::replace(
            &mut s.dispositions[sig.number() as usize],
            d,
        ))
    }

    /// Dispositions as `exec` leaves them: handlers reset to default, ignored stays ignored.
    pub fn dispositions_for_exec(&self) -> [Disposition; MAX_SIGNAL as usize + 1] {
        let mut d = lock(&self.signals).dispositions;
        for x in d.iter_mut() {
            if matches!(x, Disposition::Handler(_)) {
                *x = Disposition::Default;
            }
        }
        d
    }

    /// Dispositions as `fork` copies them.
    pub fn dispositions(&self) -> [Disposition; MAX_SIGNAL as usize + 1] {
        lock(&self.signals).dispositions
    }

    /// Takes on a whole table of dispositions (what `dispositions` or `dispositions_for_exec`
    /// of another process gave); entries for signals that cannot be caught are skipped.
    pub fn set_dispositions(&self, all: &[Disposition; MAX_SIGNAL as usize + 1]) {
        for (n, d) in all.iter().enumerate() {
            if let Some(sig) = Signal::new(n as u8) {
                let _ = self.set_disposition(sig, *d);
            }
        }
    }

    /// Lets `tap` see (and hold back) every signal sent to this process from now on.
    pub fn set_signal_tap(&self, tap: Arc<dyn SignalTap>) {
        *lock(&self.tap) = Some(tap);
    }

    fn tapped(self: &Arc<Self>, to: Option<Tid>, sig: Signal) -> bool {
        let tap = lock(&self.tap).clone();
        tap.is_some_and(|t| t.take(self, to, sig))
    }

    /// Sends a process-directed signal (after the signal tap, if one is set, lets it go on):
    /// to one thread that does not block it (or kept pending until one unblocks it); SIGINT
    /// goes to the children a thread is waiting for; default actions that need no handler
    /// are carried out at once.
    pub fn signal(self: &Arc<Self>, sig: Signal) -> Result<(), SignalError> {
        if self.tapped(None, sig) {
            return Ok(());
        }
        self.signal_now(sig)
    }

    /// [`Process::signal`] without asking the signal tap.
    pub fn signal_now(self: &Arc<Self>, sig: Signal) -> Result<(), SignalError> {
        if sig.default_action() == DefaultAction::Ignore
            && self.disposition(sig) == Disposition::Default
        {
            return Ok(());
        }
        if self.try_status().is_some() {
            return Ok(()); // a zombie: accepted, no effect
        }
        if sig == Signal::INT && self.is_waiting_for_children() {
            let children: Vec<Arc<Process>> = lock(&self.family).children.clone();
            let live: Vec<_> = children
                .into_iter()
                .filter(|c| c.try_status().is_none())
                .collect();
            if !live.is_empty() {
                for c in live {
                    let _ = c.signal(sig);
                }
                return Ok(());
            }
        }
        if !self.apply_without_handler(sig) {
            return Ok(());
        }
        let mut signals = lock(&self.signals);
        let threads = self.threads();
        for t in &threads {
            if !t.mask().contains(sig) && t.deliver(sig) {
                return Ok(());
            }
        }
        signals.pending = signals.pending.with(sig);
        Ok(())
    }

    /// Sends a signal to one thread (after the signal tap, if one is set, lets it go on).
    pub fn thread_signal(self: &Arc<Self>, tid: Tid, sig: Signal) -> Result<(), SignalError> {
        if self.thread(tid).is_none() {
            return Err(SignalError::NoSuchThread);
        }
        if self.tapped(Some(tid), sig) {
            return Ok(());
        }
        self.thread_signal_now(tid, sig)
    }

    /// [`Process::thread_signal`] without asking the signal tap.
    pub fn thread_signal_now(self: &Arc<Self>, tid: Tid, sig: Signal) -> Result<(), SignalError> {
        let thread = self.thread(tid).ok_or(SignalError::NoSuchThread)?;
        if self.apply_without_handler(sig) && !thread.deliver(sig) {
            return Err(SignalError::NoSuchThread);
        }
        Ok(())
    }

    /// Carries out what needs no handler; `true` if the signal still has to reach a thread.
    fn apply_without_handler(&self, sig: Signal) -> bool {
        if sig == Signal::KILL {
            self.exit(ExitStatus::Signaled(sig));
            return false;
        }
        if sig == Signal::CONT {
            self.resume();
        }
        match (self.disposition(sig), sig.default_action()) {
            (Disposition::Handler(_), _) => true,
            (Disposition::Ignore, _) => false,
            (Disposition::Default, DefaultAction::Terminate) => {
                self.exit(ExitStatus::Signaled(sig));
                false
            }
            (Disposition::Default, DefaultAction::Stop) => {
                lock(&self.signals).stopped = true;
                false
            }
            (Disposition::Default, DefaultAction::Ignore | DefaultAction::Continue) => false,
        }
    }

    fn resume(&self) {
        lock(&self.signals).stopped = false;
        self.stop_queue.wake_all();
    }

    /// Whether the process is stopped (SIGSTOP and friends).
    pub fn is_stopped(&self) -> bool {
        lock(&self.signals).stopped
    }

    /// Replaces `thread`'s blocked set; process-pending signals it now accepts move to it.
    pub fn set_mask(&self, thread: &Thread, mask: SigSet) -> SigSet {
        let old = thread.set_mask(mask);
        let mut s = lock(&self.signals);
        for sig in s.pending.minus(thread.mask()).iter() {
            if thread.deliver(sig) {
                s.pending = s.pending.without(sig);
            }
        }
        old
    }

    /// What `thread` must do at a safe point: sit out a stop, unwind after a kill, or run a
    /// handler for its next deliverable signal.
    pub fn next_action(&self, thread: &Arc<Thread>) -> Action {
        if self.is_stopped() {
            let r = thread.wait_uninterruptible(Some(&self.stop_queue), || {
                (!self.is_stopped()).then_some(())
            });
            if r.is_err() {
                return Action::Terminate;
            }
        }
        if thread.is_killed() || self.is_exiting() {
            return Action::Terminate;
        }
        while let Some(sig) = thread.take_signal() {
            match self.disposition(sig) {
                Disposition::Handler(h) => return Action::Handler(sig, h),
                // The disposition changed since it was sent: apply it now.
                _ => {
                    if !self.apply_without_handler(sig) && self.is_exiting() {
                        return Action::Terminate;
                    }
                }
            }
        }
        Action::None
    }

    /// Arms (or with `None` cancels) an interval timer raising `sig`, once or every `interval`
    /// (alarm semantics: one timer per signal, a new one replaces the old). Returns how long the
    /// replaced timer still had to run; `None` also when the timer thread cannot be started.
    pub fn signal_interval(
        self: &Arc<Self>,
        sig: Signal,
        interval: Option<Duration>,
        repeat: bool,
    ) -> Option<Duration> {
        let control = self.control.upgrade()?;
        let every = interval.filter(|_| repeat);
        control.set_timer(self.pid, sig, interval, every)
    }

    /// Its armed interval timers: signal, time left, period if it repeats (a snapshot).
    pub fn interval_timers(&self) -> Vec<(Signal, Duration, Option<Duration>)> {
        self.control
            .upgrade()
            .map_or_else(Vec::new, |c| c.timers(self.pid))
    }

    /// Arms a timer raising `sig` after `first`, then every `every` if given (a restored
    /// snapshot's timers).
    pub fn restore_interval_timer(
        self: &Arc<Self>,
        sig: Signal,
        first: Duration,
        every: Option<Duration>,
    ) {
        if let Some(control) = self.control.upgrade() {
            control.set_timer(self.pid, sig, Some(first), every);
        }
    }
}

struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Future returned by [`Process::join_child_async`].
pub struct JoinChild {
    process: Arc<Process>,
    which: Child,
}

impl std::future::Future for JoinChild {
    type Output = Result<(Pid, ExitStatus), JoinError>;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        // Register first, then look: an exit in between still wakes us.
        lock(&self.process.child_wakers).push(cx.waker().clone());
        match self.process.join_child(self.which, true, None) {
            Ok(Some(x)) => Poll::Ready(Ok(x)),
            Ok(None) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// Future returned by [`Process::exited`].
pub struct Exited {
    process: Arc<Process>,
}

impl std::future::Future for Exited {
    type Output = ExitStatus;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<ExitStatus> {
        let mut ex = lock(&self.process.exit);
        if ex.finished {
            return std::task::Poll::Ready(ex.status.expect("finished implies a status"));
        }
        ex.wakers.push(cx.waker().clone());
        std::task::Poll::Pending
    }
}
