//! Many threads joining, signalling and checkpointing at once. Outcomes are counted, not timed:
//! every test ends with exact totals, and nothing sleeps to order events.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use wasmix_process::*;

#[test]
fn families_spawn_signal_and_reap_concurrently() {
    let cp = ControlPlane::new(Limits {
        max_processes: 512,
        max_threads: 2048,
    });
    let root = cp.spawn(None, [0; 32]).unwrap();
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (cp, root) = (cp.clone(), Arc::clone(&root));
            std::thread::spawn(move || {
                let parent = cp.spawn(Some(&root), [0; 32]).unwrap();
                let waiter = parent.main_thread().unwrap();
                let mut reaped = 0;
                for i in 0..200 {
                    let child = cp.spawn(Some(&parent), [0; 32]).unwrap();
                    let extra = child.spawn_thread(SigSet::EMPTY, false).unwrap();
                    // Half die of a signal, half exit; their threads unwind on other OS threads.
                    if i % 2 == 0 {
                        child.signal(Signal::TERM).unwrap();
                    } else {
                        child.exit(ExitStatus::Exited(w));
                    }
                    let c2 = Arc::clone(&child);
                    let t = std::thread::spawn(move || {
                        c2.thread_exited(extra.tid());
                        c2.thread_exited(c2.pid());
                    });
                    let (pid, status) = parent
                        .join_child(Child::Any, false, Some(&waiter))
                        .unwrap()
                        .unwrap();
                    assert_eq!(pid, child.pid());
                    let expected = if i % 2 == 0 {
                        ExitStatus::Signaled(Signal::TERM)
                    } else {
                        ExitStatus::Exited(w)
                    };
                    assert_eq!(status, expected);
                    t.join().unwrap();
                    reaped += 1;
                }
                parent.exit(ExitStatus::Exited(0));
                parent.thread_exited(parent.pid());
                reaped
            })
        })
        .collect();
    let total: i32 = workers.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 8 * 200);
    let reaped = root.join_children(None).unwrap();
    assert_eq!(reaped.len(), 8);
    assert_eq!(cp.process_count(), 1, "everything reaped, nothing leaked");
    assert_eq!(cp.thread_count(), 1);
}

#[test]
fn checkpoints_signals_and_thread_churn_together() {
    let cp = ControlPlane::default();
    let p = cp.spawn(None, [0; 32]).unwrap();
    p.set_disposition(Signal::USR1, Disposition::Handler(1))
        .unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Worker threads alternate between safe points, handlers and interruptible waits.
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let t = p.spawn_thread(SigSet::EMPTY, false).unwrap();
            let (p, handled, stop) = (Arc::clone(&p), Arc::clone(&handled), Arc::clone(&stop));
            std::thread::spawn(move || {
                let q = WaitQueue::new();
                while !stop.load(Ordering::Acquire) {
                    p.checkpoint()
                        .safe_point(t.tid(), || t.tid().to_le_bytes().to_vec());
                    if let Action::Handler(Signal::USR1, _) = p.next_action(&t) {
                        handled.fetch_add(1, Ordering::AcqRel);
                    }
                    let _ = t.wait_for(Some(std::time::Instant::now()), Some(&q), || None::<()>);
                }
                // Drain what is still pending so the count is exact.
                while let Action::Handler(..) = p.next_action(&t) {
                    handled.fetch_add(1, Ordering::AcqRel);
                }
                p.thread_exited(t.tid());
            })
        })
        .collect();
    // Threads that start and exit while checkpoints run.
    let churn = {
        let p = Arc::clone(&p);
        std::thread::spawn(move || {
            for _ in 0..200 {
                let t = p.spawn_thread(SigSet::full(), false).unwrap();
                p.checkpoint().safe_point(t.tid(), Vec::new);
                p.thread_exited(t.tid());
            }
        })
    };
    // The main thread blocks USR1 (so workers take it) and counts as asleep while it waits
    // for each checkpoint.
    let main = p.main_thread().unwrap();
    p.set_mask(&main, SigSet::of(&[Signal::USR1]));
    let snapshots = Arc::new(AtomicUsize::new(0));
    for sent in 1..=100 {
        let s = Arc::clone(&snapshots);
        {
            let _asleep = main.checkpoint().sleep();
            let ticket = p
                .checkpoint()
                .request(
                    Trigger::Explicit,
                    After::Resume,
                    Box::new(move |_: &Snapshot<'_>| {
                        s.fetch_add(1, Ordering::AcqRel);
                        Ok(())
                    }),
                )
                .unwrap();
            assert_eq!(ticket.wait(), Ok(After::Resume));
        }
        p.signal(Signal::USR1).unwrap();
        // Standard signals coalesce: let a worker take this one before sending the next.
        while handled.load(Ordering::Acquire) < sent {
            std::thread::yield_now();
        }
    }
    churn.join().unwrap();
    stop.store(true, Ordering::Release);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(
        snapshots.load(Ordering::Acquire),
        100,
        "each checkpoint ran its action once"
    );
    assert_eq!(
        handled.load(Ordering::Acquire),
        100,
        "every signal handled exactly once"
    );
    assert_eq!(p.next_action(&main), Action::None, "nothing left over");
}
