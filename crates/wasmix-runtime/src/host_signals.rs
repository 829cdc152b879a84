//! For embedders that run one guest as the whole host process (the CLI, the containerd
//! shim): the host's own signals handed to the guest. Ctrl-C, `kill`, a closed terminal
//! and an alarm reach the guest as SIGINT, SIGTERM, SIGHUP and SIGALRM (its handlers or
//! default actions decide; a snapshot trigger on one of them takes its snapshot first),
//! not the runtime.

use crate::builder::RunningProcess;
use crate::error::RunError;
use wasmix_process::Signal;

/// The host signals handed to the guest, and what each becomes.
const FORWARDED: [(i32, Signal); 5] = [
    (libc::SIGINT, Signal::INT),
    (libc::SIGTERM, Signal::TERM),
    (libc::SIGHUP, Signal::HUP),
    (libc::SIGALRM, Signal::ALRM),
    (libc::SIGTSTP, Signal::TSTP),
];

/// Blocks (or unblocks) the forwarded signals in the calling thread; threads it starts
/// inherit that. Call it with `true` before the runtime starts any thread: blocked
/// everywhere but in the forwarding thread, the kernel hands them to that thread, which
/// runs at a raised priority — a thread of ordinary priority, woken among a thousand
/// computing guest threads, waited over a second for a CPU.
pub fn block_forwarded(block: bool) {
    // SAFETY: a sigset_t of our own, filled by sigemptyset/sigaddset, and pthread_sigmask on
    // the calling thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for (sig, _) in FORWARDED {
            libc::sigaddset(&mut set, sig);
        }
        let how = if block {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// What a process run without a journal passes through to the kernel while the guest
/// leaves them at their default action (see `ProcessBuilder::pass_through_default_signals`):
/// they end the host process as they end a native program.
pub fn default_pass_through() -> Vec<(i32, Signal)> {
    FORWARDED
        .iter()
        .copied()
        .filter(|(sig, _)| *sig != libc::SIGTSTP)
        .collect()
}

/// The signals to forward, taken over from the host (their handlers installed) before the
/// guest starts, so one that arrives meanwhile waits for it. SIGTSTP (Ctrl-Z) only with
/// `tstp`: otherwise it suspends the host process as usual.
pub struct Forwarding {
    signals: signal_hook::iterator::Signals,
}

impl Forwarding {
    /// Takes over the forwarded signals.
    pub fn take_over(tstp: bool) -> Result<Forwarding, RunError> {
        let wanted: Vec<i32> = FORWARDED
            .iter()
            .map(|(sig, _)| *sig)
            .filter(|sig| tstp || *sig != libc::SIGTSTP)
            .collect();
        let signals = signal_hook::iterator::Signals::new(wanted)
            .map_err(|e| RunError::Setup(format!("cannot take over the host's signals: {e}")))?;
        Ok(Forwarding { signals })
    }

    /// Hands every signal from now on to `running`'s guest, from a thread of its own. Once a
    /// signal has ended the guest, the host process exits from that thread with the guest's
    /// status: waking the waiting thread too would cost another wait for a CPU under
    /// computing guests. Fails if no thread can be started (the signals then stay blocked).
    pub fn start(mut self, running: &RunningProcess) -> std::io::Result<()> {
        let target = running.handle();
        let thread = std::thread::Builder::new().name("wasmix-signals".into());
        let spawned = thread.spawn(move || {
            crate::prioritize_this_thread();
            block_forwarded(false);
            for raw in self.signals.forever() {
                let sig = FORWARDED
                    .iter()
                    .find(|(n, _)| *n == raw)
                    .map_or(Signal::HUP, |(_, s)| *s);
                target.signal(sig);
                if let Some(Ok(status)) = target.ended_by_signal() {
                    std::process::exit(i32::from(status.code() as u8));
                }
            }
        });
        spawned.map(drop)
    }
}
