//! Sandbox-escape regressions through the CLI, beside the path-resolution cases of
//! `fs_conformance` (`..`, absolute paths, symlink chains and loops, hard links and renames
//! out of a mount) and `run.rs` (host symlinks pointing out): creating files through
//! symlinks that point out, a descriptor renumbered onto the preopen, and a symlink swapped
//! in and out by another process while paths are being resolved. Each checks the host side
//! too: nothing outside the mount is created, read or changed.

mod common;

use std::path::Path;

use common::{guest, path_str, run};

/// A host folder with `mount/` (what the guest sees as /data) and a secret beside it.
fn scene() -> tempfile::TempDir {
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir(host.path().join("mount")).unwrap();
    std::fs::write(host.path().join("secret.txt"), "OUTSIDE\n").unwrap();
    host
}

/// What is in `dir` (names), sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn data_arg(host: &Path) -> String {
    format!("{}::/data", host.join("mount").display())
}

/// `escape.wasm MODE` over `host`'s mount, which must end well (every attempt answered).
fn escape(host: &Path, mode: &str) -> common::Run {
    let r = run(&[
        "run",
        "--dir",
        &data_arg(host),
        path_str(&guest("escape.wasm")),
        mode,
    ]);
    r.success();
    r
}

/// O_CREAT through a dangling symlink that points out, through a symlink to the parent
/// directory, or with `..`: refused, and no file appears outside the mount.
#[test]
fn files_are_not_created_outside_through_symlinks() {
    let host = scene();
    let r = escape(host.path(), "creat");
    assert_eq!(
        r.stdout,
        "creat through dangling symlink: PERM\n\
         creat through dir symlink: PERM\n\
         exclusive creat of a symlink's name: EXIST\n\
         creat dotdot: PERM\n"
    );
    assert_eq!(listing(host.path()), ["mount", "secret.txt"]);
    assert_eq!(
        std::fs::read_to_string(host.path().join("secret.txt")).unwrap(),
        "OUTSIDE\n"
    );
}

/// A subdirectory's descriptor renumbered onto the preopen's number is still only that
/// subdirectory: `..` and absolute paths from it are refused.
#[test]
fn a_descriptor_renumbered_onto_the_preopen_stays_inside() {
    let host = scene();
    let r = escape(host.path(), "renumber");
    assert_eq!(
        r.stdout,
        "dotdot from a renumbered directory: PERM\n\
         two dotdots from it: PERM\n\
         absolute from it: PERM\n"
    );
}

/// Another process turns `d` into a symlink to `..` and back while this one opens
/// `d/secret.txt` thousands of times: no open ever reads the secret outside.
#[test]
fn a_symlink_swapped_in_by_another_process_never_lets_a_path_out() {
    let bin = format!("{}::/bin", guest("escape.wasm").parent().unwrap().display());
    let mut raced = false;
    // The swapper is another process, started by spawn: a run where it never got the CPU
    // while the opens went on proves nothing, so such a run is tried again.
    for _ in 0..3 {
        let host = scene();
        let r = run(&[
            "run",
            "--dir",
            &data_arg(host.path()),
            "--dir",
            &bin,
            path_str(&guest("escape.wasm")),
            "swap",
            "200",
        ]);
        r.success();
        assert!(
            r.stdout.starts_with("leaked 0,"),
            "{}\n{}",
            r.stdout,
            r.stderr
        );
        assert!(r.stdout.ends_with("(swapper Exited(0))\n"), "{}", r.stdout);
        assert_eq!(listing(host.path()), ["mount", "secret.txt"]);
        if r.stdout.contains("raced true") {
            raced = true;
            break;
        }
    }
    assert!(raced, "the swap never overlapped the opens in three runs");
}
