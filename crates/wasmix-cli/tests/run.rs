//! `wasmix run` end to end: real guest programs through the CLI.

mod common;
use common::*;

#[test]
fn hello_world() {
    let r = run(&["run", path_str(&guest("hello.wasm"))]);
    r.success();
    assert_eq!(r.stdout, "hello from wasmix\n");
}

#[test]
fn exit_code_is_the_guests() {
    let g = guest("args_env.wasm");
    for code in ["0", "7", "255"] {
        let r = run(&["run", "--env", &format!("EXIT_CODE={code}"), path_str(&g)]);
        assert_eq!(r.code.to_string(), code);
    }
}

#[test]
fn args_and_only_the_given_environment() {
    std::env::set_var("WASMIX_TEST_INHERITED", "from-host");
    let g = guest("args_env.wasm");
    let r = run(&[
        "run",
        "--env",
        "A=1",
        "--env",
        "B=x=y",
        "--env",
        "WASMIX_TEST_INHERITED",
        "--env",
        "WASMIX_TEST_NOT_SET",
        path_str(&g),
        "plain",
        "-v",
        "--flag",
        "--",
        "two words",
    ]);
    r.success();
    let expected = "arg=args_env.wasm\narg=plain\narg=-v\narg=--flag\narg=--\narg=two words\n\
                    env=A=1\nenv=B=x=y\nenv=WASMIX_TEST_INHERITED=from-host\n";
    assert_eq!(r.stdout, expected);
}

#[test]
fn everything_after_the_module_is_the_guests_help_flags_too() {
    let g = guest("args_env.wasm");
    let r = run(&[
        "run",
        path_str(&g),
        "--help",
        "-h",
        "--dir",
        "x",
        "--version",
    ]);
    r.success();
    assert_eq!(
        r.stdout,
        "arg=args_env.wasm\narg=--help\narg=-h\narg=--dir\narg=x\narg=--version\n"
    );
    // Before the module, `--help` is wasmix's.
    let help = run(&["run", "--help"]);
    help.success();
    assert!(help.stdout.contains("Usage: wasmix run"), "{}", help.stdout);
}

#[test]
fn double_dash_ends_wasmix_options() {
    let g = guest("args_env.wasm");
    let r = run(&["run", "--", path_str(&g), "--env", "X=1"]);
    r.success();
    assert!(
        r.stdout.contains("arg=--env\narg=X=1\n") && !r.stdout.contains("env=X"),
        "{}",
        r.stdout
    );
}

#[test]
fn file_system_conformance() {
    let scratch = tempfile::tempdir().unwrap();
    let mount = format!("{}::/", scratch.path().display());
    let r = run(&[
        "run",
        "--dir",
        &mount,
        path_str(&guest("fs_conformance.wasm")),
    ]);
    r.success();
    for name in [
        "preopen_rights",
        "rights_shrink",
        "truncation_rights",
        "dir_fd_ops",
        "interesting_paths",
        "readdir",
        "readdir_many",
        "nofollow",
        "links",
        "rename",
        "rename_trailing_slashes",
        "append_flag",
        "times",
        "stdio_renumber",
        "renumber",
        "pread_pwrite",
        "seek_tell",
        "truncate_allocate_advise",
        "symlinks",
        "symlink_trailing_slashes",
        "remove_and_unlink",
        "open_flags",
        "isatty",
        "close_preopen",
    ] {
        assert!(
            r.stdout.contains(&format!("ok {name}\n")),
            "{name} did not pass:\n{}",
            r.stdout
        );
    }
    assert_eq!(
        std::fs::read_dir(scratch.path()).unwrap().count(),
        0,
        "guest cleaned up"
    );
}

#[test]
fn libc_file_behaviour() {
    let (r, _scratch) = run_in_scratch("libc_files.wasm", &[]);
    r.success();
    assert_eq!(r.stdout, "libc ok\n");
}

#[test]
fn preview0_layouts() {
    let (r, _scratch) = run_in_scratch("preview0.wat", &[]);
    r.success();
    assert_eq!(r.stdout, "preview0 ok\n");
}

#[test]
fn hostile_pointers_get_efault() {
    let (r, _scratch) = run_in_scratch("hostile.wat", &[]);
    r.success();
    assert_eq!(r.stdout, "hostile ok\n");
}

#[test]
fn clocks_random_yield() {
    let r = run(&["run", path_str(&guest("clocks.wasm"))]);
    r.success();
    assert_eq!(r.stdout, "clocks ok\n");
}

#[test]
fn poll_oneoff_clocks_and_streams() {
    // A mount, so that /dev is there too.
    let scratch = tempfile::tempdir().unwrap();
    let mount = format!("{}::/tmp", path_str(scratch.path()));
    let r = run_with_stdin(
        &["run", "--dir", &mount, path_str(&guest("poll.wasm"))],
        b"x",
    );
    r.success();
    assert_eq!(r.stdout, "poll ok\n");
}

#[test]
fn stdin_to_stdout_through_pipes() {
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut child = wasmix()
        .args(["run", path_str(&guest("cat.wasm"))])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let feed = data.clone();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut input, &feed).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    assert!(out.stdout == data, "cat corrupted the stream");
}

#[test]
fn dev_nodes() {
    let scratch = tempfile::tempdir().unwrap();
    let g = guest("dev_nodes.wasm");
    // A preopen of its own after the mounts, or inside a mount at `/`.
    for guest_path in ["/data", "/"] {
        let mount = format!("{}::{guest_path}", path_str(scratch.path()));
        let r = run(&["run", "--dir", &mount, path_str(&g)]);
        r.success();
        assert_eq!(r.stdout, "dev ok\n", "mounted at {guest_path}");
        let r = run(&["run", "--no-dev", "--dir", &mount, path_str(&g)]);
        assert_ne!(r.code, 0, "--no-dev removes /dev");
    }
    assert!(
        std::fs::read_dir(scratch.path()).unwrap().next().is_none(),
        "nothing of /dev reached the host directory"
    );
}

/// `> /dev/null` in a shell, fopen("/dev/null", "w"): O_CREAT|O_TRUNC on an existing node
/// opens it, as on Linux (it failed with ENOTCAPABLE: the /dev preopen lacked the rights).
#[test]
fn dev_null_opens_with_create_and_truncate() {
    let scratch = tempfile::tempdir().unwrap();
    let mount = format!("{}::/data", path_str(scratch.path()));
    run(&[
        "run",
        "--dir",
        &mount,
        path_str(&guest("devnull_trunc.wat")),
    ])
    .success();
}

/// With no mount there is no /dev either: descriptor 3 is free, as under wasmtime (the WASI
/// testsuite's `sock_shutdown-invalid_fd` expects EBADF on 3). With mounts, 3 is the first.
#[test]
fn descriptor_3_is_the_first_mount_or_free() {
    let scratch = tempfile::tempdir().unwrap();
    let g = guest("fd3.wat");
    let r = run(&["run", path_str(&g)]);
    r.success();
    assert_eq!(r.stdout, "3:8 \n", "EBADF: nothing at 3");
    for guest_path in ["/data", "/"] {
        let mount = format!("{}::{guest_path}", path_str(scratch.path()));
        let r = run(&["run", "--dir", &mount, path_str(&g)]);
        r.success();
        assert_eq!(r.stdout, format!("3:0 {guest_path}\n"));
    }
}

#[test]
fn proc_raise_default_actions() {
    let g = guest("raise.wasm");
    let term = run(&["run", path_str(&g), "15"]);
    assert_eq!(term.code, 128 + 15, "SIGTERM terminates: {}", term.stderr);
    assert!(term.stdout.is_empty());
    let ignored = run(&["run", path_str(&g), "17"]);
    ignored.success();
    assert!(ignored.stdout.starts_with("survived"));
    let bad = run(&["run", path_str(&g), "99"]);
    bad.success();
    assert!(
        bad.stdout.contains("survived 28"),
        "invalid signal is EINVAL: {}",
        bad.stdout
    );
}

#[test]
fn trap_prints_backtrace_with_names() {
    let r = run(&["run", path_str(&guest("trap.wasm")), "a", "b"]);
    assert_eq!(r.code, 134, "a trap exits like wasmtime's");
    assert!(r.stderr.contains("wasm backtrace"), "{}", r.stderr);
    assert!(
        r.stderr.contains("deliberately_unreachable"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("unreachable"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"));
}

#[test]
fn wat_text_modules_run() {
    let dir = tempfile::tempdir().unwrap();
    let wat = dir.path().join("exit.wat");
    std::fs::write(
        &wat,
        r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func $e (param i32)))
             (memory (export "memory") 1)
             (func (export "_start") (call $e (i32.const 42))))"#,
    )
    .unwrap();
    assert_eq!(run(&["run", path_str(&wat)]).code, 42);
}

#[test]
fn version_flag() {
    let r = run(&["--version"]);
    r.success();
    assert!(r.stdout.starts_with("wasmix "), "{}", r.stdout);
}

/// A program that exits with `helper.add(20, 3)`: 23 once a helper is preloaded.
const ADDS_WITH_HELPER: &str = r#"(module
    (import "helper" "add" (func $add (param i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "proc_exit" (func $e (param i32)))
    (memory (export "memory") 1)
    (func (export "_start") (call $e (call $add (i32.const 20) (i32.const 3)))))"#;

/// A helper with no imports at all.
const PLAIN_HELPER: &str = r#"(module (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))"#;

#[test]
fn preload_links_a_helper_module() {
    let dir = tempfile::tempdir().unwrap();
    let helper = dir.path().join("helper.wat");
    std::fs::write(&helper, PLAIN_HELPER).unwrap();
    let main = dir.path().join("main.wat");
    std::fs::write(&main, ADDS_WITH_HELPER).unwrap();
    let r = run(&[
        "run",
        "--preload",
        &format!("helper={}", helper.display()),
        path_str(&main),
    ]);
    assert_eq!(r.code, 23, "{}", r.stderr);
    let missing = run(&["run", path_str(&main)]);
    missing.clean_error("--preload helper=");
}

/// Whether `wasmix run` turned compute interruption on for `main` with `helper.wat` (its
/// text given) preloaded as `helper`; the run must end with code 23.
fn checked_with_preload(dir: &std::path::Path, helper: &str, main: &std::path::Path) -> bool {
    let path = dir.join("helper.wat");
    std::fs::write(&path, helper).unwrap();
    let out = common::wasmix()
        .env("WASMIX_LOG", "wasmix=debug")
        .args(["run", "--preload", &format!("helper={}", path.display())])
        .arg(main)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(23), "{log}");
    assert!(log.contains("compute interruption o"), "{log}");
    log.contains("compute interruption on")
}

/// A benchmark harness links stubs (Sightglass's `bench.start`/`bench.end`) with
/// `--preload`: a plain program with plain preloads keeps running unchecked, at the engine's
/// full speed (before, any preload turned the checks on: 1.1-1.7x on compute). A preload
/// that imports WASIX, which could start threads or register handlers, still turns them on.
#[test]
fn plain_preloads_keep_a_program_unchecked() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("main.wat");
    std::fs::write(&main, ADDS_WITH_HELPER).unwrap();
    assert!(!checked_with_preload(dir.path(), PLAIN_HELPER, &main));
    let wasix = r#"(module
        (import "wasix_32v1" "thread_id" (func (param i32) (result i32)))
        (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))"#;
    assert!(checked_with_preload(dir.path(), wasix, &main));
}

#[test]
fn mounts_at_root_and_by_name() {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("note.txt"), "inside\n").unwrap();
    let g = guest("readfile.wasm");
    let at_root = format!("{}::/", host.path().display());
    let r = run(&["run", "--dir", &at_root, path_str(&g), "/note.txt"]);
    r.success();
    assert_eq!(r.stdout, "inside\n");
    let named = format!("{}::/data", host.path().display());
    let r = run(&["run", "--dir", &named, path_str(&g), "/data/note.txt"]);
    r.success();
    assert_eq!(r.stdout, "inside\n");
}

#[test]
fn symlinks_cannot_leave_a_mount() {
    let host = tempfile::tempdir().unwrap();
    let mount = host.path().join("mount");
    std::fs::create_dir(&mount).unwrap();
    std::fs::write(host.path().join("secret.txt"), "secret\n").unwrap();
    std::fs::write(mount.join("ok.txt"), "fine\n").unwrap();
    let secret = host.path().join("secret.txt");
    std::os::unix::fs::symlink(&secret, mount.join("abs")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", mount.join("rel")).unwrap();
    std::os::unix::fs::symlink("rel", mount.join("chain")).unwrap();
    std::os::unix::fs::symlink("sub/../../secret.txt", mount.join("deep")).unwrap();
    std::fs::create_dir(mount.join("sub")).unwrap();
    std::os::unix::fs::symlink("../ok.txt", mount.join("sub/up")).unwrap();
    let g = guest("readfile.wasm");
    let arg = format!("{}::/", mount.display());
    for escape in [
        "/abs",
        "/rel",
        "/chain",
        "/deep",
        "/../secret.txt",
        "/sub/../../secret.txt",
    ] {
        let r = run(&["run", "--dir", &arg, path_str(&g), escape]);
        assert_eq!(r.code, 1, "{escape}: {}", r.stdout);
        assert!(
            r.stdout.contains("NOTCAPABLE") || r.stdout.contains("PERM"),
            "{escape} must be refused, got {}",
            r.stdout
        );
        assert!(!r.stdout.contains("secret"));
    }
    let r = run(&["run", "--dir", &arg, path_str(&g), "/sub/up"]);
    r.success();
    assert_eq!(
        r.stdout, "fine\n",
        "a relative symlink that stays inside works"
    );
}

#[test]
fn preopened_tcp_listener() {
    use std::io::{Read, Write};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = wasmix()
        .args([
            "run",
            "--tcplisten",
            &addr,
            path_str(&guest("sock_echo.wasm")),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The listener exists before the guest starts; connecting may race only with wasmix's own
    // start-up, so retry for a bounded time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut conn = loop {
        match std::net::TcpStream::connect(&addr) {
            Ok(c) => break c,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::yield_now();
            }
            Err(e) => panic!("cannot connect: {e}"),
        }
    };
    conn.write_all(b"ping over wasi").unwrap();
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = String::new();
    conn.read_to_string(&mut back).unwrap();
    assert_eq!(back, "ping over wasi");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "echo done\n");
}

#[test]
fn run_is_implied_like_wasmtime() {
    let r = run(&[path_str(&guest("hello.wasm"))]);
    r.success();
    assert_eq!(r.stdout, "hello from wasmix\n");
    let r = run(&["--env", "A=1", path_str(&guest("args_env.wasm")), "x"]);
    r.success();
    assert!(
        r.stdout.contains("env=A=1") && r.stdout.contains("arg=x"),
        "{}",
        r.stdout
    );
    assert_eq!(run(&["help"]).code, 0);
}

#[test]
fn the_syscall_trace_shows_each_call_with_its_data_and_result() {
    let g = guest("readfile.wasm");
    let mount = format!("{}::/d", path_str(g.parent().unwrap()));
    let out = common::wasmix()
        .env("WASMIX_LOG", "wasmix::syscalls=trace")
        .env("NO_COLOR", "1")
        .args(["run", "--dir", &mount, path_str(&g), "/d/tiny.wat"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = |needle: &str| {
        err.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{err}"))
            .to_owned()
    };
    // A path in its argument's place, a read's bytes, a write's bytes, an errno by name.
    assert!(line("path_open(").contains(r#", "tiny.wat", 8, "#));
    assert!(line("path_open(").contains(" = 0 <"));
    assert!(line("fd_read(").contains(r#" ";; The smallest command"#));
    assert!(line("fd_write(1, ").contains(r#"";; The smallest command"#));
    assert!(err.contains("= Badf (8) <"), "{err}");
    assert!(line("args_get(").contains("[1:1] args_get("));
    // Off by default.
    let quiet = run(&["run", "--dir", &mount, path_str(&g), "/d/tiny.wat"]);
    assert!(!quiet.stderr.contains("fd_read("), "{}", quiet.stderr);
}

/// Opening a FIFO for writing waits for a reader, as open(2) does — but where SIGTERM ends
/// the wait (it blocked in the host's open(2) before, and only SIGKILL ended the runtime).
#[test]
fn a_fifo_open_waits_for_its_reader_and_sigterm_ends_the_wait() {
    use std::io::{BufRead, BufReader, Read};
    let scratch = tempfile::tempdir().unwrap();
    let fifo = scratch.path().join("fifo");
    common::mkfifo(&fifo);
    let mount = format!("{}::/t", path_str(scratch.path()));
    let g = guest("fifo_writer.wat");
    let args = ["run", "--dir", &mount, path_str(&g)];
    let start = || {
        let mut child = wasmix()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "opening\n");
        child
    };

    // No reader ever: SIGTERM ends it. (A hang is a failure, after a minute.)
    let mut child = start();
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("SIGTERM did not end a runtime waiting to open a FIFO");
        }
        std::thread::park_timeout(std::time::Duration::from_millis(20));
    };
    // The guest leaves SIGTERM at its default: the kernel ends wasmix by it.
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGTERM),
        "{status:?}"
    );

    // A reader comes: the open goes through and the bytes arrive.
    let mut child = start();
    let mut reader = std::fs::File::open(&fifo).unwrap();
    let mut got = Vec::new();
    reader.read_to_end(&mut got).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(got, b"hi\n");
}

/// Opening a FIFO for reading returns at once; the read then waits for data.
#[test]
fn a_fifo_opened_for_reading_reads_what_a_later_writer_sends() {
    let scratch = tempfile::tempdir().unwrap();
    let fifo = scratch.path().join("fifo");
    common::mkfifo(&fifo);
    let mount = format!("{}::/t", path_str(scratch.path()));
    let child = wasmix()
        .args([
            "run",
            "--dir",
            &mount,
            path_str(&guest("readfile.wasm")),
            "/t/fifo",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Blocks until the guest has the read end open.
    std::fs::write(&fifo, b"through the fifo\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"through the fifo\n");
}

/// A thread blocked in `sock_accept` on a listening socket is reached by SIGTERM (its
/// default action ends the process), as every blocking call must be.
#[test]
fn a_blocked_accept_is_ended_by_sigterm() {
    use std::io::BufRead;
    let g = guest("sock_echo.wasm");
    let mut child = common::wasmix()
        .args([
            "run",
            "--tcplisten",
            "127.0.0.1:0",
            path_str(&g),
            "announce",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "accepting\n");
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    // One that ignored it would hang: after a minute it is killed, and the check fails.
    let (done, waited) = std::sync::mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        if waited
            .recv_timeout(std::time::Duration::from_secs(60))
            .is_err()
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    });
    let status = child.wait().unwrap();
    let _ = done.send(());
    guard.join().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGTERM),
        "SIGTERM ended the blocked accept: {status:?}"
    );
}

/// Whether wasmix's main thread blocks SIGTERM and SIGINT (`SigBlk` in its status): it
/// does so before anything else when it forwards them to the guest, and leaves them
/// unblocked when the host's own dispositions are to act.
fn blocks_forwarded_signals(pid: rustix::process::Pid) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.as_raw_nonzero())).unwrap();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .map(|m| u64::from_str_radix(m.trim(), 16).unwrap())
        .unwrap();
    let bit = |sig: i32| 1u64 << (sig - 1);
    mask & bit(libc::SIGTERM) != 0 && mask & bit(libc::SIGINT) != 0
}

/// Runs the spinning guest with `flags`; once it spins, returns whether wasmix blocks the
/// signals it forwards, and how SIGTERM then ended it, with its stderr.
fn spin_then_sigterm(flags: &[&str]) -> (bool, Option<i32>, String) {
    use std::io::BufRead;
    let g = guest("spin.wat");
    let mut child = common::wasmix()
        .env("WASMIX_LOG", "wasmix=debug")
        .arg("run")
        .args(flags)
        .arg(path_str(&g))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "spinning\n");
    let pid = rustix::process::Pid::from_child(&child);
    let forwards = blocks_forwarded_signals(pid);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let out = child.wait_with_output().unwrap();
    let signal = std::os::unix::process::ExitStatusExt::signal(&out.status);
    (
        forwards,
        signal,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The names of wasmix's threads while it runs the spinning plain program, started under a
/// stack limit of `stack` bytes if given; the run is then killed.
fn threads_while_spinning(stack: Option<u64>) -> Vec<String> {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let g = guest("spin.wat");
    let mut cmd = common::wasmix();
    cmd.args(["run", path_str(&g)])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    if let Some(bytes) = stack {
        let mut limit = rustix::process::getrlimit(rustix::process::Resource::Stack);
        limit.current = Some(bytes);
        // SAFETY: setrlimit is a single system call, safe between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                rustix::process::setrlimit(rustix::process::Resource::Stack, limit)
                    .map_err(std::io::Error::from)
            });
        }
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "spinning\n");
    let threads = std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .unwrap()
        .map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).unwrap())
        .map(|name| name.trim_end().to_owned())
        .collect();
    child.kill().unwrap();
    child.wait().unwrap();
    threads
}

/// A plain program runs on wasmix's own main thread, so (with a warm module cache: a compile
/// leaves the engine's worker threads behind) wasmix stays a single-threaded process: the
/// kernel then looks up each descriptor the program reads or writes without taking a
/// reference on it, which made `fd_write` to the host's /dev/null 1.62x -> 1.43x of native
/// `write(2)`. Under a stack limit below the 2 MiB a runtime thread gets, it runs on a thread
/// of its own (`wasmix-root`) as before.
#[test]
fn a_plain_program_runs_on_the_main_thread() {
    let root = |threads: &[String]| threads.iter().any(|t| t == "wasmix-root");
    let threads = threads_while_spinning(None);
    assert!(!root(&threads), "{threads:?}");
    // Compiled (and cached) now: the run is one thread.
    assert_eq!(threads_while_spinning(None), ["wasmix"]);
    let threads = threads_while_spinning(Some(1 << 20));
    assert!(root(&threads), "{threads:?}");
}

/// A plain WASI program run without a journal, timeout or CPU limit gets no compute
/// interruption checks (it runs at the engine's full speed) and nothing of wasmix between
/// it and the host's signals (no block, no forwarding thread); a signal ends it in a loop
/// that makes no host call, by the kernel's default action. With a timeout the checks and
/// the forwarding are back, SIGTERM still ends it by the kernel's default (the guest has no
/// handler), and the timeout ends the loop (exit 124).
#[test]
fn a_plain_program_runs_unchecked_yet_signals_and_timeouts_still_end_it() {
    let (forwards, signal, log) = spin_then_sigterm(&[]);
    assert_eq!(signal, Some(libc::SIGTERM), "{log}");
    assert!(log.contains("compute interruption off"), "{log}");
    assert!(
        !forwards,
        "a plain program's signals are blocked for forwarding"
    );

    let (forwards, signal, log) = spin_then_sigterm(&["--timeout", "60m"]);
    assert_eq!(signal, Some(libc::SIGTERM), "{log}");
    assert!(log.contains("compute interruption on"), "{log}");
    assert!(forwards, "signals are not forwarded with a timeout");

    let g = guest("spin.wat");
    let r = run(&["run", "--timeout", "300ms", path_str(&g)]);
    assert_eq!(r.code, 124, "{}", r.stderr);
    assert_eq!(r.stdout, "spinning\n");
}

/// Waits for `child` and returns its output; if it has not ended after a minute, kills it
/// and fails the test with `why`, so a regression fails instead of hanging the suite.
fn output_within_a_minute(child: std::process::Child, why: &str) -> std::process::Output {
    let pid = rustix::process::Pid::from_child(&child);
    let (done, waited) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output().unwrap();
        let _ = done.send(());
        out
    });
    if waited
        .recv_timeout(std::time::Duration::from_secs(60))
        .is_err()
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        panic!("{why}");
    }
    waiter.join().unwrap()
}

/// A program that computes only by recursion (no loop anywhere) is still reached: wasmix's
/// interruption checks sit at the entry of every function that calls, so a timeout ends it
/// (exit 124) rather than letting it run for hours. The test gives up after a minute instead
/// of hanging if the timeout never lands.
#[test]
fn a_program_that_only_recurses_is_still_ended_by_a_timeout() {
    let g = guest("recurse.wat");
    let child = common::wasmix()
        .args(["run", "--timeout", "300ms", path_str(&g)])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = output_within_a_minute(child, "the timeout never ended the recursion");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(124), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "recursing\n");
    assert!(stderr.contains("took longer than 300ms"), "{stderr}");
}

/// A child whose start function computes forever (before `_start` could run) is still
/// reached by a kill: the interruption checks' flag is set up before the start function
/// runs. Before, the kill never landed and the parent's join waited forever. The test gives
/// up after a minute instead of hanging.
#[test]
fn a_child_computing_in_its_start_function_is_killed() {
    let bin = format!("{}::/bin", path_str(guest("killer.wasm").parent().unwrap()));
    let child = common::wasmix()
        .args(["run", "--timeout", "60m", "--dir", &bin])
        .arg(path_str(&guest("killer.wasm")))
        .args(["9", "-", "start_spin.wat"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = output_within_a_minute(child, "the kill never reached the child's start function");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.ends_with(": Signaled(9)\n"), "{stdout}");
}
