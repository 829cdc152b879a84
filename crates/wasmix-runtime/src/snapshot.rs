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
//!
//! A process with children is snapshotted with its whole tree: every descendant that runs
//! gets a capture round of its own, and each process's action hands its share (threads,
//! memory) to one [`Gather`]; the last share in writes the snapshot — every process of the
//! tree parked at once, so the pipes between them hold what they held, and descriptions
//! they share are recorded once — and every process goes on (or stops) together. Zombies
//! are recorded by their status. A vfork child that has not exec'd yet (it runs on its
//! parent's thread) or a child not started yet makes the request busy: asked again, it
//! succeeds once the child runs.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

use wasmix_fs::Errno;
use wasmix_journal::record;
use wasmix_process::{
    After, CheckpointError, Disposition, ExitStatus, Pid, Process, Resume, SigSet, Snapshot,
    Thread, Ticket, Trigger,
};
use wasmtime::{Caller, Store};

use crate::capture;
use crate::host::{
    Durable, GuestMemory, Host, Job, Journaling, MemoryImage, ProcessCtx, ProcessJob,
};
use crate::stack::{Capture, Resumption, ThreadSnapshot};
use crate::wpcopy::{Hold, WpCopy};

/// The exit code of a process stopped after a snapshot (`--stop-after-snapshot`):
/// EX_TEMPFAIL, "try again later" — restore it to go on.
pub const STOPPED_AFTER_SNAPSHOT: i32 = 75;

/// Why a snapshot was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The process runs without a journal.
    #[error("the process has no journal (run it with a journal to take snapshots)")]
    NoJournal,
    /// The program cannot have its threads captured anywhere: why, naming it.
    #[error("{0}")]
    NotInstrumented(String),
    /// A process of the tree cannot be captured now: it has not started yet, or it is a
    /// vfork child that has not exec'd (it runs on its parent's thread). Asked again once it
    /// runs, the snapshot is taken.
    #[error("process {0} of the tree is starting (or a vfork child before its exec); try again")]
    ChildStarting(u32),
    /// The process has ended.
    #[error("the process has ended")]
    Ended,
    /// Another snapshot is being taken.
    #[error("a snapshot is already being taken")]
    Busy,
    /// A process of the tree started or was reaped while its processes were being parked
    /// (a call already under way when the snapshot was asked for): ask again.
    #[error("the process tree changed while the snapshot was taken; take it again")]
    TreeChanged,
    /// Writing it failed; the process goes on.
    #[error("the snapshot failed: {0}")]
    Failed(String),
}

/// How a round that failed because the tree changed says so (see [`SnapshotError::TreeChanged`]).
pub(crate) const TREE_CHANGED: &str = "the process tree changed";

impl From<CheckpointError> for SnapshotError {
    fn from(e: CheckpointError) -> SnapshotError {
        match e {
            CheckpointError::Busy => SnapshotError::Busy,
            CheckpointError::Action(why) if why == TREE_CHANGED => SnapshotError::TreeChanged,
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

/// Asks for a snapshot of `ctx`'s process — and of its descendants, if it has any — for
/// `trigger`. Every thread parks at its next capture point; the returned ticket completes
/// once the snapshot is committed (or failed). `memory_len` is the memory's size now, if
/// the caller knows it (a guest's own call).
pub(crate) fn request(
    ctx: &Arc<ProcessCtx>,
    trigger: Trigger,
    memory_len: Option<usize>,
) -> Result<SnapshotTicket, SnapshotError> {
    let journal = Arc::clone(ctx.journal().ok_or(SnapshotError::NoJournal)?);
    let program = ctx.image.program();
    if let Some(why) = program.not_capturable() {
        return Err(SnapshotError::NotInstrumented(why));
    }
    if ctx.process.is_exiting() {
        return Err(SnapshotError::Ended);
    }
    let after = if journal.stop_after() {
        After::Stop
    } else {
        After::Resume
    };
    let _one_at_a_time = journal.requesting();
    let tree = settled_tree(ctx, journal.capture_timeout())?;
    let live: Vec<Arc<ProcessCtx>> = tree.iter().filter_map(Place::live).cloned().collect();
    // A hold (an increment's scan, a handover) is not busy: opening the round waits it out.
    if live.iter().any(|c| c.process.checkpoint().is_busy()) {
        return Err(SnapshotError::Busy);
    }
    let done = Arc::new(Durable::default());
    let durable = Arc::clone(&done);
    let gather = Arc::new(Gather::new(Arc::clone(&journal), trigger, done, tree));
    let armed = if journal.stop_after() {
        None
    } else {
        // A guest's own call (the only caller that knows the memory's size) comes from a
        // thread of the process, which a hold must count as held.
        arm(ctx, memory_len, memory_len.is_some())
    };
    let mut armed = Some(armed);
    let mut opened: Vec<&Arc<ProcessCtx>> = Vec::new();
    let mut round = None;
    let mut others = Vec::new();
    for member in &live {
        let is_root = Arc::ptr_eq(member, ctx);
        let g = Arc::clone(&gather);
        let target = Arc::clone(member);
        let copy = if is_root {
            armed.take().flatten()
        } else {
            None
        };
        let incremental = is_root && journal.incremental();
        let action = Box::new(move |s: &Snapshot<'_>| {
            // A member with no thread left to park ended since the tree was taken: its round
            // runs at once, on the requesting thread, which must not wait here for the
            // other shares (the root's needs that thread). The snapshot fails instead.
            if s.captures.is_empty() {
                tracing::debug!("snapshot: process {} ended meanwhile", target.process.pid());
                g.fail(TREE_CHANGED);
                g.cancel_rounds(TREE_CHANGED);
                return Err(TREE_CHANGED.to_owned());
            }
            let part = capture(&target, copy, incremental, g.reads_live(), s);
            let deposited = g.deposit(target.process.pid(), part);
            if let Err(why) = &deposited {
                // The other members' rounds close before this one: its threads go on when
                // it closes, and a snapshot they ask for at once must not find those open.
                g.cancel_rounds(why);
            }
            deposited
        });
        match member.process.request_capture(trigger, after, action) {
            Ok(ticket) => {
                if is_root {
                    round = Some(ticket);
                } else {
                    others.push(ticket);
                }
                opened.push(member);
            }
            Err(e) => {
                let why = format!("process {}: {e}", member.process.pid());
                if gather.fail(&why) {
                    for o in &opened {
                        o.process.checkpoint().cancel(&why);
                    }
                }
                return Err(e.into());
            }
        }
    }
    let round = round.ok_or(SnapshotError::Ended)?;
    journal.set_last(round.clone(), Arc::clone(&durable));
    watch(gather, journal.capture_timeout());
    Ok(SnapshotTicket {
        round,
        others,
        durable,
        journal: Arc::clone(&journal),
    })
}

/// A process of the tree being snapshotted, in the order the journal records them: the
/// root first, each other after its parent.
struct Place {
    pid: Pid,
    parent: Pid,
    what: Member,
}

enum Member {
    /// It runs (in this context).
    Live(Arc<ProcessCtx>),
    /// It has ended and waits to be reaped.
    Zombie(Arc<Process>, ExitStatus),
}

impl Place {
    fn live(&self) -> Option<&Arc<ProcessCtx>> {
        match &self.what {
            Member::Live(c) => Some(c),
            Member::Zombie(..) => None,
        }
    }
}

/// `ctx`'s process and its descendants, once none of them is starting: a child spawned a
/// moment ago runs within milliseconds, so it is waited for, up to `limit` (a vfork child
/// stays in its parent's thread until it execs: the request is busy then).
fn settled_tree(
    ctx: &Arc<ProcessCtx>,
    limit: std::time::Duration,
) -> Result<Vec<Place>, SnapshotError> {
    let since = std::time::Instant::now();
    loop {
        match tree_of(ctx) {
            Err(SnapshotError::ChildStarting(_)) if since.elapsed() < limit => {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            settled => return settled,
        }
    }
}

/// `ctx`'s process and its descendants.
fn tree_of(ctx: &Arc<ProcessCtx>) -> Result<Vec<Place>, SnapshotError> {
    let mut tree = vec![Place {
        pid: ctx.process.pid(),
        parent: 0,
        what: Member::Live(Arc::clone(ctx)),
    }];
    let mut processes = vec![Arc::clone(&ctx.process)];
    let mut next = 0;
    while next < processes.len() {
        let parent = Arc::clone(&processes[next]);
        next += 1;
        for child in parent.child_processes() {
            let what = match child.try_status() {
                Some(status) => Member::Zombie(Arc::clone(&child), status),
                None => {
                    let c = ctx
                        .runtime
                        .context_of(&child)
                        .ok_or(SnapshotError::ChildStarting(child.pid()))?;
                    // Its context can come before its first thread counts in: until then
                    // there is nothing to park, and nothing to capture.
                    if child.checkpoint().live() == 0 {
                        return Err(SnapshotError::ChildStarting(child.pid()));
                    }
                    let program = c.image.program();
                    if let Some(why) = program.not_capturable() {
                        return Err(SnapshotError::NotInstrumented(why));
                    }
                    Member::Live(c)
                }
            };
            tree.push(Place {
                pid: child.pid(),
                parent: parent.pid(),
                what,
            });
            processes.push(child);
        }
    }
    Ok(tree)
}

/// One process's share of a snapshot, taken by its action while its threads are parked.
struct Part {
    threads: Vec<record::Thread>,
    memory: Option<(MemoryImage, bool)>,
}

impl Part {
    /// Drops a share that will not be written: a write-protected copy is ended (it would
    /// otherwise wait forever to be read before the next snapshot's copy can be armed),
    /// so the next snapshot is a full one.
    fn abandon(self) {
        if let Some((MemoryImage::Protected { copy, .. }, _)) = &self.memory {
            copy.end();
        }
    }
}

/// The shares of the processes of one snapshot's tree, and how it ended.
struct Gather {
    journal: Arc<Journaling>,
    trigger: Trigger,
    done: Arc<Durable>,
    tree: Vec<Place>,
    state: Mutex<Gathering>,
    cv: Condvar,
}

#[derive(Default)]
struct Gathering {
    parts: HashMap<Pid, Result<Part, String>>,
    /// The last share is in: the snapshot is being written and can no longer fail from
    /// outside.
    writing: bool,
    outcome: Option<Result<(), String>>,
}

impl Gather {
    fn new(
        journal: Arc<Journaling>,
        trigger: Trigger,
        done: Arc<Durable>,
        tree: Vec<Place>,
    ) -> Gather {
        Gather {
            journal,
            trigger,
            done,
            tree,
            state: Mutex::new(Gathering::default()),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Gathering> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the process must wait for its memory to be written (a process stopping after
    /// the snapshot: its memory goes away when it ends).
    fn reads_live(&self) -> bool {
        self.journal.stop_after()
    }

    /// Hands in the share of process `pid` (whose threads stay parked meanwhile); the last
    /// one in writes the snapshot. Returns how the snapshot ended.
    fn deposit(&self, pid: Pid, part: Result<Part, String>) -> Result<(), String> {
        let mut st = self.lock();
        if let Some(outcome) = &st.outcome {
            if let Ok(part) = part {
                part.abandon();
            }
            return outcome.clone();
        }
        st.parts.insert(pid, part);
        let live = self.tree.iter().filter(|p| p.live().is_some()).count();
        if st.parts.len() == live {
            st.writing = true;
            let mut parts = std::mem::take(&mut st.parts);
            drop(st);
            let outcome = self.write(&mut parts);
            for part in parts.into_values().flatten() {
                part.abandon();
            }
            let mut st = self.lock();
            st.outcome = Some(outcome.clone());
            self.cv.notify_all();
            return outcome;
        }
        loop {
            if let Some(outcome) = &st.outcome {
                return outcome.clone();
            }
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Fails the snapshot unless it is being written; true if it failed here.
    fn fail(&self, why: &str) -> bool {
        let mut st = self.lock();
        if st.writing || st.outcome.is_some() {
            return false;
        }
        st.outcome = Some(Err(why.to_owned()));
        for part in std::mem::take(&mut st.parts).into_values().flatten() {
            part.abandon();
        }
        self.cv.notify_all();
        true
    }

    /// Ends the rounds of the tree's processes whose actions have not started, failing them
    /// with `why` (their parked threads go on).
    fn cancel_rounds(&self, why: &str) {
        for ctx in self.tree.iter().filter_map(Place::live) {
            ctx.process.checkpoint().cancel(why);
        }
    }

    /// Waits up to `limit` for the outcome.
    fn wait_timeout(&self, limit: std::time::Duration) -> bool {
        let st = self.lock();
        let (st, _) = self
            .cv
            .wait_timeout_while(st, limit, |st| st.outcome.is_none() && !st.writing)
            .unwrap_or_else(|e| e.into_inner());
        st.outcome.is_some() || st.writing
    }

    /// Writes the snapshot: every process of the tree is parked (or ended) now. The shares
    /// it does not take (it failed) are left in `parts`.
    fn write(&self, parts: &mut HashMap<Pid, Result<Part, String>>) -> Result<(), String> {
        let Some(root) = self.tree.first().and_then(Place::live) else {
            return Err("the snapshot has no process".into());
        };
        let now: Vec<Pid> = match tree_of(root) {
            // A child spawned since the tree was settled: asking again will wait for it.
            Err(SnapshotError::ChildStarting(_)) => return Err(TREE_CHANGED.into()),
            other => other.map_err(|e| e.to_string())?,
        }
        .iter()
        .map(|p| p.pid)
        .collect();
        if now != self.tree.iter().map(|p| p.pid).collect::<Vec<_>>() {
            return Err(TREE_CHANGED.into());
        }
        // Every check first: a failure leaves every share in `parts`, to be abandoned.
        for place in &self.tree {
            let Some(ctx) = place.live() else { continue };
            match parts.get(&place.pid) {
                None => return Err(format!("process {} handed in nothing", place.pid)),
                Some(Err(e)) => return Err(e.clone()),
                Some(Ok(part)) if part.threads.is_empty() => {
                    // Its last thread left instead of parking: it ended meanwhile.
                    if Arc::ptr_eq(ctx, root) {
                        return Err(SnapshotError::Ended.to_string());
                    }
                    if ctx.process.decided_status().is_none() {
                        return Err(format!(
                            "process {} lost its threads without an exit status",
                            place.pid
                        ));
                    }
                }
                Some(Ok(_)) => {}
            }
        }
        let mut recorded = wasmix_fs::Recorded::default();
        let mut root_job = None;
        let mut members = Vec::new();
        for place in &self.tree {
            let member = |ended, module: [u8; 32], path: String| record::Member {
                pid: place.pid,
                parent: place.parent,
                module,
                path,
                ended,
            };
            let ctx = match &place.what {
                Member::Zombie(p, status) => {
                    members.push((
                        member(Some(ended(*status)), p.module_hash(), String::new()),
                        None,
                    ));
                    continue;
                }
                Member::Live(ctx) => ctx,
            };
            let Some(Ok(part)) = parts.remove(&place.pid) else {
                continue; // checked above
            };
            let program = ctx.image.program();
            let own_module = program.hash() != root.image.program().hash();
            let path = if own_module {
                program.name().to_owned()
            } else {
                String::new()
            };
            if part.threads.is_empty() {
                let status = ctx
                    .process
                    .decided_status()
                    .unwrap_or(ExitStatus::Exited(0));
                members.push((member(Some(ended(status)), program.hash(), path), None));
                continue;
            }
            let job = ProcessJob {
                process: process_record(ctx),
                threads: part.threads,
                files: ctx.fs.describe_in(place.pid, &mut recorded),
                memory: part.memory,
            };
            if root_job.is_none() {
                root_job = Some(job);
            } else {
                members.push((member(None, program.hash(), path), Some(job)));
            }
        }
        let root_job = root_job.ok_or("the snapshot has no process")?;
        let wait = self.journal.stop_after()
            || root_job.reads_live_memory()
            || members
                .iter()
                .any(|(_, j)| j.as_ref().is_some_and(ProcessJob::reads_live_memory));
        let wall_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        self.journal.submit(Job {
            trigger: trigger_name(self.trigger),
            wall_ns,
            monotonic_ns: monotonic_now(&self.journal),
            root: root_job,
            members,
            done: Arc::clone(&self.done),
        });
        if wait {
            self.done.wait()?;
        }
        Ok(())
    }
}

fn ended(status: ExitStatus) -> record::Ended {
    match status {
        ExitStatus::Exited(code) => record::Ended::Exited(code),
        ExitStatus::Signaled(sig) => record::Ended::Signaled(sig.number()),
    }
}

/// Write-protects the memory while the threads still run, so the pause only re-protects
/// what they write until they park (see [`crate::wpcopy`]). `None` where that cannot be
/// done; the snapshot then protects (or freezes) the memory while paused.
fn arm(ctx: &Arc<ProcessCtx>, memory_len: Option<usize>, from_member: bool) -> Option<Arc<WpCopy>> {
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
    match unsafe { memory.arm(region, incremental, Some(hold_of(ctx)), from_member) } {
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

/// Fails the snapshot if some thread of the tree has not parked within `limit` (blocked in a
/// call that cannot be captured): the parked threads go on, and the failure names the
/// others.
fn watch(gather: Arc<Gather>, limit: std::time::Duration) {
    let spawned = std::thread::Builder::new()
        .name("wasmix-snapshot-watch".into())
        .spawn(move || {
            crate::sched::background();
            if gather.wait_timeout(limit) {
                return;
            }
            let mut missing = Vec::new();
            for ctx in gather.tree.iter().filter_map(Place::live) {
                let parked = ctx.process.checkpoint().parked();
                missing.extend(
                    ctx.process
                        .threads()
                        .iter()
                        .map(|t| t.tid())
                        .filter(|t| !parked.contains(t)),
                );
            }
            let why = format!(
                "thread(s) {missing:?} did not reach a safe point within {limit:?} (blocked in \
                 a call a snapshot cannot capture?)"
            );
            if gather.fail(&why) {
                gather.cancel_rounds(&why);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("snapshot: no watchdog ({e}); a thread that never parks holds it");
    }
}

/// A snapshot being taken.
pub struct SnapshotTicket {
    /// The round of the process asked for; its outcome is the snapshot's.
    round: Ticket,
    /// The rounds of its descendants, which close a moment after (each as its threads go
    /// on): a new request before then would find them busy.
    others: Vec<Ticket>,
    durable: Arc<Durable>,
    journal: Arc<Journaling>,
}

impl SnapshotTicket {
    /// Blocks until every thread of the tree runs again (the snapshot may still be being
    /// written).
    pub fn wait_resumed(&self) -> Result<(), SnapshotError> {
        let outcome = self.round.wait().map(drop).map_err(SnapshotError::from);
        for other in &self.others {
            let _ = other.wait();
        }
        outcome
    }

    /// Blocks until the snapshot is committed to the journal (durable, with the default
    /// sync policy), or has failed.
    pub fn wait(&self) -> Result<(), SnapshotError> {
        self.wait_resumed()?;
        self.journal
            .wait_written(&self.durable)
            .map_err(SnapshotError::Failed)
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

/// How long an increment waits for the process's threads to be held for its scan before
/// it scans beside them: a thread in a host call that does not block holds it up.
const HOLD_LIMIT: std::time::Duration = std::time::Duration::from_millis(2);

/// Stops the threads of `ctx`'s process for a moment: a hold of its checkpoint barrier
/// ([`Coordinator::hold`](wasmix_process::Coordinator::hold)), which running threads join at
/// their next epoch check ([`held`]).
fn hold_of(ctx: &Arc<ProcessCtx>) -> Hold {
    let ctx = Arc::downgrade(ctx);
    Arc::new(move |from_member: bool| {
        let ctx = ctx.upgrade()?;
        let engine = ctx.runtime.engine();
        let hold = ctx
            .process
            .checkpoint()
            .hold(HOLD_LIMIT, from_member, || engine.increment_epoch())?;
        Some(Box::new(hold) as Box<dyn Send>)
    })
}

/// Sits out a hold of the thread's process ([`Coordinator::hold`](wasmix_process::Coordinator::hold)),
/// where running wasm checks in (its epoch deadline): the thread stays where it is, nothing
/// recorded, until the hold ends.
pub(crate) fn held(host: &Host) {
    host.ctx.process.checkpoint().hold_point();
    #[cfg(test)]
    if let Some(hook) = tests::AFTER_HOLD.lock().unwrap().clone() {
        hook(host);
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

/// A process's action: runs on the last of its threads to park, with every thread of the
/// process parked, so nothing changes its memory while it is frozen here. Its threads'
/// records and its memory — write-protected or frozen copy-on-write (as a fork does), for
/// the journal's writer thread to read while the process runs on; the live memory where
/// neither can be done or `live` asks (the snapshot then waits for the write).
/// `incremental`: the copy may be one of the pages written since the last snapshot (the
/// root's); `armed`, a copy armed when the snapshot was asked for.
fn capture(
    ctx: &Arc<ProcessCtx>,
    armed: Option<Arc<WpCopy>>,
    incremental: bool,
    live: bool,
    s: &Snapshot<'_>,
) -> Result<Part, String> {
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
    let shared = ctx.image.shared_memory().is_some();
    let region = ctx
        .memory_region(memory_len as usize)
        .filter(|_| memory_len > 0);
    if memory_len > 0 && region.is_none() {
        return Err(format!(
            "process {}'s memory cannot be located",
            ctx.process.pid()
        ));
    }
    // A restored process's memory moves into a file at its first snapshot.
    // SAFETY: the region is the process's whole reservation, and every thread is parked.
    let memory = region.and_then(|r| unsafe { ctx.adopt_memory(r) });
    let memory = match (memory, region) {
        (Some(m), Some(r)) if !live => {
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
                let c = m.arm(r, incremental, Some(hold_of(ctx)), false)?;
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
    tracing::debug!(
        "snapshot of process {}: {} threads parked, memory ({} bytes) protected in {:?}",
        ctx.process.pid(),
        s.captures.len(),
        memory_len,
        started.elapsed()
    );
    Ok(Part { threads, memory })
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
        Trigger::Sigterm => "sigterm",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CacheSetting, JournalConfig, Runtime, RuntimeConfig};

    type Hook = Arc<dyn Fn(&Host) + Send + Sync>;

    /// Runs the module `wat` journaled into `dir` (a thread that misses a snapshot's round
    /// fails it in 3 s, not 10); with its context.
    fn journaled(dir: &std::path::Path, wat: &[u8]) -> (crate::RunningProcess, Arc<ProcessCtx>) {
        let runtime = Runtime::new(RuntimeConfig {
            cache: CacheSetting::Disabled,
            snapshots: true,
            ..RuntimeConfig::default()
        })
        .unwrap();
        let program = runtime.load_bytes(wat, "guest").unwrap();
        let running = runtime
            .process(&program)
            .journal(JournalConfig {
                capture_timeout: std::time::Duration::from_secs(3),
                ..JournalConfig::new(dir.join("j"))
            })
            .spawn()
            .unwrap();
        let ctx = running.handle().journaled().expect("a journaled process");
        (running, ctx)
    }

    /// A hold of `ctx`'s process, tried until its thread is there to be held (each try
    /// gives up after HOLD_LIMIT: the thread may still be starting).
    fn held_at_last(ctx: &Arc<ProcessCtx>) -> Box<dyn Send> {
        let started = std::time::Instant::now();
        loop {
            if let Some(hold) = hold_of(ctx)(false) {
                return hold;
            }
            assert!(started.elapsed().as_secs() < 30, "the thread is never held");
        }
    }

    /// Called by every thread of every test as it leaves [`held`].
    pub(super) static AFTER_HOLD: Mutex<Option<Hook>> = Mutex::new(None);

    /// A computing thread held until a snapshot's round opens — its wake-up raised and the
    /// epoch bumped while the thread is still where the hold kept it, as happens when a
    /// hold ends just as a snapshot is asked for — is still captured. It was not (the
    /// deadline it left with counted from the bumped epoch), and the snapshot failed once
    /// its capture timeout passed: a compute-only thread missed a snapshot asked for as the
    /// previous one's handover took holds.
    #[test]
    fn a_computing_thread_let_go_as_a_round_opens_is_captured() {
        let dir = tempfile::tempdir().unwrap();
        let (running, ctx) = journaled(
            dir.path(),
            b"(module (memory (export \"memory\") 1)
                    (global (export \"__stack_pointer\") (mut i32) (i32.const 65536))
                    (func (export \"_start\") (loop (br 0))))",
        );
        let handle = running.handle();
        let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (target, on) = (Arc::clone(&ctx), Arc::clone(&armed));
        *AFTER_HOLD.lock().unwrap() = Some(Arc::new(move |host: &Host| {
            use std::sync::atomic::Ordering::SeqCst;
            if !Arc::ptr_eq(&host.ctx, &target) || !on.swap(false, SeqCst) {
                return;
            }
            // Until the round has woken this thread (its flag raised, then the epoch
            // bumped: a moment after).
            let started = std::time::Instant::now();
            while !host.interrupt.is_raised() && started.elapsed().as_secs() < 30 {
                std::thread::yield_now();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }));
        let hold = held_at_last(&ctx);
        armed.store(true, std::sync::atomic::Ordering::SeqCst);
        let asking = std::thread::spawn(move || handle.snapshot().map(|t| t.wait()));
        drop(hold);
        let outcome = asking.join().unwrap();
        *AFTER_HOLD.lock().unwrap() = None;
        assert!(matches!(outcome, Ok(Ok(()))), "{outcome:?}");
        assert!(
            !armed.load(std::sync::atomic::Ordering::SeqCst),
            "the hook ran"
        );
        running.signal(wasmix_process::Signal::KILL);
        let _ = running.wait();
    }

    /// A hold (an increment's scan, a handover to the scanner) is short and ends by itself:
    /// a snapshot asked for meanwhile waits it out. It was refused as busy, and the guest's
    /// `proc_snapshot` failed with EBUSY when the previous snapshot's handover was still
    /// taking holds.
    #[test]
    fn a_snapshot_asked_for_during_a_hold_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let (running, ctx) = journaled(
            dir.path(),
            b"(module
                    (import \"wasix_32v1\" \"thread_sleep\" (func $sleep (param i64) (result i32)))
                    (memory (export \"memory\") 1)
                    (global (export \"__stack_pointer\") (mut i32) (i32.const 65536))
                    (func (export \"_start\")
                        (loop (drop (call $sleep (i64.const 60000000000))) (br 0))))",
        );
        let handle = running.handle();
        let hold = held_at_last(&ctx);
        let asking = std::thread::spawn(move || handle.snapshot().map(|t| t.wait()));
        // Not synchronisation: the request waits for the hold however long it lasts, so the
        // test passes whenever it drops; the pause only makes a request that does not wait
        // (the bug) meet the hold.
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(hold);
        let outcome = asking.join().unwrap();
        assert!(matches!(outcome, Ok(Ok(()))), "{outcome:?}");
        running.signal(wasmix_process::Signal::KILL);
        let _ = running.wait();
    }
}
