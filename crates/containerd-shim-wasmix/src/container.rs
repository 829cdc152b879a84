//! One container's run on wasmix. The shim library has already made the container: this
//! process runs inside it, its root is the container's rootfs (with the spec's mounts in
//! place), its working directory is the spec's, its stdio are containerd's FIFOs, and its
//! cgroup holds the spec's limits. So the guest gets `/` mounted as `/`, starts in the same
//! directory, inherits stdio, and may use the cgroup's memory limit as its memory budget.
//!
//! Settings the spec has no field for come from the container's environment (runwasi hands
//! a shim the process's args and env, not the spec's annotations):
//!
//! | variable | meaning |
//! |---|---|
//! | `WASMIX_JOURNAL=PATH` | journal the guest to PATH (a path inside the container, on a volume to outlive it); when PATH holds a snapshot, the container resumes from it instead of starting |
//! | `WASMIX_SNAPSHOT_ON=T,…` | the snapshot triggers (names as `wasmix run --snapshot-on`); default `sigterm`, so stopping the container snapshots it first |
//!
//! Snapshots and fork need a module instrumented with binaryen's asyncify. Outside a
//! container wasmix runs `wasm-opt` itself; inside one there is none, so such modules must
//! come instrumented, as WASIX toolchains build them (`wasm-opt --asyncify`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use wasmix_runtime::net::policy::NetPolicy;
use wasmix_runtime::{host_signals, CacheSetting, JournalConfig, Runtime, RuntimeConfig, Trigger};

/// The memory limit in the container's spec (`linux.resources.memory.limit`), read by the
/// shim process from its bundle before the container was made (runwasi hands the container
/// no spec); the container's process, forked from it, sees it here.
pub static SPEC_MEMORY_LIMIT: OnceLock<Option<u64>> = OnceLock::new();

/// The memory limit a spec (`config.json`'s text) sets, if any.
pub fn spec_memory_limit(config_json: &str) -> Option<u64> {
    let spec: serde_json::Value = serde_json::from_str(config_json).ok()?;
    let limit = spec["linux"]["resources"]["memory"]["limit"].as_i64()?;
    u64::try_from(limit).ok().filter(|l| *l > 0)
}

/// What a container asks of wasmix: plain data, read from what runwasi hands over.
#[derive(Debug)]
pub struct Request {
    module: Vec<u8>,
    /// The module's file name (its default `argv[0]`).
    name: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    journal: Option<Journal>,
}

#[derive(Debug, PartialEq, Eq)]
struct Journal {
    path: PathBuf,
    triggers: Vec<Trigger>,
}

impl Request {
    /// From the spec's process args (the first names the module, `PATH#func` in runwasi's
    /// convention: only `_start` is run), its env (`KEY=VALUE`) and the module's bytes.
    pub fn new(args: &[String], envs: &[String], module: Vec<u8>) -> Result<Request> {
        let first = args.first().map(String::as_str).unwrap_or_default();
        let (path, func) = first.split_once('#').unwrap_or((first, "_start"));
        if func != "_start" {
            bail!(
                "the entrypoint `{first}` names the export `{func}`; wasmix runs a module's \
                 `_start` (a WASI command)"
            );
        }
        let name = Path::new(path).file_name().map_or_else(
            || "module.wasm".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut argv = vec![path.to_owned()];
        argv.extend(args.iter().skip(1).cloned());
        let env: Vec<(String, String)> = envs
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let value = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let journal = match value("WASMIX_JOURNAL").filter(|p| !p.is_empty()) {
            None => None,
            Some(path) => {
                let names = value("WASMIX_SNAPSHOT_ON").unwrap_or_else(|| "sigterm".into());
                let triggers = names
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(|n| wasmix_runtime::trigger_named(n).map_err(anyhow::Error::msg))
                    .collect::<Result<Vec<_>>>()
                    .context("WASMIX_SNAPSHOT_ON")?;
                if triggers.contains(&Trigger::PeriodicInterval) {
                    bail!("WASMIX_SNAPSHOT_ON: `periodic` is not offered in containers yet");
                }
                Some(Journal {
                    path: PathBuf::from(path),
                    triggers,
                })
            }
        };
        Ok(Request {
            module,
            name,
            argv,
            env,
            journal,
        })
    }
}

/// Runs the request's module as the container's process; returns its exit code. A guest
/// ended by a signal at its default action ends this process by the same signal, so
/// containerd reports it as a native container's.
pub fn run(request: Request) -> Result<i32> {
    // Before the runtime starts a thread: they all inherit the block (see host_signals).
    host_signals::block_forwarded(true);
    let runtime = Runtime::new(RuntimeConfig {
        // Inside the container the compiled-module cache would land in its rootfs.
        cache: CacheSetting::Disabled,
        // The container's own network namespace is the boundary.
        network: NetPolicy::everything(),
        snapshots: request.journal.is_some(),
        max_total_memory: SPEC_MEMORY_LIMIT
            .get()
            .copied()
            .flatten()
            .or_else(cgroup_memory_limit)
            .map(guest_share),
        ..RuntimeConfig::default()
    })?;
    // runwasi logs only the outermost message of an error: it carries the cause.
    let program = runtime
        .load_bytes(&request.module, &request.name)
        .map_err(|e| anyhow::anyhow!("cannot load `{}`: {e}", request.name))?;
    let mut process = runtime.process(&program).argv(&request.argv);
    for (k, v) in &request.env {
        process = process.env(k, v);
    }
    process = process.mount(Path::new("/"), "/")?;
    // The spec's working directory: the WASIX working directory, and the `.` preopen that
    // preview1 libcs resolve relative paths against (as `wasmtime run --dir .` gives).
    if let Ok(cwd) = std::env::current_dir() {
        if cwd != Path::new("/") {
            process = process.mount(&cwd, ".")?;
        }
        process = process.cwd(cwd.to_string_lossy().into_owned());
    }
    match &request.journal {
        Some(j) => {
            let mut config = JournalConfig::new(&j.path);
            config.triggers.extend(j.triggers.iter().copied());
            process = process.journal(config);
        }
        None => {
            process = process.pass_through_default_signals(host_signals::default_pass_through());
        }
    }
    let forwarding = host_signals::Forwarding::take_over(false)?;
    let running = process.spawn()?;
    forwarding
        .start(&running)
        .context("cannot start the thread that hands signals to the guest")?;
    wasmix_runtime::prioritize_this_thread();
    let status = running.wait()?;
    Ok(status.code())
}

/// What of a cgroup memory limit the guest's memories may take: the runtime itself (its
/// code, the compiled module, thread stacks) needs some of it, else the kernel would end
/// the container before the guest's allocator is told no.
fn guest_share(limit: u64) -> u64 {
    const RUNTIME: u64 = 24 << 20;
    if limit > 2 * RUNTIME {
        limit - RUNTIME
    } else {
        limit / 2
    }
}

/// The memory limit of this process's cgroup (v2 `memory.max`, else v1
/// `memory.limit_in_bytes`), if it has one: the guest's memories share it as their budget,
/// so a guest over it sees `memory.grow` fail instead of the container being OOM-killed.
fn cgroup_memory_limit() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    cgroup_limit(&own, |p| std::fs::read_to_string(p).ok())
}

/// [`cgroup_memory_limit`] over `proc_cgroup` (the text of `/proc/self/cgroup`), reading
/// files with `read`.
fn cgroup_limit(proc_cgroup: &str, read: impl Fn(&Path) -> Option<String>) -> Option<u64> {
    let parse = |text: String| -> Option<u64> {
        let t = text.trim();
        // "max", or v1's "unlimited" (a page-rounded i64::MAX).
        t.parse::<u64>().ok().filter(|n| *n < (1 << 62))
    };
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        let file = if controllers.is_empty() {
            // cgroup v2: the container sees its own cgroup at the root (a cgroup
            // namespace) or at its path.
            [
                "sys/fs/cgroup/memory.max",
                &format!("sys/fs/cgroup/{path}/memory.max"),
            ]
            .into_iter()
            .find_map(|f| read(&Path::new("/").join(f)).and_then(&parse))
        } else if controllers.split(',').any(|c| c == "memory") {
            [
                "sys/fs/cgroup/memory/memory.limit_in_bytes",
                &format!("sys/fs/cgroup/memory/{path}/memory.limit_in_bytes"),
            ]
            .into_iter()
            .find_map(|f| read(&Path::new("/").join(f)).and_then(&parse))
        } else {
            None
        };
        if file.is_some() {
            return file;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn args_env_and_journal_settings_come_from_the_spec_process() {
        let r = Request::new(
            &strings(&["/app/hello.wasm", "a", "b c"]),
            &strings(&["PATH=/bin", "WASMIX_JOURNAL=/state/j", "EMPTY=", "junk"]),
            b"\0asm".to_vec(),
        )
        .unwrap();
        assert_eq!(r.name, "hello.wasm");
        assert_eq!(r.argv, strings(&["/app/hello.wasm", "a", "b c"]));
        assert!(r.env.contains(&("EMPTY".into(), String::new())));
        assert_eq!(r.env.len(), 3, "an entry without `=` is dropped");
        assert_eq!(
            r.journal,
            Some(Journal {
                path: "/state/j".into(),
                triggers: vec![Trigger::Sigterm]
            })
        );
        let r = Request::new(
            &strings(&["hello.wat#_start"]),
            &strings(&["WASMIX_JOURNAL=/j", "WASMIX_SNAPSHOT_ON=sigint, idle"]),
            Vec::new(),
        )
        .unwrap();
        assert_eq!(r.argv, strings(&["hello.wat"]));
        assert_eq!(
            r.journal.unwrap().triggers,
            vec![Trigger::Sigint, Trigger::Idle]
        );
    }

    #[test]
    fn unsupported_settings_are_named() {
        let e = Request::new(&strings(&["/m.wasm#serve"]), &[], Vec::new()).unwrap_err();
        assert!(e.to_string().contains("names the export `serve`"), "{e}");
        let e = Request::new(
            &strings(&["/m.wasm"]),
            &strings(&["WASMIX_JOURNAL=/j", "WASMIX_SNAPSHOT_ON=sometimes"]),
            Vec::new(),
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("`sometimes` is not a snapshot trigger"),
            "{e:#}"
        );
    }

    #[test]
    fn the_memory_limit_is_read_from_the_spec() {
        let spec = r#"{"linux": {"resources": {"memory": {"limit": 67108864}}}}"#;
        assert_eq!(spec_memory_limit(spec), Some(64 << 20));
        assert_eq!(
            spec_memory_limit(r#"{"linux": {"resources": {"memory": {"limit": -1}}}}"#),
            None
        );
        assert_eq!(spec_memory_limit(r#"{"process": {}}"#), None);
        assert_eq!(spec_memory_limit("not json"), None);
        assert_eq!(guest_share(64 << 20), 40 << 20);
        assert_eq!(guest_share(32 << 20), 16 << 20);
    }

    #[test]
    fn the_memory_limit_is_read_from_the_processes_cgroup() {
        let v1 = "12:memory:/default/box\n11:pids:/default/box\n";
        let files = |limit: &'static str| {
            move |p: &Path| {
                (p == Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
                    .then(|| limit.to_owned())
            }
        };
        assert_eq!(cgroup_limit(v1, files("67108864\n")), Some(64 << 20));
        assert_eq!(cgroup_limit(v1, files("9223372036854771712\n")), None);
        let v2 = "0::/\n";
        let read = |p: &Path| (p == Path::new("/sys/fs/cgroup/memory.max")).then(|| "max\n".into());
        assert_eq!(cgroup_limit(v2, read), None);
        let read =
            |p: &Path| (p == Path::new("/sys/fs/cgroup/memory.max")).then(|| "1048576\n".into());
        assert_eq!(cgroup_limit(v2, read), Some(1 << 20));
    }
}
