//! WASIX descriptor calls: dup, dup2 with a minimum and close-on-exec, eventfd, getcwd/chdir,
//! tty_get. Prints one line per check; expects a scratch directory mounted at /.
use wasix::wasix_32v1 as x;
use wasmix_guests::proc;
use wasmix_guests::{check, fail};

fn getcwd() -> String {
    let mut buf = [0u8; 256];
    let mut len = buf.len() as u32;
    let e = unsafe { x::getcwd(buf.as_mut_ptr() as i32, &mut len as *mut u32 as i32) };
    check(e == 0, "getcwd");
    String::from_utf8_lossy(&buf[..len as usize - 1]).into_owned()
}

fn chdir(p: &str) -> i32 {
    unsafe { x::chdir(p.as_ptr() as i32, p.len() as i32) }
}

fn main() {
    // dup shares the open file description: data written through one reads from the pipe.
    let (r, w) = proc::pipe();
    let mut d = 0u32;
    check(unsafe { x::fd_dup(w as i32, &mut d as *mut u32 as i32) } == 0, "dup");
    proc::write_fd(d, b"via dup").unwrap();
    proc::close(w);
    proc::close(d);
    let mut buf = [0u8; 32];
    let n = proc::read_fd(r, &mut buf).unwrap();
    println!("dup: {}", String::from_utf8_lossy(&buf[..n]));
    println!("eof after last writer: {}", proc::read_fd(r, &mut buf).unwrap() == 0);

    let mut hi = 0u32;
    check(unsafe { x::fd_dup2(r as i32, 20, 1, &mut hi as *mut u32 as i32) } == 0, "dup2");
    let mut flags = 0u16;
    unsafe { x::fd_fdflags_get(hi as i32, &mut flags as *mut u16 as i32) };
    println!("dup2 min 20 -> {hi}, cloexec={}", flags & 1);
    let mut bad = 0u32;
    println!("dup of a closed fd: errno {}", unsafe { x::fd_dup(77, &mut bad as *mut u32 as i32) });

    // eventfd: counts add up; a read takes the sum.
    let mut efd = 0u32;
    check(unsafe { x::fd_event(3, 0, &mut efd as *mut u32 as i32) } == 0, "fd_event");
    proc::write_fd(efd, &4u64.to_le_bytes()).unwrap();
    let mut v = [0u8; 8];
    proc::read_fd(efd, &mut v).unwrap();
    println!("eventfd sum {}", u64::from_le_bytes(v));

    println!("cwd {}", getcwd());
    std::fs::create_dir_all("/sub/deeper").unwrap_or_else(|e| fail(&format!("mkdir: {e}")));
    check(chdir("/sub") == 0, "chdir /sub");
    check(chdir("deeper") == 0, "chdir relative");
    println!("cwd {}", getcwd());
    check(chdir("..") == 0, "chdir ..");
    println!("cwd {}", getcwd());
    std::fs::write("/file", b"x").unwrap();
    println!("chdir to a file: errno {}", chdir("/file"));
    println!("chdir to nothing: errno {}", chdir("/missing"));

    let mut tty = [0u8; 24];
    check(unsafe { x::tty_get(tty.as_mut_ptr() as i32) } == 0, "tty_get");
    let cols = u32::from_le_bytes(tty[0..4].try_into().unwrap());
    println!("tty cols>0 {} stdin_tty {} stdout_tty {}", cols > 0, tty[16], tty[17]);
    println!("fdx done");
}
