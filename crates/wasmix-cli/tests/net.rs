//! WASIX sockets through the CLI (guest `net`): TCP echo between two guests, UDP, an epoll
//! server multiplexing 100 clients, accept interrupted by a signal, the network policy's
//! refusals, `resolve`, an HTTP server fetched by curl, and a pre-fork worker pool.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Stdio};
use std::time::Duration;

use common::{guest, path_str, run, wasmix};

/// A guest server started with `flags`, and the port it announced (`listening PORT`).
struct Server {
    child: Child,
    out: BufReader<ChildStdout>,
    port: u16,
}

impl Server {
    fn start(flags: &[&str], args: &[&str]) -> Server {
        let g = guest("net.wasm");
        let mut child = wasmix()
            .arg("run")
            .args(flags)
            .arg(path_str(&g))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let line = read_line(&mut out);
        let port = line
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port announced: {line:?}"));
        Server { child, out, port }
    }

    fn line(&mut self) -> String {
        read_line(&mut self.out)
    }

    /// The rest of its output, once it has exited successfully.
    fn finish(mut self) -> String {
        let mut rest = String::new();
        self.out.read_to_string(&mut rest).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "server failed: {status:?}\n{rest}");
        rest
    }
}

fn read_line(out: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    line
}

fn connect(port: u16) -> TcpStream {
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    c
}

#[test]
fn a_guest_echo_server_and_a_guest_client_talk_over_tcp() {
    let server = Server::start(&["--net-allow", "bind=127.0.0.1:0"], &["tcp-server"]);
    let port = server.port.to_string();
    let rule = format!("connect=localhost:{port}");
    let client = run(&[
        "run",
        "--net-allow",
        &rule,
        path_str(&guest("net.wasm")),
        "tcp-client",
        &port,
    ]);
    client.success();
    assert_eq!(client.stdout, "reply ping over tcp\n");
    let rest = server.finish();
    assert_eq!(rest, "peer [127, 0, 0, 1]\nserver done\n");
}

#[test]
fn udp_datagrams_arrive_with_their_senders_address() {
    let r = run(&["run", "--net", path_str(&guest("net.wasm")), "udp"]);
    r.success();
    assert_eq!(
        r.stdout,
        "udp sent 12 got \"datagram one\" from the sender's port: true (type 2)\n\
         two buffers got 9 bytes \"datag\" + \"ram \", truncated flag 1\n"
    );
}

#[test]
fn an_epoll_server_multiplexes_a_hundred_clients() {
    let server = Server::start(&["--net"], &["epoll-server", "100"]);
    let mut clients: Vec<TcpStream> = (0..100).map(|_| connect(server.port)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("hello {i}\n").as_bytes()).unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let want = format!("hello {i}\n");
        let mut got = vec![0u8; want.len()];
        c.read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), want);
    }
    drop(clients);
    assert_eq!(
        server.finish(),
        "epoll served 100 clients (events at once > 1: true)\n"
    );
}

#[test]
fn a_blocked_accept_runs_the_signal_handler_and_goes_on_accepting() {
    let mut server = Server::start(&["--net"], &["accept-signal"]);
    // The alarm fires 100 ms into the accept; the connection comes only after it.
    assert_eq!(server.line(), "alarm during accept\n");
    drop(connect(server.port));
    assert_eq!(server.finish(), "accepted after 1 alarm(s)\n");
}

#[test]
fn a_blocked_accept_is_ended_by_sigterm() {
    // No handler: the default action ends it, as it ends a native server.
    let server = Server::start(&["--net"], &["tcp-server"]);
    let pid = rustix::process::Pid::from_child(&server.child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let mut child = server.child;
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGTERM)
    );
}

/// `wasmix ARGS` with the network policy's decisions traced.
fn run_traced(args: &[&str]) -> common::Run {
    let out = wasmix()
        .env("WASMIX_LOG", "wasmix::net=debug")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    common::Run::from(out)
}

#[test]
fn without_a_grant_connect_bind_and_send_are_refused_as_a_firewall_would() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let g = guest("net.wasm");
    let r = run_traced(&["run", path_str(&g), "denied", &port]);
    r.success();
    // ECONNREFUSED (14) for connect, EACCES (2) for bind and send_to.
    assert_eq!(
        r.stdout,
        "connect errno 14\nbind errno 2\nsend_to errno 2\n"
    );
    let refusal = format!("connect 127.0.0.1:{port}: refused");
    assert!(
        r.stderr.contains(&refusal) && r.stderr.contains("--net-allow connect=HOST:PORT"),
        "the trace explains the refusal: {}",
        r.stderr
    );
    // A rule for another port refuses too; one for this port lets the connect through,
    // and the trace names it.
    let other = format!("connect=localhost:{}", u16::MAX);
    let r = run(&["run", "--net-allow", &other, path_str(&g), "denied", &port]);
    assert!(r.stdout.starts_with("connect errno 14\n"), "{}", r.stdout);
    let this = format!("connect=127.0.0.1:{port}");
    let r = run_traced(&["run", "--net-allow", &this, path_str(&g), "denied", &port]);
    assert!(r.stdout.starts_with("connect errno 0\n"), "{}", r.stdout);
    assert!(
        r.stderr.contains(&format!("allowed by --net-allow {this}")),
        "{}",
        r.stderr
    );
}

#[test]
fn bad_policy_rules_are_named() {
    let r = run(&[
        "run",
        "--net-allow",
        "listen=*:80",
        path_str(&guest("net.wasm")),
        "udp",
    ]);
    r.clean_error("bad --net-allow rule `listen=*:80`: unknown operation `listen`");
}

#[test]
fn localhost_always_resolves_and_other_names_need_a_grant() {
    let g = guest("net.wasm");
    let r = run(&["run", path_str(&g), "resolve", "localhost"]);
    r.success();
    assert_eq!(r.stdout, "localhost 127.0.0.1\nlocalhost ::1\n");
    let r = run(&["run", path_str(&g), "resolve", "example.invalid"]);
    assert_eq!(r.stdout, "resolve example.invalid: errno 2\n");
}

#[test]
fn an_http_guest_serves_a_file_to_curl() {
    let dir = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.path().join("blob"), &body).unwrap();
    let mount = format!("{}::/srv", path_str(dir.path()));
    let server = Server::start(&["--net", "--dir", &mount], &["http", "/srv/blob", "2"]);
    let url = format!("http://127.0.0.1:{}/blob", server.port);
    for _ in 0..2 {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "60", &url])
            .output()
            .expect("curl (scripts/setup.sh installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == body, "curl got {} bytes", out.stdout.len());
    }
    assert_eq!(server.finish(), "http served 2\n");
}

#[test]
fn a_pre_forked_pool_shares_one_listener() {
    let mut server = Server::start(&["--net"], &["prefork", "4"]);
    assert_eq!(server.line(), "workers ready\n");
    let mut workers = std::collections::HashSet::new();
    for _ in 0..4 {
        let mut reply = String::new();
        connect(server.port).read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("worker "), "{reply}");
        workers.insert(reply);
    }
    // Each worker serves one connection: four different processes answered.
    assert_eq!(workers.len(), 4, "{workers:?}");
    assert_eq!(server.finish(), "pool done\n");
}

/// `first-listen`: the snapshot is taken just before the first listen; a restore binds the
/// socket to the same address again, listens and serves at once.
#[test]
fn a_first_listen_snapshot_restores_to_a_listening_server() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let j = path_str(&journal);
    let g = guest("net.wasm");
    let r = run(&[
        "run",
        "--net",
        "--journal",
        j,
        "--snapshot-on",
        "first-listen",
        "--stop-after-snapshot",
        path_str(&g),
        "tcp-server",
    ]);
    assert_eq!(r.code, 75, "stopped after the snapshot: {}", r.stderr);
    assert_eq!(r.stdout, "", "nothing printed before the listen");
    let mut server = Server::start(&["--net", "--journal", j], &["tcp-server"]);
    let mut c = connect(server.port);
    c.write_all(b"after restore\n").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = String::new();
    c.read_to_string(&mut back).unwrap();
    assert_eq!(back, "after restore\n");
    assert_eq!(server.line(), "peer [127, 0, 0, 1]\n");
    assert_eq!(server.finish(), "server done\n");
}

/// A connection open at a snapshot cannot follow the process: after a restore it reads as
/// reset by its peer (ECONNRESET, 15).
#[test]
fn a_connection_open_at_a_snapshot_reads_as_reset_after_a_restore() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let j = path_str(&journal);
    let flags = ["--net", "--journal", j, "--stop-after-snapshot"];
    let server = Server::start(&flags, &["snapshot-conn"]);
    let mut c = connect(server.port);
    c.write_all(b"one\n").unwrap();
    let mut back = [0u8; 4];
    c.read_exact(&mut back).unwrap();
    let Server { mut child, .. } = server;
    assert_eq!(child.wait().unwrap().code(), Some(75));
    drop(c);
    let r = run(&[
        "run",
        "--net",
        "--journal",
        j,
        path_str(&guest("net.wasm")),
        "snapshot-conn",
    ]);
    r.success();
    assert_eq!(r.stdout, "after the snapshot: read errno 15\n");
}

/// Socket options set and read back (keep-alive, no-delay, buffer size, linger, the type);
/// a receive timeout ends a blocked read with EAGAIN (6); poll_oneoff sees a socket
/// become readable.
#[test]
fn socket_options_timeouts_and_poll_oneoff() {
    // The receive-timeout socket binds an ephemeral port on loopback: that rule allows it.
    let r = run(&[
        "run",
        "--net-allow",
        "bind=localhost:0",
        path_str(&guest("net.wasm")),
        "options",
    ]);
    r.success();
    assert_eq!(
        r.stdout,
        "keepalive 1 nodelay 1 rcvbuf>=65536 true linger 3s type 1/2 listening 0\n\
         recv with a 50 ms timeout: errno 6 after >= 50 ms: true\n\
         poll_oneoff on a socket: readable before false, after a write true\n"
    );
}

/// A unix socket bound to a path inside a mount: the socket file appears there, a client
/// connects to it by the same guest path; a path outside every mount is ENOENT (44); a
/// symlink in the mount to a host socket outside it is refused (ECONNREFUSED, 14).
#[test]
fn unix_sockets_live_inside_the_mounts() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let host_socket = outside.path().join("host.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&host_socket).unwrap();
    std::os::unix::fs::symlink(&host_socket, dir.path().join("link.sock")).unwrap();
    let mount = format!("{}::/run", path_str(dir.path()));
    let r = run(&[
        "run",
        "--dir",
        &mount,
        path_str(&guest("net.wasm")),
        "unix",
        "/run/app.sock",
        "/run/link.sock",
    ]);
    r.success();
    assert_eq!(
        r.stdout,
        "over a unix socket\nbind outside the mounts: errno 44\nconnect through a symlink: errno 14\n"
    );
    let made = std::fs::symlink_metadata(dir.path().join("app.sock")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_socket(&made.file_type()));
}

/// epoll over a pipe, an eventfd and stdin: a timeout with nothing ready, then each as it
/// becomes readable.
#[test]
fn epoll_watches_pipes_eventfds_and_stdin() {
    let g = guest("net.wasm");
    let mut child = wasmix()
        .args(["run", path_str(&g), "epoll-kinds"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    assert_eq!(
        read_line(&mut out),
        "nothing ready within 30 ms: [] (waited >= 30 ms: true)\n"
    );
    assert_eq!(read_line(&mut out), "pipe and eventfd ready: [1, 2]\n");
    stdin.write_all(b"x").unwrap();
    assert_eq!(read_line(&mut out), "stdin ready: [3]\n");
    assert!(child.wait().unwrap().success());
}

/// IPv6: a listener on [::1], a client, the accepted peer's address handed back.
#[test]
fn tcp_over_ipv6_loopback() {
    let r = run(&[
        "run",
        "--net-allow",
        "bind=[::1]:0,connect=localhost:*",
        path_str(&guest("net.wasm")),
        "tcp6",
    ]);
    r.success();
    assert_eq!(
        r.stdout,
        "over ipv6\nfamilies 2 2, peer is the client: true, loopback: true\n"
    );
}

/// A listener handed to a spawned child (posix_spawn's dup2 file action) is the same socket
/// there: the child accepts the connection made to the parent's port.
#[test]
fn a_spawned_child_accepts_on_its_parents_listener() {
    let bin = format!(
        "{}::/bin",
        path_str(common::guest("net.wasm").parent().unwrap())
    );
    let mut server = Server::start(&["--net", "--dir", &bin], &["spawn-worker"]);
    assert_eq!(server.line(), "spawned\n");
    let mut reply = String::new();
    connect(server.port).read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "a spawned child accepted\n");
    assert_eq!(server.finish(), "worker done\n");
}

/// A 2022-era binary's `sock_open` with socket type 0 gets a datagram socket (that ABI's
/// numbering; the source is cited in the guest).
#[test]
fn the_2022_socket_type_numbering_opens_a_datagram_socket() {
    run(&["run", path_str(&guest("sock_2022.wat"))]).success();
}

/// A `sock_send_file` that never has to wait (an endless file, a client reading as fast as
/// it can) still stops for a signal: the alarm's handler runs and the call returns what it
/// sent so far.
#[test]
fn an_endless_send_file_stops_for_a_signal() {
    let mut server = Server::start(&["--net", "--dir", "/dev::/zero"], &["send-forever"]);
    let mut c = connect(server.port);
    let mut sink = vec![0u8; 1 << 20];
    let mut total = 0usize;
    loop {
        match c.read(&mut sink) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => panic!("read: {e}"),
        }
    }
    assert!(total > 0);
    assert_eq!(
        server.line(),
        "send_file ended: errno 0, some sent: true, alarms 1\n"
    );
    server.finish();
}
