//! Helpers shared by the guest programs: a tiny check harness over raw WASI calls.

pub use wasi;
pub use wasix;

pub mod proc;

/// Fails the program (non-zero exit, message on stderr) when `got` is not one of `allowed`.
#[track_caller]
pub fn expect_errno<T: std::fmt::Debug>(what: &str, got: Result<T, wasi::Errno>, allowed: &[wasi::Errno]) {
    match got {
        Err(e) if allowed.contains(&e) => {}
        other => {
            let names: Vec<_> = allowed.iter().map(|e| e.name()).collect();
            fail(&format!("{what}: expected one of {names:?}, got {other:?}"));
        }
    }
}

#[track_caller]
pub fn fail(msg: &str) -> ! {
    let loc = std::panic::Location::caller();
    eprintln!("CHECK FAILED at {}:{}: {msg}", loc.file(), loc.line());
    std::process::exit(99)
}

#[track_caller]
pub fn check(cond: bool, msg: &str) {
    if !cond {
        fail(msg)
    }
}

#[track_caller]
pub fn ok<T, E: std::fmt::Debug>(what: &str, r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => fail(&format!("{what}: {e:?}")),
    }
}

/// The preopen whose guest path is `name`.
pub fn preopen(name: &str) -> Option<wasi::Fd> {
    for fd in 3.. {
        let stat = unsafe { wasi::fd_prestat_get(fd) }.ok()?;
        let len = unsafe { stat.u.dir.pr_name_len };
        let mut buf = vec![0u8; len];
        if unsafe { wasi::fd_prestat_dir_name(fd, buf.as_mut_ptr(), len) }.is_ok() && buf == name.as_bytes() {
            return Some(fd);
        }
    }
    None
}

/// Every directory right a scratch directory is opened with.
pub const DIR_RIGHTS: wasi::Rights = wasi::RIGHTS_FD_FILESTAT_GET
    | wasi::RIGHTS_FD_READDIR
    | wasi::RIGHTS_PATH_CREATE_FILE
    | wasi::RIGHTS_PATH_CREATE_DIRECTORY
    | wasi::RIGHTS_PATH_REMOVE_DIRECTORY
    | wasi::RIGHTS_PATH_OPEN
    | wasi::RIGHTS_PATH_UNLINK_FILE
    | wasi::RIGHTS_PATH_LINK_SOURCE
    | wasi::RIGHTS_PATH_LINK_TARGET
    | wasi::RIGHTS_PATH_READLINK
    | wasi::RIGHTS_PATH_RENAME_SOURCE
    | wasi::RIGHTS_PATH_RENAME_TARGET
    | wasi::RIGHTS_PATH_FILESTAT_GET
    | wasi::RIGHTS_PATH_FILESTAT_SET_SIZE
    | wasi::RIGHTS_PATH_FILESTAT_SET_TIMES
    | wasi::RIGHTS_PATH_SYMLINK;

/// What files beneath a scratch directory may hold.
pub const FILE_RIGHTS: wasi::Rights = wasi::RIGHTS_FD_READ
    | wasi::RIGHTS_FD_DATASYNC
    | wasi::RIGHTS_FD_WRITE
    | wasi::RIGHTS_FD_READDIR
    | wasi::RIGHTS_FD_FILESTAT_GET
    | wasi::RIGHTS_FD_SEEK
    | wasi::RIGHTS_FD_TELL
    | wasi::RIGHTS_FD_SYNC
    | wasi::RIGHTS_FD_ADVISE
    | wasi::RIGHTS_FD_ALLOCATE
    | wasi::RIGHTS_FD_FDSTAT_SET_FLAGS
    | wasi::RIGHTS_FD_FILESTAT_SET_SIZE
    | wasi::RIGHTS_FD_FILESTAT_SET_TIMES
    | wasi::RIGHTS_PATH_LINK_SOURCE
    | wasi::RIGHTS_PATH_LINK_TARGET
    | wasi::RIGHTS_PATH_OPEN
    | wasi::RIGHTS_PATH_UNLINK_FILE
    | wasi::RIGHTS_PATH_FILESTAT_GET;

/// Creates `name` under `parent` and opens it with [`DIR_RIGHTS`].
pub fn scratch_dir(parent: wasi::Fd, name: &str) -> wasi::Fd {
    ok("create scratch dir", unsafe { wasi::path_create_directory(parent, name) });
    ok("open scratch dir", unsafe {
        wasi::path_open(parent, 0, name, wasi::OFLAGS_DIRECTORY, DIR_RIGHTS, FILE_RIGHTS, 0)
    })
}

/// Creates an empty file.
pub fn touch(dir: wasi::Fd, name: &str) {
    let fd = ok(&format!("create {name}"), unsafe { wasi::path_open(dir, 0, name, wasi::OFLAGS_CREAT, 0, 0, 0) });
    ok("close", unsafe { wasi::fd_close(fd) });
}

pub fn write_all(fd: wasi::Fd, data: &[u8]) -> usize {
    let iov = wasi::Ciovec { buf: data.as_ptr(), buf_len: data.len() };
    ok("fd_write", unsafe { wasi::fd_write(fd, &[iov]) })
}

pub fn read_some(fd: wasi::Fd, buf: &mut [u8]) -> Result<usize, wasi::Errno> {
    let iov = wasi::Iovec { buf: buf.as_mut_ptr(), buf_len: buf.len() };
    unsafe { wasi::fd_read(fd, &[iov]) }
}
