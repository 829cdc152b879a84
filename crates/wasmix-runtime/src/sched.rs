//! How the runtime's own helper threads are scheduled beside the guest's threads.
//!
//! On a machine with few CPUs, waking a helper can take the CPU from a guest thread for a
//! whole scheduler slice (milliseconds): a snapshot's writer woken while the process resumes
//! held the resuming threads up that long. So helpers that work in the background do not
//! preempt anyone on wakeup (`SCHED_BATCH`, open to every user), and the helper guest threads
//! wait on (the one that lets a write through a protected page) runs first where the system
//! allows raising a priority (it needs `CAP_SYS_NICE`; otherwise it stays as it was).

/// Marks the calling thread as background work: it preempts no one when woken, and with
/// the fair scheduler's longest slice (where the kernel has them) a guest thread woken while
/// it runs takes its CPU at once. Measured here: a snapshot's writer, woken as the process
/// resumed, held a resuming computing thread off both CPUs for ~2 ms with the default slice.
pub(crate) fn background() {
    if set_slice(libc::SCHED_BATCH as u32, LONG_SLICE_NS) {
        return;
    }
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
/// (`CAP_SYS_NICE`), else the fair scheduler's shortest slice where the kernel has them,
/// else a raised nice value where allowed, else nothing. Under a thousand computing guest
/// threads an ordinary thread waited about a second for a CPU once woken, a niced one half
/// that; a real-time one or one with the short slice runs at once.
pub(crate) fn prompt() {
    let param = libc::sched_param { sched_priority: 1 };
    // Threads it starts (a snapshot trigger's helper, say) go back to the default policy.
    let policy = libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK;
    // SAFETY: plain system call on the calling thread (pid 0) with a valid parameter.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 && !short_slice() {
        urgent();
    }
}

/// While it lives, the calling thread — a guest thread that waits for the runtime, as
/// `proc_snapshot` waits for its snapshot to be durable — has the fair scheduler's shortest
/// slice: woken, it runs at once instead of after the slice of a computing thread on the
/// CPU it wakes on. Measured here (2 vCPUs, a computing thread beside): 3-4 ms from the
/// snapshot's commit to the caller's return in two runs of five, 0.04-0.06 ms in the
/// others. Dropped, the thread's own scheduling comes back. Does nothing for a thread not
/// in the default policy, or where the kernel has no slices per thread.
pub(crate) struct Waiting {
    previous: Option<SchedAttr>,
}

pub(crate) fn waiting() -> Waiting {
    let previous = own_attr().filter(|a| a.policy == libc::SCHED_OTHER as u32);
    let previous = previous.filter(|a| {
        let short = SchedAttr {
            runtime: SHORT_SLICE_NS,
            ..*a
        };
        set_attr(&short)
    });
    Waiting { previous }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(previous) = &self.previous {
            set_attr(previous);
        }
    }
}

/// The calling thread's scheduling attributes.
fn own_attr() -> Option<SchedAttr> {
    let mut attr = SchedAttr {
        size: 0,
        policy: 0,
        flags: 0,
        nice: 0,
        priority: 0,
        runtime: 0,
        deadline: 0,
        period: 0,
    };
    let size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: sched_getattr on the calling thread into an attribute of `size` bytes.
    let r = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &mut attr, size, 0) };
    (r == 0).then_some(attr)
}

/// Sets the calling thread's scheduling attributes; whether the kernel took them.
fn set_attr(attr: &SchedAttr) -> bool {
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        ..*attr
    };
    // SAFETY: sched_setattr on the calling thread (pid 0) with a valid, fully initialised
    // attribute of the size it declares; flags 0.
    unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) == 0 }
}

/// `struct sched_attr` of sched_setattr(2), its first published size.
#[derive(Clone, Copy)]
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

/// The shortest slice the fair scheduler takes (Linux clamps requests to 0.1-100 ms).
const SHORT_SLICE_NS: u64 = 100_000;
/// The longest.
const LONG_SLICE_NS: u64 = 100_000_000;

/// Asks the fair scheduler for the shortest slice for the calling thread (Linux 6.12 on,
/// open to every user): its deadline once woken comes before every thread with the default
/// slice, so it runs next, where a thread of ordinary priority among a thousand computing
/// ones waited most of a second. Threads it starts get the default back. `false` where the
/// kernel does not take it.
fn short_slice() -> bool {
    set_slice(libc::SCHED_OTHER as u32, SHORT_SLICE_NS)
}

/// Puts the calling thread in the fair-scheduler `policy` with a slice of `ns` (Linux 6.12
/// on); threads it starts get the default back. `false` where the kernel does not take it.
fn set_slice(policy: u32, ns: u64) -> bool {
    const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags: SCHED_FLAG_RESET_ON_FORK,
        nice: rustix::process::getpriority_process(None).unwrap_or(0),
        priority: 0,
        runtime: ns,
        deadline: 0,
        period: 0,
    };
    // SAFETY: sched_setattr on the calling thread (pid 0) with a valid, fully initialised
    // attribute of the size it declares; flags 0.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if r != 0 {
        tracing::debug!(
            "no slice of {ns} ns for a helper thread: {}",
            std::io::Error::last_os_error()
        );
    }
    r == 0
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Drops `CAP_SYS_NICE` from the calling thread's effective set (capabilities are per
    /// thread in Linux), as for a user without it.
    fn drop_sys_nice() {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy, Default)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const VERSION_3: u32 = 0x2008_0522;
        const CAP_SYS_NICE: u32 = 23;
        let header = Header {
            version: VERSION_3,
            pid: 0,
        };
        let mut data = [Data::default(); 2];
        // SAFETY: capget/capset on the calling thread with a version-3 header and the two
        // data words that version has.
        unsafe {
            assert_eq!(
                libc::syscall(libc::SYS_capget, &header, data.as_mut_ptr()),
                0
            );
            data[0].effective &= !(1 << CAP_SYS_NICE);
            assert_eq!(libc::syscall(libc::SYS_capset, &header, data.as_ptr()), 0);
        }
    }

    /// The slice the calling thread has, in ns.
    fn slice() -> u64 {
        own_attr()
            .unwrap_or_else(|| panic!("{}", std::io::Error::last_os_error()))
            .runtime
    }

    /// Whether the kernel takes a slice per thread (Linux 6.12 on).
    fn has_custom_slices() -> bool {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        (major, minor) >= (6, 12)
    }

    #[test]
    fn without_cap_sys_nice_a_prompt_thread_gets_the_shortest_slice() {
        std::thread::spawn(|| {
            drop_sys_nice();
            super::prompt();
            // SAFETY: plain system call on the calling thread.
            let policy = unsafe { libc::sched_getscheduler(0) } & !libc::SCHED_RESET_ON_FORK;
            assert_eq!(
                policy,
                libc::SCHED_OTHER,
                "no real-time policy without the capability"
            );
            if !has_custom_slices() {
                return;
            }
            assert_eq!(slice(), SHORT_SLICE_NS);
            let child = std::thread::spawn(slice).join().unwrap();
            assert_ne!(
                child, SHORT_SLICE_NS,
                "threads it starts get the default slice"
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_waiting_thread_has_the_shortest_slice_until_its_wait_ends() {
        std::thread::spawn(|| {
            let before = slice();
            {
                let _waiting = super::waiting();
                if has_custom_slices() {
                    assert_eq!(slice(), SHORT_SLICE_NS);
                }
            }
            assert_eq!(slice(), before);
            // SAFETY: plain system call on the calling thread.
            let policy = unsafe { libc::sched_getscheduler(0) };
            assert_eq!(policy, libc::SCHED_OTHER);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_background_thread_runs_in_the_batch_policy_with_the_longest_slice() {
        std::thread::spawn(|| {
            super::background();
            // SAFETY: plain system call on the calling thread.
            let policy = unsafe { libc::sched_getscheduler(0) } & !libc::SCHED_RESET_ON_FORK;
            assert_eq!(policy, libc::SCHED_BATCH);
            if has_custom_slices() {
                assert_eq!(slice(), LONG_SLICE_NS);
            }
        })
        .join()
        .unwrap();
    }
}
