//! Loom models of the three places where a lost wake-up or a double action would hide:
//! the interruptible wait, signal delivery racing a thread's exit, and the checkpoint barrier.
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p wasmix-process --test loom --release`
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use wasmix_process::*;

fn thread(tid: Tid) -> Arc<Thread> {
    let cp = Arc::new(Coordinator::new());
    cp.register_thread(false);
    Arc::new(Thread::new(tid, cp, SigSet::EMPTY))
}

#[test]
fn a_wake_is_never_lost() {
    loom::model(|| {
        let t = thread(1);
        let q = Arc::new(WaitQueue::new());
        let ready = Arc::new(AtomicBool::new(false));
        let waker = {
            let (q, ready) = (Arc::clone(&q), Arc::clone(&ready));
            loom::thread::spawn(move || {
                ready.store(true, Ordering::SeqCst);
                q.wake_all();
            })
        };
        let r = t.wait_for(None, Some(&q), || {
            ready.load(Ordering::SeqCst).then_some(())
        });
        assert_eq!(r, Ok(()));
        waker.join().unwrap();
    });
}

#[test]
fn a_signal_always_interrupts_the_wait() {
    loom::model(|| {
        let t = thread(1);
        let sender = {
            let t = Arc::clone(&t);
            loom::thread::spawn(move || assert!(t.deliver(Signal::USR1)))
        };
        assert_eq!(
            t.wait_for(None, None, || None::<()>),
            Err(WaitError::Interrupted)
        );
        sender.join().unwrap();
    });
}

#[test]
fn a_signal_racing_exit_is_either_taken_or_handed_back() {
    loom::model(|| {
        let t = thread(1);
        let sender = {
            let t = Arc::clone(&t);
            loom::thread::spawn(move || t.deliver(Signal::TERM))
        };
        let left = t.mark_exited();
        let delivered = sender.join().unwrap();
        // Never lost: either the exit returned it for re-routing, or delivery was refused.
        assert_eq!(delivered, left.contains(Signal::TERM));
    });
}

// In both barrier models the round is opened first: a safe point reached before any request
// returns at once and is not interesting; what matters is arrivals racing sleeps, wake-ups,
// exits and each other.

#[test]
fn the_barrier_runs_its_action_exactly_once() {
    loom::model(|| {
        let c = Arc::new(Coordinator::new());
        c.register_thread(false);
        c.register_thread(false);
        let runs = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&runs);
        let ticket = c
            .request(
                Trigger::Explicit,
                After::Resume,
                Box::new(move |_: &Snapshot<'_>| {
                    r.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }),
            )
            .unwrap();
        let parked = {
            let c = Arc::clone(&c);
            loom::thread::spawn(move || c.safe_point(0, Vec::new))
        };
        let sleeper = {
            let c = Arc::clone(&c);
            // Asleep in a wait, woken, then at a safe point.
            loom::thread::spawn(move || {
                drop(c.sleep());
                c.safe_point(1, Vec::new)
            })
        };
        assert_eq!(parked.join().unwrap(), Resume::Continue);
        assert_eq!(sleeper.join().unwrap(), Resume::Continue);
        assert_eq!(ticket.wait(), Ok(After::Resume));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn an_exit_during_the_round_cannot_deadlock_it() {
    loom::model(|| {
        let c = Arc::new(Coordinator::new());
        c.register_thread(false);
        c.register_thread(false);
        let ticket = c
            .request(
                Trigger::Explicit,
                After::Stop,
                Box::new(|_: &Snapshot<'_>| Ok(())),
            )
            .unwrap();
        let parked = {
            let c = Arc::clone(&c);
            loom::thread::spawn(move || c.safe_point(0, Vec::new))
        };
        let exiting = {
            let c = Arc::clone(&c);
            loom::thread::spawn(move || c.unregister_thread())
        };
        exiting.join().unwrap();
        assert_eq!(parked.join().unwrap(), Resume::Exit);
        assert_eq!(ticket.wait(), Ok(After::Stop));
    });
}
