//! poll_oneoff over clocks, stdio and files. Expects stdin to be a pipe the test writes "x" to.
use wasmix_guests::wasi;
use wasmix_guests::*;

fn clock(userdata: u64, timeout: u64, flags: u16, id: wasi::Clockid) -> wasi::Subscription {
    wasi::Subscription {
        userdata,
        u: wasi::SubscriptionU {
            tag: wasi::EVENTTYPE_CLOCK.raw(),
            u: wasi::SubscriptionUU { clock: wasi::SubscriptionClock { id, timeout, precision: 0, flags } },
        },
    }
}

fn fd_sub(userdata: u64, fd: wasi::Fd, write: bool) -> wasi::Subscription {
    let rw = wasi::SubscriptionFdReadwrite { file_descriptor: fd };
    wasi::Subscription {
        userdata,
        u: if write {
            wasi::SubscriptionU { tag: wasi::EVENTTYPE_FD_WRITE.raw(), u: wasi::SubscriptionUU { fd_write: rw } }
        } else {
            wasi::SubscriptionU { tag: wasi::EVENTTYPE_FD_READ.raw(), u: wasi::SubscriptionUU { fd_read: rw } }
        },
    }
}

fn poll(subs: &[wasi::Subscription]) -> Vec<wasi::Event> {
    let mut out: Vec<wasi::Event> = (0..subs.len()).map(|_| unsafe { std::mem::zeroed() }).collect();
    let n = ok("poll_oneoff", unsafe { wasi::poll_oneoff(subs.as_ptr(), out.as_mut_ptr(), subs.len()) });
    out.truncate(n);
    out
}

fn main() {
    let mono = |_| ok("now", unsafe { wasi::clock_time_get(wasi::CLOCKID_MONOTONIC, 1) });
    // A relative timeout sleeps at least that long.
    let t0 = mono(());
    let ev = poll(&[clock(7, 30_000_000, 0, wasi::CLOCKID_MONOTONIC)]);
    check(ev.len() == 1 && ev[0].userdata == 7 && ev[0].type_ == wasi::EVENTTYPE_CLOCK, "clock event");
    check(mono(()) - t0 >= 30_000_000, "slept 30ms");
    // An absolute deadline in the past fires at once.
    let ev = poll(&[clock(8, t0, wasi::SUBCLOCKFLAGS_SUBSCRIPTION_CLOCK_ABSTIME, wasi::CLOCKID_MONOTONIC)]);
    check(ev.len() == 1 && ev[0].userdata == 8, "past abstime fires");
    // stdout and stderr are writable.
    let ev = poll(&[fd_sub(1, 1, true), fd_sub(2, 2, true), clock(9, 5_000_000_000, 0, wasi::CLOCKID_MONOTONIC)]);
    check(ev.iter().all(|e| e.userdata != 9 && e.error == wasi::ERRNO_SUCCESS), "stdio writable before timeout");
    // stdin (a pipe holding "x") becomes readable.
    let ev = poll(&[fd_sub(3, 0, false), clock(9, 5_000_000_000, 0, wasi::CLOCKID_MONOTONIC)]);
    check(ev.len() == 1 && ev[0].userdata == 3 && ev[0].fd_readwrite.nbytes >= 1, "stdin readable");
    // A closed descriptor reports EBADF in its event.
    let ev = poll(&[fd_sub(4, 99, false)]);
    check(ev.len() == 1 && ev[0].error == wasi::ERRNO_BADF, "bad fd in event");
    // A file is always ready; /dev/null too.
    let dev = preopen("/dev").unwrap_or_else(|| fail("no /dev"));
    let null = ok("open null", unsafe { wasi::path_open(dev, 0, "null", 0, wasi::RIGHTS_FD_READ | wasi::RIGHTS_POLL_FD_READWRITE, 0, 0) });
    let ev = poll(&[fd_sub(5, null, false), clock(9, 5_000_000_000, 0, wasi::CLOCKID_MONOTONIC)]);
    check(ev.len() == 1 && ev[0].userdata == 5, "device ready");
    // No subscriptions is EINVAL.
    let r = unsafe { wasi::poll_oneoff(std::ptr::null(), std::ptr::null_mut(), 0) };
    check(r == Err(wasi::ERRNO_INVAL), "zero subscriptions");
    println!("poll ok");
}
