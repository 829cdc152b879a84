//! Host signals the kernel acts on directly while the root guest leaves them at their default.
//!
//! A host SIGTERM (or SIGINT, SIGHUP, SIGALRM) handed to the guest must be picked up by a host
//! thread, which then needs a CPU — and among a thousand computing guest threads, without the
//! privilege to jump the queue, that wait was seconds (the fair scheduler makes a woken thread
//! with a little negative lag wait until the whole run queue's average catches up). While the
//! root's disposition for such a signal is the default (terminate), there is nothing for the
//! guest to run: so the host disposition is the default too, and the kernel ends the whole
//! host process in the sender's `kill(2)`, as it would a native program (and as `wasmtime
//! run` is ended). Once the guest installs a handler (its signal callback) or ignores the
//! signal, the embedder's own host handler is put back, so the signal reaches the guest; an
//! exec that resets the guest's handlers makes the default the host's again.
//!
//! Only the root process's dispositions count (a host signal goes to the root), and only for
//! the signals the embedder names: the CLI leaves out those it must see itself (snapshot
//! triggers, a journal to close).

use std::collections::HashMap;
use std::sync::Mutex;

use wasmix_process::{Disposition, Process, Signal};

/// The host signals that follow the root guest's dispositions, and the host handlers they
/// had before the default took over.
pub(crate) struct Passthrough {
    /// (host signal number, the guest signal it becomes).
    signals: Vec<(i32, Signal)>,
    /// Host signal number → the handler the embedder had installed, while the default acts.
    saved: Mutex<HashMap<i32, libc::sigaction>>,
}

impl Passthrough {
    pub fn new(signals: Vec<(i32, Signal)>) -> Passthrough {
        Passthrough {
            signals,
            saved: Mutex::new(HashMap::new()),
        }
    }

    /// Makes each host disposition follow `root`'s: the kernel's default while the guest's is
    /// the default, the embedder's handler otherwise.
    pub fn sync(&self, root: &Process) {
        let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        for &(host, sig) in &self.signals {
            let guest_default = root.disposition(sig) == Disposition::Default;
            match (guest_default, saved.contains_key(&host)) {
                (true, false) => {
                    // SAFETY: a zeroed sigaction with SIG_DFL is a valid argument; the old
                    // one is written to our own value.
                    let old = unsafe {
                        let mut new: libc::sigaction = std::mem::zeroed();
                        new.sa_sigaction = libc::SIG_DFL;
                        let mut old: libc::sigaction = std::mem::zeroed();
                        (libc::sigaction(host, &new, &mut old) == 0).then_some(old)
                    };
                    if let Some(old) = old {
                        saved.insert(host, old);
                    }
                }
                (false, true) => {
                    if let Some(old) = saved.remove(&host) {
                        // SAFETY: `old` is what sigaction gave for this signal.
                        unsafe { libc::sigaction(host, &old, std::ptr::null_mut()) };
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether the kernel's default currently acts on host signal `host` (for tests).
    #[cfg(test)]
    fn is_default(&self, host: i32) -> bool {
        self.saved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmix_process::{ControlPlane, Limits};

    fn host_handler(sig: i32) -> libc::sighandler_t {
        // SAFETY: reads the current action into our own value.
        unsafe {
            let mut cur: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, std::ptr::null(), &mut cur);
            cur.sa_sigaction
        }
    }

    extern "C" fn noop(_: i32) {}

    #[test]
    fn the_host_default_follows_the_roots_disposition() {
        // SIGURG: its default (ignore) is harmless should the test go wrong.
        let (host, sig) = (libc::SIGURG, Signal::URG);
        // SAFETY: installs a handler that does nothing, as an embedder's would.
        unsafe {
            let mut a: libc::sigaction = std::mem::zeroed();
            a.sa_sigaction = noop as extern "C" fn(i32) as libc::sighandler_t;
            libc::sigaction(host, &a, std::ptr::null_mut());
        }
        let control = ControlPlane::new(Limits::default());
        let root = control.spawn(None, [0; 32]).unwrap();
        let p = Passthrough::new(vec![(host, sig)]);
        p.sync(&root);
        assert!(p.is_default(host));
        assert_eq!(host_handler(host), libc::SIG_DFL);
        root.set_disposition(sig, Disposition::Handler(0)).unwrap();
        p.sync(&root);
        assert!(!p.is_default(host));
        assert_eq!(
            host_handler(host),
            noop as extern "C" fn(i32) as libc::sighandler_t
        );
        root.set_disposition(sig, Disposition::Default).unwrap();
        p.sync(&root);
        assert_eq!(host_handler(host), libc::SIG_DFL);
        root.set_disposition(sig, Disposition::Ignore).unwrap();
        p.sync(&root);
        assert_eq!(
            host_handler(host),
            noop as extern "C" fn(i32) as libc::sighandler_t
        );
    }
}
