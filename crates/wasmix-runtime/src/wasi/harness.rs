//! Calling every host function directly, with arguments and memory a test or a fuzzer
//! chooses: each must answer with a WASI errno (or end the thread or process, for the calls
//! that may), never panic or trap otherwise. The unit tests (`hostile_tests`) make one call
//! per process; the fuzz target (`crates/wasmix-runtime/fuzz`) makes sequences in one.

use std::path::{Path, PathBuf};

use wasmix_fs::{FileSystem, Stdio};
use wasmtime::{Extern, Func, Memory, MemoryType, Store, Val, ValType};

use crate::host::{GuestMemory, Host, ProcessCtx};
use crate::unwind::Unwind;
use crate::{CacheSetting, Runtime, RuntimeConfig};

/// A call still running after this is taken to be blocked, and its process is killed.
const BLOCKED_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// Calls that block until another thread or process acts: with wild arguments they may wait
/// forever, so they are exercised by the guests' integration tests instead.
const BLOCKING: [&str; 7] = [
    "futex_wait",
    "thread_join",
    "thread_sleep",
    "proc_join",
    "poll_oneoff",
    "atomic_wait32",
    "atomic_wait64",
];

/// Calls that may legitimately end the calling thread or its process.
fn may_end(name: &str) -> bool {
    name.starts_with("proc_") || name.starts_with("thread_")
}

/// A runtime, a program with nothing but a memory, and every host call that does not block,
/// with its parameter types, to call directly.
pub struct Harness {
    pub(crate) runtime: Runtime,
    pub(crate) program: crate::Program,
    /// (module, name, param types) of every host call.
    pub(crate) calls: Vec<(String, String, Vec<ValType>)>,
    /// Every host call defined.
    linker: wasmtime::Linker<Host>,
    /// The folder mounted as the guest's `/`.
    pub(crate) scratch: PathBuf,
}

impl Harness {
    /// Mounts `scratch` as the guest's `/` for every process it makes.
    pub fn new(scratch: PathBuf) -> Harness {
        let runtime = Runtime::new(RuntimeConfig {
            cache: CacheSetting::Disabled,
            ..RuntimeConfig::default()
        })
        .unwrap();
        let program = runtime
            .load_bytes(b"(module (memory (export \"memory\") 1 1))", "hostile")
            .unwrap();
        let mut store = Store::new(runtime.engine(), host(&runtime, &program, &scratch));
        let all = runtime.host_calls().all().unwrap();
        let funcs: Vec<_> = all
            .iter(&mut store)
            .filter_map(|(m, n, e)| match e {
                Extern::Func(f) => Some((m.to_owned(), n.to_owned(), f)),
                _ => None,
            })
            .collect();
        let mut calls: Vec<_> = funcs
            .into_iter()
            .filter(|(_, n, _)| !BLOCKING.iter().any(|b| n.starts_with(b)))
            .map(|(m, n, f)| (m, n, f.ty(&store).params().collect()))
            .collect();
        calls.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        finish(&mut store);
        Harness {
            runtime,
            program,
            calls,
            linker: all,
            scratch,
        }
    }

    /// How many host calls it knows.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether it knows none (never: every runtime has host calls).
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Calls host call `index` (modulo how many there are) with `raw` arguments in a fresh
    /// process whose 64 KiB memory starts as `memory`.
    pub fn call_once(&self, index: usize, raw: &[u64], memory: &[u8]) -> Result<(), String> {
        let mut store = self.process(memory);
        let r = self.call_in(&mut store, index, raw).map(drop);
        finish(&mut store);
        r
    }

    /// Calls each of `calls` (index, arguments) in order in one process, so what one call
    /// leaves (descriptors, files, signal state) meets the next; `after` runs after each
    /// with the call's name. Stops at the first answer that is not an errno, or once a call
    /// ended the process.
    pub fn sequence(
        &self,
        memory: &[u8],
        calls: impl IntoIterator<Item = (usize, Vec<u64>)>,
        mut after: impl FnMut(&str),
    ) -> Result<(), String> {
        let mut store = self.process(memory);
        let mut r = Ok(());
        let trace = std::env::var_os("WASMIX_HARNESS_TRACE").is_some();
        for (index, raw) in calls {
            if trace {
                let (m, n, _) = &self.calls[index % self.calls.len()];
                eprintln!("harness: {m}::{n}{raw:?}");
            }
            let outcome = self.call_in(&mut store, index, &raw);
            after(&self.calls[index % self.calls.len()].1);
            match outcome {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    r = Err(e);
                    break;
                }
            }
        }
        finish(&mut store);
        r
    }

    pub(crate) fn process(&self, memory: &[u8]) -> Store<Host> {
        let mut store = Store::new(
            self.runtime.engine(),
            host(&self.runtime, &self.program, &self.scratch),
        );
        let mem = Memory::new(&mut store, MemoryType::new(1, Some(1))).expect("a 64 KiB memory");
        let n = memory.len().min(1 << 16);
        mem.data_mut(&mut store)[..n].copy_from_slice(&memory[..n]);
        store.data_mut().memory = GuestMemory::Own(mem);
        store
    }

    /// One call; `Ok(false)`: it ended the thread or process (as it may), or it blocked
    /// (a read of an empty pipe this process made, say) and was killed, as a kill must be
    /// able to end any blocked call.
    pub(crate) fn call_in(
        &self,
        store: &mut Store<Host>,
        index: usize,
        raw: &[u64],
    ) -> Result<bool, String> {
        let process = std::sync::Arc::clone(&store.data().ctx.process);
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            let blocked = wait.recv_timeout(BLOCKED_AFTER).is_err();
            if blocked {
                let _ = process.signal_now(wasmix_process::Signal::KILL);
            }
            blocked
        });
        let r = self.call_unwatched(store, index, raw);
        let _ = done.send(());
        let killed = watchdog.join().unwrap_or(false);
        match r {
            Err(_) if killed => Ok(false),
            other => other,
        }
    }

    fn call_unwatched(
        &self,
        store: &mut Store<Host>,
        index: usize,
        raw: &[u64],
    ) -> Result<bool, String> {
        let (module, name, params) = &self.calls[index % self.calls.len()];
        let func: Func = self
            .linker
            .get(&mut *store, module, name)
            .ok()
            .and_then(|e| e.into_func())
            .ok_or_else(|| format!("{module}::{name} is not defined"))?;
        let args: Vec<Val> = params
            .iter()
            .zip(raw.iter().chain(std::iter::repeat(&0)))
            .map(|(t, v)| match t {
                ValType::I64 => Val::I64(*v as i64),
                _ => Val::I32(*v as i32),
            })
            .collect();
        let mut results = vec![Val::I32(0); func.ty(&*store).results().len()];
        match func.call(&mut *store, &args, &mut results) {
            Ok(()) => match results.first() {
                None => Ok(true),
                Some(Val::I32(errno)) if (0..=80).contains(errno) => Ok(true),
                // wasi-threads answers a negative errno.
                Some(Val::I32(neg)) if name == "thread-spawn" && *neg < 0 => Ok(true),
                // The atomics stand-ins return counts.
                Some(Val::I32(_)) if module == crate::wasi::INTERNAL => Ok(true),
                Some(other) => Err(format!("{module}::{name}{args:?} returned {other:?}")),
            },
            Err(e)
                if matches!(Unwind::of(&e), Some(Unwind::Exit(_) | Unwind::ThreadExit))
                    && may_end(name) =>
            {
                Ok(false)
            }
            // Any call ends the thread once its process is ending: a thread an earlier call
            // spawned may have trapped (its start pointer was wild), which ends the process.
            Err(e)
                if matches!(Unwind::of(&e), Some(Unwind::ThreadExit))
                    && store.data().ctx.process.is_exiting() =>
            {
                Ok(false)
            }
            // longjmp cannot return an errno: a jmp_buf it refuses ends the process.
            Err(e)
                if name == "stack_restore"
                    && e.downcast_ref::<crate::capture::StackError>().is_some() =>
            {
                Ok(false)
            }
            Err(e)
                if module == crate::wasi::INTERNAL
                    && e.downcast_ref::<wasmtime::Trap>().is_some() =>
            {
                Ok(true) // a bad address traps, as the instruction would
            }
            Err(e) => Err(format!("{module}::{name}{args:?} failed: {e:?}")),
        }
    }
}

/// A fresh process (its own pid, files and signal state) for one call.
pub(crate) fn host(runtime: &Runtime, program: &crate::Program, scratch: &Path) -> Host {
    let fs = FileSystem::builder()
        .stdio(0, Stdio::Null)
        .stdio(1, Stdio::Null)
        .stdio(2, Stdio::Null)
        .mount(scratch, "/")
        .unwrap()
        .build();
    ProcessCtx::for_test(runtime, program, fs)
}

/// Ends the call's process so the control plane does not fill up — and, when calls left
/// the thread standing in for `proc_fork_env` children, each child and then the parents
/// they borrowed it from.
pub(crate) fn finish(store: &mut Store<Host>) {
    let h = store.data_mut();
    loop {
        h.ctx.process.exit(wasmix_process::ExitStatus::Exited(0));
        h.ctx.process.thread_exited(h.thread.tid());
        let Some(frame) = h.vforks.pop() else {
            break;
        };
        let (parent, _) = frame.into_parts();
        h.swap_identity(parent);
    }
}
