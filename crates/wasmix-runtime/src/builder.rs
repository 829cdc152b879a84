//! The public way to run a program as a process: [`ProcessBuilder`] configures one, then runs
//! it here or on a thread of its own ([`RunningProcess`], [`ProcessHandle`]).

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use wasmix_fs::{FileSystemBuilder, HostFd, Node, OpenFile, Stdio};

use wasmix_process::ExitStatus;

use crate::capture::StackError;
use crate::error::RunError;
use crate::host::{Image, ProcessCtx};
use crate::launch::Start;
use crate::program::Program;
use crate::running;
use crate::stack::Entry;
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
        }
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

    /// Runs the process to completion on the calling thread (its other threads and child
    /// processes run on threads of their own).
    pub fn run(self) -> Result<ExitStatus, RunError> {
        self.run_reporting(|_| {})
    }

    /// Starts the process on a thread of its own and returns at once; the handle reports its
    /// pid, signals it, and waits for its end.
    pub fn spawn(self) -> Result<RunningProcess, RunError> {
        let process_slot = Arc::new(std::sync::OnceLock::new());
        let slot = Arc::clone(&process_slot);
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("wasmix-root".into())
            .spawn(move || {
                let r = self.run_reporting(|p| {
                    let _ = slot.set(Arc::clone(p));
                    let _ = tx.send(());
                });
                drop(tx);
                r
            })
            .map_err(|e| RunError::Setup(format!("cannot start a thread: {e}")))?;
        let _ = rx.recv();
        Ok(RunningProcess {
            process: process_slot.get().cloned(),
            handle,
        })
    }

    fn run_reporting(
        self,
        started: impl FnOnce(&Arc<wasmix_process::Process>),
    ) -> Result<ExitStatus, RunError> {
        let fs = Arc::new(self.fs.build());
        for listener in self.listeners {
            let fd: OwnedFd = listener.into();
            let file = OpenFile::new(Node::Stream(HostFd::Owned(fd)), 0);
            let rights = wasi::sock_listener_rights();
            fs.insert(file, rights, wasi::sock_connection_rights())
                .map_err(|e| RunError::Setup(format!("cannot add listener: {e}")))?;
        }
        let runtime = self.runtime.clone();
        let image = Image::new(&runtime, &self.program, self.preloads)?;
        let process = runtime
            .control()
            .spawn(None, [0; 32])
            .map_err(|e| RunError::Setup(format!("cannot start the process: {e}")))?;
        started(&process);
        let main = process
            .main_thread()
            .ok_or_else(|| RunError::Setup("the process has no main thread".into()))?;
        let ctx = Arc::new(ProcessCtx::new(
            runtime,
            Arc::clone(&process),
            fs,
            self.args,
            self.env,
            image,
            false,
        ));
        running::run_thread(Arc::clone(&ctx), main, Start::Entry(Entry::Main));
        let status = process.wait_exit();
        match ctx.take_trap() {
            Some(e) => Err(classify(e)),
            None => Ok(status),
        }
    }
}

/// Signals a running process from anywhere.
#[derive(Clone)]
pub struct ProcessHandle {
    process: Option<Arc<wasmix_process::Process>>,
}

impl ProcessHandle {
    /// Sends `sig`, as `kill(2)` would (SIGINT goes on to the children the process waits
    /// for, as a terminal's foreground job would have it).
    pub fn signal(&self, sig: wasmix_process::Signal) {
        if let Some(p) = &self.process {
            let _ = p.signal(sig);
        }
    }
}

/// A process started with [`ProcessBuilder::spawn`].
pub struct RunningProcess {
    process: Option<Arc<wasmix_process::Process>>,
    handle: std::thread::JoinHandle<Result<ExitStatus, RunError>>,
}

impl RunningProcess {
    /// Its pid (`None` if it failed before it got one).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid())
    }

    /// Sends `sig` to it, as `kill(2)` would.
    pub fn signal(&self, sig: wasmix_process::Signal) {
        self.handle().signal(sig);
    }

    /// A handle that can signal the process from another thread.
    pub fn handle(&self) -> ProcessHandle {
        ProcessHandle {
            process: self.process.clone(),
        }
    }

    /// Waits for it to end.
    pub fn wait(self) -> Result<ExitStatus, RunError> {
        self.handle
            .join()
            .unwrap_or_else(|_| Err(RunError::Setup("the process thread panicked".into())))
    }
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
