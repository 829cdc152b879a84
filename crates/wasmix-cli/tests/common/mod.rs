//! Helpers for running guests through the `wasmix` binary.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A guest built by `guests/build.sh`.
pub fn guest(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../guests/out")
        .join(name);
    assert!(
        path.exists(),
        "guest {} is missing: run guests/build.sh first",
        path.display()
    );
    path
}

/// `wasmix` with a cache shared by the test run (so each guest compiles once).
pub fn wasmix() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmix"));
    cmd.env(
        "WASMIX_CACHE_DIR",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasmix-cache"),
    );
    cmd.env_remove("WASMIX_LOG");
    cmd
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn success(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// A bad-input failure: non-zero, one clear `Error:` line, no panic.
    #[track_caller]
    pub fn clean_error(&self, needle: &str) {
        assert_ne!(self.code, 0);
        assert!(
            !self.stderr.contains("panicked"),
            "host panicked:\n{}",
            self.stderr
        );
        let lines: Vec<_> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one line, got:\n{}", self.stderr);
        assert!(lines[0].starts_with("Error: "), "{}", self.stderr);
        assert!(
            self.stderr.contains(needle),
            "`{needle}` not in: {}",
            self.stderr
        );
    }
}

/// Runs `wasmix ARGS...` with `stdin` fed to the guest.
pub fn run_with_stdin(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = wasmix()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wasmix");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait wasmix");
    writer.join().unwrap();
    Run::from(out)
}

pub fn run(args: &[&str]) -> Run {
    let out = wasmix()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run wasmix");
    Run::from(out)
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `guest` with a fresh scratch directory mounted as the guest's `/`; the directory is
/// returned so a test can inspect what the guest left.
pub fn run_in_scratch(guest_name: &str, args: &[&str]) -> (Run, tempfile::TempDir) {
    let scratch = tempfile::tempdir().unwrap();
    let mount = format!("{}::/", scratch.path().display());
    let g = guest(guest_name);
    let mut all = vec!["run", "--dir", &mount, path_str(&g)];
    all.extend_from_slice(args);
    (run(&all), scratch)
}

/// `wasmix run [EXTRA...] GUEST ARGS...` with the guest directory mounted as `/bin` (for
/// spawn and exec by name).
pub fn run_guest_with_bin(name: &str, args: &[&str], extra: &[&str]) -> Run {
    let bin = format!("{}::/bin", path_str(guest("child.wasm").parent().unwrap()));
    let g = guest(name);
    let mut all = vec!["run", "--dir", &bin];
    all.extend_from_slice(extra);
    all.push(path_str(&g));
    all.extend_from_slice(args);
    run(&all)
}

/// Makes a FIFO at `path`.
#[allow(dead_code)]
pub fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}
