//! Loading modules: reading, text or binary, validation, the compiled-module cache.

use std::path::{Path, PathBuf};

use wasmtime::{Engine, Module};

use crate::cache::ModuleCache;

/// Why a module could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("module file `{0}` does not exist")]
    NotFound(PathBuf),
    #[error("cannot read module file `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "`{path}` is not a WebAssembly module (no `\\0asm` header, and not WAT text: {reason})"
    )]
    NotWasm { path: PathBuf, reason: String },
    #[error("`{path}` is not a valid WebAssembly module: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// A compiled module, ready to run as any number of processes.
#[derive(Clone)]
pub struct Program {
    module: Module,
    name: String,
}

impl Program {
    /// The module's file name (used as `argv[0]` by default).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn module(&self) -> &Module {
        &self.module
    }

    pub(crate) fn load(
        engine: &Engine,
        cache: Option<&ModuleCache>,
        path: &Path,
    ) -> Result<Program, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                LoadError::NotFound(path.to_owned())
            } else {
                LoadError::Read {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Program::from_bytes(engine, cache, &bytes, path, name)
    }

    pub(crate) fn from_bytes(
        engine: &Engine,
        cache: Option<&ModuleCache>,
        bytes: &[u8],
        path: &Path,
        name: String,
    ) -> Result<Program, LoadError> {
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
        let compile = || Module::from_binary(engine, &wasm);
        let module = match cache {
            Some(cache) => cache.get_or_compile(engine, &wasm, compile),
            None => compile(),
        }
        .map_err(invalid)?;
        Ok(Program { module, name })
    }
}

fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}
