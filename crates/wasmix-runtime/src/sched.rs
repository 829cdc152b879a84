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

#[cfg(test)]
mod tests {
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
