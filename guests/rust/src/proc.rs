//! Thin wrappers over the raw WASIX process calls (`wasix_32v1`), in the i32 ABI.

use wasix::wasix_32v1 as x;

pub const SIGINT: i32 = 2;
pub const SIGKILL: i32 = 9;
pub const SIGUSR1: i32 = 10;
pub const SIGUSR2: i32 = 12;
pub const SIGPIPE: i32 = 13;
pub const SIGALRM: i32 = 14;
pub const SIGTERM: i32 = 15;

pub const OP_CLOSE: u8 = 0;
pub const OP_DUP2: u8 = 1;

/// One posix_spawn file action, laid out as the ABI's 56-byte record.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct FdOp {
    cmd: u8,
    _pad: [u8; 3],
    fd: u32,
    src_fd: u32,
    path: u32,
    path_len: u32,
    dirflags: u32,
    oflags: u16,
    _pad2: [u8; 6],
    rights_base: u64,
    rights_inheriting: u64,
    fdflags: u16,
    fdflagsext: u16,
    _pad3: [u8; 4],
}

impl FdOp {
    pub fn close(fd: u32) -> FdOp {
        FdOp::new(OP_CLOSE, fd, 0)
    }
    pub fn dup2(src: u32, fd: u32) -> FdOp {
        FdOp::new(OP_DUP2, fd, src)
    }
    fn new(cmd: u8, fd: u32, src_fd: u32) -> FdOp {
        FdOp {
            cmd,
            _pad: [0; 3],
            fd,
            src_fd,
            path: 0,
            path_len: 0,
            dirflags: 0,
            oflags: 0,
            _pad2: [0; 6],
            rights_base: 0,
            rights_inheriting: 0,
            fdflags: 0,
            fdflagsext: 0,
            _pad3: [0; 4],
        }
    }
}

/// Spawns `name` (a bare name is looked up along `PATH`) with `argv` (argv[0] included) and
/// `env` (`KEY=VALUE`); returns the pid or the errno.
pub fn spawn(name: &str, argv: &[&str], env: &[&str], ops: &[FdOp], sigs: &[(u8, u8)]) -> Result<u32, i32> {
    let args = argv.join("\n");
    let envs = env.join("\n");
    let sigs: Vec<u8> = sigs.iter().flat_map(|(s, d)| [*s, *d]).collect();
    let path = "/bin";
    let mut pid = 0u32;
    let r = unsafe {
        x::proc_spawn2(
            name.as_ptr() as i32,
            name.len() as i32,
            args.as_ptr() as i32,
            args.len() as i32,
            envs.as_ptr() as i32,
            envs.len() as i32,
            ops.as_ptr() as i32,
            ops.len() as i32,
            sigs.as_ptr() as i32,
            (sigs.len() / 2) as i32,
            1,
            path.as_ptr() as i32,
            path.len() as i32,
            &mut pid as *mut u32 as i32,
        )
    };
    if r == 0 { Ok(pid) } else { Err(r) }
}

/// How a joined child ended.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Status {
    Nothing,
    Exited(u16),
    Signaled(u8),
}

/// `waitpid`: `pid` None for any child; returns (errno, pid, status).
pub fn join(pid: Option<u32>, nohang: bool) -> (i32, u32, Status) {
    let mut opt = [0u32; 2];
    if let Some(p) = pid {
        opt[0] = 1;
        opt[1] = p;
    }
    let mut st = [0u8; 6];
    let r = unsafe {
        x::proc_join(
            opt.as_mut_ptr() as i32,
            nohang as i32,
            st.as_mut_ptr() as i32,
        )
    };
    let status = match st[0] {
        1 => Status::Exited(u16::from_le_bytes([st[2], st[3]])),
        2 => Status::Signaled(st[4]),
        _ => Status::Nothing,
    };
    (r, if opt[0] & 0xff == 1 { opt[1] } else { 0 }, status)
}

pub fn signal(pid: u32, sig: i32) -> i32 {
    unsafe { x::proc_signal(pid as i32, sig) }
}

pub fn raise(sig: i32) -> i32 {
    unsafe { wasi::wasi_snapshot_preview1::proc_raise(sig) }
}

pub fn pid() -> u32 {
    let mut p = 0u32;
    unsafe { x::proc_id(&mut p as *mut u32 as i32) };
    p
}

pub fn ppid() -> u32 {
    let mut p = 0u32;
    unsafe { x::proc_parent(pid() as i32, &mut p as *mut u32 as i32) };
    p
}

pub fn tid() -> u32 {
    let mut t = 0u32;
    unsafe { x::thread_id(&mut t as *mut u32 as i32) };
    t
}

pub fn thread_signal(tid: u32, sig: i32) -> i32 {
    unsafe { x::thread_signal(tid as i32, sig) }
}

/// Registers `__wasm_signal` (which the program must define) as the signal entry point.
pub fn register_signal_callback() {
    let name = "__wasm_signal";
    unsafe { x::callback_signal(name.as_ptr() as i32, name.len() as i32) };
}

pub fn raise_interval(sig: i32, ms: u64, repeat: bool) -> i32 {
    unsafe { x::proc_raise_interval(sig, ms as i64, repeat as i32) }
}

pub fn pipe() -> (u32, u32) {
    let (mut r, mut w) = (0u32, 0u32);
    let e = unsafe { x::fd_pipe(&mut r as *mut u32 as i32, &mut w as *mut u32 as i32) };
    assert_eq!(e, 0, "fd_pipe");
    (r, w)
}

/// Replaces the program (`PATH` search); returns only on failure, with the errno.
pub fn exec(name: &str, argv: &[&str]) -> i32 {
    let args = argv.join("\n");
    let env = "PATH=/bin";
    let path = "/bin";
    unsafe {
        x::proc_exec3(
            name.as_ptr() as i32,
            name.len() as i32,
            args.as_ptr() as i32,
            args.len() as i32,
            env.as_ptr() as i32,
            env.len() as i32,
            1,
            path.as_ptr() as i32,
            path.len() as i32,
        )
    }
}

pub fn write_fd(fd: u32, data: &[u8]) -> Result<usize, wasi::Errno> {
    unsafe { wasi::fd_write(fd, &[wasi::Ciovec { buf: data.as_ptr(), buf_len: data.len() }]) }
}

pub fn read_fd(fd: u32, buf: &mut [u8]) -> Result<usize, wasi::Errno> {
    unsafe { wasi::fd_read(fd, &[wasi::Iovec { buf: buf.as_mut_ptr(), buf_len: buf.len() }]) }
}

pub fn close(fd: u32) {
    let _ = unsafe { wasi::fd_close(fd) };
}

/// Milliseconds on the monotonic clock.
pub fn now_ms() -> f64 {
    now_ns() as f64 / 1e6
}

pub fn now_ns() -> u64 {
    unsafe { wasi::clock_time_get(wasi::CLOCKID_MONOTONIC, 1) }.unwrap_or(0)
}

/// fork (`copy_memory`) or vfork: the child's pid in the parent, 0 in the child.
pub fn fork(copy_memory: bool) -> Result<u32, i32> {
    let mut pid = 0u32;
    let e = unsafe { x::proc_fork(copy_memory as i32, &mut pid as *mut u32 as i32) };
    if e == 0 {
        Ok(pid)
    } else {
        Err(e)
    }
}
