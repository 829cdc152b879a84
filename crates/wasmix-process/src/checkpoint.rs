//! The checkpoint barrier of one process.
//!
//! A checkpoint is requested; every thread that reaches a safe point records its state and
//! parks; the last thread to arrive runs the snapshot action exactly once; then all threads go
//! on, or the process ends. Threads that start, exit or wake up while a round is open are
//! folded into the count so the barrier can neither deadlock nor run early.
//!
//! Two kinds of round. In a plain round ([`Coordinator::request`]) threads in an
//! interruptible wait count as parked (and the requester runs the action when every thread
//! sleeps). In a capture round ([`Coordinator::request_capture`]), what a journal snapshot
//! needs, every thread must record its state: waits end early
//! ([`Coordinator::capture_requested`] is what they check), sleepers do not count, and a
//! thread waking up or starting meanwhile goes on to its next safe point instead of waiting
//! for the round to end. A capture round that cannot complete is ended by
//! [`Coordinator::cancel`].
//!
//! A hold ([`Coordinator::hold`]) is a plain round with no action: once every thread is
//! parked or asleep, the requester does its work while they stay so, and ends the round by
//! dropping the [`Hold`]. Nothing is recorded: a thread held at a safe point goes on from
//! there. It keeps a running thread off the memory for a moment, far cheaper than capturing
//! it.

use crate::ids::Tid;
use crate::sync::{lock, wait, Arc, AtomicBool, Condvar, Mutex, Ordering};

/// What caused a checkpoint (the journal records it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The process went idle.
    Idle,
    /// The first `listen`.
    FirstListen,
    /// The first read of the environment.
    FirstEnviron,
    /// The first read of stdin.
    FirstStdin,
    /// The first SIGINT.
    FirstSigint,
    /// A periodic timer.
    PeriodicInterval,
    /// SIGINT.
    Sigint,
    /// SIGALRM.
    Sigalrm,
    /// SIGTERM (a container being stopped).
    Sigterm,
    /// SIGTSTP.
    Sigtstp,
    /// SIGSTOP.
    Sigstop,
    /// A non-deterministic call.
    NonDeterministicCall,
    /// Start-up finished.
    Bootstrap,
    /// A transaction boundary.
    Transaction,
    /// Asked for explicitly (host API or the guest).
    Explicit,
}

/// What the process does once the snapshot is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Keep running.
    Resume,
    /// Keep running with journaling switched off.
    ResumeWithoutJournal,
    /// End the process (it will be restored from the snapshot).
    Stop,
}

/// What a thread does after leaving a safe point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Carry on.
    Continue,
    /// The process stops after this checkpoint: unwind.
    Exit,
}

/// Why a checkpoint failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Another checkpoint of the process is in progress.
    #[error("a checkpoint is already in progress")]
    Busy,
    /// The snapshot action reported an error.
    #[error("snapshot failed: {0}")]
    Action(String),
}

/// What the snapshot action sees.
pub struct Snapshot<'a> {
    /// Why it was taken.
    pub trigger: Trigger,
    /// State recorded by each thread that parked at a safe point.
    pub captures: &'a [(Tid, Vec<u8>)],
    /// How many threads were parked in interruptible waits instead.
    pub sleeping: usize,
}

/// The snapshot action: writes memory and thread states, typically to the journal.
pub type SnapshotAction = Box<dyn FnOnce(&Snapshot<'_>) -> Result<(), String> + Send>;

struct Done {
    result: Mutex<Option<Result<After, CheckpointError>>>,
    cv: Condvar,
    #[cfg(not(loom))]
    wakers: Mutex<Vec<std::task::Waker>>,
}

impl Done {
    fn finish(&self, r: Result<After, CheckpointError>) {
        *lock(&self.result) = Some(r);
        self.cv.notify_all();
        #[cfg(not(loom))]
        for w in lock(&self.wakers).drain(..) {
            w.wake();
        }
    }
}

/// The requester's handle on one checkpoint (clones watch the same one).
#[derive(Clone)]
pub struct Ticket {
    done: Arc<Done>,
}

impl Ticket {
    /// Blocks until the checkpoint finished; the `After` it was taken with, or why it failed.
    pub fn wait(&self) -> Result<After, CheckpointError> {
        let mut r = lock(&self.done.result);
        loop {
            if let Some(res) = r.clone() {
                return res;
            }
            r = wait(&self.done.cv, r, None);
        }
    }

    /// The result, if the checkpoint has finished.
    pub fn try_result(&self) -> Option<Result<After, CheckpointError>> {
        lock(&self.done.result).clone()
    }

    /// Like [`Ticket::wait`], giving up after `limit` (`None`: not finished by then).
    #[cfg(not(loom))]
    pub fn wait_timeout(
        &self,
        limit: std::time::Duration,
    ) -> Option<Result<After, CheckpointError>> {
        let deadline = std::time::Instant::now() + limit;
        let mut r = lock(&self.done.result);
        loop {
            if let Some(res) = r.clone() {
                return Some(res);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            r = wait(&self.done.cv, r, Some(deadline));
        }
    }
}

#[cfg(not(loom))]
impl std::future::Future for Ticket {
    type Output = Result<After, CheckpointError>;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        // Register before looking, so a finish in between still wakes us.
        lock(&self.done.wakers).push(cx.waker().clone());
        match self.try_result() {
            Some(r) => std::task::Poll::Ready(r),
            None => std::task::Poll::Pending,
        }
    }
}

struct Round {
    /// Every thread must park with a capture; sleepers do not count.
    capture: bool,
    /// A hold: no action runs; once `held`, the requester ends the round.
    hold: bool,
    held: bool,
    trigger: Trigger,
    after: After,
    action: Option<SnapshotAction>,
    captures: Vec<(Tid, Vec<u8>)>,
    parked: usize,
    done: Arc<Done>,
}

#[derive(Default)]
struct State {
    live: usize,
    sleeping: usize,
    round: Option<Round>,
    /// Rounds finished, so parked threads know theirs is over.
    completed: u64,
    journal_off: bool,
    /// Wake-ups from interruptible waits that were not a capture round's doing.
    wakeups: u64,
}

impl State {
    fn ready(&self) -> bool {
        self.round.as_ref().is_some_and(|r| {
            let asleep = if r.capture { 0 } else { self.sleeping };
            (r.action.is_some() || r.hold && !r.held) && r.parked + asleep >= self.live
        })
    }

    fn capturing(&self) -> bool {
        self.round.as_ref().is_some_and(|r| r.capture)
    }
}

/// The checkpoint barrier of one process.
#[derive(Default)]
pub struct Coordinator {
    requested: AtomicBool,
    /// A capture round is open: every thread is to unwind and park.
    capture: AtomicBool,
    state: Mutex<State>,
    cv: Condvar,
}

impl Coordinator {
    /// A barrier with no threads.
    pub fn new() -> Coordinator {
        Coordinator::default()
    }

    /// Whether journaling is still on (a checkpoint taken with
    /// [`After::ResumeWithoutJournal`] turns it off).
    pub fn journal_enabled(&self) -> bool {
        !lock(&self.state).journal_off
    }

    /// Whether a round is open (cheap; for the runtime's safe-point fast path). A hold
    /// counts: see [`Coordinator::is_busy`] for whether a new round would be refused.
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// Whether a round other than a hold is open, so that a round asked for now would be
    /// refused as busy (a hold is waited out instead).
    pub fn is_busy(&self) -> bool {
        self.is_requested() && lock(&self.state).round.as_ref().is_some_and(|r| !r.hold)
    }

    /// The threads parked in the open round so far (for naming those that are not).
    pub fn parked(&self) -> Vec<Tid> {
        lock(&self.state)
            .round
            .as_ref()
            .map_or_else(Vec::new, |r| r.captures.iter().map(|(t, _)| *t).collect())
    }

    /// Whether a capture round is open: a thread that can record its state should go to its
    /// safe point now, and interruptible waits end early so it can.
    pub fn capture_requested(&self) -> bool {
        self.capture.load(Ordering::Acquire)
    }

    /// Opens a round. The action runs once every thread is parked — possibly right here.
    pub fn request(
        &self,
        trigger: Trigger,
        after: After,
        action: SnapshotAction,
    ) -> Result<Ticket, CheckpointError> {
        self.open(false, trigger, after, action)
    }

    /// Opens a capture round: the action runs once every thread has parked with a capture.
    /// The caller wakes the process's threads so waiting ones notice.
    pub fn request_capture(
        &self,
        trigger: Trigger,
        after: After,
        action: SnapshotAction,
    ) -> Result<Ticket, CheckpointError> {
        self.open(true, trigger, after, action)
    }

    /// Ends an open round whose action has not started, failing it with `reason` (a capture
    /// round some thread cannot reach). Parked threads go on. `false` if there was nothing
    /// to cancel.
    pub fn cancel(&self, reason: &str) -> bool {
        let mut st = lock(&self.state);
        let Some(round) = st.round.as_mut() else {
            return false;
        };
        if round.action.take().is_none() {
            return false; // running: it will finish the round itself
        }
        let round = st.round.take().expect("checked above");
        st.completed += 1;
        self.requested.store(false, Ordering::Release);
        self.capture.store(false, Ordering::Release);
        round
            .done
            .finish(Err(CheckpointError::Action(reason.to_owned())));
        self.cv.notify_all();
        true
    }

    /// Holds every thread of the process — at its next safe point, or in the interruptible
    /// wait it sleeps in — until the returned [`Hold`] drops, waiting at most `limit` for
    /// them; `None` if some thread did not come (the round is then ended) or another round
    /// is open. `from_member`: the calling thread is one of the process's (it counts as
    /// held). `nudge`, called once the round is open, makes running threads look in at their
    /// safe points.
    #[cfg(not(loom))]
    pub fn hold(
        self: &Arc<Self>,
        limit: std::time::Duration,
        from_member: bool,
        nudge: impl FnOnce(),
    ) -> Option<Hold> {
        let deadline = std::time::Instant::now() + limit;
        let mut st = lock(&self.state);
        // Another hold goes first (a thread of the process waits for it as one held by it).
        if from_member {
            st.sleeping += 1;
            st = self.run_if_ready(st);
        }
        while st.round.as_ref().is_some_and(|r| r.hold) && std::time::Instant::now() < deadline {
            st = wait(&self.cv, st, Some(deadline));
        }
        if st.round.is_some() {
            if from_member {
                st.sleeping -= 1;
            }
            return None;
        }
        let done = Arc::new(Done {
            result: Mutex::new(None),
            cv: Condvar::new(),
            wakers: Mutex::new(Vec::new()),
        });
        st.round = Some(Round {
            capture: false,
            hold: true,
            held: false,
            trigger: Trigger::Explicit,
            after: After::Resume,
            action: None,
            captures: Vec::new(),
            parked: 0,
            done,
        });
        self.requested.store(true, Ordering::Release);
        drop(st);
        nudge();
        let mut st = self.run_if_ready(lock(&self.state));
        while !st.round.as_ref().is_some_and(|r| r.held) && std::time::Instant::now() < deadline {
            st = wait(&self.cv, st, Some(deadline));
        }
        let held = st.round.as_ref().is_some_and(|r| r.held);
        drop(st);
        let hold = Hold {
            coordinator: Arc::clone(self),
            from_member,
        };
        // Not held: dropping it ends the round.
        held.then_some(hold)
    }

    fn open(
        &self,
        capture: bool,
        trigger: Trigger,
        after: After,
        action: SnapshotAction,
    ) -> Result<Ticket, CheckpointError> {
        let done = Arc::new(Done {
            result: Mutex::new(None),
            cv: Condvar::new(),
            #[cfg(not(loom))]
            wakers: Mutex::new(Vec::new()),
        });
        let mut st = lock(&self.state);
        // A hold is short (and bounded): wait it out.
        while st.round.as_ref().is_some_and(|r| r.hold) {
            st = wait(&self.cv, st, None);
        }
        if st.round.is_some() {
            return Err(CheckpointError::Busy);
        }
        st.round = Some(Round {
            capture,
            hold: false,
            held: false,
            trigger,
            after,
            action: Some(action),
            captures: Vec::new(),
            parked: 0,
            done: Arc::clone(&done),
        });
        self.requested.store(true, Ordering::Release);
        self.capture.store(capture, Ordering::Release);
        let st = self.run_if_ready(st);
        drop(st);
        Ok(Ticket { done })
    }

    /// Called by a running thread wherever it can stop: sits out a hold (see
    /// [`Coordinator::hold`]) until it ends; nothing else.
    pub fn hold_point(&self) {
        if !self.is_requested() {
            return;
        }
        let mut st = lock(&self.state);
        let mine = st.completed;
        match st.round.as_mut() {
            Some(r) if r.hold && !r.held => r.parked += 1,
            _ => return,
        }
        st = self.run_if_ready(st);
        while st.completed == mine {
            st = wait(&self.cv, st, None);
        }
    }

    /// Called by a thread at a safe point: records `capture()` and parks until the round ends.
    pub fn safe_point(&self, tid: Tid, capture: impl FnOnce() -> Vec<u8>) -> Resume {
        if !self.is_requested() {
            return Resume::Continue;
        }
        let mut st = lock(&self.state);
        let mine = st.completed;
        let Some(round) = st.round.as_mut() else {
            return Resume::Continue;
        };
        let done = Arc::clone(&round.done);
        if round.hold {
            // Nothing to record: held where it is.
            if !round.held {
                round.parked += 1;
                st = self.run_if_ready(st);
            }
        } else if round.action.is_some() {
            round.captures.push((tid, capture()));
            round.parked += 1;
            st = self.run_if_ready(st);
        }
        // Otherwise the action is already running; either way, wait for the round to end.
        while st.completed == mine {
            st = wait(&self.cv, st, None);
        }
        drop(st);
        let result = lock(&done.result).clone();
        match result {
            Some(Ok(After::Stop)) => Resume::Exit,
            _ => Resume::Continue,
        }
    }

    /// Runs the action if every thread is parked. Called with the lock held; returns it.
    fn run_if_ready<'a>(
        &'a self,
        mut st: crate::sync::MutexGuard<'a, State>,
    ) -> crate::sync::MutexGuard<'a, State> {
        if !st.ready() {
            return st;
        }
        let round = st.round.as_mut().expect("ready implies a round");
        if round.hold {
            round.held = true;
            self.cv.notify_all();
            return st;
        }
        let action = round.action.take().expect("ready implies an action");
        let captures = std::mem::take(&mut round.captures);
        let (trigger, sleeping) = (round.trigger, st.sleeping);
        drop(st);
        let result = action(&Snapshot {
            trigger,
            captures: &captures,
            sleeping,
        });
        let mut st = lock(&self.state);
        let round = st.round.take().expect("only the runner ends a round");
        let outcome = match result {
            Ok(()) => {
                if round.after == After::ResumeWithoutJournal {
                    st.journal_off = true;
                }
                Ok(round.after)
            }
            Err(e) => Err(CheckpointError::Action(e)),
        };
        st.completed += 1;
        self.requested.store(false, Ordering::Release);
        self.capture.store(false, Ordering::Release);
        round.done.finish(outcome);
        self.cv.notify_all();
        st
    }

    /// Counts a new thread in. A thread of the process that spawns it waits out an open round
    /// counted as asleep (`from_member`), so the round can finish without it.
    pub fn register_thread(&self, from_member: bool) {
        let mut st = lock(&self.state);
        // A capture round waits for the new thread too: it parks at its first safe point.
        if st.round.is_some() && !st.capturing() {
            if from_member {
                st.sleeping += 1;
                st = self.run_if_ready(st);
            }
            while st.round.is_some() {
                st = wait(&self.cv, st, None);
            }
            if from_member {
                st.sleeping -= 1;
            }
        }
        st.live += 1;
    }

    /// Counts a thread out; if it was the last one the round waited for, runs the action.
    pub fn unregister_thread(&self) {
        let mut st = lock(&self.state);
        st.live = st.live.saturating_sub(1);
        drop(self.run_if_ready(st));
    }

    /// Marks the calling thread as parked in an interruptible wait until the guard drops.
    /// Dropping it while a round is open blocks until the round ends: a thread woken mid-
    /// snapshot must not change state the snapshot is reading.
    pub fn sleep(&self) -> SleepGuard<'_> {
        let mut st = lock(&self.state);
        st.sleeping += 1;
        drop(self.run_if_ready(st));
        SleepGuard { coordinator: self }
    }

    /// Whether every thread is asleep in an interruptible wait (and no round is open), and
    /// how many times a thread woke from one other than for a snapshot: while a process stays
    /// idle the count stays put, snapshots included (the idle trigger keys on it).
    pub fn idleness(&self) -> (bool, u64) {
        let st = lock(&self.state);
        let idle = st.live > 0 && st.sleeping >= st.live && st.round.is_none();
        (idle, st.wakeups)
    }

    /// Threads registered.
    pub fn live(&self) -> usize {
        lock(&self.state).live
    }
}

/// See [`Coordinator::hold`]: the process's threads stay held until this drops.
pub struct Hold {
    coordinator: Arc<Coordinator>,
    from_member: bool,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let c = &self.coordinator;
        let mut st = lock(&c.state);
        if self.from_member {
            st.sleeping -= 1;
        }
        if let Some(round) = st.round.take() {
            debug_assert!(round.hold, "a hold's round is ended by its hold");
            st.completed += 1;
            c.requested.store(false, Ordering::Release);
        }
        c.cv.notify_all();
    }
}

/// See [`Coordinator::sleep`].
pub struct SleepGuard<'a> {
    coordinator: &'a Coordinator,
}

impl Drop for SleepGuard<'_> {
    fn drop(&mut self) {
        let c = self.coordinator;
        let mut st = lock(&c.state);
        // In a capture round the thread goes on to its safe point instead.
        while st.round.is_some() && !st.capturing() {
            st = wait(&c.cv, st, None);
        }
        if !st.capturing() {
            st.wakeups += 1;
        }
        st.sleeping -= 1;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn noop() -> SnapshotAction {
        Box::new(|_: &Snapshot<'_>| Ok(()))
    }

    fn ok_action(counter: Arc<AtomicUsize>) -> SnapshotAction {
        Box::new(move |s: &Snapshot<'_>| {
            counter.fetch_add(1, Ordering::SeqCst);
            assert!(s.captures.len() + s.sleeping > 0 || s.captures.is_empty());
            Ok(())
        })
    }

    #[test]
    fn a_capture_round_waits_for_sleepers_to_park_and_never_blocks_their_wake_up() {
        let c = Arc::new(Coordinator::new());
        c.register_thread(false);
        let guard = c.sleep();
        let n = Arc::new(AtomicUsize::new(0));
        let t = c
            .request_capture(Trigger::Explicit, After::Resume, ok_action(Arc::clone(&n)))
            .unwrap();
        assert!(c.capture_requested());
        assert_eq!(t.try_result(), None, "a sleeper is not captured");
        drop(guard); // returns at once in a capture round
                     // A thread started meanwhile is counted in without waiting.
        c.register_thread(true);
        let c2 = Arc::clone(&c);
        let other = std::thread::spawn(move || c2.safe_point(2, || vec![2]));
        assert_eq!(c.safe_point(1, || vec![1]), Resume::Continue);
        assert_eq!(other.join().unwrap(), Resume::Continue);
        assert_eq!(t.wait(), Ok(After::Resume));
        assert_eq!(n.load(Ordering::SeqCst), 1);
        assert!(!c.capture_requested());
    }

    #[test]
    fn a_cancelled_round_fails_and_lets_parked_threads_go_on() {
        let c = Arc::new(Coordinator::new());
        c.register_thread(false);
        c.register_thread(false);
        let t = c
            .request_capture(Trigger::Explicit, After::Stop, noop())
            .unwrap();
        let c2 = Arc::clone(&c);
        let parked = std::thread::spawn(move || c2.safe_point(1, Vec::new));
        // The other thread never arrives.
        while lock(&c.state).round.as_ref().is_some_and(|r| r.parked == 0) {
            std::thread::yield_now();
        }
        assert!(c.cancel("thread 2 cannot be captured"));
        assert_eq!(parked.join().unwrap(), Resume::Continue);
        assert_eq!(
            t.wait(),
            Err(CheckpointError::Action(
                "thread 2 cannot be captured".into()
            ))
        );
        assert!(!c.cancel("twice"));
        assert!(!c.is_requested() && !c.capture_requested());
    }

    #[test]
    fn idleness_counts_wake_ups_but_not_those_a_capture_round_causes() {
        let c = Arc::new(Coordinator::new());
        assert_eq!(c.idleness(), (false, 0), "no threads: not idle");
        c.register_thread(false);
        c.register_thread(false);
        let a = c.sleep();
        assert_eq!(c.idleness(), (false, 0), "one of two asleep");
        let b = c.sleep();
        assert_eq!(c.idleness(), (true, 0));
        drop(b); // a real wake-up
        assert_eq!(c.idleness(), (false, 1));
        let b = c.sleep();
        assert_eq!(c.idleness(), (true, 1));
        // A snapshot wakes both; they park, the round ends, they sleep again.
        let t = c
            .request_capture(Trigger::Idle, After::Resume, noop())
            .unwrap();
        assert_eq!(c.idleness(), (false, 1), "a round is open");
        drop(a);
        drop(b);
        let c2 = Arc::clone(&c);
        let other = std::thread::spawn(move || c2.safe_point(2, Vec::new));
        assert_eq!(c.safe_point(1, Vec::new), Resume::Continue);
        other.join().unwrap();
        assert_eq!(t.wait(), Ok(After::Resume));
        let _a = c.sleep();
        let _b = c.sleep();
        assert_eq!(
            c.idleness(),
            (true, 1),
            "the snapshot's wake-ups do not count"
        );
    }

    #[test]
    fn all_asleep_means_the_requester_runs_it() {
        let c = Coordinator::new();
        c.register_thread(false);
        let _g = c.sleep();
        let n = Arc::new(AtomicUsize::new(0));
        let t = c
            .request(Trigger::Explicit, After::Resume, ok_action(Arc::clone(&n)))
            .unwrap();
        assert_eq!(t.try_result(), Some(Ok(After::Resume)));
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn last_thread_to_park_runs_it_once_and_all_resume() {
        for _ in 0..50 {
            let c = Arc::new(Coordinator::new());
            for _ in 0..4 {
                c.register_thread(false);
            }
            let n = Arc::new(AtomicUsize::new(0));
            let seen = Arc::new(Mutex::new(Vec::new()));
            let s2 = Arc::clone(&seen);
            let n2 = Arc::clone(&n);
            let ticket = c
                .request(
                    Trigger::Explicit,
                    After::Resume,
                    Box::new(move |s: &Snapshot<'_>| {
                        n2.fetch_add(1, Ordering::SeqCst);
                        lock(&s2).extend(s.captures.iter().map(|(t, _)| *t));
                        Ok(())
                    }),
                )
                .unwrap();
            let hs: Vec<_> = (0..4u32)
                .map(|tid| {
                    let c = Arc::clone(&c);
                    std::thread::spawn(move || c.safe_point(tid, || vec![tid as u8]))
                })
                .collect();
            for h in hs {
                assert_eq!(h.join().unwrap(), Resume::Continue);
            }
            assert_eq!(ticket.wait(), Ok(After::Resume));
            assert_eq!(n.load(Ordering::SeqCst), 1);
            let mut tids = lock(&seen).clone();
            tids.sort();
            assert_eq!(tids, vec![0, 1, 2, 3]);
            assert!(!c.is_requested());
        }
    }

    #[test]
    fn exiting_thread_completes_the_round() {
        let c = Arc::new(Coordinator::new());
        c.register_thread(false);
        c.register_thread(false);
        let n = Arc::new(AtomicUsize::new(0));
        let ticket = c
            .request(Trigger::Explicit, After::Stop, ok_action(Arc::clone(&n)))
            .unwrap();
        let c2 = Arc::clone(&c);
        let h = std::thread::spawn(move || c2.safe_point(1, Vec::new));
        c.unregister_thread();
        assert_eq!(
            h.join().unwrap(),
            Resume::Exit,
            "stop-after-checkpoint unwinds"
        );
        assert_eq!(ticket.wait(), Ok(After::Stop));
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn action_error_reaches_the_requester_and_releases_threads() {
        let c = Arc::new(Coordinator::new());
        c.register_thread(false);
        let t = c
            .request(
                Trigger::Explicit,
                After::Stop,
                Box::new(|_: &Snapshot<'_>| Err("disk full".into())),
            )
            .unwrap();
        assert_eq!(
            c.safe_point(1, Vec::new),
            Resume::Continue,
            "a failed stop does not stop"
        );
        assert_eq!(t.wait(), Err(CheckpointError::Action("disk full".into())));
        assert!(c.journal_enabled());
    }

    #[test]
    fn busy_and_journal_off() {
        let c = Arc::new(Coordinator::new());
        c.register_thread(false);
        let t = c
            .request(Trigger::Explicit, After::ResumeWithoutJournal, noop())
            .unwrap();
        assert_eq!(
            c.request(Trigger::Idle, After::Resume, noop()).err(),
            Some(CheckpointError::Busy)
        );
        c.safe_point(1, Vec::new);
        assert_eq!(t.wait(), Ok(After::ResumeWithoutJournal));
        assert!(!c.journal_enabled());
    }

    #[test]
    fn member_spawning_during_a_round_does_not_deadlock() {
        let c = Arc::new(Coordinator::new());
        c.register_thread(false);
        let t = c.request(Trigger::Explicit, After::Resume, noop()).unwrap();
        // The only thread spawns another: it counts as asleep, so the round completes, then
        // the new thread is counted.
        c.register_thread(true);
        assert_eq!(t.wait(), Ok(After::Resume));
        assert_eq!(c.live(), 2);
    }

    #[test]
    fn ticket_is_a_future() {
        let c = Coordinator::new();
        let t = c.request(Trigger::Explicit, After::Resume, noop()).unwrap();
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut t = std::pin::pin!(t);
        assert_eq!(
            std::future::Future::poll(t.as_mut(), &mut cx),
            std::task::Poll::Ready(Ok(After::Resume))
        );
    }

    #[test]
    fn a_hold_keeps_threads_at_their_safe_points_and_sleepers_asleep_until_it_drops() {
        use std::sync::atomic::AtomicBool;
        let c = Arc::new(Coordinator::new());
        c.register_thread(false);
        c.register_thread(false);
        let asleep = c.sleep();
        let left = Arc::new(AtomicBool::new(false));
        let (c2, l2) = (Arc::clone(&c), Arc::clone(&left));
        let runner = std::thread::spawn(move || {
            // A running thread: it looks at its safe point until a round is open.
            while !c2.is_requested() {
                std::thread::yield_now();
            }
            c2.hold_point();
            l2.store(true, Ordering::SeqCst);
        });
        let hold = c
            .hold(std::time::Duration::from_secs(60), false, || {})
            .expect("both threads are held");
        assert!(!c.capture_requested());
        assert!(!left.load(Ordering::SeqCst), "held until the hold drops");
        drop(hold);
        runner.join().unwrap();
        assert!(left.load(Ordering::SeqCst));
        drop(asleep); // returns at once: the round is over
        assert!(!c.is_requested());
        assert_eq!(c.idleness().1, 1, "a wake-up after a hold counts");
    }

    #[test]
    fn a_hold_a_thread_never_comes_to_ends_and_leaves_no_round_open() {
        let c = Arc::new(Coordinator::new());
        c.register_thread(false);
        assert!(c
            .hold(std::time::Duration::from_millis(1), false, || {})
            .is_none());
        assert!(!c.is_requested());
        // The caller itself, a thread of the process, counts as held.
        let hold = c.hold(std::time::Duration::from_secs(60), true, || {});
        assert!(hold.is_some());
        assert!(
            c.is_requested() && !c.is_busy(),
            "a new round waits a hold out"
        );
        // A snapshot asked for meanwhile waits for the hold to end.
        let c2 = Arc::clone(&c);
        let asking = std::thread::spawn(move || {
            c2.request(Trigger::Explicit, After::Resume, noop())
                .expect("the hold's round is over")
        });
        drop(hold);
        while !c.is_requested() {
            std::thread::yield_now();
        }
        assert!(c.is_busy(), "the snapshot's round is open");
        drop(c.sleep()); // the only thread asleep: the round runs
        assert_eq!(asking.join().unwrap().wait(), Ok(After::Resume));
        assert!(!c.is_busy());
    }
}
