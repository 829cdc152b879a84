//! Running a program as a process: the builder and the run loop.

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use wasmix_fs::{FileSystemBuilder, HostFd, Node, OpenFile, Stdio};
use wasmtime::{Linker, Store};

use crate::host::{ExitStatus, Host, ProcessEnded};
use crate::program::Program;
use crate::wasi;
use crate::Runtime;

/// Why a process could not be run to an exit status.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The guest trapped; the message holds the trap and its wasm backtrace.
    #[error("{0:?}")]
    Trap(wasmtime::Error),
    /// The module cannot be linked (a missing or mistyped import, a bad preload).
    #[error("{0}")]
    Link(String),
    /// The process could not be set up (mounts, stdio, listeners).
    #[error("{0}")]
    Setup(String),
}

/// Configures one process of a [`Program`]: arguments, environment, mounts, stdio. Obtained from
/// [`Runtime::process`].
pub struct ProcessBuilder<'r> {
    runtime: &'r Runtime,
    program: Program,
    args: Vec<Vec<u8>>,
    env: Vec<Vec<u8>>,
    fs: FileSystemBuilder,
    preloads: Vec<(String, Program)>,
    listeners: Vec<TcpListener>,
}

impl<'r> ProcessBuilder<'r> {
    pub(crate) fn new(runtime: &'r Runtime, program: &Program) -> ProcessBuilder<'r> {
        ProcessBuilder {
            runtime,
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

    /// Runs the process to completion on the calling thread.
    pub fn run(self) -> Result<ExitStatus, RunError> {
        let fs = Arc::new(self.fs.build());
        for listener in self.listeners {
            let fd: OwnedFd = listener.into();
            let file = OpenFile::new(Node::Stream(HostFd::Owned(fd)), 0);
            let rights = wasi::sock_listener_rights();
            fs.insert(file, rights, wasi::sock_connection_rights())
                .map_err(|e| RunError::Setup(format!("cannot add listener: {e}")))?;
        }
        let host = Host {
            fs,
            args: self.args,
            env: self.env,
            memory: None,
        };
        let mut store = Store::new(self.runtime.engine(), host);
        let mut linker: Linker<Host> = self.runtime.linker().clone();

        let outcome = (|| -> Result<ExitStatus, RunError> {
            for (name, helper) in &self.preloads {
                check_imports(&linker, &mut store, helper)?;
                let inst = linker
                    .instantiate(&mut store, helper.module())
                    .map_err(classify)?;
                linker
                    .instance(&mut store, name, inst)
                    .map_err(|e| RunError::Link(format!("cannot preload `{name}`: {e}")))?;
            }
            check_imports(&linker, &mut store, &self.program)?;
            let instance = linker
                .instantiate(&mut store, self.program.module())
                .map_err(classify)?;
            let memory = instance.get_memory(&mut store, "memory");
            store.data_mut().memory = memory;
            if let Ok(init) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
                init.call(&mut store, ()).map_err(classify)?;
            }
            let start = instance
                .get_typed_func::<(), ()>(&mut store, "_start")
                .map_err(|_| {
                    RunError::Link(format!(
                        "`{}` exports no `_start` function to run (is it a library or reactor?)",
                        self.program.name()
                    ))
                })?;
            start.call(&mut store, ()).map_err(classify)?;
            Ok(ExitStatus::Exited(0))
        })();
        match outcome {
            Err(RunError::Trap(e)) => match e.downcast_ref::<ProcessEnded>() {
                Some(ended) => Ok(ended.0),
                None => Err(RunError::Trap(e)),
            },
            other => other,
        }
    }
}

fn classify(e: wasmtime::Error) -> RunError {
    let guest_failed = e.downcast_ref::<ProcessEnded>().is_some()
        || e.downcast_ref::<wasmtime::Trap>().is_some()
        || e.downcast_ref::<wasmtime::WasmBacktrace>().is_some();
    if guest_failed {
        RunError::Trap(e)
    } else {
        let msg = format!("{e:#}");
        RunError::Link(msg.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
    }
}

/// Names every import the linker cannot satisfy, in one line, before wasmtime would.
fn check_imports(
    linker: &Linker<Host>,
    store: &mut Store<Host>,
    program: &Program,
) -> Result<(), RunError> {
    for import in program.module().imports() {
        let (module, name) = (import.module(), import.name());
        if linker.get(&mut *store, module, name).is_ok() {
            continue;
        }
        let known = wasi::MODULES.iter().any(|abi| abi.module() == module);
        return Err(RunError::Link(if known {
            format!(
                "`{}` imports `{module}::{name}`, which is not a function of {module} that wasmix provides",
                program.name()
            )
        } else {
            format!(
                "`{}` imports `{module}::{name}`, but nothing provides module `{module}` (link one with --preload {module}=FILE)",
                program.name()
            )
        }));
    }
    Ok(())
}
