//! What a snapshot records, as plain data. Each structured kind is one type here, stored as
//! its postcard encoding; a later layout of a kind gets a new type and a new kind version,
//! and the old type stays so old journals still read.

use serde::{Deserialize, Serialize};

/// A snapshot starts: which one, why, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Begin {
    /// Sequence number, counting up from 1 in one journal.
    pub seq: u64,
    /// What asked for it (`explicit`, `sigint`, …).
    pub trigger: String,
    /// Wall-clock time of the snapshot, ns since the Unix epoch.
    pub wall_ns: u64,
    /// The process's monotonic clock at the snapshot, ns: a restored process's clock goes on
    /// from here, never back.
    pub monotonic_ns: u64,
}

/// The snapshot is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// The Begin's sequence number.
    pub seq: u64,
    /// Frames between the Begin and this Commit, padding excluded, Begin included.
    pub frames: u32,
    /// CRC32C over the little-endian payload CRCs of those frames, in order.
    pub chain: u32,
}

/// An incremental snapshot's memory: that of snapshot `seq` (itself possibly incremental),
/// with this snapshot's regions laid over it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    /// The snapshot it builds on (an earlier one in the same journal).
    pub seq: u64,
}

/// A signal's disposition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Disposition {
    /// The default action.
    Default,
    /// Ignored.
    Ignore,
    /// Delivered to the guest's handler (the value is the guest's handler word).
    Handler(u32),
}

/// An armed interval timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    /// The signal it raises.
    pub signal: u8,
    /// Time left until it fires, ns.
    pub remaining_ns: u64,
    /// Its period if it repeats, ns.
    pub repeat_ns: Option<u64>,
}

/// A 2023-ABI thread-local key and the values threads hold under it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadLocalKey {
    /// The key.
    pub key: u32,
    /// The guest's user data for the key's destructor.
    pub user_data: u64,
    /// (tid, value) pairs.
    pub values: Vec<(u32, u64)>,
}

/// The process as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// Its pid (restored as the same pid).
    pub pid: u32,
    /// `argv`.
    pub args: Vec<Vec<u8>>,
    /// `KEY=VALUE` entries.
    pub env: Vec<Vec<u8>>,
    /// Dispositions by signal number (index 0 unused).
    pub dispositions: Vec<Disposition>,
    /// Process-directed signals pending, as a bit mask by signal number.
    pub pending: u64,
    /// Armed interval timers.
    pub timers: Vec<Timer>,
    /// The guest export signals go to, once registered.
    pub signal_callback: Option<String>,
    /// 2023-ABI thread-local keys.
    pub thread_locals: Vec<ThreadLocalKey>,
}

/// Where a thread was started (what a rewind calls again).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// `_start` (after `_initialize`, if exported).
    #[default]
    Main,
    /// `wasi_thread_start(tid, arg)`.
    ThreadStart(i32),
    /// The 2023 WASIX `_start_thread`/`_react` form.
    Legacy {
        /// User data, handed over in two halves.
        user_data: u64,
        /// The stack pointer it starts with.
        stack_base: u64,
        /// `_react` rather than `_start_thread`.
        reactor: bool,
    },
}

/// A global's value, by its bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Global {
    /// i32.
    I32(i32),
    /// i64.
    I64(i64),
    /// f32 bits.
    F32(u32),
    /// f64 bits.
    F64(u64),
}

/// What the call a thread was captured in does when the thread is rewound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resume {
    /// Runs again from its start (a blocking call, a safe point).
    Restart,
    /// Returns this value.
    Return(u64),
    /// Returns this errno.
    Errno(u16),
}

/// One thread, stopped at a host call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread {
    /// Its tid (the main thread's is the pid).
    pub tid: u32,
    /// Whether it is the process's main thread.
    pub main: bool,
    /// Blocked signals, bit mask by number.
    pub mask: u64,
    /// Signals pending on the thread, bit mask by number.
    pub pending: u64,
    /// How it was started.
    pub entry: Entry,
    /// Mutable globals by export name.
    pub globals: Vec<(String, Global)>,
    /// Address of its asyncify data area.
    pub unwind_area: u32,
    /// asyncify's data: every frame's locals and resume point.
    pub unwind_data: Vec<u8>,
    /// Shadow stack pointer at capture.
    pub stack_pointer: u32,
    /// Its stack's highest address, when known.
    pub stack_top: Option<u32>,
    /// What the interrupted call does when rewound.
    pub resume: Resume,
}

/// How a process of the tree that has ended but is not yet reaped (a zombie) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ended {
    /// It exited with this code.
    Exited(i32),
    /// A signal ended it.
    Signaled(u8),
}

/// A process of the snapshot's tree other than its root (a child, a grandchild, …). The
/// Process, Thread, Files, Memory and Region records after it, up to the next Member, are
/// this process's; an ended one (a zombie) has none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its pid (restored as the same pid).
    pub pid: u32,
    /// Its parent's pid: the root or a member recorded before it.
    pub parent: u32,
    /// BLAKE3 of the module it runs (the journal's own module for a fork of the root).
    pub module: [u8; 32],
    /// The guest path that module was loaded from (empty for the journal's module): where a
    /// restore finds it again.
    pub path: String,
    /// Set for a zombie: how it ended.
    pub ended: Option<Ended>,
}

/// One end of a pipe inside the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PipeEnd {
    /// The end that reads.
    Read,
    /// The end that writes.
    Write,
}

/// What a descriptor refers to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Node {
    /// One of the host's standard streams (0, 1, 2) the process was given.
    Stdio(u8),
    /// A regular file, by its path beneath a preopen, at this offset.
    File {
        /// The preopen's name.
        mount: String,
        /// Its path beneath the preopen.
        path: String,
        /// The shared offset.
        offset: u64,
        /// Whether it was opened for reading.
        read: bool,
        /// Whether it was opened for writing.
        write: bool,
    },
    /// A directory, by its path beneath a preopen (`.`: the preopen itself).
    Dir {
        /// The preopen's name.
        mount: String,
        /// Its path beneath the preopen.
        path: String,
    },
    /// An end of a pipe within the process; both ends share `id`; bytes written but not yet
    /// read travel with the read end.
    Pipe {
        /// Which pipe.
        id: u64,
        /// Which end.
        end: PipeEnd,
        /// Buffered bytes (read end only).
        buffered: Vec<u8>,
    },
    /// A synthetic `/dev` node, by name.
    Device(String),
    /// The synthetic `/dev` directory.
    DevDir,
    /// A descriptor that cannot be carried over (a socket, a host stream): restored closed.
    Lost(String),
    /// An end of a pipe that carries bytes both ways (WASIX `fd_pipe`); both ends share `id`.
    DuplexPipe {
        /// Which pipe.
        id: u64,
        /// Which end: the first `fd_pipe` returned, or the second.
        first: bool,
        /// Bytes written at the other end, waiting to be read at this one.
        buffered: Vec<u8>,
    },
    /// A socket the guest opened or accepted. Restored bound to `local` again (and
    /// listening again if it was) when it was not connected; a connected one comes back
    /// reset (its peer is gone), so it reads ECONNRESET.
    Socket {
        /// A stream (TCP) socket rather than a datagram one.
        stream: bool,
        /// IPv6 rather than IPv4.
        v6: bool,
        /// The address it was bound to, if any.
        local: Option<SocketAddress>,
        /// Whether it was listening.
        listening: bool,
        /// Whether it was connected to a peer.
        connected: bool,
    },
    /// The open file description of descriptor `fd` of process `pid`, recorded earlier in
    /// the same snapshot: one description shared by processes of a tree (inherited across
    /// fork or spawn), so offset, flags and pipe ends stay shared after a restore.
    Inherited {
        /// The process that records it first.
        pid: u32,
        /// Its descriptor there.
        fd: u32,
    },
}

/// A socket's address (an IPv6 one's scope too, which a plain `SocketAddr` loses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketAddress {
    /// The address.
    pub ip: std::net::IpAddr,
    /// The port.
    pub port: u16,
    /// The IPv6 scope id (0 for IPv4).
    pub scope_id: u32,
}

impl From<std::net::SocketAddr> for SocketAddress {
    fn from(a: std::net::SocketAddr) -> SocketAddress {
        let scope_id = match a {
            std::net::SocketAddr::V6(v6) => v6.scope_id(),
            std::net::SocketAddr::V4(_) => 0,
        };
        SocketAddress {
            ip: a.ip(),
            port: a.port(),
            scope_id,
        }
    }
}

impl From<SocketAddress> for std::net::SocketAddr {
    fn from(a: SocketAddress) -> std::net::SocketAddr {
        match a.ip {
            std::net::IpAddr::V6(ip) => {
                std::net::SocketAddrV6::new(ip, a.port, 0, a.scope_id).into()
            }
            v4 => std::net::SocketAddr::new(v4, a.port),
        }
    }
}

/// One descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fd {
    /// Its number.
    pub fd: u32,
    /// What it refers to.
    pub node: Node,
    /// WASI fdflags.
    pub flags: u16,
    /// Base rights.
    pub rights_base: u64,
    /// Inheriting rights.
    pub rights_inheriting: u64,
    /// Closed on exec.
    pub cloexec: bool,
    /// The preopen name, for preopened directories.
    pub preopen: Option<String>,
    /// A lower descriptor sharing this one's open file description (dup, or inherited), so
    /// they keep sharing offset and flags.
    pub shares: Option<u32>,
}

/// The descriptor table and working directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Files {
    /// Working directory (absolute guest path).
    pub cwd: String,
    /// Every open descriptor.
    pub fds: Vec<Fd>,
}

/// A linear memory's shape at the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    /// Which memory of the module.
    pub index: u32,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it is shared between threads.
    pub shared: bool,
}

/// How a region's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    /// The bytes as they are, on a page of the file (a restore maps them).
    Raw,
    /// lz4 block-compressed.
    Lz4,
    /// All zeros, nothing stored: a page an incremental snapshot found zeroed.
    Zero,
    /// lz4 block-compressed XOR of the bytes with the chain's full snapshot's bytes there
    /// (zeros where it holds none): a page an incremental snapshot found changed in a few
    /// bytes is stored in tens of bytes. Only in an increment's root process, over a full
    /// snapshot that holds those bytes raw or not at all; read with
    /// [`crate::Journal::read_layered`].
    Xor,
}

impl Encoding {
    pub(crate) fn number(self) -> u8 {
        match self {
            Encoding::Raw => 0,
            Encoding::Lz4 => 1,
            Encoding::Zero => 2,
            Encoding::Xor => 3,
        }
    }

    pub(crate) fn from_number(n: u8) -> Option<Encoding> {
        match n {
            0 => Some(Encoding::Raw),
            1 => Some(Encoding::Lz4),
            2 => Some(Encoding::Zero),
            3 => Some(Encoding::Xor),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip<T: Serialize + for<'a> Deserialize<'a> + PartialEq + std::fmt::Debug>(v: &T) {
        let bytes = postcard::to_allocvec(v).unwrap();
        let back: T = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(&back, v);
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..64)
    }

    fn disposition() -> impl Strategy<Value = Disposition> {
        prop_oneof![
            Just(Disposition::Default),
            Just(Disposition::Ignore),
            any::<u32>().prop_map(Disposition::Handler)
        ]
    }

    fn entry() -> impl Strategy<Value = Entry> {
        prop_oneof![
            Just(Entry::Main),
            any::<i32>().prop_map(Entry::ThreadStart),
            (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(u, s, r)| Entry::Legacy {
                user_data: u,
                stack_base: s,
                reactor: r
            })
        ]
    }

    fn global() -> impl Strategy<Value = Global> {
        prop_oneof![
            any::<i32>().prop_map(Global::I32),
            any::<i64>().prop_map(Global::I64),
            any::<u32>().prop_map(Global::F32),
            any::<u64>().prop_map(Global::F64)
        ]
    }

    fn resume() -> impl Strategy<Value = Resume> {
        prop_oneof![
            Just(Resume::Restart),
            any::<u64>().prop_map(Resume::Return),
            any::<u16>().prop_map(Resume::Errno)
        ]
    }

    fn node() -> impl Strategy<Value = Node> {
        prop_oneof![
            any::<u8>().prop_map(Node::Stdio),
            (".*", ".*", any::<u64>(), any::<bool>(), any::<bool>()).prop_map(
                |(mount, path, offset, read, write)| Node::File {
                    mount,
                    path,
                    offset,
                    read,
                    write,
                }
            ),
            (".*", ".*").prop_map(|(mount, path)| Node::Dir { mount, path }),
            (any::<u64>(), any::<bool>(), bytes()).prop_map(|(id, r, buffered)| Node::Pipe {
                id,
                end: if r { PipeEnd::Read } else { PipeEnd::Write },
                buffered
            }),
            ".*".prop_map(Node::Device),
            Just(Node::DevDir),
            ".*".prop_map(Node::Lost),
            (any::<u64>(), any::<bool>(), bytes()).prop_map(|(id, first, buffered)| {
                Node::DuplexPipe {
                    id,
                    first,
                    buffered,
                }
            }),
            (
                any::<[bool; 4]>(),
                proptest::option::of(any::<std::net::SocketAddr>())
            )
                .prop_map(|([stream, v6, listening, connected], local)| Node::Socket {
                    stream,
                    v6,
                    local: local.map(SocketAddress::from),
                    listening,
                    connected,
                }),
            (any::<u32>(), any::<u32>()).prop_map(|(pid, fd)| Node::Inherited { pid, fd }),
        ]
    }

    proptest! {
        #[test]
        fn begin_and_commit_round_trip(seq: u64, trigger in ".*", wall: u64, mono: u64, frames: u32, chain: u32) {
            round_trip(&Begin { seq, trigger, wall_ns: wall, monotonic_ns: mono });
            round_trip(&Commit { seq, frames, chain });
        }

        #[test]
        fn process_round_trips(
            pid: u32,
            args in proptest::collection::vec(bytes(), 0..4),
            env in proptest::collection::vec(bytes(), 0..4),
            dispositions in proptest::collection::vec(disposition(), 0..33),
            pending: u64,
            timers in proptest::collection::vec((any::<u8>(), any::<u64>(), any::<Option<u64>>()), 0..3),
            callback in proptest::option::of(".*"),
            locals in proptest::collection::vec((any::<u32>(), any::<u64>(), proptest::collection::vec((any::<u32>(), any::<u64>()), 0..3)), 0..3),
        ) {
            round_trip(&Process {
                pid,
                args,
                env,
                dispositions,
                pending,
                timers: timers.into_iter().map(|(signal, remaining_ns, repeat_ns)| Timer { signal, remaining_ns, repeat_ns }).collect(),
                signal_callback: callback,
                thread_locals: locals.into_iter().map(|(key, user_data, values)| ThreadLocalKey { key, user_data, values }).collect(),
            });
        }

        #[test]
        fn member_round_trips(
            pid: u32, parent: u32, module: [u8; 32], path in ".*",
            ended in proptest::option::of(prop_oneof![
                any::<i32>().prop_map(Ended::Exited),
                any::<u8>().prop_map(Ended::Signaled)
            ]),
        ) {
            round_trip(&Member { pid, parent, module, path, ended });
        }

        #[test]
        fn thread_round_trips(
            tid: u32, main: bool, mask: u64, pending: u64,
            entry in entry(),
            globals in proptest::collection::vec((".*", global()), 0..4),
            area: u32, data in bytes(), sp: u32, top: Option<u32>,
            resume in resume(),
        ) {
            round_trip(&Thread {
                tid, main, mask, pending, entry, globals,
                unwind_area: area, unwind_data: data, stack_pointer: sp, stack_top: top, resume,
            });
        }

        #[test]
        fn files_and_memory_round_trip(
            cwd in ".*",
            fds in proptest::collection::vec((any::<u32>(), node(), any::<u16>(), any::<u64>(), any::<u64>(), any::<bool>(), proptest::option::of(".*"), any::<Option<u32>>()), 0..5),
            index: u32, size: u64, shared: bool,
        ) {
            round_trip(&Files {
                cwd,
                fds: fds.into_iter().map(|(fd, node, flags, rights_base, rights_inheriting, cloexec, preopen, shares)| Fd {
                    fd, node, flags, rights_base, rights_inheriting, cloexec, preopen, shares,
                }).collect(),
            });
            round_trip(&Memory { index, size, shared });
        }
    }
}
