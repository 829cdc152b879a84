//! Loading modules: reading, text or binary, validation, the compiled-module cache.

use std::path::{Path, PathBuf};

use wasmtime::{Engine, Module};

use crate::cache::ModuleCache;
use crate::rewrite;
use crate::stack::prepare::{self, Instrumentation};

/// Why a module could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// There is no file at the path.
    #[error("module file `{0}` does not exist")]
    NotFound(PathBuf),
    /// The file exists but could not be read.
    #[error("cannot read module file `{path}`: {source}")]
    Read {
        /// The module path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a regular file (a directory, a FIFO, a device).
    #[error("`{0}` is not a regular file")]
    NotAFile(PathBuf),
    /// Larger than the runtime loads.
    #[error(
        "`{path}` is {size} bytes, more than the {limit}-byte module limit (raise it with \
         --max-module-size)"
    )]
    TooLarge {
        /// The module path.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Neither the binary format nor WAT text.
    #[error(
        "`{path}` is not a WebAssembly module (no `\\0asm` header, and not WAT text: {reason})"
    )]
    NotWasm {
        /// The module path.
        path: PathBuf,
        /// What the WAT parser said.
        reason: String,
    },
    /// The module uses the legacy exception-handling encoding (`try`, `catch`, `delegate`,
    /// `rethrow`: what clang up to LLVM 19 emits for `-fwasm-exceptions` and `-mllvm
    /// -wasm-enable-sjlj`), which wasmix translates to the standard one at load (see
    /// `exnref`), and the translation failed.
    #[error(
        "`{path}` uses the legacy exception-handling instructions (try/catch/delegate), and \
         wasmix could not translate them to the standard ones: {reason}. Translate the module \
         with binaryen's `wasm-opt --translate-to-exnref` (a 2024 or later binaryen), or \
         rebuild it with `-mllvm -wasm-use-legacy-eh=false` (LLVM 20 or later)"
    )]
    LegacyExceptions {
        /// The module path.
        path: PathBuf,
        /// Why the translation failed.
        reason: String,
    },
    /// The module forks or setjmps but is not asyncify-instrumented, and instrumenting it
    /// failed (no `wasm-opt`, most likely).
    #[error("`{path}`: {reason}")]
    NeedsAsyncify {
        /// The module path.
        path: PathBuf,
        /// What is missing and how to prepare the module.
        reason: String,
    },
    /// Wasm, but it does not validate or compile.
    #[error("`{path}` is not a valid WebAssembly module: {reason}")]
    Invalid {
        /// The module path.
        path: PathBuf,
        /// What the validator said.
        reason: String,
    },
}

/// Whether `bytes` (a module, binary or text) is a plain WASI program: it imports only
/// from `wasi_snapshot_preview1`, `wasi_unstable` or the `linked` modules (preloads, which
/// must be plain themselves) and has no shared memory. Such a program cannot register a
/// signal handler, start a thread or a child, or be told apart from a native one by how a
/// signal ends it: its compute loops need no interruption checks when nothing else asks
/// for them (a journal, a timeout, a CPU limit). Anything else, or bytes that do not parse,
/// is not plain.
pub fn is_plain_wasi(bytes: &[u8], linked: &[&str]) -> bool {
    let wasm = if bytes.starts_with(b"\0asm") {
        std::borrow::Cow::Borrowed(bytes)
    } else {
        match wat::parse_bytes(bytes) {
            Ok(w) => std::borrow::Cow::Owned(w.into_owned()),
            Err(_) => return false,
        }
    };
    let wasi =
        |m: &str| matches!(m, "wasi_snapshot_preview1" | "wasi_unstable") || linked.contains(&m);
    for payload in wasmparser::Parser::new(0).parse_all(&wasm) {
        match payload {
            Ok(wasmparser::Payload::ImportSection(imports)) => {
                for import in imports.into_imports() {
                    let Ok(import) = import else { return false };
                    if !wasi(import.module) {
                        return false;
                    }
                    if let wasmparser::TypeRef::Memory(m) = import.ty {
                        if m.shared {
                            return false;
                        }
                    }
                }
            }
            Ok(wasmparser::Payload::MemorySection(memories)) => {
                for m in memories {
                    if m.map_or(true, |m| m.shared) {
                        return false;
                    }
                }
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Reads a module file: a regular file of at most `limit` bytes, opened without blocking (a
/// FIFO at the path must not hang the runtime).
fn read_module(path: &Path, limit: u64) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            LoadError::NotFound(path.to_owned())
        } else {
            LoadError::Read {
                path: path.to_owned(),
                source,
            }
        }
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(failed)?;
    let md = file.metadata().map_err(failed)?;
    if !md.is_file() {
        return Err(LoadError::NotAFile(path.to_owned()));
    }
    let too_large = |size| LoadError::TooLarge {
        path: path.to_owned(),
        size,
        limit,
    };
    if md.len() > limit {
        return Err(too_large(md.len()));
    }
    let mut bytes = Vec::with_capacity(md.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// How a runtime prepares the modules it loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Build {
    /// What asyncify instruments, for stack captures.
    pub instrumentation: Instrumentation,
    /// Whether compiled code carries wasmix's interruption checks (`checks`) — else it
    /// has the engine's epoch checks, or none (see `RuntimeConfig::interrupt_compute`).
    pub checks: bool,
}

/// A compiled module, ready to run as any number of processes.
#[derive(Clone)]
pub struct Program {
    module: Module,
    name: String,
    /// Whether the module is asyncify-instrumented (its threads' stacks can be captured).
    captures_stacks: bool,
    /// Whether every blocking call and loop is a capture point (snapshots).
    captures_everywhere: bool,
    /// Capture points its toolchain's asyncify left uncovered (`prepare::asyncify_gaps`):
    /// such a program cannot be snapshotted.
    snapshot_gaps: Vec<String>,
    /// Whether its signal entry point dispatches to per-signal handlers with `SIG_DFL` and
    /// `SIG_IGN` made harmless (see `rewrite`): it can take every signal.
    guards_signals: bool,
    /// BLAKE3 of the module as loaded (before any instrumentation): what a journal is of.
    hash: [u8; 32],
}

impl Program {
    /// The module's file name (used as `argv[0]` by default).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn module(&self) -> &Module {
        &self.module
    }

    /// Whether its threads' stacks can be captured (fork, setjmp, checkpoints).
    pub(crate) fn captures_stacks(&self) -> bool {
        self.captures_stacks
    }

    /// The same compiled module under another name.
    pub(crate) fn renamed(&self, name: &str) -> Program {
        Program {
            module: self.module.clone(),
            name: name.to_owned(),
            captures_stacks: self.captures_stacks,
            captures_everywhere: self.captures_everywhere,
            snapshot_gaps: self.snapshot_gaps.clone(),
            guards_signals: self.guards_signals,
            hash: self.hash,
        }
    }

    /// Whether its `__wasm_signal` is a libc's dispatcher to per-signal handlers, guarded
    /// so that a signal it leaves at `SIG_DFL` or `SIG_IGN` does nothing: signals whose
    /// default is to be ignored (SIGCHLD, SIGURG, SIGWINCH) can be delivered to it.
    pub(crate) fn guards_signals(&self) -> bool {
        self.guards_signals
    }

    /// Whether a snapshot can capture its threads anywhere they block or loop (it was
    /// instrumented for snapshots, or its toolchain instrumented every import).
    pub(crate) fn captures_everywhere(&self) -> bool {
        self.captures_everywhere
    }

    /// Why it cannot be snapshotted, when it cannot: named after the program.
    pub(crate) fn not_capturable(&self) -> Option<String> {
        if self.captures_everywhere {
            None
        } else if self.snapshot_gaps.is_empty() {
            Some(format!(
                "`{}` was not instrumented for snapshots (it is when the runtime is made with \
                 snapshots on, as `wasmix run --journal` does)",
                self.name
            ))
        } else {
            Some(format!(
                "`{}` came asyncify-instrumented by its toolchain, but not at {}, where a \
                 snapshot must be able to capture its threads: build it without asyncify \
                 (wasmix instruments it itself) or list every import for asyncify",
                self.name,
                self.snapshot_gaps.join(", ")
            ))
        }
    }

    /// Whether it was built for WASIX (imports from a `wasix_*` module): such programs get
    /// the view of the world Wasmer gave them where it differs from WASI's.
    pub(crate) fn speaks_wasix(&self) -> bool {
        self.module
            .imports()
            .any(|i| i.module().starts_with("wasix_"))
    }

    /// BLAKE3 of the module's bytes as loaded (a journal names the module it is of so).
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    pub(crate) fn load(
        engine: &Engine,
        cache: Option<&ModuleCache>,
        path: &Path,
        build: Build,
        limit: u64,
    ) -> Result<Program, LoadError> {
        let bytes = read_module(path, limit)?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Program::from_bytes(engine, cache, &bytes, path, name, build)
    }

    pub(crate) fn from_bytes(
        engine: &Engine,
        cache: Option<&ModuleCache>,
        bytes: &[u8],
        path: &Path,
        name: String,
        build: Build,
    ) -> Result<Program, LoadError> {
        let how = build.instrumentation;
        let wasm = if bytes.starts_with(b"\0asm") {
            std::borrow::Cow::Borrowed(bytes)
        } else {
            let parsed = wat::parse_bytes(bytes).map_err(|e| LoadError::NotWasm {
                path: path.to_owned(),
                reason: one_line(&e.to_string()),
            })?;
            std::borrow::Cow::Owned(parsed.into_owned())
        };
        let invalid = |e: wasmtime::Error| LoadError::Invalid {
            path: path.to_owned(),
            reason: one_line(&format!("{e:#}")),
        };
        let compile = || {
            let instrumented = match how {
                Instrumentation::Captures => {
                    let calls = prepare::missing_asyncify(&wasm).map_err(wasmtime::Error::msg)?;
                    let asyncified = if calls.is_empty() {
                        std::borrow::Cow::Borrowed(&*wasm)
                    } else {
                        std::borrow::Cow::Owned(prepare::asyncify(&wasm, &calls, how)?)
                    };
                    rewrite::instrument(&asyncified)
                        .map_err(wasmtime::Error::msg)?
                        .into_owned()
                }
                Instrumentation::Snapshots => for_snapshots(&wasm)?,
            };
            let started = std::time::Instant::now();
            let standard = crate::exnref::translate(&instrumented)?;
            if let std::borrow::Cow::Owned(_) = standard {
                tracing::debug!(
                    "{}: legacy exception instructions translated in {:?}",
                    path.display(),
                    started.elapsed()
                );
            }
            if build.checks {
                let checked = crate::checks::insert(&standard).map_err(wasmtime::Error::msg)?;
                return Module::from_binary(engine, &checked);
            }
            Module::from_binary(engine, &standard)
        };
        let variant = match (how, build.checks) {
            (Instrumentation::Captures, false) => "",
            (Instrumentation::Captures, true) => "checks",
            (Instrumentation::Snapshots, _) => "snapshots",
        };
        let module = match cache {
            Some(cache) => cache.get_or_compile(engine, &wasm, variant, compile),
            None => compile(),
        }
        .map_err(
            |e| match e.downcast::<crate::stack::prepare::NeedsAsyncify>() {
                Ok(needs) => LoadError::NeedsAsyncify {
                    path: path.to_owned(),
                    reason: needs.to_string(),
                },
                Err(e) => match e.downcast::<crate::exnref::Untranslatable>() {
                    Ok(u) => LoadError::LegacyExceptions {
                        path: path.to_owned(),
                        reason: u.0,
                    },
                    Err(e) => invalid(e),
                },
            },
        )?;
        let captures_stacks = module
            .exports()
            .any(|e| e.name() == crate::rewrite::ASYNCIFY_MARK);
        // Checked on every load rather than cached: only modules that come instrumented pay,
        // one pass over their code.
        let snapshot_gaps =
            if how == Instrumentation::Snapshots && prepare::has_asyncify(&wasm).unwrap_or(false) {
                prepare::asyncify_gaps(&wasm)
                    .unwrap_or_else(|reason| vec![format!("every capture point ({reason})")])
            } else {
                Vec::new()
            };
        let captures_everywhere =
            captures_stacks && how == Instrumentation::Snapshots && snapshot_gaps.is_empty();
        let guards_signals = module
            .exports()
            .any(|e| e.name() == crate::rewrite::SIGNAL_MARK);
        if captures_stacks {
            crate::stack::prepare::check_exports(&module).map_err(|reason| LoadError::Invalid {
                path: path.to_owned(),
                reason,
            })?;
        }
        Ok(Program {
            module,
            name,
            captures_stacks,
            captures_everywhere,
            snapshot_gaps,
            guards_signals,
            hash: *blake3::hash(&wasm).as_bytes(),
        })
    }
}

/// `wasm` instrumented for snapshots: raw atomic waits become host calls and loops get safe
/// points, then asyncify makes every blocking call and safe point a capture point, then the
/// mutable globals are exported. A module its toolchain already instrumented is taken as it
/// is (WASIX toolchains instrument every import).
fn for_snapshots(wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
    let msg = wasmtime::Error::msg;
    let has_asyncify = prepare::has_asyncify(wasm).map_err(msg)?;
    let asyncified = if has_asyncify {
        wasm.to_vec()
    } else {
        let atomics = rewrite::instrument(wasm).map_err(msg)?;
        let safe = rewrite::safepoints(&atomics).map_err(msg)?;
        prepare::asyncify(&safe, &["snapshots".to_owned()], Instrumentation::Snapshots)?
    };
    Ok(rewrite::instrument(&asyncified).map_err(msg)?.into_owned())
}

fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::is_plain_wasi;

    const PREVIEW1: &str = r#"(module
        (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
        (memory (export "memory") 1))"#;

    #[test]
    fn preview1_and_preview0_imports_are_plain() {
        assert!(is_plain_wasi(PREVIEW1.as_bytes(), &[]));
        let preview0 = r#"(module (import "wasi_unstable" "proc_exit" (func (param i32))))"#;
        assert!(is_plain_wasi(preview0.as_bytes(), &[]));
    }

    #[test]
    fn wasix_imports_and_shared_memory_are_not() {
        let wasix =
            r#"(module (import "wasix_32v1" "proc_fork" (func (param i32 i32) (result i32))))"#;
        assert!(!is_plain_wasi(wasix.as_bytes(), &[]));
        let shared = r#"(module (memory 1 1 shared))"#;
        assert!(!is_plain_wasi(shared.as_bytes(), &[]));
        let imported = r#"(module (import "env" "memory" (memory 1 1 shared)))"#;
        assert!(!is_plain_wasi(imported.as_bytes(), &["env"]));
        assert!(!is_plain_wasi(b"not a module", &[]));
    }

    /// A benchmark harness's stubs (Sightglass's `bench.start`/`bench.end`), preloaded: the
    /// program stays plain when the module it imports from is linked; not otherwise.
    #[test]
    fn imports_from_linked_modules_are_plain() {
        let bench = r#"(module
            (import "bench" "start" (func))
            (import "bench" "end" (func))
            (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))))"#;
        assert!(is_plain_wasi(bench.as_bytes(), &["bench"]));
        assert!(!is_plain_wasi(bench.as_bytes(), &[]));
        assert!(!is_plain_wasi(bench.as_bytes(), &["other"]));
    }
}
