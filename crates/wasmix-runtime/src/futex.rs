//! Futexes over a process's shared memory: WASIX `futex_*` and the rewritten
//! `memory.atomic.wait*/notify` share one table, so either kind of waiter is woken by either
//! kind of wake. Waits go through [`Thread::wait_for`], so signals and kills reach them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmix_process::{Thread, WaitError};

/// How long a waiter spins before it sleeps: about what a wake from a thread running on
/// another CPU takes to arrive when the two hand a word back and forth, a fraction of the
/// two context switches a sleep costs.
const SPIN: std::time::Duration = std::time::Duration::from_micros(20);

struct Waiter {
    thread: Arc<Thread>,
    woken: AtomicBool,
}

/// How a wait ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Woke {
    /// The word did not hold the expected value; no wait happened.
    NotEqual,
    /// A wake reached this waiter.
    Woken,
    /// The deadline passed.
    TimedOut,
    /// A signal or kill ended the wait.
    Interrupted(WaitError),
}

/// The waiters of one process, by address.
#[derive(Default)]
pub(crate) struct Futexes {
    table: Mutex<HashMap<u64, VecDeque<Arc<Waiter>>>>,
}

impl Futexes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, VecDeque<Arc<Waiter>>>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits on `addr` while `still_expected()` holds, until woken, `deadline`, or a signal.
    /// The waiter is queued before the value is checked, so a wake between the guest's store
    /// and this call is never lost.
    pub fn wait(
        &self,
        thread: &Arc<Thread>,
        addr: u64,
        still_expected: impl FnOnce() -> bool,
        deadline: Option<Instant>,
    ) -> Woke {
        let me = Arc::new(Waiter {
            thread: Arc::clone(thread),
            woken: AtomicBool::new(false),
        });
        self.lock()
            .entry(addr)
            .or_default()
            .push_back(Arc::clone(&me));
        let outcome = if !still_expected() {
            Woke::NotEqual
        } else if crate::spin::until(SPIN, || me.woken.load(Ordering::Acquire)) {
            // Handed over from another CPU while spinning: no sleep, no wake-up to wait for.
            Woke::Woken
        } else {
            match thread.wait_for(deadline, None, || {
                me.woken.load(Ordering::Acquire).then_some(())
            }) {
                Ok(()) => Woke::Woken,
                Err(WaitError::TimedOut) => Woke::TimedOut,
                Err(e) => Woke::Interrupted(e),
            }
        };
        self.remove(addr, &me);
        if me.woken.load(Ordering::Acquire) && outcome != Woke::Woken {
            // A wake was spent on us as we left: report it, so it is not lost.
            return Woke::Woken;
        }
        outcome
    }

    fn remove(&self, addr: u64, me: &Arc<Waiter>) {
        let mut table = self.lock();
        if let Some(q) = table.get_mut(&addr) {
            q.retain(|w| !Arc::ptr_eq(w, me));
            if q.is_empty() {
                table.remove(&addr);
            }
        }
    }

    /// Wakes up to `count` waiters on `addr`, oldest first; returns how many.
    pub fn wake(&self, addr: u64, count: u32) -> u32 {
        let woken: Vec<Arc<Waiter>> = {
            let mut table = self.lock();
            let Some(q) = table.get_mut(&addr) else {
                return 0;
            };
            let mut out = Vec::new();
            while out.len() < count as usize {
                let Some(w) = q.pop_front() else { break };
                w.woken.store(true, Ordering::Release);
                out.push(w);
            }
            if q.is_empty() {
                table.remove(&addr);
            }
            out
        };
        for w in &woken {
            w.thread.wake();
        }
        woken.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use wasmix_process::{Coordinator, SigSet};

    fn thread(tid: u32) -> Arc<Thread> {
        Arc::new(Thread::new(
            tid,
            Arc::new(Coordinator::new()),
            SigSet::EMPTY,
        ))
    }

    #[test]
    fn value_mismatch_does_not_wait_and_timeouts_expire() {
        let f = Futexes::default();
        let t = thread(1);
        assert_eq!(f.wait(&t, 8, || false, None), Woke::NotEqual);
        let soon = Some(Instant::now() + std::time::Duration::from_millis(1));
        assert_eq!(f.wait(&t, 8, || true, soon), Woke::TimedOut);
        assert_eq!(f.wake(8, 1), 0, "no waiter left behind");
    }

    #[test]
    fn ping_pong_never_loses_a_wake() {
        let f = Arc::new(Futexes::default());
        let word = Arc::new(AtomicU32::new(0));
        let (f2, w2) = (Arc::clone(&f), Arc::clone(&word));
        let h = std::thread::spawn(move || {
            let t = thread(2);
            for i in 0..2000u32 {
                while w2.load(Ordering::SeqCst) != 2 * i + 1 {
                    f2.wait(&t, 0, || w2.load(Ordering::SeqCst) == 2 * i, None);
                }
                w2.store(2 * i + 2, Ordering::SeqCst);
                f2.wake(0, 1);
            }
        });
        let t = thread(1);
        for i in 0..2000u32 {
            word.store(2 * i + 1, Ordering::SeqCst);
            f.wake(0, 1);
            while word.load(Ordering::SeqCst) != 2 * i + 2 {
                f.wait(&t, 0, || word.load(Ordering::SeqCst) == 2 * i + 1, None);
            }
        }
        h.join().unwrap();
    }

    #[test]
    fn a_kill_ends_the_wait() {
        let f = Arc::new(Futexes::default());
        let t = thread(3);
        let (f2, t2) = (Arc::clone(&f), Arc::clone(&t));
        let h = std::thread::spawn(move || f2.wait(&t2, 4, || true, None));
        t.kill();
        assert_eq!(h.join().unwrap(), Woke::Interrupted(WaitError::Killed));
    }
}
