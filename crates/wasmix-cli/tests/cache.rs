//! The compiled-module cache through the CLI: reuse, corruption, concurrency.

mod common;
use common::*;

fn entries(dir: &std::path::Path, ext: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == ext))
                .collect()
        })
        .unwrap_or_default()
}

fn modified(path: &std::path::Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn second_run_uses_the_cache_and_corruption_is_rebuilt() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_str().unwrap();
    let hello = guest("hello.wasm");
    run(&["run", "--cache-dir", dir, path_str(&hello)]).success();
    let artifacts = entries(cache.path(), "cwasm");
    assert_eq!(artifacts.len(), 1);
    let before = modified(&artifacts[0]);
    run(&["run", "--cache-dir", dir, path_str(&hello)]).success();
    let after = modified(&artifacts[0]);
    assert_eq!(before, after, "a warm run does not rewrite the entry");

    let mut bytes = std::fs::read(&artifacts[0]).unwrap();
    let n = bytes.len();
    bytes[n / 3] ^= 0x55;
    std::fs::write(&artifacts[0], &bytes).unwrap();
    let r = run(&["run", "--cache-dir", dir, path_str(&hello)]);
    r.success();
    assert_eq!(r.stdout, "hello from wasmix\n");
    assert_ne!(
        std::fs::read(&artifacts[0]).unwrap(),
        bytes,
        "corrupt entry rebuilt"
    );

    std::fs::write(&artifacts[0], b"garbage").unwrap();
    run(&["run", "--cache-dir", dir, path_str(&hello)]).success();
}

/// A module in the legacy exception encoding is translated once: the cache keeps the
/// compilation of the translation, and a warm run takes it.
#[test]
fn a_translated_module_is_cached() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_str().unwrap();
    let g = guest("cxx_exceptions.wasm");
    run(&["run", "--cache-dir", dir, path_str(&g)]).success();
    let artifacts = entries(cache.path(), "cwasm");
    assert_eq!(artifacts.len(), 1);
    let before = std::fs::metadata(&artifacts[0])
        .unwrap()
        .modified()
        .unwrap();
    let r = run(&["run", "--cache-dir", dir, path_str(&g)]);
    r.success();
    assert!(r.stdout.contains("rethrown 107"), "{}", r.stdout);
    let after = std::fs::metadata(&artifacts[0])
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        before, after,
        "a warm run does not translate or compile again"
    );
}

#[test]
fn env_var_sets_the_location_and_no_cache_disables_it() {
    let cache = tempfile::tempdir().unwrap();
    let out = wasmix()
        .env("WASMIX_CACHE_DIR", cache.path())
        .args(["run", path_str(&guest("hello.wasm"))])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(entries(cache.path(), "cwasm").len(), 1);
    let other = tempfile::tempdir().unwrap();
    let out = wasmix()
        .env("WASMIX_CACHE_DIR", other.path())
        .args(["run", "--no-cache", path_str(&guest("hello.wasm"))])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(entries(other.path(), "cwasm").is_empty());
}

#[test]
fn concurrent_first_runs_agree() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_str().unwrap().to_owned();
    let g = guest("args_env.wasm");
    let children: Vec<_> = (0..6)
        .map(|i| {
            wasmix()
                .args(["run", "--cache-dir", &dir, path_str(&g), &i.to_string()])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("arg={i}\n")));
    }
    assert_eq!(entries(cache.path(), "cwasm").len(), 1);
    run(&["run", "--cache-dir", &dir, path_str(&g)]).success();
}
