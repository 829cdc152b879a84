//! The public way to run a program as a process: [`ProcessBuilder`] configures one, then runs
//! it here or on a thread of its own ([`RunningProcess`], [`ProcessHandle`]).

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmix_fs::{FileSystemBuilder, HostFd, Node, OpenFile, Stdio};

use wasmix_process::ExitStatus;

use wasmix_journal::{Journal, JournalError, JournalWriter, SyncPolicy, Verify};
use wasmix_process::{Signal, Trigger};

use crate::capture::StackError;
use crate::error::RunError;
use crate::host::{Image, Journaling, ProcessCtx};
use crate::launch::{Launch, Start};
use crate::passthrough::Passthrough;
use crate::program::Program;
use crate::restore;
use crate::running;
use crate::snapshot::{self, SnapshotError, SnapshotTicket};
use crate::stack::Entry;
use crate::triggers;
use crate::unwind::Unwind;
use crate::wasi;
use crate::Runtime;

/// Configures one process of a [`Program`]: arguments, environment, mounts, stdio. Obtained from
/// [`Runtime::process`].
pub struct ProcessBuilder {
    runtime: Runtime,
    program: Program,
    args: Vec<Vec<u8>>,
    env: Vec<Vec<u8>>,
    fs: FileSystemBuilder,
    preloads: Vec<(String, Program)>,
    listeners: Vec<TcpListener>,
    journal: Option<JournalConfig>,
    timeout: Option<std::time::Duration>,
    passthrough: Vec<(i32, Signal)>,
    /// The guest's working directory, if not `/`.
    cwd: Option<String>,
}

/// Where a process's snapshots go and when they are taken.
#[derive(Clone, Debug)]
pub struct JournalConfig {
    /// The journal file. If it holds a complete snapshot of this program, the process is
    /// restored from the newest one instead of started; either way it records on into it.
    pub path: PathBuf,
    /// When the journal is made durable.
    pub sync: SyncPolicy,
    /// What takes a snapshot besides an explicit request (the guest's `proc_snapshot`, or
    /// [`RunningProcess::snapshot`]), e.g. [`Trigger::Sigint`] for the embedder's Ctrl-C.
    pub triggers: Vec<Trigger>,
    /// End the process after a snapshot (exit code [`crate::STOPPED_AFTER_SNAPSHOT`]).
    pub stop_after_snapshot: bool,
    /// How long a snapshot waits for every thread to reach a safe point before it fails
    /// naming those that did not (a thread blocked in a call that cannot be captured).
    pub capture_timeout: std::time::Duration,
    /// With [`Trigger::PeriodicInterval`]: the time between snapshots.
    pub period: Option<std::time::Duration>,
    /// With [`Trigger::Idle`]: how long every thread must have been blocked.
    pub idle: std::time::Duration,
    /// Snapshots after the first write only the memory pages written since the one before
    /// (the journal composes them on restore). Tracking those writes costs a fault per page
    /// first written after each snapshot; off, every snapshot writes the whole memory.
    pub incremental: bool,
    /// Restore from the latest snapshot of this journal instead, only reading it, and record
    /// into `path`, which must not exist yet: several runs can start from one journal at
    /// once (a journal has one writer), sharing its pages.
    pub restore_from: Option<PathBuf>,
}

impl JournalConfig {
    /// A journal at `path`, durable at every snapshot, explicit snapshots only.
    pub fn new(path: impl Into<PathBuf>) -> JournalConfig {
        JournalConfig {
            path: path.into(),
            sync: SyncPolicy::default(),
            triggers: vec![Trigger::Explicit],
            stop_after_snapshot: false,
            capture_timeout: std::time::Duration::from_secs(10),
            period: None,
            idle: std::time::Duration::from_secs(1),
            incremental: true,
            restore_from: None,
        }
    }

    /// Whether `trigger` takes a snapshot.
    pub fn takes(&self, trigger: Trigger) -> bool {
        trigger == Trigger::Explicit || self.triggers.contains(&trigger)
    }
}

impl ProcessBuilder {
    pub(crate) fn new(runtime: &Runtime, program: &Program) -> ProcessBuilder {
        ProcessBuilder {
            runtime: runtime.clone(),
            program: program.clone(),
            args: vec![program.name().as_bytes().to_vec()],
            env: Vec::new(),
            fs: FileSystemBuilder::default(),
            preloads: Vec::new(),
            listeners: Vec::new(),
            journal: None,
            timeout: None,
            passthrough: Vec::new(),
            cwd: None,
        }
    }

    /// The guest's working directory (an absolute guest path, inside a mount; default `/`).
    pub fn cwd(mut self, path: impl Into<String>) -> Self {
        self.cwd = Some(path.into());
        self
    }

    /// Host signals (the host's number, and the guest signal the embedder hands it on as)
    /// that the kernel acts on directly — ending the whole host process, as it would a native
    /// program — while the guest leaves that signal at its default action; once the guest
    /// handles or ignores it, the embedder's own host handler is back in place. Without it,
    /// a host signal must wait for a host thread to get a CPU, which under many computing
    /// guest threads and without `CAP_SYS_NICE` can take seconds. Not used with a journal
    /// (the process's end must be recorded).
    pub fn pass_through_default_signals(mut self, signals: Vec<(i32, Signal)>) -> Self {
        self.passthrough = signals;
        self
    }

    /// Journals the process: snapshots go to (and, when it holds one, the process is
    /// restored from) `config.path`. The runtime must be made with snapshots on
    /// ([`crate::RuntimeConfig::snapshots`]) so its threads can be captured.
    pub fn journal(mut self, config: JournalConfig) -> Self {
        self.journal = Some(config);
        self
    }

    /// Replaces `argv` entirely (including `argv[0]`, which defaults to the module's file name).
    pub fn argv<I, S>(mut self, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        self.args = argv.into_iter().map(|a| a.as_ref().to_vec()).collect();
        self
    }

    /// Appends one argument after those already set.
    pub fn arg(mut self, arg: impl AsRef<[u8]>) -> Self {
        self.args.push(arg.as_ref().to_vec());
        self
    }

    /// Adds `key=value` to the guest's environment (which starts empty).
    pub fn env(mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        let mut kv = key.as_ref().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(value.as_ref());
        self.env.push(kv);
        self
    }

    /// Mounts host directory `host` at guest path `guest` (a WASI preopen).
    pub fn mount(mut self, host: &Path, guest: &str) -> Result<Self, RunError> {
        self.fs = self
            .fs
            .mount(host, guest)
            .map_err(|e| RunError::Setup(e.to_string()))?;
        Ok(self)
    }

    /// Where the guest's stdin comes from (default: inherited).
    pub fn stdin(mut self, stdio: Stdio) -> Self {
        self.fs = self.fs.stdio(0, stdio);
        self
    }

    /// Where the guest's stdout goes (default: inherited).
    pub fn stdout(mut self, stdio: Stdio) -> Self {
        self.fs = self.fs.stdio(1, stdio);
        self
    }

    /// Where the guest's stderr goes (default: inherited).
    pub fn stderr(mut self, stdio: Stdio) -> Self {
        self.fs = self.fs.stdio(2, stdio);
        self
    }

    /// Whether the guest gets the synthetic `/dev` preopen (default: yes).
    pub fn dev(mut self, enabled: bool) -> Self {
        self.fs = self.fs.dev(enabled);
        self
    }

    /// Links `program`'s exports as import module `name` (like `wasmtime run --preload`).
    pub fn preload(mut self, name: impl Into<String>, program: &Program) -> Self {
        self.preloads.push((name.into(), program.clone()));
        self
    }

    /// Hands the guest a listening TCP socket as a preopened descriptor (`sock_accept`).
    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Kills the process, and every process it started, once it has run for `limit` (wall
    /// clock); the run then ends with [`RunError::TimedOut`].
    pub fn timeout(mut self, limit: std::time::Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Runs the process to completion on the calling thread (its other threads and child
    /// processes run on threads of their own).
    pub fn run(self) -> Result<ExitStatus, RunError> {
        self.run_reporting(|_| {})
    }

    /// Starts the process on a thread of its own and returns at once; the handle reports its
    /// pid, signals it, and waits for its end.
    pub fn spawn(self) -> Result<RunningProcess, RunError> {
        let slot: Arc<std::sync::OnceLock<ProcessHandle>> = Arc::new(std::sync::OnceLock::new());
        let filled = Arc::clone(&slot);
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("wasmix-root".into())
            .spawn(move || {
                let r = self.run_reporting(|h| {
                    let _ = filled.set(h.clone());
                    let _ = tx.send(());
                });
                drop(tx);
                r
            })
            .map_err(|e| RunError::Setup(format!("cannot start a thread: {e}")))?;
        let _ = rx.recv();
        Ok(RunningProcess {
            handle: slot.get().cloned().unwrap_or(ProcessHandle {
                process: None,
                journal: None,
                timed_out: None,
            }),
            thread: handle,
        })
    }

    fn run_reporting(self, started: impl FnOnce(&ProcessHandle)) -> Result<ExitStatus, RunError> {
        let fs = self.fs.build();
        if let Some(cwd) = &self.cwd {
            fs.chdir(cwd.as_bytes()).map_err(|e| {
                RunError::Setup(format!(
                    "cannot make `{cwd}` the working directory: {e} (it must be a directory \
                     inside a mount)"
                ))
            })?;
        }
        for listener in self.listeners {
            let fd: OwnedFd = listener.into();
            let file = OpenFile::new(Node::Stream(HostFd::Owned(fd)), 0);
            let rights = wasi::sock_listener_rights();
            fs.insert(file, rights, wasi::sock_connection_rights())
                .map_err(|e| RunError::Setup(format!("cannot add listener: {e}")))?;
        }
        let runtime = self.runtime.clone();
        let journal = match &self.journal {
            Some(config) => Some(open_journal(&self.program, config)?),
            None => None,
        };
        let restored_from = match &journal {
            Some((_, Some((_, snapshot)))) => Some(snapshot.begin.trigger.clone()),
            _ => None,
        };
        let (ctx, mut launches) = match journal {
            Some((journaling, Some((journal, snapshot)))) => {
                let restored = restore::restore(
                    &runtime,
                    &self.program,
                    self.preloads,
                    restore::ThisRun {
                        fs: &fs,
                        env: self.env,
                    },
                    &journal,
                    &snapshot,
                    journaling,
                )?;
                (restored.ctx, restored.threads)
            }
            fresh => {
                let image = Image::new(&runtime, &self.program, self.preloads)?;
                let process = runtime
                    .control()
                    .spawn(None, self.program.hash())
                    .map_err(|e| RunError::Setup(format!("cannot start the process: {e}")))?;
                let main = process
                    .main_thread()
                    .ok_or_else(|| RunError::Setup("the process has no main thread".into()))?;
                let mut ctx = ProcessCtx::new(
                    runtime,
                    Arc::clone(&process),
                    Arc::new(fs),
                    self.args,
                    self.env,
                    image,
                    false,
                );
                let journaling = fresh.map(|(j, _)| j);
                if let Some(j) = &journaling {
                    ctx = ctx.with_journal(Arc::clone(j));
                } else if !self.passthrough.is_empty() {
                    let signals = self.passthrough.clone();
                    ctx = ctx.with_passthrough(Arc::new(Passthrough::new(signals)));
                }
                let ctx = Arc::new(ctx);
                ctx.sync_host_signals();
                if let Some(j) = &journaling {
                    j.set_current(&ctx);
                }
                let launch = Launch {
                    ctx: Arc::clone(&ctx),
                    thread: main,
                    start: Start::Entry(Entry::Main),
                };
                (ctx, vec![launch])
            }
        };
        let process = Arc::clone(&ctx.process);
        if let (Some(j), Some(config)) = (ctx.journal(), &self.journal) {
            triggers::start(
                j,
                &process,
                config.period,
                config.idle,
                restored_from.as_deref(),
            );
        }
        let timed_out = self
            .timeout
            .map(|limit| (limit, watch_the_clock(&process, limit)));
        started(&ProcessHandle {
            process: Some(Arc::clone(&process)),
            journal: ctx.journal().cloned(),
            timed_out: timed_out.clone(),
        });
        let main = launches.remove(0);
        // The root's other threads, and a restored tree's other processes.
        for other in launches {
            let (tid, owner) = (other.thread.tid(), Arc::clone(&other.ctx.process));
            if running::start_thread(other).is_err() {
                owner.thread_exited(tid);
            }
        }
        running::run_thread(main.ctx, main.thread, main.start);
        let status = process.wait_exit();
        // Snapshots still being written reach the journal before the run is over.
        if let Some(j) = ctx.journal() {
            j.close();
        }
        if let Some((limit, flag)) = timed_out {
            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(RunError::TimedOut(limit));
            }
        }
        match ctx.take_trap() {
            Some(e) => Err(classify(e)),
            None => Ok(status),
        }
    }
}

/// Kills `process` and its descendants if it is still running after `limit`; the flag says
/// whether it came to that.
fn watch_the_clock(
    process: &Arc<wasmix_process::Process>,
    limit: std::time::Duration,
) -> Arc<std::sync::atomic::AtomicBool> {
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (p, f) = (Arc::clone(process), Arc::clone(&flag));
    let spawned = std::thread::Builder::new()
        .name("wasmix-timeout".into())
        .spawn(move || {
            crate::sched::background();
            if p.wait_exit_timeout(limit).is_none() {
                f.store(true, std::sync::atomic::Ordering::SeqCst);
                p.kill_tree();
            }
        });
    if let Err(e) = spawned {
        // Without its thread the limit cannot hold: end the run now rather than unbounded.
        tracing::error!("--timeout: cannot start its thread ({e}); killing the process");
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        process.kill_tree();
    }
    flag
}

/// Signals (and snapshots) a running process from anywhere.
#[derive(Clone)]
pub struct ProcessHandle {
    process: Option<Arc<wasmix_process::Process>>,
    journal: Option<Arc<Journaling>>,
    /// The run's wall-clock limit and whether it was reached.
    timed_out: Option<(std::time::Duration, Arc<std::sync::atomic::AtomicBool>)>,
}

impl ProcessHandle {
    /// Its pid (`None` if it failed before it got one).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid())
    }

    /// Sends `sig`, as `kill(2)` would (SIGINT goes on to the children the process waits
    /// for, as a terminal's foreground job would have it).
    pub fn signal(&self, sig: wasmix_process::Signal) {
        if let Some(p) = &self.process {
            let _ = p.signal(sig);
        }
    }

    /// Takes a snapshot into the process's journal: every thread parks at its next capture
    /// point, the snapshot is written, then the process goes on (or stops, if its journal
    /// says so). The ticket completes once the snapshot is committed or has failed.
    pub fn snapshot(&self) -> Result<SnapshotTicket, SnapshotError> {
        self.snapshot_for(Trigger::Explicit)
    }

    /// Like [`ProcessHandle::snapshot`], recorded as taken for `trigger`.
    pub fn snapshot_for(&self, trigger: Trigger) -> Result<SnapshotTicket, SnapshotError> {
        let journal = self.journal.as_ref().ok_or(SnapshotError::NoJournal)?;
        let ctx = journal.current().ok_or(SnapshotError::Ended)?;
        snapshot::request(&ctx, trigger, None)
    }

    /// The process now journaled (the restored one, after a restore).
    #[cfg(test)]
    pub(crate) fn journaled(&self) -> Option<Arc<ProcessCtx>> {
        self.journal.as_ref()?.current()
    }

    /// Whether the process's journal takes a snapshot on `trigger`.
    pub fn snapshots_on(&self, trigger: Trigger) -> bool {
        self.journal.as_ref().is_some_and(|j| j.on(trigger))
    }

    /// How it ended, if a signal (SIGTERM, SIGKILL, Ctrl-C; not a trap's SIGABRT, whose
    /// message comes with the full end) has decided that, once its journal has written what
    /// was asked of it; `None` while it runs or ends otherwise. The outcome cannot change
    /// any more, though its threads may take long to unwind (a killed root with a thousand
    /// computing children): the thread that sent the signal can act on it at once.
    pub fn ended_by_signal(&self) -> Option<Result<ExitStatus, RunError>> {
        let status = self.process.as_ref()?.decided_status()?;
        self.signal_end(status)
    }

    /// `status`, if a signal decided it, reported as [`ProcessHandle::ended_by_signal`] says.
    fn signal_end(&self, status: ExitStatus) -> Option<Result<ExitStatus, RunError>> {
        if !matches!(status, ExitStatus::Signaled(s) if s != wasmix_process::Signal::ABRT) {
            return None;
        }
        if let Some(j) = &self.journal {
            j.close();
        }
        if let Some((limit, flag)) = &self.timed_out {
            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                return Some(Err(RunError::TimedOut(*limit)));
            }
        }
        Some(Ok(status))
    }
}

/// A process started with [`ProcessBuilder::spawn`].
pub struct RunningProcess {
    handle: ProcessHandle,
    thread: std::thread::JoinHandle<Result<ExitStatus, RunError>>,
}

impl RunningProcess {
    /// Its pid (`None` if it failed before it got one).
    pub fn pid(&self) -> Option<u32> {
        self.handle.pid()
    }

    /// Sends `sig` to it, as `kill(2)` would.
    pub fn signal(&self, sig: wasmix_process::Signal) {
        self.handle.signal(sig);
    }

    /// Takes a snapshot into its journal (see [`ProcessHandle::snapshot`]).
    pub fn snapshot(&self) -> Result<SnapshotTicket, SnapshotError> {
        self.handle.snapshot()
    }

    /// A handle that can signal and snapshot the process from another thread.
    pub fn handle(&self) -> ProcessHandle {
        self.handle.clone()
    }

    /// Waits for it to end. A process killed by a signal (SIGTERM, SIGKILL, Ctrl-C; not
    /// a trap, whose message comes with the full end) is reported as soon as that is
    /// decided, once its journal has written what was asked of it: its threads may take
    /// long to unwind when many other processes compete for the CPU (a killed root with a
    /// thousand computing children), and the outcome cannot change any more.
    pub fn wait(self) -> Result<ExitStatus, RunError> {
        if let Some(p) = &self.handle.process {
            if let Some(end) = self.handle.signal_end(p.wait_status()) {
                return end;
            }
        }
        self.thread
            .join()
            .unwrap_or_else(|_| Err(RunError::Setup("the process thread panicked".into())))
    }
}

/// A journaled process's journal: opened (its torn tail cut) or created, and the snapshot
/// to restore, if it holds one.
#[allow(clippy::type_complexity)]
fn open_journal(
    program: &Program,
    config: &JournalConfig,
) -> Result<(Arc<Journaling>, Option<(Journal, wasmix_journal::Snapshot)>), RunError> {
    let failed = |e: JournalError| RunError::Setup(e.to_string());
    let (writer, restore) = if let Some(source) = &config.restore_from {
        if config.path.exists() {
            return Err(RunError::Setup(format!(
                "journal {} exists; a run restored from another journal records into a new \
                 one (remove it, or give another path)",
                config.path.display()
            )));
        }
        let journal =
            Journal::open(source, Some(program.hash()), Verify::Frames).map_err(failed)?;
        let snapshot = journal.latest().map_err(failed)?;
        let writer =
            JournalWriter::create(&config.path, program.hash(), config.sync).map_err(failed)?;
        (writer, Some((journal, snapshot)))
    } else if config.path.exists() {
        let (writer, journal) =
            JournalWriter::open(&config.path, program.hash(), config.sync, Verify::Frames)
                .map_err(failed)?;
        match journal.latest() {
            Ok(snapshot) => (writer, Some((journal, snapshot))),
            Err(JournalError::NoSnapshot { .. }) => (writer, None),
            Err(e) => return Err(failed(e)),
        }
    } else {
        let writer =
            JournalWriter::create(&config.path, program.hash(), config.sync).map_err(failed)?;
        (writer, None)
    };
    // A restored process's monotonic clock goes on from its snapshot's, never back.
    let offset = restore.as_ref().map_or(0, |(_, s)| {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let now = (now.tv_sec as u64) * 1_000_000_000 + now.tv_nsec as u64;
        s.begin.monotonic_ns.saturating_sub(now)
    });
    let mut triggers: Vec<Trigger> = config.triggers.clone();
    if !triggers.contains(&Trigger::Explicit) {
        triggers.push(Trigger::Explicit);
    }
    let journaling = Journaling::new(
        writer,
        triggers,
        config.stop_after_snapshot,
        config.incremental,
        config.capture_timeout,
        offset,
    );
    Ok((Arc::new(journaling), restore))
}

fn classify(e: wasmtime::Error) -> RunError {
    let guest_failed = matches!(Unwind::of(&e), Some(Unwind::Exit(_)))
        || e.downcast_ref::<wasmtime::Trap>().is_some()
        || e.downcast_ref::<wasmtime::WasmBacktrace>().is_some()
        || e.downcast_ref::<StackError>().is_some();
    if guest_failed {
        RunError::Trap(e)
    } else {
        let msg = format!("{e:#}");
        RunError::Link(msg.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
    }
}
