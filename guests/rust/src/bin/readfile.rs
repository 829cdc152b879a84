//! Prints the file at argv[1], or `error: <ERRNO NAME>` and exits 1.
use wasmix_guests::wasi;
use wasmix_guests::*;

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| fail("usage: readfile PATH"));
    // Resolve against the longest matching preopen, as libc would, but report raw errnos.
    let (mut best, mut rest) = (None, path.clone());
    for fd in 3u32.. {
        let Ok(stat) = (unsafe { wasi::fd_prestat_get(fd) }) else { break };
        let len = unsafe { stat.u.dir.pr_name_len };
        let mut name = vec![0u8; len];
        if unsafe { wasi::fd_prestat_dir_name(fd, name.as_mut_ptr(), len) }.is_err() {
            continue;
        }
        let name = String::from_utf8_lossy(&name).trim_end_matches('/').to_string();
        if let Some(tail) = path.strip_prefix(&name) {
            if tail.is_empty() || tail.starts_with('/') {
                best = Some(fd);
                rest = tail.trim_start_matches('/').to_string();
            }
        }
    }
    let dir = best.unwrap_or_else(|| fail("no preopen covers the path"));
    let rest = if rest.is_empty() { ".".to_string() } else { rest };
    match unsafe { wasi::path_open(dir, wasi::LOOKUPFLAGS_SYMLINK_FOLLOW, &rest, 0, wasi::RIGHTS_FD_READ, 0, 0) } {
        Ok(fd) => {
            let mut buf = [0u8; 4096];
            loop {
                match read_some(fd, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => print!("{}", String::from_utf8_lossy(&buf[..n])),
                    Err(e) => {
                        println!("error: {}", e.name());
                        std::process::exit(1)
                    }
                }
            }
        }
        Err(e) => {
            println!("error: {}", e.name());
            std::process::exit(1)
        }
    }
}
