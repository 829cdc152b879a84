//! Tries to leave its mount (preopen `/data`, fd 3), each way printing `NAME: ERRNO` (or
//! `NAME: escaped`): the CLI test asserts every one is refused, and checks the host side.
//!
//! * `creat`: O_CREAT through a dangling symlink pointing out, and through a symlink to a
//!   directory outside; an exclusive create of a symlink's name.
//! * `renumber`: a subdirectory's descriptor renumbered onto the preopen's number, then
//!   `..` from it.
//! * `swap N`: spawns `/bin/escape.wasm swapper` (which turns `d` back and forth between a
//!   real directory and a symlink to `..` until `stop` exists), and meanwhile opens
//!   `d/secret.txt` until it has met each state N times (at most 100 N opens); it prints
//!   how many opens read the secret outside (`leaked K`) — a race on path resolution must
//!   never let one through — and whether the race really ran (`raced true`).
use wasmix_guests::{proc, wasi};

const DATA: wasi::Fd = 3;

fn report(name: &str, r: Result<wasi::Fd, wasi::Errno>) {
    match r {
        Ok(fd) => {
            println!("{name}: escaped");
            unsafe { wasi::fd_close(fd) }.ok();
        }
        Err(e) => println!("{name}: {}", e.name()),
    }
}

fn open(dir: wasi::Fd, path: &str, oflags: wasi::Oflags, rights: wasi::Rights) -> Result<wasi::Fd, wasi::Errno> {
    unsafe { wasi::path_open(dir, wasi::LOOKUPFLAGS_SYMLINK_FOLLOW, path, oflags, rights, rights, 0) }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rw = wasi::RIGHTS_FD_READ | wasi::RIGHTS_FD_WRITE;
    match args.get(1).map(String::as_str) {
        Some("creat") => {
            unsafe { wasi::path_symlink("../created-outside.txt", DATA, "dangling") }.unwrap();
            report("creat through dangling symlink", open(DATA, "dangling", wasi::OFLAGS_CREAT, rw));
            unsafe { wasi::path_symlink("..", DATA, "up") }.unwrap();
            report("creat through dir symlink", open(DATA, "up/created-in-parent.txt", wasi::OFLAGS_CREAT, rw));
            report(
                "exclusive creat of a symlink's name",
                open(DATA, "dangling", wasi::OFLAGS_CREAT | wasi::OFLAGS_EXCL, rw),
            );
            report("creat dotdot", open(DATA, "../dotdot-created.txt", wasi::OFLAGS_CREAT, rw));
        }
        Some("renumber") => {
            unsafe { wasi::path_create_directory(DATA, "sub") }.unwrap();
            let dir_rights = wasi::RIGHTS_PATH_OPEN | wasi::RIGHTS_FD_READDIR;
            let sub = unsafe {
                wasi::path_open(DATA, 0, "sub", wasi::OFLAGS_DIRECTORY, dir_rights, dir_rights | wasi::RIGHTS_FD_READ, 0)
            }
            .unwrap();
            unsafe { wasi::fd_renumber(sub, DATA) }.unwrap();
            report("dotdot from a renumbered directory", open(DATA, "../secret.txt", 0, wasi::RIGHTS_FD_READ));
            report("two dotdots from it", open(DATA, "../../secret.txt", 0, wasi::RIGHTS_FD_READ));
            report("absolute from it", open(DATA, "/secret.txt", 0, wasi::RIGHTS_FD_READ));
        }
        Some("swap") => {
            let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
            unsafe { wasi::path_create_directory(DATA, "d") }.unwrap();
            let swapper = proc::spawn("/bin/escape.wasm", &["escape", "swapper"], &[], &[], &[])
                .unwrap_or_else(|e| panic!("spawn: {e}"));
            // The swapper is running once it has made `link`.
            while unsafe { wasi::path_filestat_get(DATA, 0, "link") }.is_err()
                && unsafe { wasi::path_filestat_get(DATA, 0, "real") }.is_err()
            {
                unsafe { wasi::sched_yield() }.ok();
            }
            let (mut leaked, mut refused, mut other) = (0, 0, 0);
            let mut buf = [0u8; 64];
            // Until both states were met N times (the race really ran), at most 100 N opens.
            let mut tries = 0;
            while (refused < n || other < n) && tries < 100 * n {
                tries += 1;
                match open(DATA, "d/secret.txt", 0, wasi::RIGHTS_FD_READ) {
                    Ok(fd) => {
                        let iov = [wasi::Iovec { buf: buf.as_mut_ptr(), buf_len: buf.len() }];
                        let got = unsafe { wasi::fd_read(fd, &iov) }.unwrap_or(0);
                        if buf[..got].starts_with(b"OUTSIDE") {
                            leaked += 1;
                        }
                        unsafe { wasi::fd_close(fd) }.ok();
                    }
                    Err(wasi::ERRNO_PERM | wasi::ERRNO_NOTCAPABLE) => refused += 1,
                    Err(_) => other += 1,
                }
            }
            unsafe { wasi::path_create_directory(DATA, "stop") }.unwrap();
            let (_, _, status) = proc::join(Some(swapper), false);
            println!("leaked {leaked}, raced {} (swapper {status:?})", refused >= n && other >= n);
            eprintln!("opens {tries}: refused {refused} (`d` was the symlink), failed otherwise {other}");
        }
        Some("swapper") => {
            unsafe { wasi::path_symlink("..", DATA, "link") }.unwrap();
            // Until the opener is done.
            while unsafe { wasi::path_filestat_get(DATA, 0, "stop") }.is_err() {
                // `d` is a directory, then the symlink to `..`, then a directory again.
                let _ = unsafe { wasi::path_rename(DATA, "d", DATA, "real") };
                let _ = unsafe { wasi::path_rename(DATA, "link", DATA, "d") };
                let _ = unsafe { wasi::path_rename(DATA, "d", DATA, "link") };
                let _ = unsafe { wasi::path_rename(DATA, "real", DATA, "d") };
            }
        }
        _ => {
            eprintln!("usage: escape creat | renumber | swap N");
            std::process::exit(2);
        }
    }
}
