//! Rebuilding a process from a journal's snapshot: the same pid and tids, the descriptor
//! table reopened, memory as it was, every thread rewound into the call it was captured in
//! (which then runs again from its start, or returns what the snapshot says).

use std::sync::Arc;

use rustix::mm::{mmap, mmap_anonymous, MapFlags, ProtFlags};
use wasmix_fs::FileSystem;
use wasmix_journal::{record, Encoding, Journal, Snapshot};
use wasmix_process::{Disposition, Trigger, MAX_SIGNAL};
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

/// What a restore hands the caller: the process context and every thread ready to resume,
/// the main thread first.
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

/// Rebuilds the process `snap` (read from `journal`) records, running `program` with
/// `preloads`, over this run's mounts and stdio.
pub(crate) fn restore(
    runtime: &Runtime,
    program: &Program,
    preloads: Vec<(String, Program)>,
    this_run: ThisRun<'_>,
    journal: &Journal,
    snap: &Snapshot,
    journaling: Arc<Journaling>,
) -> Result<Restored, RunError> {
    let proc_rec = snap
        .process
        .as_ref()
        .ok_or_else(|| setup("it records no process"))?;
    let files = snap
        .files
        .as_ref()
        .ok_or_else(|| setup("it records no descriptor table"))?;
    let main_rec = snap
        .threads
        .iter()
        .find(|t| t.main)
        .ok_or_else(|| setup("it records no main thread"))?;
    if !program.captures_everywhere() {
        return Err(setup(format!(
            "`{}` was not instrumented for snapshots",
            program.name()
        )));
    }

    let process = runtime
        .control()
        .spawn_as(proc_rec.pid, None, program.hash())
        .map_err(|e| setup(format!("pid {}: {e}", proc_rec.pid)))?;
    // A socket bound before comes back bound where this run's network policy allows it.
    let policy = runtime.network();
    let may_bind = |at| {
        let allowed = policy.check(NetOp::Bind, at).is_some();
        if !allowed {
            tracing::warn!(
                target: "wasmix::net",
                "a socket bound to {at} comes back closed: this run's network policy does not \
                 allow the bind (--net, or --net-allow bind=HOST:PORT)"
            );
        }
        allowed
    };
    let fs = FileSystem::restore(this_run.fs, files, &may_bind).map_err(setup)?;
    let env = if snap.begin.trigger == crate::snapshot::trigger_name(Trigger::FirstEnviron) {
        this_run.env
    } else {
        proc_rec.env.clone()
    };
    let image = Image::new(runtime, program, preloads)?;
    let ctx = Arc::new(
        ProcessCtx::new(
            runtime.clone(),
            Arc::clone(&process),
            Arc::new(fs),
            proc_rec.args.clone(),
            env,
            image,
            false,
        )
        .with_journal(Arc::clone(&journaling)),
    );
    journaling.set_current(&ctx);
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
    for t in snap.threads.iter().filter(|t| !t.main) {
        let thread = process
            .spawn_thread_as(t.tid, signals_of(t.mask))
            .map_err(|e| setup(format!("thread {}: {e}", t.tid)))?;
        threads.push((thread, t));
    }

    let mut launches = Vec::new();
    for (i, (thread, rec)) in threads.into_iter().enumerate() {
        let interrupt = Interrupt::install(runtime.engine(), &thread);
        let mut store = Host::new(Arc::clone(&ctx), Arc::clone(&thread), interrupt).into_store();
        signals::arm(&mut store);
        let main_thread = i == 0;
        let instantiated = if main_thread {
            ctx.instantiate_for_restore(&mut store)
        } else {
            ctx.instantiate(&mut store, false)
        };
        instantiated.map_err(|e| setup(format!("{e:#}")))?;
        if main_thread {
            let index = journal
                .snapshots()
                .iter()
                .find(|s| s.seq == snap.begin.seq)
                .ok_or_else(|| {
                    setup(format!("snapshot {} is not in the journal", snap.begin.seq))
                })?;
            let layers = journal.layers(index).map_err(setup)?;
            restore_memory(&mut store, journal, &layers)?;
        }
        for sig in signals_of(rec.pending).iter() {
            thread.deliver(sig);
        }
        let snapshot = Arc::new(thread_snapshot(rec));
        launches.push(Launch {
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
        if let Some(sig) = wasmix_process::Signal::new(t.signal) {
            process.restore_interval_timer(
                sig,
                std::time::Duration::from_nanos(t.remaining_ns.max(1)),
                t.repeat_ns.map(std::time::Duration::from_nanos),
            );
        }
    }
    Ok(Restored {
        ctx,
        threads: launches,
    })
}

/// Grows the memory to its recorded size and fills it: fresh zero pages everywhere
/// (instantiation may have put data segments where the snapshot had zeros), then the regions
/// of every layer (a full snapshot, then the increments on it, oldest first) laid over each
/// other: large raw regions mapped copy-on-write straight from the journal file — so a
/// restore does not read memory it does not touch — the rest copied or decompressed into
/// place, zero regions cleared. Small regions are copied rather than mapped so increments
/// of scattered pages do not cost a mapping each.
fn restore_memory(
    store: &mut Store<Host>,
    journal: &Journal,
    layers: &[Snapshot],
) -> Result<(), RunError> {
    let Some(mem) = layers.last().and_then(|s| s.memories.first()) else {
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
    for r in layers.iter().flat_map(|l| &l.regions) {
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
            journal.read_region(r, bytes).map_err(setup)?;
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
