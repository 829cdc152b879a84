//! The descriptor table as a journal records it, and rebuilding a table from that record.
//!
//! Files and directories are recorded by the preopen they were opened beneath and their path
//! there (a restore opens them again, at the same offset); pipes inside the process by an id
//! shared by their ends, with the bytes buffered in them (copied out with `tee`, so the live
//! pipe keeps them; a two-way pipe's, a socket pair's, peeked at each end); stdio by number (a restore hands over the new run's stdio); synthetic
//! devices by name. What cannot be carried over (sockets, host streams) is recorded as lost
//! and comes back closed.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use wasmix_journal::record::{self, PipeEnd};

use crate::abi::{fdflags, rights};
use crate::errno::Errno;
use crate::fs::{open_host, FileSystem};
use crate::node::{Device, HostFd, Node, OpenFile};
use crate::table::FdEntry;

/// Why a recorded table cannot be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// A file or directory the snapshot had open is gone or cannot be opened.
    #[error("cannot reopen {what} `{mount}` / `{path}` (descriptor {fd}): {errno}")]
    Reopen {
        /// "file" or "directory".
        what: &'static str,
        /// The preopen it was beneath.
        mount: String,
        /// Its path there.
        path: String,
        /// The descriptor.
        fd: u32,
        /// What opening it said.
        errno: Errno,
    },
    /// A preopen the snapshot had is not mounted in this run.
    #[error(
        "the snapshot had `{mount}` mounted (descriptor {fd}); mount it again (--dir HOST::{mount})"
    )]
    Unmounted {
        /// The preopen's name.
        mount: String,
        /// The descriptor.
        fd: u32,
    },
    /// The host refused a pipe, a descriptor or a write.
    #[error("cannot rebuild descriptor {fd}: {errno}")]
    Host {
        /// The descriptor.
        fd: u32,
        /// What the host said.
        errno: Errno,
    },
}

impl FileSystem {
    /// The descriptor table and working directory as a journal records them. Call it while
    /// no thread of the process runs: it reads offsets and pipe contents.
    pub fn describe(&self) -> record::Files {
        self.describe_in(0, &mut Recorded::default())
    }

    /// [`FileSystem::describe`] for process `pid` of a tree whose processes are described
    /// one after the other with the same `recorded`: a description an earlier process
    /// holds is recorded as that one's ([`record::Node::Inherited`]). Call it while no
    /// thread of any of them runs.
    pub fn describe_in(&self, pid: u32, recorded: &mut Recorded) -> record::Files {
        let table = self.table();
        let mut fds = Vec::new();
        for fd in table.fds() {
            let Ok(entry) = table.get(fd) else { continue };
            let file = entry.file();
            let key = Arc::as_ptr(file) as usize;
            let first = recorded.seen.get(&key).copied();
            recorded.seen.entry(key).or_insert((pid, fd));
            let (node, shares) = match first {
                // The description is recorded once, at its lowest descriptor.
                Some((p, lower)) if p == pid => (record::Node::Lost("shared".into()), Some(lower)),
                Some((p, lower)) => (record::Node::Inherited { pid: p, fd: lower }, None),
                None => (
                    describe_node(file, entry.rights_base(), &mut recorded.read_out),
                    None,
                ),
            };
            fds.push(record::Fd {
                fd,
                node,
                flags: file.flags(),
                rights_base: entry.rights_base(),
                rights_inheriting: entry.rights_inheriting(),
                cloexec: entry.cloexec(),
                preopen: entry.preopen().map(str::to_owned),
                shares,
            });
        }
        record::Files {
            cwd: self.cwd(),
            fds,
        }
    }

    /// The table `files` records, rebuilt over `base` — a file system made for this run with
    /// the same mounts (its stdio and preopens are what the record's stdio and preopens
    /// become).
    /// Sockets come back bound where they were (listening again if they listened) where
    /// `may_bind` allows the address, else closed; connected ones come back reset.
    pub fn restore(
        base: &FileSystem,
        files: &record::Files,
        may_bind: &dyn Fn(std::net::SocketAddr) -> bool,
    ) -> Result<FileSystem, RestoreError> {
        FileSystem::restore_in(base, files, may_bind, 0, &mut Rebuilt::default())
    }

    /// [`FileSystem::restore`] for process `pid` of a tree whose processes are rebuilt one
    /// after the other, in the order they were described, with the same `rebuilt`: a
    /// description recorded at an earlier process is shared with it, and the pipes are the
    /// same pipes. Ends no process took are closed when `rebuilt` is dropped, so drop it
    /// once the whole tree is rebuilt.
    pub fn restore_in(
        base: &FileSystem,
        files: &record::Files,
        may_bind: &dyn Fn(std::net::SocketAddr) -> bool,
        pid: u32,
        rebuilt: &mut Rebuilt,
    ) -> Result<FileSystem, RestoreError> {
        let restored = FileSystem::empty(base);
        let base_table = base.table();
        let Rebuilt {
            descriptions,
            pipes,
            duplexes,
        } = rebuilt;
        // First the pipes, so both ends exist whichever comes first in the table.
        for f in &files.fds {
            if let record::Node::DuplexPipe {
                id,
                first,
                buffered,
            } = &f.node
            {
                let host = |errno| RestoreError::Host { fd: f.fd, errno };
                if !duplexes.contains_key(id) {
                    duplexes.insert(*id, Duplex::new().map_err(host)?);
                }
                // What waits to be read at this end was written at the other (which another
                // process may hold already: its feed is kept for this).
                write_all(&duplexes[id].feeds[usize::from(*first)], buffered).map_err(host)?;
            }
            if let record::Node::Pipe { id, end, buffered } = &f.node {
                let host = |errno| RestoreError::Host { fd: f.fd, errno };
                if !pipes.contains_key(id) {
                    pipes.insert(*id, Pipe::new().map_err(host)?);
                }
                if *end == PipeEnd::Read && !buffered.is_empty() {
                    write_all(&pipes[id].feed, buffered).map_err(host)?;
                }
            }
        }
        for f in &files.fds {
            let shared = match (&f.node, f.shares) {
                (record::Node::Inherited { pid, fd }, _) => Some((*pid, *fd)),
                (_, Some(lower)) => Some((pid, lower)),
                _ => None,
            };
            let file = if let Some(key) = shared {
                match descriptions.get(&key) {
                    Some(file) => Arc::clone(file),
                    None => continue,
                }
            } else {
                let Some(file) = restore_node(&base_table, pipes, duplexes, may_bind, f)? else {
                    continue;
                };
                // APPEND and NONBLOCK as the guest last set them.
                let _ = file.set_flags(f.flags);
                file
            };
            descriptions.insert((pid, f.fd), Arc::clone(&file));
            let mut entry = FdEntry::shared(file, f.rights_base, f.rights_inheriting, f.cloexec);
            if let Some(p) = &f.preopen {
                entry = entry.preopened(p.clone());
            }
            restored
                .table_mut()
                .insert_at(f.fd, entry)
                .map_err(|errno| RestoreError::Host { fd: f.fd, errno })?;
        }
        drop(base_table);
        restored.set_cwd(files.cwd.clone());
        Ok(restored)
    }
}

/// What one snapshot's descriptor tables have recorded so far (see
/// [`FileSystem::describe_in`]).
#[derive(Default)]
pub struct Recorded {
    /// Open file descriptions (by address) → the process and descriptor recording them.
    seen: HashMap<usize, (u32, u32)>,
    read_out: ReadOut,
}

/// What one snapshot's descriptor tables have rebuilt so far (see
/// [`FileSystem::restore_in`]).
#[derive(Default)]
pub struct Rebuilt {
    /// Descriptions by the process and descriptor that recorded them.
    descriptions: HashMap<(u32, u32), Arc<OpenFile>>,
    /// One-way pipes by id.
    pipes: HashMap<u64, Pipe>,
    duplexes: HashMap<u64, Duplex>,
}

/// Pipe ends whose waiting bytes are recorded already (they travel with the first descriptor
/// recorded for that end).
#[derive(Default)]
struct ReadOut {
    /// One-way pipes, by id (their read end).
    pipes: std::collections::HashSet<u64>,
    /// Two-way pipes, by id and end.
    duplex: std::collections::HashSet<(u64, bool)>,
}

/// A one-way pipe being rebuilt: its ends until a descriptor takes them, and a duplicate
/// of its write end that the bytes recorded as waiting in it are written through (whichever
/// process took the write end by then). Dropped with the [`Rebuilt`] it is in.
struct Pipe {
    read: Option<OwnedFd>,
    write: Option<OwnedFd>,
    feed: OwnedFd,
}

impl Pipe {
    fn new() -> Result<Pipe, Errno> {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let feed = rustix::io::fcntl_dupfd_cloexec(&w, 0)?;
        Ok(Pipe {
            read: Some(r),
            write: Some(w),
            feed,
        })
    }
}

/// A two-way pipe being rebuilt: its ends (the first at index 0) until taken, duplicates
/// of them to write the bytes waiting at the other end through, and its id.
struct Duplex {
    ends: [Option<OwnedFd>; 2],
    feeds: [OwnedFd; 2],
    id: u64,
}

impl Duplex {
    fn new() -> Result<Duplex, Errno> {
        let (a, b, id) = crate::fs::duplex_ends()?;
        let feeds = [
            rustix::io::fcntl_dupfd_cloexec(&a, 0)?,
            rustix::io::fcntl_dupfd_cloexec(&b, 0)?,
        ];
        Ok(Duplex {
            ends: [Some(a), Some(b)],
            feeds,
            id,
        })
    }
}

fn describe_node(file: &OpenFile, rights_base: u64, read_out: &mut ReadOut) -> record::Node {
    let lost = |what: &str| record::Node::Lost(what.into());
    if let (Some((id, first)), Node::Stream(HostFd::Owned(fd))) = (file.duplex(), file.node()) {
        let buffered = if read_out.duplex.insert((id, first)) {
            peek_socket(fd).unwrap_or_default()
        } else {
            Vec::new()
        };
        return record::Node::DuplexPipe {
            id,
            first,
            buffered,
        };
    }
    match file.node() {
        Node::Stream(HostFd::Inherited(fd)) => {
            use std::os::fd::AsRawFd;
            match u8::try_from(fd.as_raw_fd()) {
                Ok(n) if n <= 2 => record::Node::Stdio(n),
                _ => lost("an inherited host descriptor"),
            }
        }
        Node::Stream(HostFd::Owned(fd)) if file.opened_socket() => {
            crate::socket::describe(fd).unwrap_or_else(|| lost("a socket"))
        }
        Node::Stream(HostFd::Owned(fd)) => {
            let Ok(st) = rustix::fs::fstat(fd) else {
                return lost("a host stream");
            };
            if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Fifo {
                return lost("a host stream (socket, eventfd or device)");
            }
            let id = st.st_ino;
            let end = if rights_base & rights::FD_READ != 0 {
                PipeEnd::Read
            } else {
                PipeEnd::Write
            };
            // The bytes travel with the first read end recorded.
            let buffered = if end == PipeEnd::Read && read_out.pipes.insert(id) {
                peek_pipe(fd).unwrap_or_default()
            } else {
                Vec::new()
            };
            record::Node::Pipe { id, end, buffered }
        }
        Node::File(f) => match file.path() {
            Some((mount, path)) => record::Node::File {
                mount: mount.to_owned(),
                path: path.to_owned(),
                offset: rustix::fs::seek(f, rustix::fs::SeekFrom::Current(0)).unwrap_or(0),
                read: rights_base & rights::FD_READ != 0,
                write: rights_base & rights::FD_WRITE != 0,
            },
            None => lost("a file opened without a path"),
        },
        Node::Dir(_) => match file.path() {
            Some((mount, path)) => record::Node::Dir {
                mount: mount.to_owned(),
                path: path.to_owned(),
            },
            None => lost("a directory opened without a path"),
        },
        Node::Device(d) => record::Node::Device(
            Device::ALL
                .iter()
                .find(|(_, dev)| dev == d)
                .map_or("null", |(n, _)| n)
                .to_owned(),
        ),
        Node::DevDir => record::Node::DevDir,
        Node::Epoll(_) => lost("an epoll instance"),
    }
}

/// The bytes waiting in the pipe whose read end is `fd`, left in place: `tee` copies them
/// into a scratch pipe, which is read out.
fn peek_pipe(fd: &OwnedFd) -> Result<Vec<u8>, Errno> {
    let waiting = rustix::io::ioctl_fionread(fd.as_fd())? as usize;
    if waiting == 0 {
        return Ok(Vec::new());
    }
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    // A scratch pipe large enough for everything waiting (a pipe holds at most its size).
    let _ = rustix::pipe::fcntl_setpipe_size(&w, waiting);
    let copied = rustix::pipe::tee(fd, &w, waiting, rustix::pipe::SpliceFlags::NONBLOCK)?;
    drop(w);
    let mut out = vec![0u8; copied];
    let mut done = 0;
    while done < copied {
        let n = rustix::io::read(&r, &mut out[done..])?;
        if n == 0 {
            break;
        }
        done += n;
    }
    out.truncate(done);
    Ok(out)
}

/// The bytes waiting to be read at the socket `fd`, left in place (peeked).
fn peek_socket(fd: &OwnedFd) -> Result<Vec<u8>, Errno> {
    let waiting = rustix::io::ioctl_fionread(fd.as_fd())? as usize;
    let mut out = vec![0u8; waiting];
    let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
    let (got, _) = rustix::net::recv(fd, &mut out, flags)?;
    out.truncate(got);
    Ok(out)
}

fn write_all(fd: &OwnedFd, mut bytes: &[u8]) -> Result<(), Errno> {
    // A pipe holds 64 KiB by default; grow it for larger contents so this cannot block.
    if bytes.len() > 65536 {
        rustix::pipe::fcntl_setpipe_size(fd, bytes.len())?;
    }
    while !bytes.is_empty() {
        let n = rustix::io::write(fd, bytes)?;
        bytes = &bytes[n..];
    }
    Ok(())
}

fn restore_node(
    base: &crate::table::FdTable,
    pipes: &mut HashMap<u64, Pipe>,
    duplexes: &mut HashMap<u64, Duplex>,
    may_bind: &dyn Fn(std::net::SocketAddr) -> bool,
    f: &record::Fd,
) -> Result<Option<Arc<OpenFile>>, RestoreError> {
    let node = match &f.node {
        record::Node::Socket { .. } => {
            let made = crate::socket::restore(&f.node, may_bind)
                .map_err(|errno| RestoreError::Host { fd: f.fd, errno })?;
            return Ok(made.map(|fd| Arc::new(OpenFile::socket(fd, f.flags))));
        }
        record::Node::DuplexPipe { id, first, .. } => {
            let Some(pipe) = duplexes.get_mut(id) else {
                return Ok(None);
            };
            let Some(fd) = pipe.ends[usize::from(!*first)].take() else {
                return Ok(None); // a second descriptor of one end shares it instead
            };
            let file = OpenFile::new(Node::Stream(HostFd::Owned(fd)), f.flags);
            return Ok(Some(Arc::new(file.with_duplex(pipe.id, *first))));
        }
        record::Node::Stdio(n) => {
            // This run's stream `n`, as its fd table has it.
            let Ok(entry) = base.get(u32::from(*n)) else {
                return Ok(None);
            };
            return Ok(Some(Arc::clone(entry.file())));
        }
        record::Node::Pipe { id, end, .. } => {
            let Some(ends) = pipes.get_mut(id) else {
                return Ok(None);
            };
            let fd = match end {
                PipeEnd::Read => ends.read.take(),
                PipeEnd::Write => ends.write.take(),
            };
            match fd {
                Some(fd) => Node::Stream(HostFd::Owned(fd)),
                None => return Ok(None), // a second descriptor of one end shares it instead
            }
        }
        record::Node::Device(name) => Node::Device(Device::by_name(name).unwrap_or(Device::Null)),
        record::Node::DevDir => Node::DevDir,
        // Inherited descriptions are looked up, never rebuilt, by the caller.
        record::Node::Lost(_) | record::Node::Inherited { .. } => return Ok(None),
        record::Node::File {
            mount,
            path,
            offset,
            read,
            write,
        } => {
            let file = reopen(base, mount, path, Some((*read, *write)), f)?;
            if let Node::File(host) = file.node() {
                rustix::fs::seek(host, rustix::fs::SeekFrom::Start(*offset)).map_err(|e| {
                    RestoreError::Host {
                        fd: f.fd,
                        errno: Errno::from(e),
                    }
                })?;
            }
            return Ok(Some(file));
        }
        record::Node::Dir { mount, path } => {
            return reopen(base, mount, path, None, f).map(Some);
        }
    };
    Ok(Some(Arc::new(OpenFile::new(node, f.flags))))
}

/// Opens `path` beneath the preopen named `mount` in `base`: a file with `access`
/// (read, write), else a directory (the preopen itself for `.`).
fn reopen(
    base: &crate::table::FdTable,
    mount: &str,
    path: &str,
    access: Option<(bool, bool)>,
    f: &record::Fd,
) -> Result<Arc<OpenFile>, RestoreError> {
    let preopen = base
        .fds()
        .filter_map(|fd| base.get(fd).ok())
        .find(|e| e.preopen() == Some(mount))
        .ok_or_else(|| RestoreError::Unmounted {
            mount: mount.to_owned(),
            fd: f.fd,
        })?;
    let what = if access.is_some() {
        "file"
    } else {
        "directory"
    };
    let failed = |errno| RestoreError::Reopen {
        what,
        mount: mount.to_owned(),
        path: path.to_owned(),
        fd: f.fd,
        errno,
    };
    if access.is_none() && path == "." {
        return Ok(Arc::clone(preopen.file()));
    }
    let Node::Dir(dir) = preopen.file().node() else {
        return Err(failed(Errno::Notdir));
    };
    // Opened as before, less creation and truncation: the file must still be there.
    let (oflags, want) = match access {
        None => (crate::abi::oflags::DIRECTORY, rights::FD_READDIR),
        Some((read, write)) => {
            let mut want = 0;
            if read {
                want |= rights::FD_READ;
            }
            if write {
                want |= rights::FD_WRITE;
            }
            (0, want)
        }
    };
    let keep = f.flags & (fdflags::APPEND | fdflags::NONBLOCK);
    let (node, _) = open_host(
        dir.dir(),
        std::path::Path::new(path),
        true,
        oflags,
        want,
        keep,
    )
    .map_err(failed)?;
    Ok(Arc::new(
        OpenFile::new(node, f.flags).with_path(mount, path),
    ))
}
