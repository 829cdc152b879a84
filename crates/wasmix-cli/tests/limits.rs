//! Resource limits through the CLI: `--max-memory` (an own memory and a shared one, and a
//! program that needs more to start), `--max-total-memory` and `--timeout`.

mod common;

use common::{guest, path_str, run, run_guest_with_bin};

/// What `alloc` got before the allocator said no.
fn allocated(stdout: &str) -> u64 {
    stdout
        .strip_prefix("allocated ")
        .and_then(|s| s.strip_suffix(" MiB\n"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output {stdout:?}"))
}

/// `memory.grow` past the limit answers -1, so the program's allocator fails cleanly
/// (an own memory: the store's limiter; a shared one: its type's maximum).
#[test]
fn memory_stops_growing_at_the_limit() {
    for name in ["limits.wasm", "threads.wasm"] {
        let g = guest(name);
        let r = run(&["run", "--max-memory", "64", path_str(&g), "alloc"]);
        r.success();
        let got = allocated(&r.stdout);
        assert!(
            (48..64).contains(&got),
            "{name}: {got} MiB under a 64 MiB limit"
        );
    }
    // A higher limit, more (and no limit at all would reach 4 GiB).
    let r = run(&[
        "run",
        "--max-memory",
        "256",
        path_str(&guest("limits.wasm")),
        "alloc",
    ]);
    r.success();
    assert!((200..256).contains(&allocated(&r.stdout)), "{}", r.stdout);
}

/// A program whose memory starts larger than the limit is refused by name, with both
/// sizes; a limit of zero is a bad flag.
#[test]
fn a_program_that_needs_more_to_start_is_refused() {
    for name in ["limits.wasm", "threads.wasm"] {
        let r = run(&["run", "--max-memory", "1", path_str(&guest(name)), "alloc"]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(
            r.stderr.contains(&format!("`{name}` needs")),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("limit is 1.0 MiB (--max-memory)"),
            "{}",
            r.stderr
        );
    }
    let r = run(&["run", "--max-memory", "0", path_str(&guest("limits.wasm"))]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

/// `--max-total-memory` bounds every process of the run together: a child spawned while its
/// parent holds 40 MiB gets only what is left of 96, though it may have 128 on its own; an own
/// memory (the store's limiter) and a shared one (whose `memory.grow` the load-time rewrite
/// turns into a host call) both stop there, and a memory too big to start is refused.
#[test]
fn the_total_memory_limit_covers_every_process_of_the_run() {
    let child_got = |r: &common::Run| -> u64 {
        let line = r.stdout.lines().find(|l| l.starts_with("allocated "));
        allocated(&format!(
            "{}\n",
            line.unwrap_or_else(|| panic!("{}", r.stdout))
        ))
    };
    let alone = run_guest_with_bin(
        "limits.wasm",
        &["hold-and-spawn", "40"],
        &["--max-memory", "128"],
    );
    alone.success();
    assert!(
        alone.stdout.starts_with("holding 40 MiB\n"),
        "{}",
        alone.stdout
    );
    assert!(child_got(&alone) >= 100, "{}", alone.stdout);
    assert!(
        alone.stdout.ends_with("child: Exited(0)\n"),
        "{}",
        alone.stdout
    );

    let shared = run_guest_with_bin(
        "limits.wasm",
        &["hold-and-spawn", "40"],
        &["--max-memory", "128", "--max-total-memory", "96"],
    );
    shared.success();
    assert!(
        shared.stdout.starts_with("holding 40 MiB\n"),
        "{}",
        shared.stdout
    );
    let got = child_got(&shared);
    assert!(
        (30..56).contains(&got),
        "child got {got} MiB beside 40 under 96: {}",
        shared.stdout
    );

    for name in ["limits.wasm", "threads.wasm"] {
        let r = run(&[
            "run",
            "--max-total-memory",
            "64",
            path_str(&guest(name)),
            "alloc",
        ]);
        r.success();
        let got = allocated(&r.stdout);
        assert!(
            (48..64).contains(&got),
            "{name}: {got} MiB under a 64 MiB total"
        );

        let r = run(&[
            "run",
            "--max-total-memory",
            "1",
            path_str(&guest(name)),
            "alloc",
        ]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(
            r.stderr.contains(&format!("`{name}` needs")),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("--max-total-memory"), "{}", r.stderr);
    }
}

/// `--timeout`: a program computing forever is killed at the limit; wasmix says so and exits
/// 124, as timeout(1) does. A program that ends in time is not affected.
#[test]
fn a_run_past_its_timeout_is_killed() {
    let started = std::time::Instant::now();
    let r = run(&[
        "run",
        "--timeout",
        "300ms",
        path_str(&guest("limits.wasm")),
        "spin",
    ]);
    assert_eq!(r.code, 124, "{}", r.stderr);
    assert_eq!(r.stdout, "spinning\n");
    assert!(r.stderr.contains("took longer than 300ms"), "{}", r.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let r = run(&["run", "--timeout", "5m", path_str(&guest("hello.wasm"))]);
    r.success();
    let r = run(&["run", "--timeout", "soon", path_str(&guest("hello.wasm"))]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

/// CPU backoff never costs a busy poller its input: a line written while it polls (a
/// zero-timeout poll_oneoff, or non-blocking reads) reaches it, with the backoff and
/// without. (What it saves is measured by bench/backoff.sh.)
#[test]
fn a_busy_poller_gets_its_input_with_or_without_backoff() {
    use std::io::{BufRead, BufReader, Write};
    for mode in ["poll", "read"] {
        for flags in [&[][..], &["--no-cpu-backoff"][..]] {
            let g = guest("busypoll.wasm");
            let mut args = vec!["run"];
            args.extend_from_slice(flags);
            args.extend([path_str(&g), mode]);
            let mut child = common::wasmix()
                .args(&args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut out = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            assert_eq!(line, "polling\n");
            child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
            line.clear();
            out.read_line(&mut line).unwrap();
            assert!(
                line.starts_with("got hello after "),
                "{mode} {flags:?}: {line}"
            );
            assert!(child.wait().unwrap().success());
        }
    }
}

/// `--max-cpu-time`: at the limit SIGXCPU (by default the process ends by it); a process
/// that catches it and computes on is killed a second of CPU later.
#[test]
fn a_process_past_its_cpu_time_gets_sigxcpu_then_is_killed() {
    let g = guest("limits.wasm");
    let r = run(&["run", "--max-cpu-time", "200ms", path_str(&g), "spin"]);
    assert_eq!(r.stdout, "spinning\n");
    // 128 + SIGXCPU, by WASI's numbering (23).
    assert_eq!(r.code, 128 + 23, "{}", r.stderr);
    let r = run(&["run", "--max-cpu-time", "200ms", path_str(&g), "spin-catch"]);
    assert_eq!(r.stdout, "spinning\ngot signal 23\n");
    assert_eq!(r.code, 128 + 9, "{}", r.stderr);
}
