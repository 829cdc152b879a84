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

/// Whether a thread's next futex wait spins first, learned from its last ones: spins that
/// keep missing mean this thread's waits are long (a timed sleep, a lock held for a while),
/// and spinning then only burns a CPU the thread it waits for may need — the scheduler often
/// puts a woken thread on its waker's CPU, where the waker would be spinning. Each miss takes
/// a credit, a hit restores them all; with none left a wait sleeps at once, and one woken
/// by a wake (not a timeout) within [`RESPIN`] restores them: the wake-up itself costs a
/// sleeper several microseconds, so a wait a spin would have caught looks longer than it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spin(u8);

/// Misses in a row before a thread stops spinning.
const SPIN_CREDITS: u8 = 4;

/// How soon a sleeping waiter must be woken for spinning to come back.
const RESPIN: std::time::Duration = std::time::Duration::from_micros(100);

impl Default for Spin {
    fn default() -> Spin {
        Spin(SPIN_CREDITS)
    }
}

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
    /// and this call is never lost. `interrupted()` says whether the thread's interrupt is
    /// up (a signal, kill or snapshot wants it): the spin before sleeping ends at once then.
    pub fn wait(
        &self,
        thread: &Arc<Thread>,
        addr: u64,
        still_expected: impl FnOnce() -> bool,
        deadline: Option<Instant>,
        interrupted: impl Fn() -> bool,
        spin: &mut Spin,
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
        } else if spin.0 > 0
            && crate::spin::until(SPIN, || me.woken.load(Ordering::Acquire) || interrupted())
            && me.woken.load(Ordering::Acquire)
        {
            // Handed over from another CPU while spinning: no sleep, no wake-up to wait for.
            *spin = Spin::default();
            Woke::Woken
        } else {
            let spun = spin.0 > 0;
            let asleep = Instant::now();
            let woke = match thread.wait_for(deadline, None, || {
                me.woken.load(Ordering::Acquire).then_some(())
            }) {
                Ok(()) => Woke::Woken,
                Err(WaitError::TimedOut) => Woke::TimedOut,
                Err(e) => Woke::Interrupted(e),
            };
            *spin = if spun {
                Spin(spin.0 - 1)
            } else if woke == Woke::Woken && asleep.elapsed() <= RESPIN {
                Spin::default()
            } else {
                *spin
            };
            woke
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
        assert_eq!(
            f.wait(&t, 8, || false, None, || false, &mut Spin::default()),
            Woke::NotEqual
        );
        let soon = Some(Instant::now() + std::time::Duration::from_millis(1));
        assert_eq!(
            f.wait(&t, 8, || true, soon, || false, &mut Spin::default()),
            Woke::TimedOut
        );
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
                    f2.wait(
                        &t,
                        0,
                        || w2.load(Ordering::SeqCst) == 2 * i,
                        None,
                        || false,
                        &mut Spin::default(),
                    );
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
                f.wait(
                    &t,
                    0,
                    || word.load(Ordering::SeqCst) == 2 * i + 1,
                    None,
                    || false,
                    &mut Spin::default(),
                );
            }
        }
        h.join().unwrap();
    }

    #[test]
    fn a_kill_ends_the_wait() {
        let f = Arc::new(Futexes::default());
        let t = thread(3);
        let (f2, t2) = (Arc::clone(&f), Arc::clone(&t));
        let h = std::thread::spawn(move || {
            f2.wait(&t2, 4, || true, None, || false, &mut Spin::default())
        });
        t.kill();
        assert_eq!(h.join().unwrap(), Woke::Interrupted(WaitError::Killed));
    }

    /// An interrupt that is up ends the spin before sleeping at its first look: the thread
    /// goes to its interruptible wait (which a kill here ends) rather than spinning on, so a
    /// signal sent to a thread in a futex wait is not held up by the spin (the spin once
    /// looked only for a wake: a signal's latency grew from 2 to 11 µs).
    #[test]
    fn the_spin_ends_when_the_interrupt_is_up() {
        let f = Futexes::default();
        let t = thread(4);
        t.kill();
        let asked = std::sync::atomic::AtomicU32::new(0);
        let woke = f.wait(
            &t,
            4,
            || true,
            None,
            || {
                asked.fetch_add(1, Ordering::Relaxed);
                true
            },
            &mut Spin::default(),
        );
        assert_eq!(woke, Woke::Interrupted(WaitError::Killed));
        assert_eq!(
            asked.load(Ordering::Relaxed),
            1,
            "asked once, then went to wait"
        );
    }

    /// Waits that keep missing their spin (timed sleeps) stop spinning after a few; a wait
    /// handed over while spinning gives back every credit.
    #[test]
    fn spinning_stops_after_misses_and_comes_back_after_a_hit() {
        let f = Futexes::default();
        let t = thread(5);
        let mut spin = Spin::default();
        for _ in 0..SPIN_CREDITS {
            let soon = Some(Instant::now() + std::time::Duration::from_millis(1));
            assert_eq!(
                f.wait(&t, 8, || true, soon, || false, &mut spin),
                Woke::TimedOut
            );
        }
        assert_eq!(spin, Spin(0), "no credit left");
        // Woken as it starts (the value check wakes it): taken while spinning, had it spun.
        let mut spin = Spin(1);
        let woke = f.wait(&t, 8, || f.wake(8, 1) == 1, None, || false, &mut spin);
        assert_eq!(woke, Woke::Woken);
        assert_eq!(spin, Spin::default());
    }
}
