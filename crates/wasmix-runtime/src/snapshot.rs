//! Snapshots of a running process into its journal.
//!
//! A request ([`request`]) opens a capture round on the process's checkpoint barrier and
//! wakes every thread. Each thread unwinds at its next capture point — a blocking call (which
//! gave up waiting with EINTR, or had not started) or a loop's safe point — and the run loop
//! parks it ([`park`]) with its state. The last thread to park runs the action ([`write`]):
//! the process, every thread, the descriptor table and the memory go to the journal, and the
//! snapshot commits. Then every thread is rewound into its call — which runs again from its
//! start, or (the thread that asked, through `proc_snapshot`) returns — or, with
//! stop-after-snapshot, the process ends with [`STOPPED_AFTER_SNAPSHOT`].

use std::sync::Arc;

use wasmix_fs::Errno;
use wasmix_journal::record;
use wasmix_process::{
    After, CheckpointError, Disposition, ExitStatus, Resume, SigSet, Snapshot, Thread, Ticket,
    Trigger,
};
use wasmtime::{Caller, Store};

use crate::capture;
use crate::host::{Durable, GuestMemory, Host, Job, Journaling, MemoryImage, ProcessCtx};
use crate::stack::{Capture, Resumption, ThreadSnapshot};
use crate::wpcopy::WpCopy;

/// The exit code of a process stopped after a snapshot (`--stop-after-snapshot`):
/// EX_TEMPFAIL, "try again later" — restore it to go on.
pub const STOPPED_AFTER_SNAPSHOT: i32 = 75;

/// Why a snapshot was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The process runs without a journal.
    #[error("the process has no journal (run it with a journal to take snapshots)")]
    NoJournal,
    /// The program cannot have its threads captured anywhere.
    #[error(
        "`{0}` was not instrumented for snapshots (it is when the runtime is made with \
         snapshots on, as `wasmix run --journal` does)"
    )]
    NotInstrumented(String),
    /// Process trees are not snapshotted yet.
    #[error(
        "the process has live children ({0:?}); snapshots of process trees are not supported yet"
    )]
    HasChildren(Vec<u32>),
    /// The process has ended.
    #[error("the process has ended")]
    Ended,
    /// Another snapshot is being taken.
    #[error("a snapshot is already being taken")]
    Busy,
    /// Writing it failed; the process goes on.
    #[error("the snapshot failed: {0}")]
    Failed(String),
}

impl From<CheckpointError> for SnapshotError {
    fn from(e: CheckpointError) -> SnapshotError {
        match e {
            CheckpointError::Busy => SnapshotError::Busy,
            CheckpointError::Action(why) => SnapshotError::Failed(why),
        }
    }
}

/// What a parked thread records: its journal record and the memory size it saw.
#[derive(serde::Serialize, serde::Deserialize)]
struct ThreadCapture {
    thread: record::Thread,
    memory_len: u64,
}

/// Asks for a snapshot of `ctx`'s process for `trigger`. Every thread parks at its next
/// capture point; the returned ticket completes once the snapshot is committed (or failed).
/// `memory_len` is the memory's size now, if the caller knows it (a guest's own call).
pub(crate) fn request(
    ctx: &Arc<ProcessCtx>,
    trigger: Trigger,
    memory_len: Option<usize>,
) -> Result<SnapshotTicket, SnapshotError> {
    let journal = Arc::clone(ctx.journal().ok_or(SnapshotError::NoJournal)?);
    let program = ctx.image.program();
    if !program.captures_everywhere() {
        return Err(SnapshotError::NotInstrumented(program.name().to_owned()));
    }
    if ctx.process.is_exiting() {
        return Err(SnapshotError::Ended);
    }
    let children = ctx.process.children();
    if !children.is_empty() {
        return Err(SnapshotError::HasChildren(children));
    }
    let after = if journal.stop_after() {
        After::Stop
    } else {
        After::Resume
    };
    let _one_at_a_time = journal.requesting();
    if ctx.process.checkpoint().is_requested() {
        return Err(SnapshotError::Busy);
    }
    let target = Arc::clone(ctx);
    let done = Arc::new(Durable::default());
    let durable = Arc::clone(&done);
    let j = Arc::clone(&journal);
    let armed = if journal.stop_after() {
        None
    } else {
        arm(ctx, memory_len)
    };
    let action = Box::new(move |s: &Snapshot<'_>| write(&target, &j, trigger, done, armed, s));
    let round = ctx.process.request_capture(trigger, after, action)?;
    journal.set_last(round.clone(), Arc::clone(&durable));
    watch(ctx, round.clone(), journal.capture_timeout());
    Ok(SnapshotTicket { round, durable })
}

/// Write-protects the memory while the threads still run, so the pause only re-protects
/// what they write until they park (see [`crate::wpcopy`]). `None` where that cannot be
/// done; the snapshot then protects (or freezes) the memory while paused.
fn arm(ctx: &ProcessCtx, memory_len: Option<usize>) -> Option<Arc<WpCopy>> {
    let memory = ctx.fork_memory()?;
    let len = ctx
        .image
        .shared_memory()
        .map(|m| m.data_size())
        .or(memory_len)
        .unwrap_or_else(|| memory.len_hint());
    let region = ctx.memory_region(len).filter(|_| len > 0)?;
    let incremental = ctx.journal().is_some_and(|j| j.incremental());
    let started = std::time::Instant::now();
    // SAFETY: the memory is at least `len` bytes long (memories never shrink).
    match unsafe { memory.arm(region, incremental) } {
        Ok(copy) => {
            tracing::debug!("snapshot: memory armed in {:?}", started.elapsed());
            Some(copy)
        }
        Err(e) => {
            tracing::debug!("snapshot: memory not armed ({e})");
            None
        }
    }
}

/// Fails the round if some thread has not parked within `limit` (blocked in a call that
/// cannot be captured): the parked threads go on, and the failure names the others.
fn watch(ctx: &Arc<ProcessCtx>, round: Ticket, limit: std::time::Duration) {
    let process = Arc::clone(&ctx.process);
    let spawned = std::thread::Builder::new()
        .name("wasmix-snapshot-watch".into())
        .spawn(move || {
            crate::sched::background();
            if round.wait_timeout(limit).is_some() {
                return;
            }
            let coordinator = process.checkpoint();
            let parked = coordinator.parked();
            let missing: Vec<u32> = process
                .threads()
                .iter()
                .map(|t| t.tid())
                .filter(|t| !parked.contains(t))
                .collect();
            coordinator.cancel(&format!(
                "thread(s) {missing:?} did not reach a safe point within {limit:?} (blocked in \
                 a call a snapshot cannot capture?)"
            ));
        });
    if let Err(e) = spawned {
        tracing::warn!("snapshot: no watchdog ({e}); a thread that never parks holds it");
    }
}

/// A snapshot being taken.
pub struct SnapshotTicket {
    round: Ticket,
    durable: Arc<Durable>,
}

impl SnapshotTicket {
    /// Blocks until every thread runs again (the snapshot may still be being written).
    pub fn wait_resumed(&self) -> Result<(), SnapshotError> {
        self.round.wait().map(drop).map_err(SnapshotError::from)
    }

    /// Blocks until the snapshot is committed to the journal (durable, with the default
    /// sync policy), or has failed.
    pub fn wait(&self) -> Result<(), SnapshotError> {
        self.wait_resumed()?;
        self.durable.wait().map_err(SnapshotError::Failed)
    }
}

/// What the run loop does with a thread that unwound for a snapshot.
pub(crate) enum Parked {
    /// Rewind it into its call.
    Continue,
    /// The process stops after the snapshot.
    Stop,
}

/// Parks the calling thread (its stack captured as `snapshot`; its call resumes as `resume`)
/// at the checkpoint barrier until the snapshot is written.
pub(crate) fn park(
    store: &mut Store<Host>,
    snapshot: &ThreadSnapshot,
    resume: Resumption,
) -> Parked {
    let memory_len = match store.data().memory.clone() {
        GuestMemory::Own(m) => m.data_size(&*store) as u64,
        GuestMemory::Shared(m) => m.data_size() as u64,
        GuestMemory::None => 0,
    };
    let host = store.data();
    let thread = Arc::clone(&host.thread);
    let capture = ThreadCapture {
        thread: thread_record(&host.ctx, &thread, snapshot, resume),
        memory_len,
    };
    let coordinator = Arc::clone(host.ctx.process.checkpoint());
    let parked = std::time::Instant::now();
    let verdict = coordinator.safe_point(thread.tid(), || {
        postcard::to_allocvec(&capture).unwrap_or_default()
    });
    // The longest of these is how long the snapshot stopped the process.
    tracing::debug!(
        "snapshot: thread {} held for {} µs",
        thread.tid(),
        parked.elapsed().as_micros()
    );
    match verdict {
        Resume::Continue => Parked::Continue,
        Resume::Exit => Parked::Stop,
    }
}

/// Whether the thread of `host` should unwind for a snapshot now: a capture round is open and
/// its program can be captured (and it is not mid-capture already). A thread running a
/// signal handler goes on until the handler returns: the handler runs inside a host call, so
/// its stack does not lead back to the entry, and it is captured at its next capture point
/// after.
pub(crate) fn wanted(host: &Host) -> bool {
    host.ctx.process.checkpoint().capture_requested()
        && host.ctx.image.program().captures_everywhere()
        && !host.stack.busy()
        && host.handlers.depth() == 0
}

/// Unwinds the calling thread for a snapshot from inside a capture-point call; rewound, the
/// call resumes as `resume` says. A thread that cannot be captured (inside a signal
/// handler) fails the round instead, so the other threads are not held. Returns what the
/// call returns now (ignored by the unwinding guest).
pub(crate) fn unwind(caller: &mut Caller<'_, Host>, resume: Resumption) -> wasmtime::Result<i32> {
    match capture::begin_unwind(caller, Capture::Checkpoint { resume })? {
        Ok(()) => Ok(0),
        Err(errno) => {
            let host = caller.data();
            let why = format!(
                "thread {} cannot be captured where it is (errno {})",
                host.thread.tid(),
                errno.raw()
            );
            host.ctx.process.checkpoint().cancel(&why);
            Ok(i32::from(Errno::Intr.raw()))
        }
    }
}

/// How a stopped process ends.
pub(crate) fn stopped() -> ExitStatus {
    ExitStatus::Exited(STOPPED_AFTER_SNAPSHOT)
}

fn thread_record(
    ctx: &ProcessCtx,
    thread: &Thread,
    snapshot: &ThreadSnapshot,
    resume: Resumption,
) -> record::Thread {
    record::Thread {
        tid: thread.tid(),
        main: thread.tid() == ctx.process.pid(),
        mask: thread.mask().bits(),
        pending: thread.pending().bits(),
        entry: snapshot.entry(),
        globals: snapshot.globals().to_vec(),
        unwind_area: snapshot.unwind_area(),
        unwind_data: snapshot.unwind_data().to_vec(),
        stack_pointer: snapshot.stack_pointer(),
        stack_top: snapshot.stack_top(),
        resume: match resume {
            Resumption::Restart => record::Resume::Restart,
            Resumption::Return(Ok(v)) => record::Resume::Return(v),
            Resumption::Return(Err(e)) => record::Resume::Errno(e.raw()),
        },
    }
}

/// The snapshot action: runs on the last thread to park, with every thread of the process
/// parked, so nothing changes memory or the descriptor table while it reads them. The
/// process, threads and descriptors are recorded here; memory is frozen copy-on-write (as a
/// fork does) and written by the journal's writer thread while the process runs on — unless
/// it cannot be frozen or the process stops after the snapshot, when the action waits.
fn write(
    ctx: &ProcessCtx,
    journal: &Journaling,
    trigger: Trigger,
    done: Arc<Durable>,
    armed: Option<Arc<WpCopy>>,
    s: &Snapshot<'_>,
) -> Result<(), String> {
    let mut threads = Vec::new();
    let mut memory_len = 0u64;
    for (tid, bytes) in s.captures {
        let c: ThreadCapture = postcard::from_bytes(bytes)
            .map_err(|e| format!("thread {tid}'s capture does not decode: {e}"))?;
        memory_len = memory_len.max(c.memory_len);
        threads.push(c.thread);
    }
    threads.sort_by_key(|t| (!t.main, t.tid));
    let started = std::time::Instant::now();
    tracing::debug!("snapshot: every thread parked, writing begins");
    let shared = ctx.image.shared_memory().is_some();
    let region = ctx
        .memory_region(memory_len as usize)
        .filter(|_| memory_len > 0);
    // A restored process's memory moves into a file at its first snapshot.
    // SAFETY: the region is the process's whole reservation, and every thread is parked.
    let memory = region.and_then(|r| unsafe { ctx.adopt_memory(r) });
    let memory = match (memory, region) {
        (Some(m), Some(r)) if !journal.stop_after() => {
            // SAFETY: the region is the process's accessible memory, every thread parked.
            let sealed = armed.and_then(|c| match unsafe { c.seal(r.len) } {
                Ok(()) => Some(c),
                Err(e) => {
                    tracing::debug!("snapshot: armed copy not sealed ({e})");
                    None
                }
            });
            // SAFETY: as above.
            let copy = sealed.map(Ok).unwrap_or_else(|| unsafe {
                let c = m.arm(r, journal.incremental())?;
                c.seal(r.len).map(|()| c)
            });
            match copy {
                Ok(copy) => Some(MemoryImage::Protected {
                    copy,
                    _keep: ctx.image.shared_memory().cloned(),
                }),
                Err(e) => {
                    tracing::debug!("snapshot: memory not write-protected ({e}); freezing it");
                    // SAFETY: as above.
                    match unsafe { m.freeze(r) } {
                        Ok(view) => Some(MemoryImage::Frozen(view)),
                        Err(e) => {
                            tracing::warn!(
                                "snapshot: memory not frozen ({e}); writing it while paused"
                            );
                            None
                        }
                    }
                }
            }
        }
        _ => None,
    };
    let wait = memory.is_none();
    let memory = match (memory, region) {
        (Some(image), _) => Some((image, shared)),
        (None, Some(r)) => Some((
            MemoryImage::Live {
                base: r.base as usize,
                len: r.len,
            },
            shared,
        )),
        (None, None) => None,
    };
    let wall_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    tracing::debug!(
        "snapshot of process {}: {} threads parked, memory ({} bytes) protected in {:?}",
        ctx.process.pid(),
        s.captures.len(),
        memory_len,
        started.elapsed()
    );
    let files = ctx.fs.describe();
    let process = process_record(ctx);
    journal.submit(Job {
        trigger: trigger_name(trigger),
        wall_ns,
        monotonic_ns: monotonic_now(journal),
        process,
        threads,
        files,
        memory,
        done: Arc::clone(&done),
    });
    if wait || journal.stop_after() {
        done.wait()?;
    }
    Ok(())
}

fn process_record(ctx: &ProcessCtx) -> record::Process {
    let p = &ctx.process;
    record::Process {
        pid: p.pid(),
        args: ctx.args.clone(),
        env: ctx.env.clone(),
        dispositions: p
            .dispositions()
            .iter()
            .map(|d| match d {
                Disposition::Default => record::Disposition::Default,
                Disposition::Ignore => record::Disposition::Ignore,
                Disposition::Handler(h) => record::Disposition::Handler(*h),
            })
            .collect(),
        pending: p.pending_signals().bits(),
        timers: p
            .interval_timers()
            .into_iter()
            .map(|(sig, left, every)| record::Timer {
                signal: sig.number(),
                remaining_ns: left.as_nanos() as u64,
                repeat_ns: every.map(|e| e.as_nanos() as u64),
            })
            .collect(),
        signal_callback: ctx.signal_callback(),
        thread_locals: ctx
            .thread_locals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .describe(),
    }
}

/// The process's monotonic clock now (a restored process's clock continues its snapshot's).
pub(crate) fn monotonic_now(journal: &Journaling) -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
        .saturating_add(journal.monotonic_offset())
}

/// The name a journal records a trigger by.
pub(crate) fn trigger_name(t: Trigger) -> &'static str {
    match t {
        Trigger::Idle => "idle",
        Trigger::FirstListen => "first-listen",
        Trigger::FirstEnviron => "first-environ",
        Trigger::FirstStdin => "first-stdin",
        Trigger::FirstSigint => "first-sigint",
        Trigger::PeriodicInterval => "periodic",
        Trigger::Sigint => "sigint",
        Trigger::Sigalrm => "sigalrm",
        Trigger::Sigtstp => "sigtstp",
        Trigger::Sigstop => "sigstop",
        Trigger::NonDeterministicCall => "non-deterministic",
        Trigger::Bootstrap => "bootstrap",
        Trigger::Transaction => "transaction",
        Trigger::Explicit => "explicit",
    }
}

/// Signals as a set, from a journal's bit mask.
pub(crate) fn signals_of(bits: u64) -> SigSet {
    SigSet::from_bits(bits)
}
