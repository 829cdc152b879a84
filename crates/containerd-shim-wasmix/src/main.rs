//! `containerd-shim-wasmix-v1`: containerd's runtime `io.containerd.wasmix.v1`. runwasi's
//! shim library speaks containerd's shim protocol and sets up the container (namespaces,
//! cgroups, the rootfs as `/`, mounts, stdio on containerd's FIFOs) with youki's
//! libcontainer; inside it, [`container::run`] runs the entrypoint module on wasmix. A
//! container whose entrypoint is a native executable runs as a plain Linux container.

mod container;

use containerd_shim_wasm::sandbox::context::RuntimeContext;
use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::shim::{version, Cli, Shim, Version};

struct WasmixShim;

#[derive(Default)]
struct WasmixSandbox;

impl Shim for WasmixShim {
    type Sandbox = WasmixSandbox;

    fn name() -> &'static str {
        "wasmix"
    }

    fn version() -> Version {
        version!()
    }
}

impl Sandbox for WasmixSandbox {
    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> anyhow::Result<i32> {
        let module = ctx.entrypoint().source.as_bytes()?;
        let request = container::Request::new(ctx.args(), ctx.envs(), module.into_owned())?;
        container::run(request)
    }
}

fn main() {
    // containerd starts the shim in the container's bundle; the container's process is
    // forked from this one, after this.
    let limit = std::fs::read_to_string("config.json")
        .ok()
        .and_then(|spec| container::spec_memory_limit(&spec));
    let _ = container::SPEC_MEMORY_LIMIT.set(limit);
    WasmixShim::run(None);
}
