//! Embedding wasmix: run a module with arguments, an environment variable and a mounted
//! directory, capturing nothing (stdio is inherited).
//!
//! `cargo run -p wasmix-runtime --example embed -- guests/out/args_env.wasm hello`

use wasmix_runtime::{Runtime, RuntimeConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let module = args.next().ok_or("usage: embed MODULE [ARGS...]")?;
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let program = runtime.load(module.as_ref())?;
    let mut process = runtime.process(&program).env("EMBEDDED", "yes");
    for arg in args {
        process = process.arg(arg);
    }
    let status = process
        .mount(std::env::temp_dir().as_ref(), "/tmp")?
        .run()?;
    println!("guest finished: {status:?}");
    std::process::exit(status.code());
}
