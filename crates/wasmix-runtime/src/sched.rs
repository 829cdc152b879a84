//! How the runtime's own helper threads are scheduled beside the guest's threads.
//!
//! On a machine with few CPUs, waking a helper can take the CPU from a guest thread for a
//! whole scheduler slice (milliseconds): a snapshot's writer woken while the process resumes
//! held the resuming threads up that long. So helpers that work in the background do not
//! preempt anyone on wakeup (`SCHED_BATCH`, open to every user), and the helper guest threads
//! wait on (the one that lets a write through a protected page) runs first where the system
//! allows raising a priority (it needs `CAP_SYS_NICE`; otherwise it stays as it was).

/// Marks the calling thread as background work.
pub(crate) fn background() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain system call on the calling thread (pid 0) with a valid parameter.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if r != 0 {
        tracing::debug!(
            "helper thread stays in the default policy: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Marks the calling thread as one that guest threads wait on.
pub(crate) fn urgent() {
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), -10);
}

/// Puts the calling thread, which sleeps until something must be acted on at once, ahead
/// of every guest thread: the real-time policy at its lowest priority where allowed
/// (`CAP_SYS_NICE`), else a raised nice value where allowed, else nothing. Under a thousand
/// computing guest threads an ordinary thread waited about a second for a CPU once woken, a
/// niced one half that; a real-time one runs at once.
pub(crate) fn prompt() {
    let param = libc::sched_param { sched_priority: 1 };
    // Threads it starts (a snapshot trigger's helper, say) go back to the default policy.
    let policy = libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK;
    // SAFETY: plain system call on the calling thread (pid 0) with a valid parameter.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 {
        urgent();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_prompt_threads_children_start_in_the_default_policy() {
        std::thread::spawn(|| {
            super::prompt();
            let child = std::thread::spawn(|| {
                // SAFETY: plain system call on the calling thread.
                unsafe { libc::sched_getscheduler(0) }
            });
            assert_eq!(child.join().unwrap(), libc::SCHED_OTHER);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_background_thread_runs_in_the_batch_policy() {
        std::thread::spawn(|| {
            super::background();
            // SAFETY: plain system call on the calling thread.
            assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_BATCH);
        })
        .join()
        .unwrap();
    }
}
