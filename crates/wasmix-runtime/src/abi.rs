//! The import modules wasmix provides and the generations of the WASI ABI they speak: what the
//! load-time checks, the rewrites and the host calls agree on.

/// Which generation of the WASI ABI an import module speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Abi {
    Preview0,
    Preview1,
    /// `wasix_32v1`: preview1's layouts plus the WASIX calls.
    Wasix,
}

impl Abi {
    pub fn module(self) -> &'static str {
        match self {
            Abi::Preview0 => "wasi_unstable",
            Abi::Preview1 => "wasi_snapshot_preview1",
            Abi::Wasix => "wasix_32v1",
        }
    }
}

/// Import modules wasmix provides in full; an unknown name in one of them is an error at load.
pub(crate) const MODULES: [Abi; 3] = [Abi::Preview1, Abi::Preview0, Abi::Wasix];

/// The wasi-threads proposal's module (`thread-spawn`).
pub(crate) const WASI_THREADS: &str = "wasi";

/// The module of the host calls that stand in for rewritten atomic instructions.
pub(crate) const INTERNAL: &str = "wasmix";

/// Whether `module` is one wasmix provides (for error messages).
pub(crate) fn is_provided_module(module: &str) -> bool {
    MODULES.iter().any(|abi| abi.module() == module) || module == WASI_THREADS
}

/// The names a host call may be registered under for an import of `name` with `params`
/// parameters: the current form first, then the older generation of the same name.
pub(crate) fn candidates(name: &str, params: usize) -> [String; 2] {
    [name.to_owned(), older(name, params)]
}

/// The registration name of the generation of `name` that takes `params` parameters.
pub(crate) fn older(name: &str, params: usize) -> String {
    format!("{name}@{params}")
}
