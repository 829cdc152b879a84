//! The process model's rules, one test each. No sleeps are used to order events: threads wait
//! on the model's own wake-ups.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmix_process::*;

fn plane() -> ControlPlane {
    ControlPlane::new(Limits {
        max_processes: 64,
        max_threads: 256,
    })
}

/// Ends a process the way the runtime does when its main thread returns.
fn finish(p: &Arc<Process>, status: ExitStatus) {
    p.exit(status);
    for t in p.threads() {
        p.thread_exited(t.tid());
    }
}

#[test]
fn main_thread_tid_is_the_pid_and_ids_never_collide() {
    let cp = plane();
    let a = cp.spawn(None, [0; 32]).unwrap();
    assert_eq!(a.main_thread().unwrap().tid(), a.pid());
    let t = a.spawn_thread(SigSet::EMPTY, true).unwrap();
    let b = cp.spawn(Some(&a), [1; 32]).unwrap();
    let ids = [a.pid(), t.tid(), b.pid()];
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    assert_eq!(b.ppid(), a.pid());
    assert_eq!(cp.thread_count(), 3);
}

#[test]
fn limits_are_errors_not_hangs() {
    let cp = ControlPlane::new(Limits {
        max_processes: 3,
        max_threads: 5,
    });
    let root = cp.spawn(None, [0; 32]).unwrap();
    cp.spawn(Some(&root), [0; 32]).unwrap();
    cp.spawn(Some(&root), [0; 32]).unwrap();
    assert_eq!(
        cp.spawn(Some(&root), [0; 32]).err(),
        Some(LimitError::TooManyProcesses)
    );
    root.spawn_thread(SigSet::EMPTY, true).unwrap();
    root.spawn_thread(SigSet::EMPTY, true).unwrap();
    assert_eq!(
        root.spawn_thread(SigSet::EMPTY, true).err(),
        Some(LimitError::TooManyThreads)
    );
}

#[test]
fn reaped_processes_leave_the_table() {
    let cp = plane();
    let root = cp.spawn(None, [0; 32]).unwrap();
    for i in 0..2000 {
        let child = cp.spawn(Some(&root), [0; 32]).unwrap();
        finish(&child, ExitStatus::Exited(i % 7));
        let (pid, status) = root.join_child(Child::Any, false, None).unwrap().unwrap();
        assert_eq!((pid, status), (child.pid(), ExitStatus::Exited(i % 7)));
    }
    assert_eq!(cp.process_count(), 1);
    assert_eq!(cp.thread_count(), 1);
}

#[test]
fn first_exit_status_sticks_and_signals_are_distinguished() {
    let cp = plane();
    let root = cp.spawn(None, [0; 32]).unwrap();
    let a = cp.spawn(Some(&root), [0; 32]).unwrap();
    a.exit(ExitStatus::Exited(3));
    a.exit(ExitStatus::Exited(4));
    finish(&a, ExitStatus::Exited(5));
    assert_eq!(a.try_status(), Some(ExitStatus::Exited(3)));
    let b = cp.spawn(Some(&root), [0; 32]).unwrap();
    b.signal(Signal::TERM).unwrap();
    finish(&b, ExitStatus::Exited(0));
    assert_eq!(b.try_status(), Some(ExitStatus::Signaled(Signal::TERM)));
    assert_eq!(b.try_status().unwrap().code(), 143);
}

#[test]
fn waitpid_semantics() {
    let cp = plane();
    let root = cp.spawn(None, [0; 32]).unwrap();
    let me = root.main_thread().unwrap();
    let lonely = cp.spawn(Some(&root), [0; 32]).unwrap();
    assert_eq!(
        lonely.join_child(Child::Any, false, None),
        Err(JoinError::NoChild)
    );
    let a = cp.spawn(Some(&root), [0; 32]).unwrap();
    let b = cp.spawn(Some(&root), [0; 32]).unwrap();
    assert_eq!(
        root.join_child(Child::Any, true, Some(&me)),
        Ok(None),
        "WNOHANG with live children"
    );
    assert_eq!(
        root.join_child(Child::Pid(9999), true, Some(&me)),
        Err(JoinError::NoChild)
    );
    finish(&b, ExitStatus::Exited(2));
    // The zombie stays until reaped.
    assert!(cp.lookup(b.pid()).is_some());
    assert_eq!(
        root.join_child(Child::Pid(a.pid()), true, Some(&me)),
        Ok(None),
        "a specific pid ignores others"
    );
    assert_eq!(
        root.join_child(Child::Any, true, Some(&me)),
        Ok(Some((b.pid(), ExitStatus::Exited(2))))
    );
    assert!(cp.lookup(b.pid()).is_none(), "reaped");
    finish(&a, ExitStatus::Exited(1));
    finish(&lonely, ExitStatus::Exited(0));
    let mut all = root.join_children(Some(&me)).unwrap();
    all.sort_by_key(|x| x.0);
    assert_eq!(
        all,
        vec![
            (lonely.pid(), ExitStatus::Exited(0)),
            (a.pid(), ExitStatus::Exited(1))
        ]
    );
    assert_eq!(
        root.join_child(Child::Any, false, Some(&me)),
        Err(JoinError::NoChild)
    );
}

#[test]
fn blocked_join_wakes_on_child_exit_signal_and_kill() {
    let cp = plane();
    let root = cp.spawn(None, [0; 32]).unwrap();
    root.set_disposition(Signal::USR1, Disposition::Handler(1))
        .unwrap();
    let child = cp.spawn(Some(&root), [0; 32]).unwrap();
    let me = root.main_thread().unwrap();

    let (r2, m2) = (Arc::clone(&root), Arc::clone(&me));
    let h = std::thread::spawn(move || r2.join_child(Child::Any, false, Some(&m2)));
    finish(&child, ExitStatus::Exited(9));
    assert_eq!(
        h.join().unwrap(),
        Ok(Some((child.pid(), ExitStatus::Exited(9))))
    );

    let child = cp.spawn(Some(&root), [0; 32]).unwrap();
    let (r2, m2) = (Arc::clone(&root), Arc::clone(&me));
    let h = std::thread::spawn(move || r2.join_child(Child::Any, false, Some(&m2)));
    root.thread_signal(me.tid(), Signal::USR1).unwrap();
    assert_eq!(h.join().unwrap(), Err(JoinError::Interrupted));
    assert_eq!(me.take_signal(), Some(Signal::USR1));

    let (r2, m2) = (Arc::clone(&root), Arc::clone(&me));
    let h = std::thread::spawn(move || r2.join_child(Child::Any, false, Some(&m2)));
    root.signal(Signal::KILL).unwrap();
    assert_eq!(h.join().unwrap(), Err(JoinError::Killed));
    finish(&child, ExitStatus::Exited(0));
}

#[test]
fn process_signal_goes_to_one_thread_that_does_not_block_it() {
    let cp = plane();
    let p = cp.spawn(None, [0; 32]).unwrap();
    p.set_disposition(Signal::USR2, Disposition::Handler(7))
        .unwrap();
    let main = p.main_thread().unwrap();
    p.set_mask(&main, SigSet::of(&[Signal::USR2]));
    let t1 = p.spawn_thread(SigSet::EMPTY, true).unwrap();
    let t2 = p.spawn_thread(SigSet::EMPTY, true).unwrap();
    p.signal(Signal::USR2).unwrap();
    let receivers = [&main, &t1, &t2]
        .iter()
        .filter(|t| t.pending().contains(Signal::USR2))
        .count();
    assert_eq!(receivers, 1, "exactly one thread gets it, not a broadcast");
    assert!(
        !main.pending().contains(Signal::USR2),
        "not the thread that blocks it"
    );
    let who = if t1.has_deliverable() { &t1 } else { &t2 };
    assert_eq!(p.next_action(who), Action::Handler(Signal::USR2, 7));
    assert_eq!(p.next_action(who), Action::None);
}

#[test]
fn signal_blocked_everywhere_waits_for_an_unblock() {
    let cp = plane();
    let p = cp.spawn(None, [0; 32]).unwrap();
    p.set_disposition(Signal::HUP, Disposition::Handler(3))
        .unwrap();
    let main = p.main_thread().unwrap();
    p.set_mask(&main, SigSet::of(&[Signal::HUP]));
    p.signal(Signal::HUP).unwrap();
    assert!(!main.has_deliverable());
    p.set_mask(&main, SigSet::EMPTY);
    assert_eq!(p.next_action(&main), Action::Handler(Signal::HUP, 3));
}

#[test]
fn dispositions_default_ignore_handler_and_uncatchables() {
    let cp = plane();
    let p = cp.spawn(None, [0; 32]).unwrap();
    assert_eq!(
        p.set_disposition(Signal::KILL, Disposition::Ignore),
        Err(SignalError::Uncatchable(Signal::KILL))
    );
    assert_eq!(
        p.set_disposition(Signal::STOP, Disposition::Handler(1)),
        Err(SignalError::Uncatchable(Signal::STOP))
    );
    p.set_disposition(Signal::TERM, Disposition::Ignore)
        .unwrap();
    p.signal(Signal::TERM).unwrap();
    p.signal(Signal::CHLD).unwrap();
    p.signal(Signal::WINCH).unwrap();
    assert!(
        !p.is_exiting(),
        "ignored and default-ignored signals do nothing"
    );
    let main = p.main_thread().unwrap();
    assert_eq!(p.next_action(&main), Action::None);
    p.set_disposition(Signal::USR1, Disposition::Handler(5))
        .unwrap();
    let exec = p.dispositions_for_exec();
    assert_eq!(
        exec[Signal::USR1.number() as usize],
        Disposition::Default,
        "handlers reset on exec"
    );
    assert_eq!(
        exec[Signal::TERM.number() as usize],
        Disposition::Ignore,
        "ignored stays ignored"
    );
    p.signal(Signal::QUIT).unwrap();
    assert_eq!(p.next_action(&main), Action::Terminate);
}

#[test]
fn stop_and_continue() {
    let cp = plane();
    let p = cp.spawn(None, [0; 32]).unwrap();
    let main = p.main_thread().unwrap();
    p.signal(Signal::TSTP).unwrap();
    assert!(p.is_stopped());
    let (p2, m2) = (Arc::clone(&p), Arc::clone(&main));
    let h = std::thread::spawn(move || p2.next_action(&m2));
    p.signal(Signal::CONT).unwrap();
    assert_eq!(h.join().unwrap(), Action::None);
    assert!(!p.is_stopped());
    p.signal(Signal::STOP).unwrap();
    let (p2, m2) = (Arc::clone(&p), Arc::clone(&main));
    let h = std::thread::spawn(move || p2.next_action(&m2));
    p.signal(Signal::KILL).unwrap();
    assert_eq!(
        h.join().unwrap(),
        Action::Terminate,
        "SIGKILL ends a stopped process"
    );
}

#[test]
fn sigint_goes_to_the_children_a_parent_waits_for() {
    let cp = plane();
    let root = cp.spawn(None, [0; 32]).unwrap();
    let shell = cp.spawn(Some(&root), [0; 32]).unwrap();
    let job = cp.spawn(Some(&shell), [0; 32]).unwrap();
    // Set after the spawn: a child inherits dispositions, and the job keeps the default.
    shell
        .set_disposition(Signal::INT, Disposition::Handler(1))
        .unwrap();
    let sh_main = shell.main_thread().unwrap();
    let (s2, m2) = (Arc::clone(&shell), Arc::clone(&sh_main));
    let h = std::thread::spawn(move || s2.join_child(Child::Any, false, Some(&m2)));
    // Wait (without sleeping) until the shell is really blocked in its join.
    while !shell.is_waiting_for_children() {
        std::thread::yield_now();
    }
    shell.signal(Signal::INT).unwrap();
    assert!(job.is_exiting(), "the job got the SIGINT");
    // Its threads unwind (what the runtime does on a kill); the first status sticks.
    finish(&job, ExitStatus::Exited(0));
    // The job died of SIGINT (default action); the shell is not interrupted.
    let (pid, status) = h
        .join()
        .unwrap()
        .unwrap()
        .unwrap_or_else(|| panic!("blocking join"));
    assert_eq!(
        (pid, status),
        (job.pid(), ExitStatus::Signaled(Signal::INT))
    );
    assert!(!sh_main.has_deliverable());
}

#[test]
fn sigkill_ends_every_thread_and_wakes_every_wait() {
    let cp = plane();
    let p = cp.spawn(None, [0; 32]).unwrap();
    let threads: Vec<_> = (0..6)
        .map(|_| p.spawn_thread(SigSet::full(), true).unwrap())
        .collect();
    let queue = Arc::new(WaitQueue::new());
    let hs: Vec<_> = threads
        .iter()
        .map(|t| {
            let (t, q) = (Arc::clone(t), Arc::clone(&queue));
            std::thread::spawn(move || t.wait_for(None, Some(&q), || None::<()>))
        })
        .collect();
    p.signal(Signal::KILL).unwrap();
    for h in hs {
        assert_eq!(h.join().unwrap(), Err(WaitError::Killed));
    }
    for t in &threads {
        p.thread_exited(t.tid());
    }
    p.thread_exited(p.pid());
    assert_eq!(p.try_status(), Some(ExitStatus::Signaled(Signal::KILL)));
}

#[test]
fn orphans_are_adopted_by_the_root() {
    let cp = plane();
    let root = cp.spawn(None, [0; 32]).unwrap();
    let mid = cp.spawn(Some(&root), [0; 32]).unwrap();
    let leaf = cp.spawn(Some(&mid), [0; 32]).unwrap();
    finish(&mid, ExitStatus::Exited(0));
    assert_eq!(leaf.ppid(), root.pid());
    assert!(root.children().contains(&leaf.pid()));
    finish(&leaf, ExitStatus::Exited(4));
    let mut reaped = root.join_children(None).unwrap();
    reaped.sort_by_key(|x| x.0);
    assert_eq!(
        reaped,
        vec![
            (mid.pid(), ExitStatus::Exited(0)),
            (leaf.pid(), ExitStatus::Exited(4))
        ]
    );
}

#[test]
fn terminate_family_ends_descendants() {
    let cp = plane();
    let root = cp.spawn(None, [0; 32]).unwrap();
    let a = cp.spawn(Some(&root), [0; 32]).unwrap();
    let b = cp.spawn(Some(&a), [0; 32]).unwrap();
    let c = cp.spawn(Some(&b), [0; 32]).unwrap();
    assert!(cp.terminate_family(a.pid(), ExitStatus::Signaled(Signal::KILL)));
    for p in [&a, &b, &c] {
        assert!(p.is_exiting());
        assert!(p.main_thread().unwrap().is_killed());
    }
    assert!(!root.is_exiting());
    assert!(!cp.terminate(12345, ExitStatus::Exited(0)));
}

#[test]
fn exit_future_and_cleanup_once() {
    let cp = plane();
    let root = cp.spawn(None, [0; 32]).unwrap();
    root.set_disposition(Signal::CHLD, Disposition::Handler(2))
        .unwrap();
    let p = cp.spawn(Some(&root), [0; 32]).unwrap();
    let extra: Vec<_> = (0..4)
        .map(|_| p.spawn_thread(SigSet::EMPTY, true).unwrap())
        .collect();
    let mut fut = std::pin::pin!(p.exited());
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    assert!(std::future::Future::poll(fut.as_mut(), &mut cx).is_pending());
    p.exit(ExitStatus::Exited(6));
    // Threads finish concurrently: cleanup (the parent's SIGCHLD) happens exactly once.
    let hs: Vec<_> = extra
        .iter()
        .map(|t| t.tid())
        .chain([p.pid()])
        .map(|tid| {
            let p = Arc::clone(&p);
            std::thread::spawn(move || p.thread_exited(tid))
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(
        std::future::Future::poll(fut.as_mut(), &mut cx),
        std::task::Poll::Ready(ExitStatus::Exited(6))
    );
    let main = root.main_thread().unwrap();
    assert_eq!(root.next_action(&main), Action::Handler(Signal::CHLD, 2));
    assert_eq!(root.next_action(&main), Action::None, "one SIGCHLD");
}

#[test]
fn interval_timers_fire_once_repeat_and_cancel() {
    let cp = plane();
    let p = cp.spawn(None, [0; 32]).unwrap();
    p.set_disposition(Signal::ALRM, Disposition::Handler(1))
        .unwrap();
    let main = p.main_thread().unwrap();
    assert_eq!(
        p.signal_interval(Signal::ALRM, Some(Duration::from_millis(5)), false),
        None
    );
    assert_eq!(
        main.wait_for(None, None, || None::<()>),
        Err(WaitError::Interrupted)
    );
    assert_eq!(main.take_signal(), Some(Signal::ALRM));
    // One-shot: nothing more arrives.
    assert_eq!(
        main.wait_for(
            Some(Instant::now() + Duration::from_millis(30)),
            None,
            || None::<()>
        ),
        Err(WaitError::TimedOut)
    );

    p.signal_interval(Signal::ALRM, Some(Duration::from_millis(2)), true);
    for _ in 0..3 {
        assert_eq!(
            main.wait_for(None, None, || None::<()>),
            Err(WaitError::Interrupted)
        );
        assert_eq!(main.take_signal(), Some(Signal::ALRM));
    }
    let left = p.signal_interval(Signal::ALRM, None, false);
    assert!(left.is_some(), "cancel reports the time the old timer had");
    let _ = main.take_signal();
    p.signal_interval(Signal::ALRM, Some(Duration::from_secs(3600)), false);
    p.signal_interval(Signal::ALRM, None, false);
    assert_eq!(
        main.wait_for(
            Some(Instant::now() + Duration::from_millis(20)),
            None,
            || None::<()>
        ),
        Err(WaitError::TimedOut)
    );
}

#[test]
fn async_child_join_and_convenience_forms() {
    let cp = plane();
    let root = cp.spawn(None, [0; 32]).unwrap();
    let child = cp.spawn(Some(&root), [0; 32]).unwrap();
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut fut = std::pin::pin!(root.join_child_async(Child::Any));
    assert!(std::future::Future::poll(fut.as_mut(), &mut cx).is_pending());
    assert_eq!(child.try_join(), None);
    finish(&child, ExitStatus::Exited(12));
    assert_eq!(
        std::future::Future::poll(fut.as_mut(), &mut cx),
        std::task::Poll::Ready(Ok((child.pid(), ExitStatus::Exited(12))))
    );
    let mut none = std::pin::pin!(root.join_child_async(Child::Any));
    assert_eq!(
        std::future::Future::poll(none.as_mut(), &mut cx),
        std::task::Poll::Ready(Err(JoinError::NoChild))
    );
    let c2 = cp.spawn(Some(&root), [0; 32]).unwrap();
    let c3 = Arc::clone(&c2);
    let t = std::thread::spawn(move || finish(&c3, ExitStatus::Exited(1)));
    assert_eq!(
        root.join_any_child(None),
        Ok((c2.pid(), ExitStatus::Exited(1)))
    );
    t.join().unwrap();
}

/// A snapshot reads a process's interval timers without touching them, and a restore arms
/// them again with the time they had left and their period.
#[test]
fn interval_timers_can_be_listed_and_restored() {
    use std::time::Duration;
    let cp = ControlPlane::default();
    let p = cp.spawn(None, [0; 32]).unwrap();
    assert!(p.interval_timers().is_empty());
    p.signal_interval(Signal::ALRM, Some(Duration::from_secs(60)), true);
    p.signal_interval(Signal::USR1, Some(Duration::from_secs(30)), false);
    let listed = p.interval_timers();
    assert_eq!(listed.len(), 2);
    let alrm = listed.iter().find(|t| t.0 == Signal::ALRM).unwrap();
    assert!(alrm.1 <= Duration::from_secs(60) && alrm.1 > Duration::from_secs(59));
    assert_eq!(alrm.2, Some(Duration::from_secs(60)));
    assert_eq!(listed.iter().find(|t| t.0 == Signal::USR1).unwrap().2, None);

    let q = cp.spawn(None, [0; 32]).unwrap();
    q.restore_interval_timer(
        Signal::ALRM,
        Duration::from_secs(5),
        Some(Duration::from_secs(60)),
    );
    let back = q.interval_timers();
    assert_eq!(back.len(), 1);
    assert!(back[0].1 <= Duration::from_secs(5));
    assert_eq!(back[0].2, Some(Duration::from_secs(60)));
}

/// A restored zombie: there to be reaped with its status, with its pid, counted as a child —
/// and its parent is neither signalled nor woken by its making.
#[test]
fn a_restored_zombie_is_reaped_without_a_new_sigchld() {
    let cp = plane();
    let parent = cp.spawn_as(5, None, [0; 32]).unwrap();
    parent
        .set_disposition(Signal::CHLD, Disposition::Handler(1))
        .unwrap();
    let zombie = cp
        .spawn_zombie(9, &parent, [2; 32], ExitStatus::Exited(7))
        .unwrap();
    assert_eq!(zombie.pid(), 9);
    assert!(zombie.is_zombie());
    assert_eq!(parent.children(), vec![9]);
    assert_eq!(parent.child_processes().len(), 1);
    assert!(parent.pending_signals().is_empty());
    let main = parent.main_thread().unwrap();
    assert!(
        main.pending().is_empty(),
        "no SIGCHLD for a restored zombie"
    );
    let joined = parent.join_child(Child::Pid(9), true, Some(&main)).unwrap();
    assert_eq!(joined, Some((9, ExitStatus::Exited(7))));
    assert_eq!(cp.process_count(), 1, "reaped, it leaves the table");
    assert_eq!(cp.thread_count(), 1);
}
