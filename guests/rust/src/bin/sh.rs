//! A small shell for the process-tree tests: runs the `;`-separated commands of its first
//! argument. A command is a pipeline (`prog args | prog args …`, programs found in /bin),
//! in the background when it ends with `&`, or a builtin:
//!
//! - `echo WORDS` — prints them;
//! - `snapshot` — asks for a snapshot of the shell and its children (`proc_snapshot`),
//!   saying on stderr how that went;
//! - `settle %J` — waits until every process of background job J has ended (not reaped:
//!   each job's processes hold the write end of a pipe the shell reads to its end);
//! - `kill %J SIG` — sends signal number SIG to the last process of job J;
//! - `wait` — reaps every background job, in order, printing how each ended.
//!
//! A foreground pipeline that fails says so. Output a test compares comes only from the
//! programs and from `wait`, never from timing.

use wasmix_guests::proc::{self, FdOp, Status};

struct Job {
    pids: Vec<u32>,
    /// The read end of the pipe whose write end only the job's processes hold.
    settle: u32,
}

/// Starts `pipeline` (its stages' argv) with each stage's stdout on the next one's stdin;
/// every stage also holds `extra` at descriptor 9 (for `settle`). Returns the pids.
fn start(pipeline: &[Vec<&str>], extra: Option<u32>) -> Vec<u32> {
    let mut pids = Vec::new();
    let mut stdin: Option<u32> = None;
    for (i, argv) in pipeline.iter().enumerate() {
        let last = i + 1 == pipeline.len();
        let pipe = if last { None } else { Some(proc::pipe()) };
        let mut ops = Vec::new();
        if let Some(r) = stdin {
            ops.push(FdOp::dup2(r, 0));
            ops.push(FdOp::close(r));
        }
        if let Some((r, w)) = pipe {
            ops.push(FdOp::dup2(w, 1));
            ops.push(FdOp::close(w));
            ops.push(FdOp::close(r));
        }
        if let Some(w) = extra {
            ops.push(FdOp::dup2(w, 9));
        }
        let pid = proc::spawn(argv[0], argv, &["PATH=/bin"], &ops, &[])
            .unwrap_or_else(|e| wasmix_guests::fail(&format!("spawn {}: errno {e}", argv[0])));
        pids.push(pid);
        if let Some(r) = stdin {
            proc::close(r);
        }
        if let Some((r, w)) = pipe {
            proc::close(w);
            stdin = Some(r);
        }
    }
    pids
}

fn describe(status: Status) -> String {
    match status {
        Status::Exited(code) => format!("exit {code}"),
        Status::Signaled(sig) => format!("signal {sig}"),
        Status::Nothing => "nothing".into(),
    }
}

fn job_number(word: &str) -> usize {
    word.trim_start_matches('%').parse::<usize>().unwrap_or(0)
}

fn main() {
    let script = std::env::args().nth(1).unwrap_or_default();
    let mut jobs: Vec<Job> = Vec::new();
    for command in script.split(';').map(str::trim).filter(|c| !c.is_empty()) {
        let (command, background) = match command.strip_suffix('&') {
            Some(c) => (c.trim(), true),
            None => (command, false),
        };
        let words: Vec<&str> = command.split_whitespace().collect();
        match words[0] {
            "echo" => println!("{}", words[1..].join(" ")),
            "snapshot" => {
                let r = unsafe { wasmix_guests::wasix::proc_snapshot() };
                eprintln!("sh: snapshot: {}", r.map_or_else(|e| e.name().to_owned(), |()| "ok".into()));
            }
            "settle" => {
                let job = &jobs[job_number(words[1]) - 1];
                let mut buf = [0u8; 16];
                while proc::read_fd(job.settle, &mut buf).unwrap_or(0) > 0 {}
            }
            "kill" => {
                let job = &jobs[job_number(words[1]) - 1];
                let sig: i32 = words[2].parse().unwrap_or(15);
                let last = *job.pids.last().unwrap_or(&0);
                let e = proc::signal(last, sig);
                if e != 0 {
                    eprintln!("sh: kill: errno {e}");
                }
            }
            "wait" => {
                for (n, job) in jobs.iter().enumerate() {
                    let mut last = Status::Nothing;
                    for pid in &job.pids {
                        let (e, _, status) = proc::join(Some(*pid), false);
                        if e != 0 {
                            eprintln!("sh: wait {pid}: errno {e}");
                        }
                        last = status;
                    }
                    println!("job {}: {}", n + 1, describe(last));
                }
                jobs.clear();
            }
            _ => {
                let pipeline: Vec<Vec<&str>> = command
                    .split('|')
                    .map(|stage| stage.split_whitespace().collect())
                    .collect();
                if background {
                    let (r, w) = proc::pipe();
                    let pids = start(&pipeline, Some(w));
                    proc::close(w);
                    jobs.push(Job { pids, settle: r });
                    continue;
                }
                let pids = start(&pipeline, None);
                let mut last = Status::Nothing;
                for pid in pids {
                    last = proc::join(Some(pid), false).2;
                }
                if last != Status::Exited(0) {
                    println!("sh: {}: {}", words[0], describe(last));
                }
            }
        }
    }
}
