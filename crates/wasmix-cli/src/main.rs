//! The `wasmix` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wasmix_runtime::net::policy::NetPolicy;
use wasmix_runtime::{
    host_signals, CacheSetting, JournalConfig, RunError, Runtime, RuntimeConfig, SyncPolicy,
    Trigger, STOPPED_AFTER_SNAPSHOT,
};

mod journal;
mod logs;
mod options;

use options::{DirSpec, EnvSpec, PreloadSpec};

/// Exit status after a trap, as a process killed by SIGABRT (what `wasmtime run` uses).
const EXIT_TRAP: u8 = 134;

#[derive(Parser)]
#[command(
    name = "wasmix",
    version,
    about = "Run WebAssembly programs as Unix-like processes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a WebAssembly module (`.wasm` or `.wat`) as a process.
    // Everything after the module is the guest's, `--help` too (as under wasmtime and
    // wasmer): clap's own help flag would be seen anywhere, this one only before it.
    #[command(disable_help_flag = true)]
    Run(Box<RunArgs>),
    /// Look into a journal of snapshots.
    #[command(subcommand)]
    Journal(JournalCommand),
}

#[derive(Subcommand)]
enum JournalCommand {
    /// The header, records by kind, and every complete snapshot.
    Inspect {
        /// One JSON object (its `snapshots` array: one entry per complete snapshot).
        #[arg(long)]
        json: bool,
        /// The journal file.
        file: PathBuf,
    },
    /// Checks every record's checksum and the snapshots' structure; names the first bad
    /// byte offset. Exit status 0 only for an intact journal (a torn tail is reported).
    Verify {
        /// The journal file.
        file: PathBuf,
    },
    /// Rewrites the journal to hold only its latest complete snapshot (verified first;
    /// replaced in one rename, so a crash leaves the old journal or the new one, whole).
    Compact {
        /// The journal file.
        file: PathBuf,
    },
    /// Every complete snapshot's records as JSON lines (memory regions by place and size).
    Export {
        /// The journal file.
        file: PathBuf,
    },
    /// Writes a snapshot's linear memory to a file of its size (what the snapshot does not
    /// hold is zeros).
    Extract {
        /// Which snapshot, by number (default: the latest complete one).
        #[arg(long, value_name = "SEQ")]
        snapshot: Option<u64>,
        /// Which process of a snapshot of a process tree (default: the journal's own).
        #[arg(long, value_name = "PID")]
        pid: Option<u32>,
        /// Where to write the memory image.
        #[arg(long, value_name = "OUT")]
        memory: PathBuf,
        /// The journal file.
        file: PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Print help.
    #[arg(short = 'h', long = "help", action = clap::ArgAction::Help)]
    help: Option<bool>,

    /// Mount a host directory: `HOST` (seen under the same path) or `HOST::GUEST`.
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    dirs: Vec<DirSpec>,

    /// Set `KEY=VALUE` in the guest's environment, or pass `KEY` through from this one.
    #[arg(long = "env", value_name = "KEY[=VALUE]")]
    envs: Vec<EnvSpec>,

    /// Link the exports of another module as import module NAME.
    #[arg(long = "preload", value_name = "NAME=MODULE")]
    preloads: Vec<PreloadSpec>,

    /// Give the guest a listening TCP socket as a preopened descriptor.
    #[arg(long = "tcplisten", value_name = "ADDR:PORT")]
    listen: Vec<String>,

    /// Let the guest use the network as a native program would (default: no network).
    #[arg(long, conflicts_with = "net_allow")]
    net: bool,

    /// Let the guest reach only what these rules cover: connect=HOST:PORTS, bind=HOST:PORTS,
    /// resolve=NAME (comma-separated, repeatable; HOST is *, localhost, an address, a
    /// network ADDR/BITS or a name; PORTS is *, N or N-M). Refused operations answer
    /// ECONNREFUSED (connect) or EACCES (bind, send, resolve).
    #[arg(long = "net-allow", value_name = "RULES")]
    net_allow: Vec<String>,

    /// Where to cache compiled modules (default: $WASMIX_CACHE_DIR or ~/.cache/wasmix).
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,

    /// Compile the module every time instead of using the cache.
    #[arg(long)]
    no_cache: bool,

    /// Do not provide the synthetic /dev (null, zero, full, random, urandom).
    #[arg(long)]
    no_dev: bool,

    /// Most guest processes alive at once (a spawn beyond fails with EAGAIN).
    #[arg(long, value_name = "N", default_value_t = RuntimeConfig::default().max_processes,
          value_parser = clap::value_parser!(usize))]
    max_processes: usize,

    /// Most guest threads alive at once, across all processes (EAGAIN beyond).
    #[arg(long, value_name = "N", default_value_t = RuntimeConfig::default().max_threads,
          value_parser = clap::value_parser!(usize))]
    max_threads: usize,

    /// Largest module file loaded, in MiB: the program, and what it spawns or execs (which
    /// then fails with EFBIG).
    #[arg(long, value_name = "MIB", default_value_t = wasmix_runtime::DEFAULT_MAX_MODULE_SIZE >> 20)]
    max_module_size: u64,

    /// End the run after this long (`500ms`, `10s`, `5m`): the program and every process
    /// it started are killed, and wasmix exits with status 124, as timeout(1) does.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<std::time::Duration>,

    /// Let a guest that polls idly (zero-timeout polls or non-blocking reads that find
    /// nothing, back to back) burn a whole core. By default, after 500 ms of that, each such
    /// poll waits for its descriptors up to 1 ms, doubling to 100 ms.
    #[arg(long)]
    no_cpu_backoff: bool,

    /// Most CPU time one guest process may use (`500ms`, `10s`, `5m`): at the limit it is
    /// sent SIGXCPU (by default it ends; a handler may save its work), and one second of
    /// CPU later it is killed, as under `ulimit -t`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    max_cpu_time: Option<std::time::Duration>,

    /// Most linear memory one guest process may have, in MiB: `memory.grow` past it answers
    /// -1 (malloc fails, as on a machine out of memory); a program that needs more to start
    /// is refused, naming both sizes. Default: what the module declares (4 GiB at most).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    max_memory: Option<u64>,

    /// Most linear memory all guest processes of the run may have together, in MiB (the
    /// program, its children and forks): `memory.grow` past it answers -1, a fork or spawn
    /// that would pass it ENOMEM, and a program that cannot start within it is refused.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    max_total_memory: Option<u64>,

    /// Journal the process into FILE: snapshots go there, and if FILE already holds a
    /// snapshot of this module, the process is restored from the newest one instead of
    /// started.
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,

    /// What takes a snapshot, comma-separated: `explicit` (the guest's proc_snapshot; always
    /// on); `first-stdin` (before the program's first read of stdin: where it is done
    /// starting and waits for input), `bootstrap` (the same, or its first sleep, poll or
    /// socket wait, whichever comes first), `first-environ` (before its first look at the
    /// environment), `non-deterministic` (before its first clock or random call); `periodic`
    /// (every --snapshot-period), `idle` (every thread blocked for --snapshot-idle; again
    /// only after it woke up); `sigint` (Ctrl-C), `first-sigint` (the first Ctrl-C only),
    /// `sigalrm`, `sigterm` (a stop request, as containerd sends), `sigtstp` (Ctrl-Z),
    /// `sigstop`: the snapshot, then the signal as usual.
    #[arg(long, value_name = "TRIGGERS", value_delimiter = ',', requires = "journal",
          value_parser = parse_trigger)]
    snapshot_on: Vec<Trigger>,

    /// Restore from the newest snapshot of this journal, only reading it, and record into
    /// --journal, which must be new: any number of runs can start from one journal at once.
    #[arg(long, value_name = "FILE", requires = "journal")]
    restore_from: Option<PathBuf>,

    /// With `--snapshot-on periodic`: the time between snapshots (`500ms`, `10s`, `5m`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "journal")]
    snapshot_period: Option<std::time::Duration>,

    /// With `--snapshot-on idle`: how long every thread must have been blocked (`1s`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "journal",
          default_value = "1s")]
    snapshot_idle: std::time::Duration,

    /// Every snapshot writes the whole memory. By default a snapshot after the first writes
    /// only the pages written since the one before (an increment the restore composes),
    /// which costs a write fault per page first written after each snapshot.
    #[arg(long, requires = "journal")]
    full_snapshots: bool,

    /// End the process once a snapshot is taken (exit status 75); restore it with the same
    /// `--journal` to go on.
    #[arg(long, requires = "journal")]
    stop_after_snapshot: bool,

    /// How long a snapshot waits for every thread to reach a safe point before it fails,
    /// in seconds (a thread blocked in a call that cannot be captured).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10.0,
        requires = "journal"
    )]
    snapshot_timeout: f64,

    /// When the journal is made durable: `snapshot` (default: when a snapshot commits),
    /// `always` (every record) or `never`.
    #[arg(
        long,
        value_name = "POLICY",
        default_value = "snapshot",
        requires = "journal"
    )]
    journal_sync: SyncPolicy,

    /// The module to run, then the arguments passed to it — all of them, flags such as
    /// `--help` included.
    #[arg(
        value_name = "MODULE [ARGS]",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    command: Vec<std::ffi::OsString>,
}

impl RunArgs {
    /// The module to run.
    fn module(&self) -> &std::path::Path {
        std::path::Path::new(&self.command[0])
    }

    /// The guest's arguments after its name.
    fn guest_args(&self) -> &[std::ffi::OsString] {
        &self.command[1..]
    }
}

fn main() -> ExitCode {
    logs::init();
    let cli = Cli::parse_from(with_implicit_run(std::env::args_os().collect()));
    match cli.command {
        Command::Journal(cmd) => {
            let r = match cmd {
                JournalCommand::Inspect { json, file } => {
                    journal::inspect(&file, json).map_err(|e| e.to_string())
                }
                JournalCommand::Verify { file } => {
                    journal::verify(&file).map_err(|e| e.to_string())
                }
                JournalCommand::Compact { file } => journal::compact(&file),
                JournalCommand::Export { file } => {
                    journal::export(&file, &mut std::io::stdout().lock())
                }
                JournalCommand::Extract {
                    snapshot,
                    pid,
                    memory,
                    file,
                } => journal::extract_memory(&file, snapshot, pid, &memory).map(|done| {
                    eprintln!("{done}");
                }),
            };
            match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("Error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run(args) => match run(*args) {
            Ok(code) => code,
            Err(Failure::Trap(msg)) => {
                eprintln!("Error: {msg}");
                ExitCode::from(EXIT_TRAP)
            }
            Err(Failure::TimedOut(msg)) => {
                eprintln!("Error: {msg}");
                // As timeout(1) reports it.
                ExitCode::from(124)
            }
            Err(Failure::Other(msg)) => {
                eprintln!("Error: {msg}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `wasmix app.wasm ...` and `wasmix --dir . app.wasm` mean `wasmix run ...`, as with wasmtime.
fn with_implicit_run(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    const OWN: [&str; 7] = ["run", "journal", "help", "--help", "-h", "--version", "-V"];
    if let Some(first) = args.get(1).and_then(|a| a.to_str()) {
        if !OWN.contains(&first) {
            args.insert(1, "run".into());
        }
    } else if args.get(1).is_some() {
        // A non-UTF-8 first argument can only be a module path.
        args.insert(1, "run".into());
    }
    args
}

enum Failure {
    Trap(String),
    TimedOut(String),
    Other(String),
}

impl From<RunError> for Failure {
    fn from(e: RunError) -> Failure {
        match e {
            RunError::Trap(_) => Failure::Trap(e.to_string()),
            RunError::TimedOut(_) => Failure::TimedOut(e.to_string()),
            other => Failure::Other(other.to_string()),
        }
    }
}

fn other(e: impl std::fmt::Display) -> Failure {
    Failure::Other(e.to_string())
}

fn run(args: RunArgs) -> Result<ExitCode, Failure> {
    let interrupt_compute = needs_compute_interruption(&args);
    // A plain program cannot handle, ignore or be snapshotted on a signal: the host's own
    // dispositions act on wasmix, as on a native program, with no thread to forward them.
    let forward_signals = interrupt_compute;
    if forward_signals {
        // Before any thread starts: every thread the runtime makes inherits the block.
        host_signals::block_forwarded(true);
    }
    let cache = match (args.no_cache, args.cache_dir.clone()) {
        (true, _) => CacheSetting::Disabled,
        (false, Some(dir)) => CacheSetting::Dir(dir),
        (false, None) => CacheSetting::Default,
    };
    if args.max_processes == 0 || args.max_threads == 0 {
        return Err(other(
            "--max-processes and --max-threads must be at least 1 (the program itself)",
        ));
    }
    let network = if args.net {
        NetPolicy::everything()
    } else {
        NetPolicy::rules(&args.net_allow).map_err(other)?
    };
    tracing::debug!(
        "compute interruption {}",
        if interrupt_compute {
            "on"
        } else {
            "off (a plain WASI program, no journal, timeout or CPU limit)"
        }
    );
    let runtime = Runtime::new(RuntimeConfig {
        interrupt_compute,
        network,
        cache,
        max_processes: args.max_processes,
        max_threads: args.max_threads,
        snapshots: args.journal.is_some(),
        max_module_size: args.max_module_size.saturating_mul(1 << 20),
        max_memory: args.max_memory.map(|m| m.saturating_mul(1 << 20)),
        max_total_memory: args.max_total_memory.map(|m| m.saturating_mul(1 << 20)),
        cpu_backoff: !args.no_cpu_backoff,
        max_cpu_time: args.max_cpu_time,
    })?;
    let program = runtime.load(args.module()).map_err(other)?;
    let mut process = runtime.process(&program).dev(!args.no_dev);
    if let Some(limit) = args.timeout {
        process = process.timeout(limit);
    }
    for arg in args.guest_args() {
        process = process.arg(arg.as_encoded_bytes());
    }
    for env in &args.envs {
        if let Some((k, v)) = env.resolve() {
            process = process.env(k, v);
        }
    }
    for dir in &args.dirs {
        process = process.mount(&dir.host, &dir.guest)?;
    }
    for preload in &args.preloads {
        let helper = runtime.load(&preload.module).map_err(other)?;
        process = process.preload(&preload.name, &helper);
    }
    if let Some(path) = &args.journal {
        let mut config = JournalConfig::new(path);
        config.sync = args.journal_sync;
        config.triggers.extend(args.snapshot_on.iter().copied());
        config.stop_after_snapshot = args.stop_after_snapshot;
        config.period = args.snapshot_period;
        config.idle = args.snapshot_idle;
        config.incremental = !args.full_snapshots;
        config.restore_from = args.restore_from.clone();
        if args.snapshot_on.contains(&Trigger::PeriodicInterval) && config.period.is_none() {
            return Err(other("--snapshot-on periodic needs --snapshot-period"));
        }
        config.capture_timeout = std::time::Duration::try_from_secs_f64(args.snapshot_timeout)
            .map_err(|e| other(format!("--snapshot-timeout: {e}")))?;
        process = process.journal(config);
    } else if forward_signals {
        // While the guest leaves them at their default action, these end wasmix in the
        // kernel, as they end a native program: no thread of ours must first get a CPU among
        // computing guest threads (see `ProcessBuilder::pass_through_default_signals`).
        process = process.pass_through_default_signals(host_signals::default_pass_through());
    }
    for addr in &args.listen {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| other(format!("cannot listen on `{addr}` for --tcplisten: {e}")))?;
        process = process.listener(listener);
    }
    // Ctrl-Z is the guest's only when it takes a snapshot.
    let forwarding = match forward_signals {
        true => Some(host_signals::Forwarding::take_over(
            args.snapshot_on.contains(&Trigger::Sigtstp),
        )?),
        false => None,
    };
    let status = match forwarding {
        // Nothing to forward: the program runs on this thread. wasmix then stays a
        // single-threaded process, so the kernel looks up each descriptor of the program's
        // reads and writes without taking a reference on it (a shared descriptor table
        // costs two atomics per call), and no thread is started.
        None if main_stack_suffices() => process.run()?,
        forwarding => {
            let running = process.spawn()?;
            if let Some(forwarding) = forwarding {
                forwarding.start(&running).map_err(|e| {
                    other(format!(
                        "cannot start the thread that hands signals to the guest: {e}"
                    ))
                })?;
            }
            // Waiting from here on; the guest's threads are started by threads of their own.
            wasmix_runtime::prioritize_this_thread();
            running.wait()?
        }
    };
    if status.code() == STOPPED_AFTER_SNAPSHOT && args.stop_after_snapshot {
        if let Some(path) = &args.journal {
            eprintln!(
                "wasmix: stopped after a snapshot; resume it with: wasmix run --journal {} {}",
                path.display(),
                args.module().display()
            );
        }
    }
    Ok(ExitCode::from(status.code() as u8))
}

/// Whether this (the main) thread's stack may grow at least as far as a thread's the
/// runtime starts (Rust's 2 MiB default), so a program run on it gets no less room.
fn main_stack_suffices() -> bool {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Stack);
    limit.current.is_none_or(|bytes| bytes >= 2 << 20)
}

/// Whether the guest's compute loops must check for signals and kills. Not for a plain
/// WASI program (`is_plain_wasi`: no handlers, threads or children, nor in its preloads) run
/// without a journal, a timeout or a CPU limit: what could interrupt it then is a signal with its
/// default action, which the kernel carries out on wasmix itself (the CLI passes INT, TERM,
/// HUP and ALRM through at their defaults), so it runs at the engine's full speed.
fn needs_compute_interruption(args: &RunArgs) -> bool {
    if args.journal.is_some()
        || args.restore_from.is_some()
        || args.timeout.is_some()
        || args.max_cpu_time.is_some()
    {
        return true;
    }
    // Only a regular file within the size limit is read here; anything else is left to the
    // loader to refuse by name.
    let limit = args.max_module_size.saturating_mul(1 << 20);
    let linked: Vec<&str> = args.preloads.iter().map(|p| p.name.as_str()).collect();
    let plain = |path: &std::path::Path| {
        std::fs::metadata(path)
            .ok()
            .filter(|m| m.is_file() && m.len() <= limit)
            .and_then(|_| std::fs::read(path).ok())
            .is_some_and(|bytes| wasmix_runtime::is_plain_wasi(&bytes, &linked))
    };
    // Preloads that are plain themselves (a benchmark harness's `bench` stubs, helpers)
    // bring no handler, thread or child either.
    !(plain(args.module()) && args.preloads.iter().all(|p| plain(&p.module)))
}

fn parse_trigger(s: &str) -> Result<Trigger, String> {
    wasmix_runtime::trigger_named(s)
}

/// `500ms`, `10s`, `5m`: a positive time.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a time like 500ms, 10s or 5m"))?;
    let d = match unit {
        "ms" => std::time::Duration::from_millis(n),
        "s" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("`{s}`: the unit is ms, s or m")),
    };
    if d.is_zero() {
        return Err("the period must be more than zero".into());
    }
    Ok(d)
}
