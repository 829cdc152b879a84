//! Rebuilding a process — and the processes of its tree — from a journal's snapshot: the
//! same pids and tids, the descriptor tables reopened (descriptions the processes shared
//! shared again, the pipes between them with their bytes), memory as it was, every thread
//! rewound into the call it was captured in (which then runs again from its start, or
//! returns what the snapshot says), zombies waiting to be reaped.

use std::collections::HashMap;
use std::sync::Arc;

use rustix::mm::{mmap, mmap_anonymous, MapFlags, ProtFlags};
use wasmix_fs::{FileSystem, Rebuilt};
use wasmix_journal::{record, Encoding, Journal, ProcessImage, RegionRef, Snapshot};
use wasmix_process::{Disposition, ExitStatus, Pid, Process, Signal, Trigger, MAX_SIGNAL};
use wasmtime::Store;

use crate::error::RunError;
use crate::host::{memory_region, GuestMemory, Host, Image, Journaling, ProcessCtx};
use crate::interrupt::Interrupt;
use crate::launch::{Launch, Resume, Start};
use crate::net::policy::NetOp;
use crate::program::Program;
use crate::signals;
use crate::snapshot::signals_of;
use crate::stack::{Resumption, ThreadSnapshot};
use crate::Runtime;

/// What a restore hands the caller: the root's context and every thread of the tree ready to
/// resume, the root's main thread first.
pub(crate) struct Restored {
    pub ctx: Arc<ProcessCtx>,
    pub threads: Vec<Launch>,
}

fn setup(what: impl std::fmt::Display) -> RunError {
    RunError::Setup(format!("cannot restore the snapshot: {what}"))
}

/// What the run doing the restore brings.
pub(crate) struct ThisRun<'a> {
    /// Its mounts and stdio.
    pub fs: &'a FileSystem,
    /// Its environment: the restored process's own if the snapshot was taken before the
    /// program first looked at its environment (`first-environ`), so one snapshot serves
    /// runs with different settings.
    pub env: Vec<Vec<u8>>,
}

/// Rebuilds the process tree `snap` (read from `journal`) records, its root running
/// `program` with `preloads`, over this run's mounts and stdio.
pub(crate) fn restore(
    runtime: &Runtime,
    program: &Program,
    preloads: Vec<(String, Program)>,
    this_run: ThisRun<'_>,
    journal: &Journal,
    snap: &Snapshot,
    journaling: Arc<Journaling>,
) -> Result<Restored, RunError> {
    if let Some(why) = program.not_capturable() {
        return Err(setup(why));
    }
    let index = journal
        .snapshots()
        .iter()
        .find(|s| s.seq == snap.begin.seq)
        .ok_or_else(|| setup(format!("snapshot {} is not in the journal", snap.begin.seq)))?;
    // The root's memory may be an increment on earlier snapshots; a member's is whole.
    let layers = journal.layers(index).map_err(setup)?;
    let full = layers
        .first()
        .ok_or_else(|| setup("its chain of snapshots is empty"))?;
    let root_memory = Memory {
        shape: layers.last().and_then(|s| s.root.memories.first()),
        regions: layers.iter().flat_map(|l| &l.root.regions).collect(),
        full: &full.root,
    };
    let proc_rec = snap
        .root
        .process
        .as_ref()
        .ok_or_else(|| setup("it records no process"))?;
    let env = if snap.begin.trigger == crate::snapshot::trigger_name(Trigger::FirstEnviron) {
        this_run.env
    } else {
        proc_rec.env.clone()
    };
    let mut rebuilt = Rebuilt::default();
    let mut tree = Tree {
        runtime,
        journal,
        base: this_run.fs,
        rebuilt: &mut rebuilt,
        processes: HashMap::new(),
        launches: Vec::new(),
        clock_offset: 0,
    };
    let ctx = tree.process(
        &snap.root,
        None,
        program,
        preloads.clone(),
        env,
        Some(journaling),
        root_memory,
    )?;
    tree.clock_offset = ctx.clock_offset();
    for (member, image) in &snap.members {
        let parent = tree.processes.get(&member.parent).cloned().ok_or_else(|| {
            setup(format!(
                "process {}'s parent, {}, is not in the snapshot",
                member.pid, member.parent
            ))
        })?;
        if let Some(ended) = member.ended {
            let zombie = runtime
                .control()
                .spawn_zombie(member.pid, &parent, member.module, status_of(ended))
                .map_err(|e| setup(format!("pid {}: {e}", member.pid)))?;
            tree.processes.insert(member.pid, zombie);
            continue;
        }
        let (member_program, member_preloads) = if member.module == program.hash() {
            (program.clone(), preloads.clone())
        } else {
            (load_member(runtime, this_run.fs, member)?, Vec::new())
        };
        let env = image
            .process
            .as_ref()
            .map(|p| p.env.clone())
            .unwrap_or_default();
        let memory = Memory {
            shape: image.memories.first(),
            regions: image.regions.iter().collect(),
            full: image,
        };
        let member_ctx = tree.process(
            image,
            Some(&parent),
            &member_program,
            member_preloads,
            env,
            None,
            memory,
        )?;
        member_ctx.sync_host_signals();
    }
    let threads = std::mem::take(&mut tree.launches);
    // Pipe ends no process took close now: a reader whose writers are all gone reads EOF.
    drop(rebuilt);
    Ok(Restored { ctx, threads })
}

/// A memory to restore: its recorded shape and its regions, to be laid in this order.
struct Memory<'a> {
    shape: Option<&'a record::Memory>,
    regions: Vec<&'a RegionRef>,
    /// The full snapshot's image at the start of the chain, which xor regions read over.
    full: &'a ProcessImage,
}

/// A tree being rebuilt.
struct Tree<'a> {
    runtime: &'a Runtime,
    journal: &'a Journal,
    /// This run's file system: the mounts and stdio every table is rebuilt over.
    base: &'a FileSystem,
    rebuilt: &'a mut Rebuilt,
    processes: HashMap<Pid, Arc<Process>>,
    launches: Vec<Launch>,
    /// The root's monotonic clock offset, which the others share.
    clock_offset: u64,
}

impl Tree<'_> {
    /// Rebuilds one process as `image` records it, a child of `parent` (none: the root),
    /// running `program`; its threads join the launches.
    #[allow(clippy::too_many_arguments)]
    fn process(
        &mut self,
        image: &ProcessImage,
        parent: Option<&Arc<Process>>,
        program: &Program,
        preloads: Vec<(String, Program)>,
        env: Vec<Vec<u8>>,
        journaling: Option<Arc<Journaling>>,
        memory: Memory<'_>,
    ) -> Result<Arc<ProcessCtx>, RunError> {
        let runtime = self.runtime;
        let proc_rec = image
            .process
            .as_ref()
            .ok_or_else(|| setup("it records no process"))?;
        let files = image
            .files
            .as_ref()
            .ok_or_else(|| setup(format!("process {} has no descriptor table", proc_rec.pid)))?;
        let main_rec = image
            .threads
            .iter()
            .find(|t| t.main)
            .ok_or_else(|| setup(format!("process {} has no main thread", proc_rec.pid)))?;
        if let Some(why) = program.not_capturable() {
            return Err(setup(why));
        }
        let process = runtime
            .control()
            .spawn_as(proc_rec.pid, parent, program.hash())
            .map_err(|e| setup(format!("pid {}: {e}", proc_rec.pid)))?;
        self.processes.insert(proc_rec.pid, Arc::clone(&process));
        // A socket bound before comes back bound where this run's network policy allows it.
        let policy = runtime.network();
        let may_bind = |at| {
            let allowed = policy.check(NetOp::Bind, at).is_some();
            if !allowed {
                tracing::warn!(
                    target: "wasmix::net",
                    "a socket bound to {at} comes back closed: this run's network policy does \
                     not allow the bind (--net, or --net-allow bind=HOST:PORT)"
                );
            }
            allowed
        };
        let fs = FileSystem::restore_in(self.base, files, &may_bind, proc_rec.pid, self.rebuilt)
            .map_err(setup)?;
        let ctx = ProcessCtx::new(
            runtime.clone(),
            Arc::clone(&process),
            Arc::new(fs),
            proc_rec.args.clone(),
            env,
            Image::new(runtime, program, preloads)?,
            parent.is_some(),
        );
        let ctx = Arc::new(match journaling {
            Some(j) => ctx.with_journal(j),
            None => ctx.with_clock_offset(self.clock_offset),
        });
        if let Some(j) = ctx.journal() {
            j.set_current(&ctx);
        }
        *ctx.thread_locals.lock().unwrap_or_else(|e| e.into_inner()) =
            crate::tls::ThreadLocals::restore(&proc_rec.thread_locals);
        if let Some(name) = &proc_rec.signal_callback {
            ctx.set_signal_callback(name.clone());
        }
        process.set_dispositions(&dispositions(&proc_rec.dispositions));

        // Threads with their ids and masks; the main thread exists with the process.
        let main = process
            .main_thread()
            .ok_or_else(|| setup("the process has no main thread"))?;
        main.set_mask(signals_of(main_rec.mask));
        let mut threads = vec![(Arc::clone(&main), main_rec)];
        for t in image.threads.iter().filter(|t| !t.main) {
            let thread = process
                .spawn_thread_as(t.tid, signals_of(t.mask))
                .map_err(|e| setup(format!("thread {}: {e}", t.tid)))?;
            threads.push((thread, t));
        }

        for (i, (thread, rec)) in threads.into_iter().enumerate() {
            let interrupt = Interrupt::install(runtime.engine(), &thread);
            let mut store =
                Host::new(Arc::clone(&ctx), Arc::clone(&thread), interrupt).into_store();
            signals::arm(&mut store);
            let main_thread = i == 0;
            let instantiated = if main_thread {
                ctx.instantiate_unadopted(&mut store)
            } else {
                ctx.instantiate(&mut store, false)
            };
            instantiated.map_err(|e| setup(format!("{e:#}")))?;
            if main_thread {
                restore_memory(&mut store, self.journal, &memory)?;
            }
            for sig in signals_of(rec.pending).iter() {
                thread.deliver(sig);
            }
            let snapshot = Arc::new(thread_snapshot(rec));
            self.launches.push(Launch {
                ctx: Arc::clone(&ctx),
                thread,
                start: Start::Resume(Box::new(Resume {
                    store,
                    snapshot,
                    resume: resumption(rec.resume),
                })),
            });
        }
        for sig in signals_of(proc_rec.pending).iter() {
            let _ = process.signal(sig);
        }
        for t in &proc_rec.timers {
            if let Some(sig) = Signal::new(t.signal) {
                process.restore_interval_timer(
                    sig,
                    std::time::Duration::from_nanos(t.remaining_ns.max(1)),
                    t.repeat_ns.map(std::time::Duration::from_nanos),
                );
            }
        }
        Ok(ctx)
    }
}

/// The program a member of the tree ran when it is not the journal's own: read again from
/// where it was loaded, in this run's mounts, and checked to be the same module.
fn load_member(
    runtime: &Runtime,
    fs: &FileSystem,
    member: &record::Member,
) -> Result<Program, RunError> {
    if member.path.is_empty() {
        return Err(setup(format!(
            "process {} ran a module other than the journal's, and the snapshot does not say \
             where it came from",
            member.pid
        )));
    }
    let bytes = fs
        .read_file(&member.path, runtime.max_module_size())
        .map_err(|e| {
            setup(format!(
                "process {} ran `{}`, which cannot be read ({e}); mount it where it was",
                member.pid, member.path
            ))
        })?;
    if *blake3::hash(&bytes).as_bytes() != member.module {
        return Err(setup(format!(
            "process {} ran `{}`, and the file there is another module now",
            member.pid, member.path
        )));
    }
    runtime
        .load_for_guest(&bytes, &member.path)
        .map_err(|e| setup(format!("`{}`: {e}", member.path)))
}

fn status_of(ended: record::Ended) -> ExitStatus {
    match ended {
        record::Ended::Exited(code) => ExitStatus::Exited(code),
        record::Ended::Signaled(n) => Signal::new(n)
            .map(ExitStatus::Signaled)
            .unwrap_or(ExitStatus::Exited(128 + i32::from(n))),
    }
}

/// Grows the memory to its recorded size and fills it: fresh zero pages everywhere
/// (instantiation may have put data segments where the snapshot had zeros), then the regions
/// of every layer (a full snapshot, then the increments on it, oldest first) laid over each
/// other: large raw regions mapped copy-on-write straight from the journal file — so a
/// restore does not read memory it does not touch — the rest copied or decompressed into
/// place, xor regions applied over the full snapshot's bytes (read from the journal, as
/// memory may hold a later layer's there), zero regions cleared. Small regions are copied rather than mapped so increments
/// of scattered pages do not cost a mapping each.
fn restore_memory(
    store: &mut Store<Host>,
    journal: &Journal,
    memory: &Memory<'_>,
) -> Result<(), RunError> {
    let Some(mem) = memory.shape else {
        return Ok(());
    };
    let have = match store.data().memory.clone() {
        GuestMemory::Own(m) => m.data_size(&*store) as u64,
        GuestMemory::Shared(m) => m.data_size() as u64,
        GuestMemory::None => return Err(setup("the module has no memory to restore into")),
    };
    if mem.size > have {
        let pages = (mem.size - have).div_ceil(65536);
        crate::host::grow_memory(&mut *store, pages).ok_or_else(|| {
            setup(format!(
                "cannot grow memory to {} bytes (past --max-memory or --max-total-memory?)",
                mem.size
            ))
        })?;
    }
    let region = memory_region(store).ok_or_else(|| setup("the memory cannot be laid out"))?;
    let rw = ProtFlags::READ | ProtFlags::WRITE;
    if region.len > 0 {
        // SAFETY: the accessible part of the process's memory reservation, replaced by fresh
        // zero pages; no guest code runs yet (its threads start after the restore).
        unsafe {
            mmap_anonymous(
                region.base.cast(),
                region.len,
                rw,
                MapFlags::PRIVATE | MapFlags::FIXED,
            )
        }
        .map_err(|e| setup(format!("cannot map the memory: {e}")))?;
    }
    let page = rustix::param::page_size() as u64;
    for r in memory.regions.iter().copied() {
        let end = r.offset.saturating_add(r.len);
        if end > region.len as u64 {
            return Err(setup(format!(
                "a memory region ({}..{end}) lies outside the {}-byte memory",
                r.offset, region.len
            )));
        }
        // SAFETY: `offset..end` lies inside the memory (checked above).
        let at = unsafe { region.base.add(r.offset as usize) };
        let aligned =
            r.offset % page == 0 && r.len % page == 0 && r.len >= wasmix_journal::MAPPABLE;
        let mappable = aligned && r.encoding == Encoding::Raw && r.data_offset % page == 0;
        if mappable {
            // SAFETY: page-aligned, inside the memory; the journal's bytes there belong to a
            // complete snapshot, which the file keeps (it is only ever appended to).
            unsafe {
                mmap(
                    at.cast(),
                    r.len as usize,
                    rw,
                    MapFlags::PRIVATE | MapFlags::FIXED,
                    journal.file(),
                    r.data_offset,
                )
            }
            .map_err(|e| setup(format!("cannot map a memory region from the journal: {e}")))?;
        } else if aligned && r.encoding == Encoding::Zero {
            // SAFETY: as above; fresh zero pages replace what an older layer put there.
            unsafe {
                mmap_anonymous(
                    at.cast(),
                    r.len as usize,
                    rw,
                    MapFlags::PRIVATE | MapFlags::FIXED,
                )
            }
            .map_err(|e| setup(format!("cannot map the memory: {e}")))?;
        } else {
            // SAFETY: as above; nothing else uses the memory yet.
            let bytes = unsafe { std::slice::from_raw_parts_mut(at, r.len as usize) };
            journal.read_layered(r, memory.full, bytes).map_err(setup)?;
        }
    }
    Ok(())
}

fn dispositions(recorded: &[record::Disposition]) -> [Disposition; MAX_SIGNAL as usize + 1] {
    let mut out = [Disposition::Default; MAX_SIGNAL as usize + 1];
    for (n, d) in recorded.iter().enumerate().take(out.len()) {
        out[n] = match d {
            record::Disposition::Default => Disposition::Default,
            record::Disposition::Ignore => Disposition::Ignore,
            record::Disposition::Handler(h) => Disposition::Handler(*h),
        };
    }
    out
}

fn thread_snapshot(rec: &record::Thread) -> ThreadSnapshot {
    ThreadSnapshot::new(
        rec.entry,
        rec.globals.clone(),
        rec.unwind_area,
        rec.unwind_data.clone(),
        rec.stack_pointer,
        rec.stack_top,
        Vec::new(),
    )
}

fn resumption(r: record::Resume) -> Resumption {
    match r {
        record::Resume::Restart => Resumption::Restart,
        record::Resume::Return(v) => Resumption::Return(Ok(v)),
        // Snapshots capture calls that restart or succeed; an errno could only come from a
        // newer writer, and EINTR is what any call may answer.
        record::Resume::Errno(_) => Resumption::Return(Err(wasmix_fs::Errno::Intr)),
    }
}
