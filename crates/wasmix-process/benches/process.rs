//! Process-model latencies, each beside the native Linux operation measured in the same harness.
//!
//! `cargo bench -p wasmix-process`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use wasmix_process::*;

/// Round trip of "signal a thread parked in an interruptible wait → its wait returns", twice
/// (there and back), ours and native (`pthread_kill` → handler → `sigsuspend` returns).
fn signal_wake(c: &mut Criterion) {
    let mut g = c.benchmark_group("signal_to_parked_thread_round_trip");
    g.bench_function("wasmix", |b| {
        b.iter_custom(|iters| {
            let cp = ControlPlane::default();
            let p = cp.spawn(None, [0; 32]).unwrap();
            let a = p.main_thread().unwrap();
            let bt = p.spawn_thread(SigSet::EMPTY, false).unwrap();
            let (a2, b2) = (Arc::clone(&a), Arc::clone(&bt));
            let partner = std::thread::spawn(move || {
                for _ in 0..iters {
                    while b2.wait_for(None, None, || None::<()>) != Err(WaitError::Interrupted) {}
                    b2.take_signal();
                    a2.deliver(Signal::USR2);
                }
            });
            let start = Instant::now();
            for _ in 0..iters {
                bt.deliver(Signal::USR1);
                while a.wait_for(None, None, || None::<()>) != Err(WaitError::Interrupted) {}
                a.take_signal();
            }
            let t = start.elapsed();
            partner.join().unwrap();
            t
        })
    });
    g.bench_function("native_pthread_kill", |b| {
        b.iter_custom(native_signal_round_trips)
    });
    g.finish();
}

extern "C" fn noop_handler(_: libc::c_int) {}

fn native_signal_round_trips(iters: u64) -> Duration {
    // SAFETY: plain libc signal calls on zeroed, owned structs; the handler does nothing.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = noop_handler as *const () as usize;
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut());
        let mut blocked: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut blocked);
        libc::sigaddset(&mut blocked, libc::SIGUSR1);
        libc::sigaddset(&mut blocked, libc::SIGUSR2);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &blocked, &mut old);
        let me = libc::pthread_self() as usize;
        let (tx, rx) = mpsc::channel::<usize>();
        let partner = std::thread::spawn(move || {
            // Inherits the blocked mask; waits for USR1 with only USR1 unblocked.
            tx.send(libc::pthread_self() as usize).unwrap();
            let mut wait_mask: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut wait_mask);
            libc::sigdelset(&mut wait_mask, libc::SIGUSR1);
            for _ in 0..iters {
                libc::sigsuspend(&wait_mask);
                libc::pthread_kill(me as libc::pthread_t, libc::SIGUSR2);
            }
        });
        let other = rx.recv().unwrap() as libc::pthread_t;
        let mut wait_mask: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut wait_mask);
        libc::sigdelset(&mut wait_mask, libc::SIGUSR2);
        let start = Instant::now();
        for _ in 0..iters {
            libc::pthread_kill(other, libc::SIGUSR1);
            libc::sigsuspend(&wait_mask);
        }
        let t = start.elapsed();
        partner.join().unwrap();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        t
    }
}

/// "Child exits → the parent blocked in waitpid returns": the child is created untimed, then
/// told to exit; the clock stops when the parent's join returns.
fn child_exit_join(c: &mut Criterion) {
    let mut g = c.benchmark_group("child_exit_to_join_any");
    g.bench_function("wasmix", |b| {
        b.iter_custom(|iters| {
            let cp = ControlPlane::default();
            let root = cp.spawn(None, [0; 32]).unwrap();
            let waiter = root.main_thread().unwrap();
            let (tx, rx) = mpsc::channel::<Arc<Process>>();
            let exiter = std::thread::spawn(move || {
                for child in rx {
                    child.exit(ExitStatus::Exited(0));
                    child.thread_exited(child.pid());
                }
            });
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let child = cp.spawn(Some(&root), [0; 32]).unwrap();
                let start = Instant::now();
                tx.send(child).unwrap();
                root.join_child(Child::Any, false, Some(&waiter)).unwrap();
                total += start.elapsed();
            }
            drop(tx);
            exiter.join().unwrap();
            total
        })
    });
    g.bench_function("native_waitpid", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // SAFETY: the child only reads a pipe and `_exit`s (async-signal-safe calls).
                unsafe {
                    let mut fds = [0; 2];
                    libc::pipe(fds.as_mut_ptr());
                    let pid = libc::fork();
                    if pid == 0 {
                        let mut byte = 0u8;
                        libc::read(fds[0], (&mut byte as *mut u8).cast(), 1);
                        libc::_exit(0);
                    }
                    let start = Instant::now();
                    libc::write(fds[1], [1u8].as_ptr().cast(), 1);
                    let mut status = 0;
                    libc::waitpid(pid, &mut status, 0);
                    total += start.elapsed();
                    libc::close(fds[0]);
                    libc::close(fds[1]);
                }
            }
            total
        })
    });
    g.finish();
}

fn pid_churn(c: &mut Criterion) {
    let cp = ControlPlane::default();
    let root = cp.spawn(None, [0; 32]).unwrap();
    c.bench_function("pid_allocate_register_reap", |b| {
        b.iter(|| {
            let child = cp.spawn(Some(&root), [0; 32]).unwrap();
            child.exit(ExitStatus::Exited(0));
            child.thread_exited(child.pid());
            root.join_child(Child::Any, true, None).unwrap().unwrap()
        })
    });
}

fn checkpoint_round(c: &mut Criterion) {
    c.bench_function("checkpoint_round_8_threads", |b| {
        let cp = ControlPlane::default();
        let p = cp.spawn(None, [0; 32]).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        // The main thread drives the rounds; it counts as asleep meanwhile.
        let main = p.main_thread().unwrap();
        let _asleep = main.checkpoint().sleep();
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let t = p.spawn_thread(SigSet::EMPTY, false).unwrap();
                let (p, stop) = (Arc::clone(&p), Arc::clone(&stop));
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        if p.checkpoint().is_requested() {
                            p.checkpoint().safe_point(t.tid(), Vec::new);
                        } else {
                            std::thread::yield_now();
                        }
                    }
                    p.thread_exited(t.tid());
                })
            })
            .collect();
        b.iter(|| {
            let ticket = p
                .checkpoint()
                .request(
                    Trigger::Explicit,
                    After::Resume,
                    Box::new(|_: &Snapshot<'_>| Ok(())),
                )
                .unwrap();
            ticket.wait().unwrap()
        });
        stop.store(true, Ordering::Release);
        for w in workers {
            w.join().unwrap();
        }
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = signal_wake, child_exit_join, pid_churn, checkpoint_round
}
criterion_main!(benches);
