//! Snapshots of process trees through the CLI: a shell guest (`sh.wasm`) with a pipeline
//! in flight, an unreaped child and itself blocked reaping; forked and vforked-then-exec'd
//! children; a tree killed outright and restored from its last periodic snapshot. Each
//! restored run must finish with the output an uninterrupted run gives.
//!
//! Where the order of events matters, the guests wait on something the test controls (a
//! file appearing in a mounted directory), never on time.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{guest, path_str, run, wasmix, Run};

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

fn run_owned(args: &[String]) -> Run {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&refs)
}

fn inspect(journal: &Path) -> serde_json::Value {
    let r = run(&["journal", "inspect", "--json", path_str(journal)]);
    r.success();
    serde_json::from_str(&r.stdout).unwrap()
}

/// A pipeline snapshotted while its producer is blocked on a full pipe and its consumer has
/// not started reading, beside a child that has ended unreaped; the tree stops after the
/// snapshot, and the restored run — the same pids, the pipe's bytes, the zombie's status —
/// finishes with the uninterrupted run's output.
#[test]
fn a_shell_pipeline_snapshotted_mid_flight_finishes_after_a_restore() {
    let gate = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let script = "echo start; child exit 7 &; settle %1; \
                  child produce 200000 | child sum /gate/go &; snapshot; wait; echo done";
    let go = gate.path().join("go");
    std::fs::write(&go, "").unwrap();
    let expected = run_owned(&sh(script, gate.path(), &[]));
    expected.success();
    assert_eq!(
        expected.stdout,
        "start\njob 1: exit 7\nlines 200000 sum 20000100000\njob 2: exit 0\ndone\n"
    );
    std::fs::remove_file(&go).unwrap();

    let j = path_str(&journal);
    let first = run_owned(&sh(
        script,
        gate.path(),
        &["--journal", j, "--stop-after-snapshot"],
    ));
    assert_eq!(first.code, 75, "{}", first.stderr);

    let info = inspect(&journal);
    let snap = &info["snapshots"][0];
    let members = snap["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{snap}");
    assert_eq!(members[0]["ended"], serde_json::json!({ "Exited": 7 }));
    for m in &members[1..] {
        assert!(m["ended"].is_null(), "the pipeline was mid-flight: {m}");
        assert_eq!(m["path"], "/bin/child.wasm");
        assert_eq!(m["parent"], snap["pid"]);
    }
    assert_eq!(info["records"]["member"], 3);

    std::fs::write(&go, "").unwrap();
    let second = run_owned(&sh(script, gate.path(), &["--journal", j]));
    second.success();
    assert!(
        second.stderr.contains("sh: snapshot: ok"),
        "{}",
        second.stderr
    );
    assert_eq!(
        format!("{}{}", first.stdout, second.stdout),
        expected.stdout
    );
}

/// Starts `wasmix ARGS` with its output captured.
fn start(args: &[String]) -> Child {
    wasmix()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the journal holds a complete snapshot whose tree has `members` processes
/// besides the root (or fails after a generous while, naming what it saw).
fn wait_for_tree_snapshot(journal: &Path, members: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if journal.exists() {
            let r = run(&["journal", "inspect", "--json", path_str(journal)]);
            if r.code == 0 {
                let info: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
                let found = info["snapshots"].as_array().is_some_and(|all| {
                    all.iter()
                        .any(|s| s["members"].as_array().map_or(0, Vec::len) == members)
                });
                if found {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot of the whole tree in {}",
            journal.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A tree taking periodic snapshots, killed outright (SIGKILL to wasmix) while its pipeline
/// waits at the gate and the shell is blocked reaping it: restored from the last snapshot,
/// it finishes with the output of a run never killed (nothing it printed is printed twice:
/// everything it prints comes after the gate).
#[test]
fn a_tree_killed_mid_run_is_restored_from_its_last_periodic_snapshot() {
    let gate = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let script = "child produce 100000 | child sum /gate/go &; child exit 3 &; wait; echo done";
    let go = gate.path().join("go");
    std::fs::write(&go, "").unwrap();
    let expected = run_owned(&sh(script, gate.path(), &[]));
    expected.success();
    std::fs::remove_file(&go).unwrap();

    let j = path_str(&journal);
    let periodic = [
        "--journal",
        j,
        "--snapshot-on",
        "periodic",
        "--snapshot-period",
        "30ms",
    ];
    let mut child = start(&sh(script, gate.path(), &periodic));
    wait_for_tree_snapshot(&journal, 3);
    child.kill().unwrap();
    let killed = child.wait_with_output().unwrap();
    assert!(killed.stdout.is_empty(), "nothing printed before the gate");

    std::fs::write(&go, "").unwrap();
    let restored = run_owned(&sh(script, gate.path(), &["--journal", j]));
    restored.success();
    assert_eq!(restored.stdout, expected.stdout);
    assert_eq!(
        restored.stdout,
        "lines 100000 sum 5000050000\njob 1: exit 0\njob 2: exit 3\ndone\n"
    );
}

/// `wasmix run` of the forker guest `module` (with /bin holding the guests) in `scenario`.
fn forker_args(module: &str, scenario: &str, extra: &[&str]) -> Vec<String> {
    let bin = format!("{}::/bin", path_str(guest("child.wasm").parent().unwrap()));
    let mut all = vec!["run".to_owned(), "--dir".to_owned(), bin];
    all.extend(extra.iter().map(|s| s.to_string()));
    all.push(path_str(&guest(module)).to_owned());
    all.push(scenario.to_owned());
    all
}

fn forker(scenario: &str, extra: &[&str]) -> Run {
    run_owned(&forker_args("forker_plain.wasm", scenario, extra))
}

/// `forker.wasm` comes asyncify-instrumented for fork and setjmp only (see guests/build.sh),
/// as a toolchain may ship it: its `fd_read` cannot unwind, so a snapshot while the child
/// waits there would capture frames that never stopped (before the check the run trapped,
/// "uninitialized element", exit 134). The snapshot is refused instead (the guest's
/// `proc_snapshot` answers ENOTSUP, with the reason in the log) and the run goes on as
/// without a journal.
#[test]
fn a_program_its_toolchain_instrumented_only_in_part_is_not_snapshotted() {
    let expected = forker("snapshot", &[]);
    expected.success();
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("j");
    let r = common::wasmix()
        .env("WASMIX_LOG", "wasmix_runtime=warn")
        .args(forker_args(
            "forker.wasm",
            "snapshot",
            &["--journal", path_str(&j)],
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&r.stdout), expected.stdout);
    assert!(stderr.contains("snapshot: NOTSUP"), "{stderr}");
    assert!(
        stderr.contains("came asyncify-instrumented by its toolchain, but not at")
            && stderr.contains("wasi_snapshot_preview1.fd_read"),
        "{stderr}"
    );
}

/// A forked child, which changed its copy of the parent's memory before the snapshot, comes
/// back with that copy (and the parent with its own): each sums what it had.
#[test]
fn a_forked_child_comes_back_with_its_own_memory() {
    let expected = forker("snapshot", &[]);
    expected.success();
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("j");
    let first = forker(
        "snapshot",
        &["--journal", path_str(&j), "--stop-after-snapshot"],
    );
    assert_eq!(first.code, 75, "{}", first.stderr);
    let info = inspect(&j);
    let member = &info["snapshots"][0]["members"][0];
    assert_eq!(member["path"], "", "a fork runs the journal's own module");
    assert_eq!(member["threads"], 1);
    // Each process's memory can be extracted: the child's holds its 9s, the parent's its 3s.
    let has_run = |image: &[u8], byte: u8| {
        image
            .windows(4097)
            .any(|w| w[..4096].iter().all(|b| *b == byte) && w[4096] == 1)
    };
    let child_pid = member["pid"].to_string();
    let child_image = dir.path().join("child.mem");
    run(&[
        "journal",
        "extract",
        "--pid",
        &child_pid,
        "--memory",
        path_str(&child_image),
        path_str(&j),
    ])
    .success();
    let bytes = std::fs::read(&child_image).unwrap();
    assert_eq!(bytes.len() as u64, member["memory_bytes"].as_u64().unwrap());
    assert!(has_run(&bytes, 9) && !has_run(&bytes, 3));
    let root_image = dir.path().join("root.mem");
    run(&[
        "journal",
        "extract",
        "--memory",
        path_str(&root_image),
        path_str(&j),
    ])
    .success();
    let bytes = std::fs::read(&root_image).unwrap();
    assert!(has_run(&bytes, 3) && !has_run(&bytes, 9));
    run(&[
        "journal",
        "extract",
        "--pid",
        "77",
        "--memory",
        path_str(&root_image),
        path_str(&j),
    ])
    .clean_error("holds no process 77");

    let second = forker("snapshot", &["--journal", path_str(&j)]);
    second.success();
    assert_eq!(second.stdout, expected.stdout);
    assert!(
        expected.stdout.contains("sums 1081344 after go")
            && expected.stdout.contains("parent sums 1056768"),
        "{}",
        expected.stdout
    );
}

/// A vfork child that has exec'd another program is a process of its own in the tree: it is
/// restored running that program, found again where it was loaded from.
#[test]
fn a_vforked_then_execd_child_is_restored_running_its_program() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("j");
    let first = forker(
        "snapshot-vfork-exec",
        &["--journal", path_str(&j), "--stop-after-snapshot"],
    );
    assert_eq!(first.code, 75, "{}", first.stderr);
    let info = inspect(&j);
    assert_eq!(
        info["snapshots"][0]["members"][0]["path"],
        "/bin/child.wasm"
    );
    let second = forker("snapshot-vfork-exec", &["--journal", path_str(&j)]);
    second.success();
    assert_eq!(second.stdout, "exec'd child Exited(0)\n");
}

/// A child's program that changed (or went) since the snapshot is a named error, not a
/// child running the wrong code.
#[test]
fn a_childs_program_changed_since_the_snapshot_is_a_named_error() {
    let bin = tempfile::tempdir().unwrap();
    std::fs::copy(guest("child.wasm"), bin.path().join("child.wasm")).unwrap();
    let gate = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("j");
    let args = |extra: &[&str]| {
        let mut a = vec!["run".to_owned()];
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend([
            "--dir".to_owned(),
            format!("{}::/bin", path_str(bin.path())),
            "--dir".to_owned(),
            format!("{}::/gate", path_str(gate.path())),
            path_str(&guest("sh.wasm")).to_owned(),
            "child sum /gate/go &; snapshot; wait".to_owned(),
        ]);
        a
    };
    let first = run_owned(&args(&["--journal", path_str(&j), "--stop-after-snapshot"]));
    assert_eq!(first.code, 75, "{}", first.stderr);
    std::fs::copy(guest("hello.wasm"), bin.path().join("child.wasm")).unwrap();
    run_owned(&args(&["--journal", path_str(&j)]))
        .clean_error("ran `/bin/child.wasm`, and the file there is another module now");
    std::fs::remove_file(bin.path().join("child.wasm")).unwrap();
    run_owned(&args(&["--journal", path_str(&j)]))
        .clean_error("ran `/bin/child.wasm`, which cannot be read");
}

/// A tree snapshot that fails — a child blocked opening a FIFO cannot park, so the watchdog
/// ends the round after the root has sealed its memory copy — leaves the next snapshot free
/// to be taken: it once waited forever for that copy to be read.
#[test]
fn a_failed_tree_snapshot_does_not_hold_up_the_next_one() {
    use std::io::{BufRead, BufReader};
    let gate = tempfile::tempdir().unwrap();
    common::mkfifo(&gate.path().join("fifo"));
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let script = "limits open-fifo /gate/fifo &; child sum /gate/go; snapshot; snapshot; \
                  echo end; wait";
    let timeout = ["--journal", path_str(&journal), "--snapshot-timeout", "0.3"];
    let mut child = wasmix()
        .env("WASMIX_LOG", "wasmix_runtime::wasi::path=debug")
        .args(sh(script, gate.path(), &timeout))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "opening\n", "the child opens the FIFO");
    // Its "opening" comes before the open itself, and until it is in there it can still
    // park (at a loop's safe point on the way): the go waits until the open waits.
    let (err_tx, err_rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = err_tx.send(line);
        }
    });
    let mut log = Vec::new();
    while !log
        .iter()
        .any(|l: &String| l.contains("with no reader yet"))
    {
        match err_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => log.push(line),
            Err(_) => panic!("the child never waited in its open: {log:?}"),
        }
    }
    std::fs::write(gate.path().join("go"), "").unwrap();
    // Both snapshots fail (the child never parks) and the shell goes on; a deadline stands
    // in for the hang.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = String::new();
        while out.read_line(&mut rest).unwrap_or(0) > 0 && !rest.contains("end\n") {}
        let _ = tx.send(rest);
        // Read on to the end: the shell still reports the child it reaps.
        std::io::copy(&mut out, &mut std::io::sink()).ok();
    });
    let got = rx.recv_timeout(Duration::from_secs(60));
    if got.is_err() {
        child.kill().unwrap();
        panic!("the second snapshot never ended");
    }
    let got = got.unwrap();
    assert!(
        got.contains("lines 0 sum 0\n") && got.ends_with("end\n"),
        "{got}"
    );
    // Let the child open its FIFO and end, and the shell reap it.
    drop(std::fs::File::open(gate.path().join("fifo")).unwrap());
    let status = child.wait().unwrap();
    log.extend(err_rx.iter());
    let stderr = log.join("\n");
    assert!(status.success(), "{status:?}: {stderr}");
    assert_eq!(stderr.matches("sh: snapshot: IO").count(), 2, "{stderr}");
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

/// SIGTERM while the shell is still spawning its pipeline (a container stopped right after
/// it started): the snapshot is taken anyway, and the next run resumes from it. Once, the
/// retry after a changed tree found the children's rounds not yet closed ("already being
/// taken") or a child just spawned ("starting"), and the stop went on without a snapshot —
/// about one run in three; a run of fifteen all hold now.
#[test]
fn sigterm_while_the_tree_is_being_spawned_still_snapshots() {
    use std::io::{BufRead, BufReader};
    let gate = tempfile::tempdir().unwrap();
    let script = "echo started; child produce 50000 | child sum /gate/go";
    // Once through with the gate open, so every round finds the programs instrumented and
    // compiled (a child still compiling when the request comes is waited for, but only so
    // long).
    let warm = tempfile::tempdir().unwrap();
    let warm_journal = warm.path().join("j");
    std::fs::write(gate.path().join("go"), "").unwrap();
    run_owned(&sh(
        script,
        gate.path(),
        &["--journal", path_str(&warm_journal)],
    ))
    .success();
    std::fs::remove_file(gate.path().join("go")).unwrap();
    for round in 0..15 {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("j");
        let j = path_str(&journal);
        let mut child = start(&sh(
            script,
            gate.path(),
            &["--journal", j, "--snapshot-on", "sigterm"],
        ));
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "started\n");
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        let stopped = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&stopped.stderr);
        assert_eq!(stopped.status.code(), Some(143), "round {round}: {stderr}");
        let info = inspect(&journal);
        assert_eq!(
            info["snapshots"].as_array().map_or(0, Vec::len),
            1,
            "round {round}: {stderr}"
        );
        std::fs::write(gate.path().join("go"), "").unwrap();
        let resumed = run_owned(&sh(script, gate.path(), &["--journal", j]));
        resumed.success();
        assert_eq!(
            resumed.stdout, "lines 50000 sum 1250025000\n",
            "round {round}"
        );
        std::fs::remove_file(gate.path().join("go")).unwrap();
    }
}
