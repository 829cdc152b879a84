//! Bad input to `wasmix run`: one clear line, non-zero exit, never a panic.

mod common;
use common::*;

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn missing_module() {
    run(&["run", "/definitely/not/here.wasm"]).clean_error("does not exist");
}

#[test]
fn not_a_wasm_file() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "notes.txt", b"this is just text\n");
    run(&["run", &p]).clean_error("is not a WebAssembly module");
    let p = write(d.path(), "bin.wasm", &[0x7f, b'E', b'L', b'F', 0, 1, 2, 3]);
    run(&["run", &p]).clean_error("is not a WebAssembly module");
}

#[test]
fn invalid_module() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "broken.wasm", b"\0asm\x01\0\0\0\x01\xff\xff\xff");
    run(&["run", &p]).clean_error("is not a valid WebAssembly module");
    let p = write(d.path(), "trunc.wasm", b"\0asm\x01\0");
    run(&["run", &p]).clean_error("is not a valid WebAssembly module");
}

/// Runs a WAT module and expects one clear error line containing `needle`.
fn wat_fails_with(wat: &str, needle: &str) {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "m.wat", wat.as_bytes());
    run(&["run", &p]).clean_error(needle);
}

#[test]
fn unknown_wasi_import() {
    wat_fails_with(
        r#"(module (import "wasi_snapshot_preview1" "no_such_call" (func)) (func (export "_start")))"#,
        "wasi_snapshot_preview1::no_such_call",
    );
}

#[test]
fn mistyped_wasi_import() {
    wat_fails_with(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i64))) (func (export "_start")))"#,
        "fd_write",
    );
}

#[test]
fn unknown_import_module() {
    wat_fails_with(
        r#"(module (import "env" "f" (func)) (func (export "_start")))"#,
        "env::f",
    );
}

#[test]
fn no_start_function() {
    wat_fails_with(r#"(module (func (export "f")))"#, "_start");
}

#[test]
fn dir_that_does_not_exist() {
    run(&[
        "run",
        "--dir",
        "/no/such/dir::/",
        path_str(&guest("hello.wasm")),
    ])
    .clean_error("/no/such/dir");
}

#[test]
fn dir_that_is_a_file() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "file", b"x");
    run(&["run", "--dir", &p, path_str(&guest("hello.wasm"))]).clean_error("not a directory");
}

#[test]
fn malformed_flags() {
    let hello = guest("hello.wasm");
    for (flag, value) in [("--env", "=x"), ("--dir", "::/"), ("--preload", "nothing")] {
        let r = run(&["run", flag, value, path_str(&hello)]);
        assert_eq!(r.code, 2, "clap usage error for {flag} {value}");
        assert!(r.stderr.contains(value), "{}", r.stderr);
        assert!(!r.stderr.contains("panicked"));
    }
    let r = run(&["run", "--bogus", path_str(&hello)]);
    assert_eq!(r.code, 2);
    let r = run(&["run"]);
    assert_eq!(r.code, 2, "MODULE is required");
}

#[test]
fn bad_listen_address() {
    run(&[
        "run",
        "--tcplisten",
        "not-an-address",
        path_str(&guest("hello.wasm")),
    ])
    .clean_error("--tcplisten");
}

/// A guest-chosen count must not set what a call costs the host: 2^20 iovecs for fd_write
/// and 2^20 poll_oneoff subscriptions (all in bounds) are EINVAL, as on Linux (IOV_MAX, the
/// poll limit); before, the first cost a 16 MiB host vector per call and the second ~90 MB.
#[test]
fn wild_iovec_and_subscription_counts_are_einval() {
    run(&["run", path_str(&guest("wild_counts.wat"))]).success();
}

/// The module given on the command line: a FIFO is refused at once (reading it waited for a
/// writer forever), and a file past `--max-module-size` is refused before it is read.
#[test]
fn a_fifo_or_an_oversized_module_is_refused_by_name() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("app.wasm");
    common::mkfifo(&fifo);
    run(&["run", path_str(&fifo)]).clean_error("is not a regular file");
    let big = d.path().join("big.wasm");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(3 << 20)
        .unwrap();
    run(&["run", "--max-module-size", "2", path_str(&big)])
        .clean_error("more than the 2097152-byte module limit");
}

/// WASI paths are UTF-8 strings; a guest passing other bytes gets EILSEQ, as under
/// wasmtime, and nothing is created on the host (the file "a\xffb" was made before).
#[test]
fn a_path_that_is_not_utf8_is_eilseq_and_creates_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mount = format!("{}::/d", path_str(d.path()));
    let r = run(&[
        "run",
        "--dir",
        &mount,
        path_str(&guest("bad_utf8_path.wat")),
    ]);
    assert_eq!(r.code, 25, "EILSEQ: {}", r.stderr);
    assert!(std::fs::read_dir(d.path()).unwrap().next().is_none());
}
