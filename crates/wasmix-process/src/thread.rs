//! Threads: pending signals and mask, and the interruptible wait every blocking host operation
//! uses (sleep, futex wait, poll, pipe read, join).

use std::time::{Duration, Instant};

use crate::checkpoint::Coordinator;
use crate::ids::Tid;
use crate::signal::{SigSet, Signal};
use crate::sync::{lock, wait, Arc, Condvar, Mutex};

/// Why an interruptible wait returned without its condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// A signal became deliverable to the thread (EINTR).
    #[error("interrupted by a signal")]
    Interrupted,
    /// The process is being killed; unwind.
    #[error("the process was killed")]
    Killed,
    /// The deadline passed.
    #[error("timed out")]
    TimedOut,
    /// A checkpoint needs the thread at a safe point (a capture round is open).
    #[error("interrupted for a checkpoint")]
    Checkpoint,
}

#[derive(Default)]
struct ThreadState {
    pending: SigSet,
    mask: SigSet,
    killed: bool,
    exited: bool,
    /// Bumped by every wake-up, so a waiter that re-checks its condition cannot miss one.
    wake_seq: u64,
    /// Whether the thread is blocked on the condvar: notifying costs a syscall, so skip it
    /// when nobody sleeps.
    sleeping: bool,
}

impl ThreadState {
    fn deliverable(&self) -> SigSet {
        self.pending.minus(self.mask.as_mask())
    }
}

/// The part of a thread that wakers hold on to.
struct Parker {
    state: Mutex<ThreadState>,
    cv: Condvar,
}

impl Parker {
    fn wake(&self) {
        let mut st = lock(&self.state);
        st.wake_seq += 1;
        let sleeping = st.sleeping;
        drop(st);
        if sleeping {
            self.cv.notify_all();
        }
    }

    /// Records a change to the state and wakes the thread if it sleeps.
    fn update(&self, f: impl FnOnce(&mut ThreadState) -> bool) -> bool {
        self.update_then(f, |_| {})
    }

    /// Like [`Parker::update`], running `before_wake` with `f`'s answer after the change and
    /// before the wake-up: whatever it publishes is visible to the woken thread.
    fn update_then(
        &self,
        f: impl FnOnce(&mut ThreadState) -> bool,
        before_wake: impl FnOnce(bool),
    ) -> bool {
        let mut st = lock(&self.state);
        let r = f(&mut st);
        st.wake_seq += 1;
        let sleeping = st.sleeping;
        drop(st);
        before_wake(r);
        if sleeping {
            self.cv.notify_all();
        }
        r
    }
}

/// One thread of a process.
pub struct Thread {
    tid: Tid,
    parker: Arc<Parker>,
    checkpoint: Arc<Coordinator>,
    /// Reaches a thread that is not in [`Thread::wait_for`]: running guest code or blocked in
    /// the host kernel. The engine layer sets it; the process model only calls it.
    notifier: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Thread {
    /// A thread that counts towards `checkpoint`'s barrier (its registration is the caller's).
    pub fn new(tid: Tid, checkpoint: Arc<Coordinator>, mask: SigSet) -> Thread {
        Thread {
            tid,
            parker: Arc::new(Parker {
                state: Mutex::new(ThreadState {
                    mask: mask.as_mask(),
                    ..ThreadState::default()
                }),
                cv: Condvar::new(),
            }),
            checkpoint,
            notifier: std::sync::OnceLock::new(),
        }
    }

    /// Sets the hook run after a signal becomes pending on this thread or it is killed (at most
    /// once; later calls are ignored). It must be cheap and must not block.
    pub fn set_notifier(&self, notify: impl Fn() + Send + Sync + 'static) {
        let _ = self.notifier.set(Box::new(notify));
    }

    fn notify(&self) {
        if let Some(n) = self.notifier.get() {
            n();
        }
    }

    /// Its id.
    pub fn tid(&self) -> Tid {
        self.tid
    }

    /// The checkpoint barrier this thread belongs to.
    pub fn checkpoint(&self) -> &Arc<Coordinator> {
        &self.checkpoint
    }

    /// Makes `sig` pending on this thread and wakes it. `false` if the thread has exited (the
    /// caller routes the signal elsewhere).
    pub fn deliver(&self, sig: Signal) -> bool {
        // The notifier runs before the wake, so the woken thread already sees its effect.
        self.parker.update_then(
            |st| {
                if st.exited {
                    return false;
                }
                st.pending = st.pending.with(sig);
                true
            },
            |delivered| {
                if delivered {
                    self.notify();
                }
            },
        )
    }

    /// Marks the thread as killed: every wait returns [`WaitError::Killed`] from now on.
    pub fn kill(&self) {
        self.parker.update_then(
            |st| {
                st.killed = true;
                true
            },
            |_| self.notify(),
        );
    }

    /// Whether the thread has been killed.
    pub fn is_killed(&self) -> bool {
        lock(&self.parker.state).killed
    }

    /// Wakes the thread so a waiter re-checks its condition.
    pub fn wake(&self) {
        self.parker.wake();
    }

    /// Reaches the thread wherever it is — an interruptible wait, guest code, the host
    /// kernel — so it notices an open capture round and goes to its safe point.
    pub fn wake_for_capture(&self) {
        self.parker.update_then(|_| true, |_| self.notify());
    }

    /// The blocked set.
    pub fn mask(&self) -> SigSet {
        lock(&self.parker.state).mask
    }

    /// Replaces the blocked set (SIGKILL and SIGSTOP cannot be blocked); returns the old one.
    pub fn set_mask(&self, mask: SigSet) -> SigSet {
        let mut old = SigSet::EMPTY;
        self.parker.update(|st| {
            old = std::mem::replace(&mut st.mask, mask.as_mask());
            true
        });
        old
    }

    /// Pending signals (blocked or not).
    pub fn pending(&self) -> SigSet {
        lock(&self.parker.state).pending
    }

    /// Takes the lowest-numbered deliverable signal, for the runtime to act on at a safe point.
    pub fn take_signal(&self) -> Option<Signal> {
        let mut st = lock(&self.parker.state);
        let sig = st.deliverable().first()?;
        st.pending = st.pending.without(sig);
        Some(sig)
    }

    /// Whether a signal is deliverable now.
    pub fn has_deliverable(&self) -> bool {
        !lock(&self.parker.state).deliverable().is_empty()
    }

    /// Marks the thread as gone; returns the signals still pending on it, which the process
    /// re-routes to another thread.
    pub fn mark_exited(&self) -> SigSet {
        let mut st = lock(&self.parker.state);
        st.exited = true;
        std::mem::take(&mut st.pending)
    }

    /// Blocks until `poll` yields a value, a signal becomes deliverable, the process is killed,
    /// or `deadline` passes. Wake-ups come from [`Thread::wake`], usually through `queue`.
    /// While blocked, the thread counts as parked for checkpoints.
    pub fn wait_for<T>(
        &self,
        deadline: Option<Instant>,
        queue: Option<&WaitQueue>,
        poll: impl FnMut() -> Option<T>,
    ) -> Result<T, WaitError> {
        self.wait_inner(deadline, queue, true, poll)
    }

    /// Like [`Thread::wait_for`], but pending signals do not end the wait (only a kill does):
    /// for a stopped process, which must sit still until SIGCONT.
    pub fn wait_uninterruptible<T>(
        &self,
        queue: Option<&WaitQueue>,
        poll: impl FnMut() -> Option<T>,
    ) -> Result<T, WaitError> {
        self.wait_inner(None, queue, false, poll)
    }

    fn wait_inner<T>(
        &self,
        deadline: Option<Instant>,
        queue: Option<&WaitQueue>,
        interruptible: bool,
        mut poll: impl FnMut() -> Option<T>,
    ) -> Result<T, WaitError> {
        let interrupts = |st: &ThreadState| interruptible && !st.deliverable().is_empty();
        let _registered = queue.map(|q| q.register(self));
        let _asleep = self.checkpoint.sleep();
        loop {
            let seq = {
                let st = lock(&self.parker.state);
                if st.killed {
                    return Err(WaitError::Killed);
                }
                if interrupts(&st) {
                    return Err(WaitError::Interrupted);
                }
                st.wake_seq
            };
            // Read after the sequence number: a request that lands later bumps it.
            if interruptible && self.checkpoint.capture_requested() {
                return Err(WaitError::Checkpoint);
            }
            if let Some(v) = poll() {
                return Ok(v);
            }
            let mut st = lock(&self.parker.state);
            loop {
                if st.killed || interrupts(&st) || st.wake_seq != seq {
                    break;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(WaitError::TimedOut);
                }
                st.sleeping = true;
                st = wait(&self.parker.cv, st, deadline);
                st.sleeping = false;
            }
        }
    }

    /// Sleeps for `duration` unless interrupted or killed.
    pub fn sleep(&self, duration: Duration) -> Result<(), WaitError> {
        let deadline = Instant::now() + duration;
        match self.wait_for(Some(deadline), None, || None::<()>) {
            Err(WaitError::TimedOut) => Ok(()),
            other => other,
        }
    }
}

/// Threads waiting for one kind of event (a child's exit, a futex word, readable data).
#[derive(Default)]
pub struct WaitQueue {
    waiters: Mutex<Vec<(Tid, Arc<Parker>)>>,
}

impl WaitQueue {
    /// An empty queue.
    pub fn new() -> WaitQueue {
        WaitQueue::default()
    }

    fn register(&self, thread: &Thread) -> Registration<'_> {
        lock(&self.waiters).push((thread.tid, Arc::clone(&thread.parker)));
        Registration {
            queue: self,
            tid: thread.tid,
        }
    }

    /// Wakes every thread waiting here. Call it after changing the state they poll.
    pub fn wake_all(&self) {
        let waiters: Vec<Arc<Parker>> = lock(&self.waiters)
            .iter()
            .map(|(_, p)| Arc::clone(p))
            .collect();
        for p in waiters {
            p.wake();
        }
    }

    /// How many threads wait here.
    pub fn len(&self) -> usize {
        lock(&self.waiters).len()
    }

    /// Whether no thread waits here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Registration<'q> {
    queue: &'q WaitQueue,
    tid: Tid,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut w = lock(&self.queue.waiters);
        if let Some(i) = w.iter().position(|(tid, _)| *tid == self.tid) {
            w.swap_remove(i);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn thread(tid: Tid) -> Arc<Thread> {
        let cp = Arc::new(Coordinator::new());
        cp.register_thread(false);
        Arc::new(Thread::new(tid, cp, SigSet::EMPTY))
    }

    #[test]
    fn signal_interrupts_a_wait() {
        let t = thread(1);
        let t2 = Arc::clone(&t);
        let h = std::thread::spawn(move || t2.wait_for(None, None, || None::<()>));
        // No sleep: delivery before or during the wait must both interrupt it.
        t.deliver(Signal::USR1);
        assert_eq!(h.join().unwrap(), Err(WaitError::Interrupted));
        assert_eq!(t.take_signal(), Some(Signal::USR1));
        assert_eq!(t.take_signal(), None);
    }

    #[test]
    fn blocked_signal_does_not_interrupt_until_unblocked() {
        let t = thread(1);
        t.set_mask(SigSet::of(&[Signal::USR1]));
        t.deliver(Signal::USR1);
        assert!(!t.has_deliverable());
        assert_eq!(
            t.wait_for(Some(Instant::now()), None, || None::<()>),
            Err(WaitError::TimedOut)
        );
        t.set_mask(SigSet::EMPTY);
        assert_eq!(
            t.wait_for(None, None, || None::<()>),
            Err(WaitError::Interrupted)
        );
    }

    #[test]
    fn kill_cannot_be_blocked_and_wins() {
        let t = thread(1);
        t.set_mask(SigSet::full());
        assert!(!t.mask().contains(Signal::KILL));
        t.kill();
        assert_eq!(t.wait_for(None, None, || Some(1)), Err(WaitError::Killed));
    }

    #[test]
    fn queue_wake_is_never_lost() {
        for _ in 0..200 {
            let t = thread(1);
            let q = Arc::new(WaitQueue::new());
            let flag = Arc::new(AtomicBool::new(false));
            let (t2, q2, f2) = (Arc::clone(&t), Arc::clone(&q), Arc::clone(&flag));
            let h = std::thread::spawn(move || {
                t2.wait_for(None, Some(&q2), || f2.load(Ordering::SeqCst).then_some(7))
            });
            flag.store(true, Ordering::SeqCst);
            q.wake_all();
            assert_eq!(h.join().unwrap(), Ok(7));
            assert!(q.is_empty(), "registration removed");
        }
    }

    #[test]
    fn a_capture_round_ends_a_wait_and_a_request_reaches_a_sleeper() {
        for _ in 0..100 {
            let t = thread(1);
            let notified = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let n = Arc::clone(&notified);
            t.set_notifier(move || {
                n.fetch_add(1, Ordering::SeqCst);
            });
            let t2 = Arc::clone(&t);
            let waiter = std::thread::spawn(move || t2.wait_for(None, None, || None::<()>));
            let ticket = t
                .checkpoint()
                .request_capture(
                    crate::Trigger::Explicit,
                    crate::After::Resume,
                    Box::new(|_: &crate::Snapshot<'_>| Ok(())),
                )
                .unwrap();
            t.wake_for_capture();
            assert_eq!(waiter.join().unwrap(), Err(WaitError::Checkpoint));
            assert_eq!(notified.load(Ordering::SeqCst), 1, "the runtime's hook ran");
            // Uninterruptible waits (a stopped process) are not ended by it.
            assert_eq!(t.wait_uninterruptible(None, || Some(3)), Ok(3));
            assert_eq!(
                t.checkpoint().safe_point(1, Vec::new),
                crate::Resume::Continue
            );
            assert_eq!(ticket.wait(), Ok(crate::After::Resume));
        }
    }

    #[test]
    fn sleep_times_out_and_exited_threads_refuse_signals() {
        let t = thread(1);
        t.sleep(Duration::from_millis(1)).unwrap();
        t.deliver(Signal::HUP);
        assert_eq!(t.mark_exited(), SigSet::of(&[Signal::HUP]));
        assert!(!t.deliver(Signal::TERM));
    }

    #[test]
    fn notifier_runs_on_delivery_and_kill_only() {
        let t = thread(1);
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = Arc::clone(&count);
        t.set_notifier(move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        t.wake();
        assert_eq!(count.load(Ordering::SeqCst), 0);
        t.deliver(Signal::USR1);
        t.kill();
        assert_eq!(count.load(Ordering::SeqCst), 2);
        t.mark_exited();
        t.deliver(Signal::USR1);
        assert_eq!(
            count.load(Ordering::SeqCst),
            2,
            "no notice for an exited thread"
        );
    }
}
