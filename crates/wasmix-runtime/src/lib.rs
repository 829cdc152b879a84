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

mod cache;
mod host;
mod mem;
mod process;
mod program;
mod wasi;

use std::path::{Path, PathBuf};

use wasmtime::{Config, Engine, Linker};

pub use host::ExitStatus;
pub use process::{ProcessBuilder, RunError};
pub use program::{LoadError, Program};
pub use wasmix_fs::Stdio;

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
#[derive(Clone, Debug, Default)]
pub struct RuntimeConfig {
    /// Where compiled modules are cached.
    pub cache: CacheSetting,
}

/// The shared, long-lived part: the engine, the linker with every host call, the cache.
pub struct Runtime {
    engine: Engine,
    linker: Linker<host::Host>,
    cache: Option<cache::ModuleCache>,
}

impl Runtime {
    /// Builds the engine and the linker with every host call.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RunError> {
        let mut wt = Config::new();
        wt.wasm_threads(true);
        wt.shared_memory(true);
        let setup =
            |e: wasmtime::Error| RunError::Setup(format!("cannot set up the engine: {e:#}"));
        let engine = Engine::new(&wt).map_err(setup)?;
        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker).map_err(setup)?;
        let cache_dir = match config.cache {
            CacheSetting::Default => cache::ModuleCache::default_dir(),
            CacheSetting::Dir(d) => Some(d),
            CacheSetting::Disabled => None,
        };
        let cache = cache_dir.map(|d| cache::ModuleCache::new(&engine, d));
        Ok(Runtime {
            engine,
            linker,
            cache,
        })
    }

    /// Loads a `.wasm` or `.wat` file, from the compiled-module cache when possible.
    pub fn load(&self, path: &Path) -> Result<Program, LoadError> {
        Program::load(&self.engine, self.cache.as_ref(), path)
    }

    /// Loads a module from memory; `name` becomes the default `argv[0]`.
    pub fn load_bytes(&self, bytes: &[u8], name: &str) -> Result<Program, LoadError> {
        Program::from_bytes(
            &self.engine,
            self.cache.as_ref(),
            bytes,
            Path::new(name),
            name.into(),
        )
    }

    /// Starts configuring a process that runs `program`.
    pub fn process(&self, program: &Program) -> ProcessBuilder<'_> {
        ProcessBuilder::new(self, program)
    }

    /// The cache directory in use, if caching is on.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache.as_ref().map(|c| c.dir())
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn linker(&self) -> &Linker<host::Host> {
        &self.linker
    }
}
