//! wasmix-runtime: runs WebAssembly programs as processes on wasmtime.
//!
//! ```no_run
//! use wasmix_runtime::{Runtime, RuntimeConfig};
//! # fn main() -> anyhow::Result<()> {
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let program = runtime.load("hello.wasm".as_ref())?;
//! let status = runtime
//!     .process(&program)
//!     .arg("world")
//!     .env("LANG", "C")
//!     .mount("/tmp".as_ref(), "/tmp")?
//!     .run()?;
//! std::process::exit(status.code());
//! # }
//! ```
//!
//! Layers: [`Runtime`] (engine, linker, module cache) → [`Program`] (a compiled module) →
//! [`ProcessBuilder`] (args, env, mounts, stdio) → [`ExitStatus`].

#![warn(missing_docs)]

// Layers, each importing only those below it (tests/layers.rs checks there is no cycle):
// data and mechanisms without a store first, then the store's state, what acts on it, the
// run loop, spawning, the host calls, and the public process API.
mod abi;
mod budget;
mod cache;
mod checks;
mod cpu;
mod error;
mod exnref;
mod forkmem;
mod futex;
mod interrupt;
mod mem;
pub mod net;
mod passthrough;
mod pool;
mod program;
mod rewrite;
mod sched;
mod spin;
mod stack;
mod tls;
mod unwind;
mod wpcopy;
mod wpscan;

mod host;

mod blocking;
mod capture;
mod launch;
mod signals;

mod fork;
mod restore;
mod resume;
mod running;
mod snapshot;
mod spawn;
mod triggers;

mod wasi;

mod builder;
pub mod host_signals;

/// For the fuzz target only (built with `--cfg fuzzing`): host calls called directly.
#[cfg(fuzzing)]
#[doc(hidden)]
pub use wasi::harness::Harness as FuzzHarness;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use stack::prepare::Instrumentation;
use wasmix_process::{ControlPlane, Limits};
use wasmtime::{Config, Engine};

pub use builder::{JournalConfig, ProcessBuilder, ProcessHandle, RunningProcess};
pub use error::RunError;
pub use program::{is_plain_wasi, LoadError, Program};
pub use snapshot::{SnapshotError, SnapshotTicket, STOPPED_AFTER_SNAPSHOT};
pub use triggers::{trigger_named, SNAPSHOT_TRIGGERS};
pub use wasmix_fs::Stdio;
pub use wasmix_journal::SyncPolicy;
pub use wasmix_process::ExitStatus;
pub use wasmix_process::Signal;
pub use wasmix_process::Trigger;

/// Where compiled modules are cached.
#[derive(Clone, Debug, Default)]
pub enum CacheSetting {
    /// `$WASMIX_CACHE_DIR`, else `$XDG_CACHE_HOME/wasmix`, else `~/.cache/wasmix`.
    #[default]
    Default,
    /// This directory.
    Dir(PathBuf),
    /// Compile every time.
    Disabled,
}

/// How to build a [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where compiled modules are cached.
    pub cache: CacheSetting,
    /// Most processes alive at once, zombies included (spawn fails with EAGAIN beyond).
    pub max_processes: usize,
    /// Most threads alive at once across all processes (EAGAIN beyond). Never more than
    /// the host can map (`vm.max_map_count`, about 4,800 threads at its default).
    pub max_threads: usize,
    /// Instrument every module so a snapshot can capture its threads wherever they block or
    /// loop (what journaling needs; costs code size and some speed).
    pub snapshots: bool,
    /// Largest module file loaded, in bytes, the program itself or one a guest spawns or
    /// execs (which then fails with EFBIG).
    pub max_module_size: u64,
    /// Most linear memory one process may have, in bytes (`None`: what its module declares).
    /// `memory.grow` past it answers -1, as when a memory's own maximum is reached; a
    /// program that needs more at its start fails to start, naming both sizes.
    pub max_memory: Option<u64>,
    /// Most linear memory all of its processes may have together, in bytes (`None`: no
    /// limit). `memory.grow` that would pass it answers -1, a fork or spawn that would
    /// ENOMEM, and a program whose start would is refused by name.
    pub max_total_memory: Option<u64>,
    /// CPU backoff for guests that poll idly (see `blocking`): after 500 ms of back-to-back
    /// polls that find nothing, each waits for its descriptors a while (1 ms doubling to
    /// 100 ms) instead of returning at once. On by default.
    pub cpu_backoff: bool,
    /// Most CPU time one process may use (`None`: no limit): at the limit it is sent SIGXCPU
    /// (by default it ends; a handler may save its work), a second of CPU later it is killed
    /// — as `RLIMIT_CPU` works. Checked every 50 ms.
    pub max_cpu_time: Option<std::time::Duration>,
    /// What network guests may reach (none by default; see [`net::policy`]).
    pub network: net::policy::NetPolicy,
    /// Whether compute loops check for signals, kills and snapshot requests (checks at
    /// loop headers and function entries: wasmix's own, see `checks.rs`, or the engine's
    /// epoch checks when snapshots are on; a few to 20 % of compute speed). On by default. Off, a process is reached only at its host calls: a kill or signal waits
    /// for the next one, and snapshots cannot be taken. Fit for a program that has no
    /// signal handlers, threads or children and whose end by a signal the host's default
    /// action gives (what `wasmix run` does for a plain WASI program: see
    /// [`is_plain_wasi`]).
    pub interrupt_compute: bool,
}

/// Puts the calling thread ahead of guest threads where the system allows it (it needs
/// `CAP_SYS_NICE`; elsewhere nothing changes): for an embedder's thread that sleeps until it
/// must act promptly while guests compute, such as one that forwards signals or waits for a
/// process's end. With a thousand computing guest threads on two CPUs, a woken thread of
/// ordinary priority waited about a second for a CPU. Guest threads must not be started
/// from it afterwards (they would inherit its priority).
pub fn prioritize_this_thread() {
    sched::prompt();
}

/// The default [`RuntimeConfig::max_module_size`]: 256 MiB (real programs are far smaller).
pub const DEFAULT_MAX_MODULE_SIZE: u64 = 256 << 20;

impl Default for RuntimeConfig {
    fn default() -> Self {
        let limits = Limits::default();
        RuntimeConfig {
            cache: CacheSetting::default(),
            max_processes: limits.max_processes,
            max_threads: limits.max_threads,
            snapshots: false,
            max_module_size: DEFAULT_MAX_MODULE_SIZE,
            max_memory: None,
            max_total_memory: None,
            cpu_backoff: true,
            max_cpu_time: None,
            network: net::policy::NetPolicy::none(),
            interrupt_compute: true,
        }
    }
}

/// Memory mappings one guest thread costs the host: its OS thread's stack and guard, the
/// alternate signal stacks Rust and wasmtime give it, its instance's memory reservation and
/// tables (10.6 measured per idle child process here; rounded up).
const MAPS_PER_THREAD: usize = 12;

/// How many guest threads the host can map: past the kernel's per-process limit on
/// mappings (`vm.max_map_count`, 65530 by default) a new OS thread cannot even get its
/// signal stack and the runtime aborts. What is mapped already and a tenth of the limit
/// (module code, journals, helper threads) are kept aside; a spawn or thread beyond the
/// rest answers EAGAIN like any other thread limit.
fn affordable_threads() -> usize {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let Some(max) = read("/proc/sys/vm/max_map_count").and_then(|s| s.trim().parse().ok()) else {
        return usize::MAX;
    };
    let in_use = read("/proc/self/maps").map_or(0, |s| s.lines().count());
    threads_within(max, in_use)
}

/// The arithmetic of [`affordable_threads`].
fn threads_within(max_maps: usize, in_use: usize) -> usize {
    let spare = max_maps.saturating_sub(in_use + max_maps / 10);
    (spare / MAPS_PER_THREAD).max(1)
}

/// The shared, long-lived part: the engine, the linker with every host call, the module
/// caches and the control plane of every process it runs. Cloning is cheap (one handle).
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    /// Every host call, defined into a linker as programs import them.
    host_calls: wasi::HostLinker,
    cache: Option<cache::ModuleCache>,
    /// Programs guests spawn, by content hash: a spawn loop must not recompile or remap.
    loaded: Mutex<HashMap<[u8; 32], Program>>,
    control: ControlPlane,
    /// How modules are instrumented.
    build: program::Build,
    /// The slots interruption checks read, when modules get them.
    check_flags: Option<Arc<interrupt::FlagTable>>,
    /// Largest module file loaded.
    max_module_size: u64,
    /// Most linear memory per process, in bytes.
    max_memory: Option<u64>,
    /// What all processes' memories may add up to.
    budget: Option<Arc<budget::MemoryBudget>>,
    /// Whether idle pollers are slowed down.
    cpu_backoff: bool,
    /// The CPU time limit's accounting, if there is a limit.
    cpu: Option<Arc<cpu::CpuWatch>>,
    /// What network guests may reach.
    network: net::policy::NetPolicy,
    /// The context each process runs in now, by pid (a snapshot of a process tree finds its
    /// members' here); entries of ended processes are dead and swept as new ones come.
    contexts: Mutex<HashMap<wasmix_process::Pid, std::sync::Weak<host::ProcessCtx>>>,
}

impl Runtime {
    /// Builds the engine and the linker with every host call.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RunError> {
        let mut wt = Config::new();
        wt.wasm_threads(true);
        wt.shared_memory(true);
        // Snapshots reach threads in compute loops through the epoch deadline callback.
        if config.snapshots && !config.interrupt_compute {
            return Err(RunError::Setup(
                "snapshots need compute interruption (RuntimeConfig::interrupt_compute)".into(),
            ));
        }
        // Snapshots capture a thread at a loop's safe point, which the epoch callback asks
        // for; otherwise code that must be interruptible gets wasmix's own checks, which cost
        // less (checks.rs), and the engine lays their calls out of line by the hints they
        // come with.
        let checks = config.interrupt_compute && !config.snapshots;
        wt.epoch_interruption(config.snapshots);
        wt.wasm_branch_hinting(checks);
        wt.wasm_multi_memory(true);
        // The standard exception-handling (`try_table`, `exnref`) and GC (struct and array
        // types) proposals, as `wasmtime run` has them: real programs use both.
        wt.wasm_exceptions(true);
        wt.wasm_gc(true);
        wt.wasm_function_references(true);
        // Every 32-bit memory gets its whole 4 GiB range reserved and grows in place: fork's
        // copy-on-write mapping (forkmem.rs) replaces exactly that range.
        wt.memory_reservation(1 << 32);
        let setup =
            |e: wasmtime::Error| RunError::Setup(format!("cannot set up the engine: {e:#}"));
        let engine = Engine::new(&wt).map_err(setup)?;
        let check_flags = if checks {
            Some(interrupt::FlagTable::new(&engine).map_err(setup)?)
        } else {
            None
        };
        let host_calls = wasi::HostLinker::new(&engine).map_err(setup)?;
        let cache_dir = match config.cache {
            CacheSetting::Default => cache::ModuleCache::default_dir(),
            CacheSetting::Dir(d) => Some(d),
            CacheSetting::Disabled => None,
        };
        let cache = cache_dir.map(|d| cache::ModuleCache::new(&engine, d));
        let limits = Limits {
            max_processes: config.max_processes,
            max_threads: config.max_threads.min(affordable_threads()),
        };
        let control = ControlPlane::new(limits);
        let cpu = match config.max_cpu_time {
            Some(limit) => Some(cpu::CpuWatch::start(limit, &control).map_err(|e| {
                RunError::Setup(format!("cannot start the CPU time limit's thread: {e}"))
            })?),
            None => None,
        };
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                host_calls,
                cache,
                loaded: Mutex::new(HashMap::new()),
                contexts: Mutex::new(HashMap::new()),
                control,
                build: program::Build {
                    instrumentation: if config.snapshots {
                        Instrumentation::Snapshots
                    } else {
                        Instrumentation::Captures
                    },
                    checks,
                },
                check_flags,
                max_module_size: config.max_module_size,
                max_memory: config.max_memory,
                budget: config.max_total_memory.map(budget::MemoryBudget::new),
                cpu_backoff: config.cpu_backoff,
                cpu,
                network: config.network,
            }),
        })
    }

    /// Loads a `.wasm` or `.wat` file, from the compiled-module cache when possible.
    pub fn load(&self, path: &Path) -> Result<Program, LoadError> {
        Program::load(
            &self.inner.engine,
            self.inner.cache.as_ref(),
            path,
            self.inner.build,
            self.inner.max_module_size,
        )
    }

    /// The table of interruption flags, when modules get wasmix's checks.
    pub(crate) fn check_flags(&self) -> Option<&Arc<interrupt::FlagTable>> {
        self.inner.check_flags.as_ref()
    }

    /// The CPU time limit's accounting, if there is a limit.
    pub(crate) fn cpu_watch(&self) -> Option<Arc<cpu::CpuWatch>> {
        self.inner.cpu.clone()
    }

    /// Whether idle pollers are slowed down.
    pub(crate) fn cpu_backoff(&self) -> bool {
        self.inner.cpu_backoff
    }

    /// What network guests may reach.
    pub(crate) fn network(&self) -> &net::policy::NetPolicy {
        &self.inner.network
    }

    /// Most linear memory per process, in bytes.
    pub(crate) fn max_memory(&self) -> Option<u64> {
        self.inner.max_memory
    }

    /// What all processes' memories may add up to, if limited.
    pub(crate) fn memory_budget(&self) -> Option<&Arc<budget::MemoryBudget>> {
        self.inner.budget.as_ref()
    }

    /// The largest module file it loads, in bytes.
    pub(crate) fn max_module_size(&self) -> u64 {
        self.inner.max_module_size
    }

    /// Loads a module from memory; `name` becomes the default `argv[0]`.
    pub fn load_bytes(&self, bytes: &[u8], name: &str) -> Result<Program, LoadError> {
        Program::from_bytes(
            &self.inner.engine,
            self.inner.cache.as_ref(),
            bytes,
            Path::new(name),
            name.into(),
            self.inner.build,
        )
    }

    /// A program a guest asked to run, compiled once per distinct content.
    pub(crate) fn load_for_guest(&self, bytes: &[u8], name: &str) -> Result<Program, LoadError> {
        let key = *blake3::hash(bytes).as_bytes();
        let lock = || self.inner.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = lock().get(&key) {
            return Ok(p.renamed(name));
        }
        let program = self.load_bytes(bytes, name)?;
        lock().insert(key, program.clone());
        Ok(program)
    }

    /// Records that `ctx`'s process runs in it now (its first thread starts, or it exec'd).
    pub(crate) fn register_context(&self, ctx: &Arc<host::ProcessCtx>) {
        let mut all = self
            .inner
            .contexts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if all.len() >= 64 && all.len().is_power_of_two() {
            all.retain(|_, c| c.strong_count() > 0);
        }
        all.insert(ctx.process.pid(), Arc::downgrade(ctx));
    }

    /// The context `process` runs in, once one of its threads runs it (a vfork child that
    /// has not exec'd runs on its parent's thread and has none).
    pub(crate) fn context_of(
        &self,
        process: &Arc<wasmix_process::Process>,
    ) -> Option<Arc<host::ProcessCtx>> {
        let all = self
            .inner
            .contexts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.get(&process.pid())
            .and_then(std::sync::Weak::upgrade)
            .filter(|c| Arc::ptr_eq(&c.process, process))
    }

    /// Starts configuring a process that runs `program`.
    pub fn process(&self, program: &Program) -> ProcessBuilder {
        ProcessBuilder::new(self, program)
    }

    /// The cache directory in use, if caching is on.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.inner.cache.as_ref().map(|c| c.dir())
    }

    /// The control plane of every process this runtime runs.
    pub fn control(&self) -> &ControlPlane {
        &self.inner.control
    }

    /// Whether a host call `module::name` exists.
    pub(crate) fn provides(&self, module: &str, name: &str) -> bool {
        self.inner.host_calls.provides(module, name)
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The host calls.
    pub(crate) fn host_calls(&self) -> &wasi::HostLinker {
        &self.inner.host_calls
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_thread_limit_keeps_a_tenth_of_the_mappings_and_what_is_in_use() {
        // The kernel's default limit, 600 mappings in use: ~4,800 threads of 12 maps.
        assert_eq!(
            super::threads_within(65_530, 600),
            (65_530 - 600 - 6_553) / 12
        );
        // Nothing to spare still lets the program itself run.
        assert_eq!(super::threads_within(1_000, 5_000), 1);
    }
}
