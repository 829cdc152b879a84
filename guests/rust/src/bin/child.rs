//! A helper the process tests spawn and exec: its first argument says what to do.
use wasmix_guests::proc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match arg(1) {
        "exit" => std::process::exit(arg(2).parse().unwrap_or(0)),
        "echo" => println!("{}", args[2..].join(" ")),
        "env" => println!("{}", std::env::var(arg(2)).unwrap_or_else(|_| "<unset>".into())),
        "ids" => println!("pid={} ppid={}", proc::pid(), proc::ppid()),
        "argv0" => println!("{}", arg(0)),
        "cat" => {
            let mut buf = vec![0u8; 65536];
            loop {
                let n = proc::read_fd(0, &mut buf).expect("read stdin");
                if n == 0 {
                    break;
                }
                proc::write_fd(1, &buf[..n]).expect("write stdout");
            }
        }
        "drain" => {
            // Reads stdin to its end and reports the byte count (the pipe benchmark's reader).
            let mut buf = vec![0u8; 65536];
            let mut total = 0u64;
            loop {
                let n = proc::read_fd(0, &mut buf).expect("read stdin");
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            println!("{total}");
        }
        "raise" => {
            proc::raise(arg(2).parse().unwrap_or(15));
            println!("survived");
        }
        "sleep" => {
            let ms: u64 = arg(2).parse().unwrap_or(100);
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        "spin" => {
            println!("spinning");
            let mut x = 1u64;
            loop {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                if x == 42 {
                    break;
                }
            }
            println!("{x}");
        }
        "fds" => {
            let open: Vec<String> = (0..12u32)
                .filter(|fd| unsafe { wasi::fd_fdstat_get(*fd) }.is_ok())
                .map(|fd| fd.to_string())
                .collect();
            println!("open {}", open.join(","));
        }
        "exec" => {
            println!("before exec pid={}", proc::pid());
            let rest: Vec<&str> = args[2..].iter().map(String::as_str).collect();
            let e = proc::exec(rest[0], &rest);
            println!("exec failed errno={e}");
            std::process::exit(3);
        }
        "sigdisp" => {
            // Signals this program inherited as ignored (what a libc reads at start-up).
            let x = wasix::wasix_32v1::proc_signals_sizes_get;
            let mut n = 0u32;
            unsafe { x(&mut n as *mut u32 as i32) };
            let mut buf = vec![0u8; 2 * n as usize];
            unsafe { wasix::wasix_32v1::proc_signals_get(buf.as_mut_ptr() as i32) };
            let ignored: Vec<String> = buf.chunks(2).map(|c| c[0].to_string()).collect();
            println!("ignored [{}]", ignored.join(","));
        }
        "" => {}
        other => {
            eprintln!("child: unknown command {other}");
            std::process::exit(2);
        }
    }
}
