//! A journaled process's side of its journal: a writer thread that appends snapshots in
//! order (memory from a frozen copy-on-write view, so the process need not wait for it) —
//! or the thread that asked for one and waits for it, which writes it itself if the writer
//! has not started ([`Journaling::wait_last`]) — what takes snapshots and what follows
//! them, the clock offset a restore brought, and the process context to act on (which an
//! exec replaces).

use std::sync::{Arc, Condvar, Mutex, Weak};

use wasmix_journal::{record, JournalError, JournalWriter, SnapshotWriter};
use wasmix_process::{Ticket, Trigger};

use super::ProcessCtx;
use crate::forkmem::FrozenView;
use crate::wpcopy::{WpCopy, CHUNK};

/// How the last snapshot asked for ended without being written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LastFailed {
    /// Its round failed (a member's share could not be taken, or it was cancelled).
    #[error("{0}")]
    Round(wasmix_process::CheckpointError),
    /// It was taken but not written.
    #[error("{0}")]
    NotWritten(String),
}

/// The journal of one process.
pub(crate) struct Journaling {
    queue: Arc<Queue>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    triggers: Vec<Trigger>,
    /// `first-*` triggers that have fired (in this run, or before the snapshot it restored).
    fired: Mutex<Vec<Trigger>>,
    stop_after: bool,
    /// Snapshots after the first write only the pages written since the one before.
    incremental: bool,
    /// How long a snapshot waits for every thread to park before it gives up.
    capture_timeout: std::time::Duration,
    /// Added to the monotonic clock: a restored process's clock goes on from where its
    /// snapshot left it, never back.
    monotonic_offset: u64,
    current: Mutex<Weak<ProcessCtx>>,
    /// The last snapshot asked for (its round, its write), for a `proc_snapshot` that waits
    /// for it to be durable.
    last: Mutex<Option<(Ticket, Arc<Durable>)>>,
    /// Held while a snapshot is asked for: arming its memory copy and opening its round are
    /// one step, so a second request finds it busy instead of disturbing its copy.
    requesting: Mutex<()>,
}

/// Whether a snapshot has reached the journal: waitable.
#[derive(Default)]
pub(crate) struct Durable {
    state: Mutex<Option<Result<(), String>>>,
    cv: Condvar,
}

impl Durable {
    pub fn finish(&self, r: Result<(), String>) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        self.cv.notify_all();
    }

    /// Blocks until the snapshot is committed (or failed).
    pub fn wait(&self) -> Result<(), String> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = st.clone() {
                return r;
            }
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A linear memory's bytes for a snapshot.
pub(crate) enum MemoryImage {
    /// A write-protected copy, read chunk by chunk while the process runs on; a shared
    /// memory is held so it stays mapped until then.
    Protected {
        copy: Arc<WpCopy>,
        _keep: Option<wasmtime::SharedMemory>,
    },
    /// A frozen copy-on-write view (the process runs on meanwhile).
    Frozen(FrozenView),
    /// The live memory, readable only while every thread stays parked: the snapshot's
    /// action waits for the write.
    Live { base: usize, len: usize },
}

/// One process's records in a snapshot.
pub(crate) struct ProcessJob {
    pub process: record::Process,
    pub threads: Vec<record::Thread>,
    pub files: record::Files,
    pub memory: Option<(MemoryImage, bool)>,
}

impl ProcessJob {
    /// Whether the writer reads the live memory (the process must stay parked until then).
    pub fn reads_live_memory(&self) -> bool {
        matches!(self.memory, Some((MemoryImage::Live { .. }, _)))
    }
}

/// One snapshot to append: the journal's process and the other processes of its tree
/// (`None`: a zombie, recorded by its member record alone).
pub(crate) struct Job {
    pub trigger: &'static str,
    pub wall_ns: u64,
    pub monotonic_ns: u64,
    pub root: ProcessJob,
    pub members: Vec<(record::Member, Option<ProcessJob>)>,
    pub done: Arc<Durable>,
}

impl Journaling {
    pub fn new(
        writer: JournalWriter,
        triggers: Vec<Trigger>,
        stop_after: bool,
        incremental: bool,
        capture_timeout: std::time::Duration,
        monotonic_offset: u64,
    ) -> Journaling {
        let queue = Arc::new(Queue {
            jobs: Mutex::new(Jobs::default()),
            ready: Condvar::new(),
            writer: Mutex::new(Writer { writer, last: None }),
        });
        let q = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name("wasmix-journal".into())
            .spawn(move || {
                crate::sched::background();
                q.serve();
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!("no journal writer thread ({e}): snapshots are not written");
                queue.close();
                None
            }
        };
        Journaling {
            queue,
            writer: Mutex::new(thread),
            triggers,
            fired: Mutex::new(Vec::new()),
            stop_after,
            incremental,
            capture_timeout,
            monotonic_offset,
            current: Mutex::new(Weak::new()),
            last: Mutex::new(None),
            requesting: Mutex::new(()),
        }
    }

    /// Queues `job`; it is written after every snapshot queued before it.
    pub fn submit(&self, job: Job) {
        self.queue.push(job);
    }

    /// Waits until every queued snapshot is written, then stops the writer.
    pub fn close(&self) {
        self.queue.close();
        // The lock is held through the join: a second caller returns only once the writes
        // are done, not as soon as it finds the writer taken.
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = writer.take() {
            let _ = t.join();
        }
        // A waiting thread may be writing still (the writer thread ended on the queue it
        // had emptied): its write is waited for too.
        self.queue.finish();
    }

    /// Whether `trigger` takes a snapshot.
    pub fn on(&self, trigger: Trigger) -> bool {
        self.triggers.contains(&trigger)
    }

    /// Whether a once-only `trigger` (first-stdin, …) is on and has not fired yet; it has
    /// fired after this.
    pub fn fire_once(&self, trigger: Trigger) -> bool {
        if !self.on(trigger) {
            return false;
        }
        let mut fired = self.fired.lock().unwrap_or_else(|e| e.into_inner());
        if fired.contains(&trigger) {
            return false;
        }
        fired.push(trigger);
        true
    }

    /// Marks every once-only trigger as fired: a restored process is past its first of
    /// everything.
    pub fn all_fired(&self) {
        let mut fired = self.fired.lock().unwrap_or_else(|e| e.into_inner());
        fired.extend(self.triggers.iter().copied());
    }

    /// Whether snapshots after the first are incremental.
    pub fn incremental(&self) -> bool {
        self.incremental
    }

    /// Whether the process stops once a snapshot is taken.
    pub fn stop_after(&self) -> bool {
        self.stop_after
    }

    /// How long a snapshot waits for every thread to park.
    pub fn capture_timeout(&self) -> std::time::Duration {
        self.capture_timeout
    }

    pub fn monotonic_offset(&self) -> u64 {
        self.monotonic_offset
    }

    /// Held while a snapshot is being asked for (see the field).
    pub fn requesting(&self) -> std::sync::MutexGuard<'_, ()> {
        self.requesting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers the snapshot just asked for (see [`Journaling::wait_last`]).
    pub fn set_last(&self, round: Ticket, durable: Arc<Durable>) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((round, durable));
    }

    /// Waits until the last snapshot asked for is written: its round must have succeeded,
    /// then its write. Nothing to wait for in a process restored since.
    pub fn wait_last(&self) -> Result<(), LastFailed> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some((round, durable)) = last else {
            return Ok(());
        };
        round.wait().map_err(LastFailed::Round)?;
        self.wait_written(&durable).map_err(LastFailed::NotWritten)
    }

    /// Waits until `durable`'s snapshot is written (or failed) — writing it on the calling
    /// thread, with whatever is queued before it, if the writer thread has not started.
    /// The caller would only sleep meanwhile; the writer thread, woken as the process
    /// resumed, is often queued behind a resumed guest thread on that one's CPU, not
    /// preempting it (it is background work), while the caller's CPU goes idle: measured
    /// here, the write then started ~4 ms late, and took the guest thread's CPU for ~2 ms
    /// when it did.
    pub fn wait_written(&self, durable: &Durable) -> Result<(), String> {
        self.queue.help();
        durable.wait()
    }

    /// The context the process runs in now.
    pub fn current(&self) -> Option<Arc<ProcessCtx>> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade()
    }

    /// Records that the process now runs in `ctx` (its start, or an exec).
    pub fn set_current(&self, ctx: &Arc<ProcessCtx>) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(ctx);
    }
}

impl Drop for Journaling {
    fn drop(&mut self) {
        self.close();
    }
}

/// The snapshots waiting to be written, and the journal they are written to: by the writer
/// thread, or by a thread that would otherwise wait for them ([`Queue::help`]). Whoever
/// holds `writer` writes every job queued, in order.
struct Queue {
    jobs: Mutex<Jobs>,
    /// The writer thread waits here for jobs (or the close).
    ready: Condvar,
    writer: Mutex<Writer>,
}

#[derive(Default)]
struct Jobs {
    queued: std::collections::VecDeque<Job>,
    /// No more jobs are taken; the writer thread ends once the queue is empty.
    closed: bool,
}

struct Writer {
    writer: JournalWriter,
    last: LastTracked,
}

impl Queue {
    /// Queues `job`; a closed queue fails it at once.
    fn push(&self, job: Job) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.closed {
            drop(jobs);
            job.done
                .finish(Err("the journal's writer thread is not running".into()));
            return;
        }
        jobs.queued.push_back(job);
        self.ready.notify_one();
    }

    fn close(&self) {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.ready.notify_all();
    }

    /// Waits for whoever is writing, then writes whatever is still queued.
    fn finish(&self) {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        self.drain(&mut writer);
    }

    /// The writer thread: writes jobs as they come, until the queue is closed and empty.
    fn serve(&self) {
        loop {
            {
                let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
                while jobs.queued.is_empty() && !jobs.closed {
                    jobs = self.ready.wait(jobs).unwrap_or_else(|e| e.into_inner());
                }
                if jobs.queued.is_empty() {
                    return;
                }
            }
            let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            self.drain(&mut writer);
        }
    }

    /// Writes what is queued now, unless another thread is writing (which then writes it).
    fn help(&self) {
        let writer = match self.writer.try_lock() {
            Ok(w) => Some(w),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        if let Some(mut writer) = writer {
            self.drain(&mut writer);
        }
    }

    /// Writes queued jobs, in order, until none is left. Called with the writer held, so a
    /// job queued while it runs is written by it or by whoever holds the writer next (the
    /// writer thread looks at the queue again before it waits).
    fn drain(&self, w: &mut Writer) {
        loop {
            let Some(job) = self
                .jobs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .queued
                .pop_front()
            else {
                return;
            };
            // Whatever happens, whoever waits for this snapshot hears how it ended.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                append(&mut w.writer, &job, &mut w.last).map_err(|e| e.to_string())
            }))
            .unwrap_or_else(|_| Err("the journal writer failed (a bug)".into()));
            if let Err(e) = &r {
                tracing::warn!("snapshot not written: {e}");
                // Increments of it would name a base that does not exist: the next
                // snapshot is a full one.
                if let Some((MemoryImage::Protected { copy, .. }, _)) = &job.root.memory {
                    copy.end();
                }
                w.last = None;
            }
            job.done.finish(r);
        }
    }
}

/// The last snapshot written from a tracking copy: the copy's id, its generation then, and
/// the snapshot's sequence number — the base of that copy's next increment.
type LastTracked = Option<(u64, u64, u64)>;

fn append(
    writer: &mut JournalWriter,
    job: &Job,
    last: &mut LastTracked,
) -> Result<(), JournalError> {
    let started = std::time::Instant::now();
    let mut snap = writer.snapshot(job.trigger, job.wall_ns, job.monotonic_ns)?;
    let tracked = write_process(&mut snap, &job.root, Some(&*last))?;
    for (member, image) in &job.members {
        snap.member(member)?;
        if let Some(image) = image {
            write_process(&mut snap, image, None)?;
        }
    }
    let written = std::time::Instant::now();
    let info = snap.commit()?;
    tracing::debug!(
        "journal: snapshot {} ({} bytes, {} process(es)) committed, written in {:?}, {:?} \
         more making it durable",
        info.seq,
        info.bytes,
        1 + job.members.len(),
        written - started,
        written.elapsed()
    );
    if let Some((id, generation)) = tracked {
        *last = Some((id, generation, info.seq));
    }
    Ok(())
}

/// Writes one process's records. `last` is where the root's memory copy was last written
/// (its increments build on that); a member's memory is always written whole. Returns the
/// root's tracking copy and its generation, if it has one.
fn write_process(
    snap: &mut SnapshotWriter<'_>,
    job: &ProcessJob,
    last: Option<&LastTracked>,
) -> Result<Option<(u64, u64)>, JournalError> {
    snap.process(&job.process)?;
    for t in &job.threads {
        snap.thread(t)?;
    }
    snap.files(&job.files)?;
    let mut tracked = None;
    let Some((image, shared)) = &job.memory else {
        return Ok(None);
    };
    let size = match image {
        MemoryImage::Protected { copy, .. } => copy.len(),
        MemoryImage::Frozen(view) => view.bytes().len(),
        MemoryImage::Live { len, .. } => *len,
    };
    let held = match image {
        MemoryImage::Protected { copy, .. } => {
            if last.is_some() {
                tracked = Some((copy.id(), copy.generation()));
            }
            copy.held_pages()
        }
        _ => None,
    };
    if let (Some(_), MemoryImage::Protected { copy, .. }) = (&held, image) {
        // An increment: its base is the snapshot written from this copy's last seal.
        match last.copied().flatten() {
            Some((id, generation, seq))
                if id == copy.id() && generation + 1 == copy.generation() =>
            {
                snap.base(seq)?
            }
            _ => {
                return Err(JournalError::Unrecordable {
                    path: snap.path().to_owned(),
                    what: "an incremental snapshot whose base snapshot was not written".into(),
                })
            }
        }
    }
    snap.memory(&record::Memory {
        index: 0,
        size: size as u64,
        shared: *shared,
    })?;
    match image {
        MemoryImage::Protected { copy, .. } if held.is_some() => {
            // An increment the scanner found is written straight from its page copies.
            if let Some(written) = copy.write_copied(|runs| write_runs(snap, runs)) {
                written?;
                return Ok(tracked);
            }
            let held = held.as_deref().unwrap_or_default();
            let mut buf = Vec::new();
            for at in (0..size).step_by(CHUNK) {
                let first = at / PAGE;
                let last_page = (at + CHUNK).min(size) / PAGE;
                let mine = &held[first.min(held.len())..last_page.min(held.len())];
                if mine.iter().any(|h| *h) {
                    copy.read_pages(at, mine, &mut buf);
                    write_pages(snap, at, &buf, mine)?;
                } else {
                    copy.skip(at);
                }
            }
        }
        MemoryImage::Protected { copy, .. } => {
            let mut buf = Vec::with_capacity(CHUNK);
            for at in (0..size).step_by(CHUNK) {
                copy.read(at, &mut buf);
                write_memory(snap, at, &buf)?;
            }
        }
        MemoryImage::Frozen(view) => write_memory(snap, 0, view.bytes())?,
        // SAFETY: the snapshot's action waits for this job while every thread of the
        // process stays parked: the memory is mapped and nobody writes it.
        MemoryImage::Live { base, len } => write_memory(snap, 0, unsafe {
            std::slice::from_raw_parts(*base as *const u8, *len)
        })?,
    }
    Ok(tracked)
}

const PAGE: usize = 4096;

/// An increment's pages of one chunk (the chunk at `offset`; `held` says which of its pages
/// the increment holds, and `bytes` has those pages one after the other): runs of
/// consecutive held pages as regions, all-zero pages among them as zero regions (the base
/// may hold other bytes there).
fn write_pages(
    snap: &mut SnapshotWriter<'_>,
    offset: usize,
    bytes: &[u8],
    held: &[bool],
) -> Result<(), JournalError> {
    let pages: Vec<usize> = (0..held.len()).filter(|p| held[*p]).collect();
    let page_at = |k: usize| &bytes[k * PAGE..(k + 1) * PAGE];
    let mut regions: Vec<(u64, &[u8])> = Vec::new();
    let mut k = 0;
    while k < pages.len() {
        let zero = crate::forkmem::is_zero(page_at(k));
        let mut j = k + 1;
        while j < pages.len()
            && pages[j] == pages[j - 1] + 1
            && crate::forkmem::is_zero(page_at(j)) == zero
        {
            j += 1;
        }
        let at = (offset + pages[k] * PAGE) as u64;
        let len = (j - k) * PAGE;
        if zero {
            snap.zeros(0, at, len as u64)?;
        } else {
            regions.push((at, &bytes[k * PAGE..j * PAGE]));
        }
        k = j;
    }
    snap.regions(0, &regions)
}

/// An increment's pages as `runs` of consecutive pages, `(first page, bytes)`: all-zero
/// pages as zero regions (the base may hold other bytes there), the rest as regions written
/// together, from the runs' own bytes.
fn write_runs(snap: &mut SnapshotWriter<'_>, runs: &[(usize, &[u8])]) -> Result<(), JournalError> {
    let mut regions: Vec<(u64, &[u8])> = Vec::new();
    for (first, bytes) in runs {
        let mut k = 0;
        let pages = bytes.len() / PAGE;
        while k < pages {
            let page = |i: usize| &bytes[i * PAGE..(i + 1) * PAGE];
            let zero = crate::forkmem::is_zero(page(k));
            let mut j = k + 1;
            while j < pages && crate::forkmem::is_zero(page(j)) == zero {
                j += 1;
            }
            let at = ((first + k) * PAGE) as u64;
            if zero {
                snap.zeros(0, at, ((j - k) * PAGE) as u64)?;
            } else {
                regions.push((at, &bytes[k * PAGE..j * PAGE]));
            }
            k = j;
        }
    }
    snap.regions(0, &regions)
}

/// The non-zero pages of `bytes` (the memory's from `offset` on), in runs of at most
/// 4 MiB, as regions.
fn write_memory(
    snap: &mut SnapshotWriter<'_>,
    offset: usize,
    bytes: &[u8],
) -> Result<(), JournalError> {
    const RUN: usize = 4 << 20;
    let mut at = 0;
    while at < bytes.len() {
        let end = (at + PAGE).min(bytes.len());
        if crate::forkmem::is_zero(&bytes[at..end]) {
            at = end;
            continue;
        }
        let start = at;
        let mut stop = end;
        while stop < bytes.len() && stop - start < RUN {
            let next = (stop + PAGE).min(bytes.len());
            if crate::forkmem::is_zero(&bytes[stop..next]) {
                break;
            }
            stop = next;
        }
        snap.region(0, (offset + start) as u64, &bytes[start..stop], None)?;
        at = stop;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmix_journal::{Journal, SyncPolicy, Verify};

    fn queue(dir: &tempfile::TempDir) -> Queue {
        let writer = JournalWriter::create(&dir.path().join("j"), [7; 32], SyncPolicy::Never)
            .expect("journal");
        Queue {
            jobs: Mutex::new(Jobs::default()),
            ready: Condvar::new(),
            writer: Mutex::new(Writer { writer, last: None }),
        }
    }

    fn job(wall_ns: u64) -> (Job, Arc<Durable>) {
        let done = Arc::new(Durable::default());
        let process = record::Process {
            pid: 1,
            args: Vec::new(),
            env: Vec::new(),
            dispositions: Vec::new(),
            pending: 0,
            timers: Vec::new(),
            signal_callback: None,
            thread_locals: Vec::new(),
        };
        let job = Job {
            trigger: "explicit",
            wall_ns,
            monotonic_ns: wall_ns,
            root: ProcessJob {
                process,
                threads: Vec::new(),
                files: record::Files {
                    cwd: "/".into(),
                    fds: Vec::new(),
                },
                memory: None,
            },
            members: Vec::new(),
            done: Arc::clone(&done),
        };
        (job, done)
    }

    fn written(dir: &tempfile::TempDir) -> Vec<u64> {
        let journal = Journal::open(&dir.path().join("j"), None, Verify::Full).expect("opens");
        journal
            .snapshots()
            .iter()
            .map(|s| s.begin.wall_ns)
            .collect()
    }

    #[test]
    fn a_caller_that_would_wait_writes_what_is_queued_itself_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir);
        let (a, a_done) = job(10);
        let (b, b_done) = job(20);
        q.push(a);
        q.push(b);
        // No writer thread here: only the helper can have written them.
        q.help();
        assert_eq!(a_done.wait(), Ok(()));
        assert_eq!(b_done.wait(), Ok(()));
        drop(q);
        assert_eq!(written(&dir), vec![10, 20]);
    }

    #[test]
    fn a_helper_leaves_the_jobs_to_whoever_is_writing() {
        let dir = tempfile::tempdir().unwrap();
        let q = Arc::new(queue(&dir));
        // Someone is writing: the helper must not wait for the writer, nor write.
        let mut held = q.writer.lock().unwrap();
        let (a, a_done) = job(10);
        q.push(a);
        let helper = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || q.help())
        };
        helper.join().unwrap();
        assert!(
            a_done.state.lock().unwrap().is_none(),
            "written by the helper"
        );
        // The one writing goes on to what was queued meanwhile.
        q.drain(&mut held);
        assert_eq!(a_done.wait(), Ok(()));
        drop(held);
        drop(q);
        assert_eq!(written(&dir), vec![10]);
    }

    #[test]
    fn closing_waits_for_a_helper_still_writing_and_writes_what_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let q = Arc::new(queue(&dir));
        // The writer thread has ended on an empty queue while a helper writes; a job came
        // in before the close.
        let held = q.writer.lock().unwrap();
        let (a, a_done) = job(10);
        q.push(a);
        q.close();
        let closer = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || q.finish())
        };
        drop(held);
        closer.join().unwrap();
        assert_eq!(a_done.wait(), Ok(()));
        drop(q);
        assert_eq!(written(&dir), vec![10]);
    }

    #[test]
    fn the_writer_thread_writes_what_is_queued_until_closed_and_then_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let q = Arc::new(queue(&dir));
        let server = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || q.serve())
        };
        let (a, a_done) = job(10);
        q.push(a);
        assert_eq!(a_done.wait(), Ok(()));
        let (b, _) = job(20);
        q.push(b);
        q.close();
        server.join().unwrap();
        let (c, c_done) = job(30);
        q.push(c);
        assert!(c_done.wait().is_err(), "a closed queue takes no job");
        drop(q);
        assert_eq!(written(&dir), vec![10, 20]);
    }
}
