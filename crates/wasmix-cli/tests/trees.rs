//! Process trees through the CLI, run by a shell guest (`sh.wasm`).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{guest, path_str, wasmix};

/// The guest directory mounted at /bin, and a gate directory at /gate.
fn mounts(gate: &Path) -> Vec<String> {
    let bin = guest("child.wasm").parent().unwrap().to_owned();
    vec![
        "--dir".into(),
        format!("{}::/bin", path_str(&bin)),
        "--dir".into(),
        format!("{}::/gate", path_str(gate)),
    ]
}

fn sh(script: &str, gate: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["run".to_owned()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(mounts(gate));
    args.push(path_str(&guest("sh.wasm")).to_owned());
    args.push(script.to_owned());
    args
}

/// A child killed right after its spawn, before its thread ran, still ends (it once spun
/// forever in its first wait: the kill had found no notifier to raise).
#[test]
fn a_child_killed_right_after_its_spawn_ends() {
    let gate = tempfile::tempdir().unwrap();
    for _ in 0..5 {
        let args = sh("child sleep 100000 &; kill %1 9; wait", gate.path(), &[]);
        let mut child = wasmix()
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("the killed child never ended");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let out = child.wait_with_output().unwrap();
        assert!(status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "job 1: signal 9\n");
    }
}
