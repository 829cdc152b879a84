//! Snapshot triggers that come from outside a host call: a timer (`periodic`), the process
//! going quiet (`idle`) and signals (`sigint`, `first-sigint`, `sigalrm`, `sigtstp`,
//! `sigstop`). The triggers met inside a call (`first-stdin`, `first-environ`, `bootstrap`,
//! `non-deterministic`) are asked for where the call runs ([`crate::wasi::snapshot_at`]).
//!
//! A signal trigger takes its snapshot *before* the signal acts: the signal is held back by
//! the process's [`SignalTap`] until the snapshot is committed, then sent. So a snapshot on
//! Ctrl-C (or SIGTSTP, SIGSTOP) with `--stop-after-snapshot` suspends the process to its
//! journal, and its restore carries on as if the signal never came; a process restored from
//! a `sigalrm` snapshot is sent the SIGALRM it was about to get (its own timer fired, and
//! the timer is gone).

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmix_process::{Process, Signal, SignalTap, Tid, Trigger};

use crate::host::Journaling;
use crate::snapshot::{self, SnapshotError};

/// The triggers a journal can be set to take snapshots on, by the names journals record them
/// by (`--snapshot-on`).
pub const SNAPSHOT_TRIGGERS: [Trigger; 14] = [
    Trigger::Explicit,
    Trigger::FirstStdin,
    Trigger::FirstListen,
    Trigger::Bootstrap,
    Trigger::FirstEnviron,
    Trigger::NonDeterministicCall,
    Trigger::PeriodicInterval,
    Trigger::Idle,
    Trigger::Sigint,
    Trigger::FirstSigint,
    Trigger::Sigalrm,
    Trigger::Sigtstp,
    Trigger::Sigstop,
    Trigger::Sigterm,
];

/// The snapshot trigger called `name` (`sigint`, `periodic`, …), or an error listing them.
pub fn trigger_named(name: &str) -> Result<Trigger, String> {
    SNAPSHOT_TRIGGERS
        .into_iter()
        .find(|t| snapshot::trigger_name(*t) == name)
        .ok_or_else(|| {
            let names: Vec<&str> = SNAPSHOT_TRIGGERS
                .into_iter()
                .map(snapshot::trigger_name)
                .collect();
            format!(
                "`{name}` is not a snapshot trigger this wasmix takes ({})",
                names.join(", ")
            )
        })
}

/// The trigger a signal is, for a journal that takes it (`first-sigint` only once).
fn signal_trigger(journal: &Journaling, sig: Signal) -> Option<Trigger> {
    match sig {
        Signal::INT if journal.on(Trigger::Sigint) => Some(Trigger::Sigint),
        Signal::INT if journal.fire_once(Trigger::FirstSigint) => Some(Trigger::FirstSigint),
        Signal::ALRM if journal.on(Trigger::Sigalrm) => Some(Trigger::Sigalrm),
        Signal::TERM if journal.on(Trigger::Sigterm) => Some(Trigger::Sigterm),
        Signal::TSTP if journal.on(Trigger::Sigtstp) => Some(Trigger::Sigtstp),
        Signal::STOP if journal.on(Trigger::Sigstop) => Some(Trigger::Sigstop),
        _ => None,
    }
}

/// Whether `journal` takes a snapshot on any signal.
fn on_signals(journal: &Journaling) -> bool {
    [
        Trigger::Sigint,
        Trigger::FirstSigint,
        Trigger::Sigalrm,
        Trigger::Sigterm,
        Trigger::Sigtstp,
        Trigger::Sigstop,
    ]
    .into_iter()
    .any(|t| journal.on(t))
}

/// Holds a triggering signal back until its snapshot is committed.
struct SnapshotOnSignal {
    journal: Arc<Journaling>,
}

impl SignalTap for SnapshotOnSignal {
    fn take(&self, process: &Arc<Process>, to: Option<Tid>, sig: Signal) -> bool {
        let Some(trigger) = signal_trigger(&self.journal, sig) else {
            return false;
        };
        let Some(ctx) = self.journal.current() else {
            return false;
        };
        // Asked for here, so snapshots follow the order the signals came in.
        let ticket = match snapshot::request(&ctx, trigger, None) {
            Ok(ticket) => Some(ticket),
            // Ctrl-C while a snapshot is being taken goes on at once: it still interrupts.
            Err(SnapshotError::Busy) if sig == Signal::INT => return false,
            // Another signal waits its turn behind the snapshot under way.
            Err(SnapshotError::Busy) => None,
            Err(e) => {
                tracing::error!(
                    "no {} snapshot: {e}; the signal goes on",
                    snapshot::trigger_name(trigger)
                );
                return false;
            }
        };
        let journal = Arc::clone(&self.journal);
        let process = Arc::clone(process);
        let spawned = std::thread::Builder::new()
            .name("wasmix-snapshot-signal".into())
            .spawn(move || {
                match ticket {
                    Some(ticket) => {
                        if let Err(e) = wait_retrying(&ctx, trigger, ticket) {
                            tracing::error!(
                                "{} snapshot failed: {e}",
                                snapshot::trigger_name(trigger)
                            );
                        }
                    }
                    None => {
                        let _ = journal.wait_last();
                        take(&journal, trigger);
                    }
                }
                let _ = match to {
                    Some(tid) => process.thread_signal_now(tid, sig),
                    None => process.signal_now(sig),
                };
            });
        // Without a thread to send it later, it is sent now (a snapshot may still come).
        spawned.is_ok()
    }
}

/// Waits for `ticket`'s snapshot; one that failed because a process of the tree was being
/// spawned or reaped meanwhile is asked for again (a few times: each retry finds the call
/// that changed the tree finished, and spawns wait for a snapshot under way).
fn wait_retrying(
    ctx: &Arc<crate::host::ProcessCtx>,
    trigger: Trigger,
    mut ticket: snapshot::SnapshotTicket,
) -> Result<(), SnapshotError> {
    for _ in 0..8 {
        match ticket.wait() {
            Err(SnapshotError::TreeChanged) => {
                tracing::debug!("snapshot: the tree changed meanwhile; asking again");
                ticket = snapshot::request(ctx, trigger, None)?;
            }
            done => return done,
        }
    }
    ticket.wait()
}

/// Starts the triggers of a journaled `process` that run beside it. `restored`: it was just
/// restored from a snapshot taken for `restored_from`.
pub(crate) fn start(
    journal: &Arc<Journaling>,
    process: &Arc<Process>,
    period: Option<Duration>,
    idle: Duration,
    restored_from: Option<&str>,
) {
    if restored_from.is_some() {
        journal.all_fired();
    }
    if on_signals(journal) {
        process.set_signal_tap(Arc::new(SnapshotOnSignal {
            journal: Arc::clone(journal),
        }));
    }
    if let Some(period) = period.filter(|_| journal.on(Trigger::PeriodicInterval)) {
        background("wasmix-snapshot-period", journal, process, move |j, p| {
            every(period, j, p)
        });
    }
    if journal.on(Trigger::Idle) {
        // A restored process that is idle is where its snapshot left it: no new snapshot
        // until it has woken up.
        let seen = restored_from.map(|_| process.checkpoint().idleness().1);
        background("wasmix-snapshot-idle", journal, process, move |j, p| {
            when_idle(idle, seen, j, p)
        });
    }
    if restored_from == Some(snapshot::trigger_name(Trigger::Sigalrm)) {
        let _ = process.signal_now(Signal::ALRM);
    }
}

fn background(
    name: &str,
    journal: &Arc<Journaling>,
    process: &Arc<Process>,
    body: impl FnOnce(Arc<Journaling>, Arc<Process>) + Send + 'static,
) {
    let (journal, process) = (Arc::clone(journal), Arc::clone(process));
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            crate::sched::background();
            body(journal, process)
        });
    if let Err(e) = spawned {
        tracing::error!("{name}: cannot start its thread ({e}); that trigger is off");
    }
}

/// Takes a snapshot for `trigger`, waiting until it is committed; `false` when no more can
/// be taken (the process ended, or cannot be snapshotted).
fn take(journal: &Journaling, trigger: Trigger) -> bool {
    let Some(ctx) = journal.current() else {
        return false;
    };
    match snapshot::request(&ctx, trigger, None) {
        Ok(ticket) => {
            if let Err(e) = ticket.wait() {
                tracing::error!("{} snapshot failed: {e}", snapshot::trigger_name(trigger));
            }
            true
        }
        Err(SnapshotError::Busy) => true,
        Err(e) => {
            tracing::error!("no more {} snapshots: {e}", snapshot::trigger_name(trigger));
            false
        }
    }
}

/// Sleeps until `until` in slices, so the end of `process` is seen within one; `false` if
/// it ended.
fn sleep_until(process: &Process, until: Instant) -> bool {
    loop {
        if process.is_exiting() {
            return false;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// `periodic`: a snapshot every `period`, each once the one before is committed.
fn every(period: Duration, journal: Arc<Journaling>, process: Arc<Process>) {
    while sleep_until(&process, Instant::now() + period) {
        if !take(&journal, Trigger::PeriodicInterval) {
            return;
        }
    }
}

/// `idle`: a snapshot once every thread has been blocked in an interruptible wait for
/// `quiet`, then none until some thread has woken up (for something other than a snapshot)
/// and the process is idle again. `seen`: the wake-up count already snapshotted.
fn when_idle(
    quiet: Duration,
    mut seen: Option<u64>,
    journal: Arc<Journaling>,
    process: Arc<Process>,
) {
    let look = (quiet / 4).clamp(Duration::from_millis(1), Duration::from_millis(50));
    // Since when the process has been idle, with the wake-up count it had then.
    let mut spell: Option<(Instant, u64)> = None;
    while sleep_until(&process, Instant::now() + look) {
        let (idle, wakeups) = process.checkpoint().idleness();
        if !idle || seen == Some(wakeups) {
            spell = None;
            continue;
        }
        match spell {
            Some((since, at)) if at == wakeups => {
                if since.elapsed() >= quiet {
                    if !take(&journal, Trigger::Idle) {
                        return;
                    }
                    seen = Some(wakeups);
                    spell = None;
                }
            }
            _ => spell = Some((Instant::now(), wakeups)),
        }
    }
}
