//! A descriptor table recorded and rebuilt: files at their offsets by path, shared
//! descriptions, pipes with their buffered bytes (left in the live pipe too), directories,
//! devices, the working directory, two-way pipes with bytes waiting at each end — and the
//! named errors when a file or mount is gone.

use std::io::IoSlice;

use wasmix_fs::abi::{oflags, rights, Whence};
use wasmix_fs::{Errno, FileSystem, Rebuilt, Recorded, RestoreError, Stdio};
use wasmix_journal::record::Node;

fn mounted(dir: &std::path::Path) -> FileSystem {
    FileSystem::builder()
        .stdio(0, Stdio::Null)
        .stdio(1, Stdio::Null)
        .stdio(2, Stdio::Null)
        .mount(dir, "/data")
        .unwrap()
        .build()
}

const FILE_RIGHTS: u64 = rights::FD_READ | rights::FD_WRITE | rights::FD_SEEK | rights::FD_TELL;

#[test]
fn a_table_is_rebuilt_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    let fs = mounted(tmp.path());
    let data = 3;
    let f = fs
        .open(
            data,
            false,
            b"sub/../log.txt",
            oflags::CREAT,
            FILE_RIGHTS,
            0,
            0,
        )
        .unwrap();
    fs.write(f, &[IoSlice::new(b"hello world")]).unwrap();
    fs.seek(f, 6, Whence::Set).unwrap();
    let dup = fs.dup(f, 0, true).unwrap();
    let sub = fs
        .open(
            data,
            false,
            b"sub",
            oflags::DIRECTORY,
            rights::DIR_BASE,
            rights::DIR_INHERITING,
            0,
        )
        .unwrap();
    let (r, w) = fs.pipe().unwrap();
    fs.write(w, &[IoSlice::new(b"in flight")]).unwrap();
    fs.chdir(b"/data/sub").unwrap();

    let record = fs.describe();
    let by_fd = |fd: u32| record.fds.iter().find(|e| e.fd == fd).unwrap();
    assert_eq!(
        by_fd(f).node,
        Node::File {
            mount: "/data".into(),
            path: "log.txt".into(),
            offset: 6,
            read: true,
            write: true
        }
    );
    assert_eq!(by_fd(dup).shares, Some(f));
    assert!(by_fd(dup).cloexec);
    assert_eq!(
        by_fd(sub).node,
        Node::Dir {
            mount: "/data".into(),
            path: "sub".into()
        }
    );
    assert!(matches!(&by_fd(r).node, Node::Pipe { buffered, .. } if buffered == b"in flight"));
    let mut left = [0u8; 16];
    assert_eq!(
        fs.read(r, &mut left),
        Ok(9),
        "the live pipe keeps its bytes"
    );

    let restored = FileSystem::restore(&mounted(tmp.path()), &record, &|_| true).unwrap();
    assert_eq!(restored.cwd(), "/data/sub");
    let mut buf = [0u8; 5];
    assert_eq!(restored.read(dup, &mut buf), Ok(5), "dup shares the offset");
    assert_eq!(&buf, b"world");
    assert_eq!(restored.tell(f), Ok(11), "…with the original descriptor");
    assert!(restored.cloexec(dup).unwrap());
    let mut piped = [0u8; 16];
    assert_eq!(restored.read(r, &mut piped), Ok(9));
    assert_eq!(&piped[..9], b"in flight");
    restored.write(w, &[IoSlice::new(b"more")]).unwrap();
    assert_eq!(restored.read(r, &mut piped), Ok(4));
    assert_eq!(restored.prestat(data).unwrap(), "/data");
    assert!(restored.readdir(sub, 0).is_ok());
    assert_eq!(restored.fdstat(f).unwrap().rights_base, FILE_RIGHTS);
}

/// Two processes of a tree (a parent and the child it forked) recorded one after the other:
/// the descriptions they share are recorded once, at the parent, and rebuilt shared — a
/// file's offset moves for both, and the pipe between them carries what was in flight and
/// what is written after; the end both closed in the parent reads end-of-file once the child
/// closes its own.
#[test]
fn a_tree_of_tables_keeps_its_shared_descriptions() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = mounted(tmp.path());
    let f = parent
        .open(3, false, b"log.txt", oflags::CREAT, FILE_RIGHTS, 0, 0)
        .unwrap();
    parent.write(f, &[IoSlice::new(b"0123456789")]).unwrap();
    parent.seek(f, 2, Whence::Set).unwrap();
    let (r, w) = parent.pipe().unwrap();
    // A two-way pipe whose end with bytes waiting is the child's, the process recorded
    // second: its bytes must still be fed in through the end the parent took first.
    let (a, b) = parent.duplex_pipe().unwrap();
    let child = parent.fork();
    parent.close(w).unwrap();
    child.close(r).unwrap();
    child.write(w, &[IoSlice::new(b"in flight")]).unwrap();
    parent.close(b).unwrap();
    child.close(a).unwrap();
    parent.write(a, &[IoSlice::new(b"to the child")]).unwrap();

    let mut recorded = Recorded::default();
    let parent_rec = parent.describe_in(1, &mut recorded);
    let child_rec = child.describe_in(2, &mut recorded);
    let node = |rec: &wasmix_journal::record::Files, fd: u32| {
        rec.fds.iter().find(|e| e.fd == fd).unwrap().node.clone()
    };
    assert!(matches!(node(&parent_rec, f), Node::File { offset: 2, .. }));
    assert_eq!(node(&child_rec, f), Node::Inherited { pid: 1, fd: f });
    assert!(
        matches!(node(&parent_rec, r), Node::Pipe { ref buffered, .. } if buffered == b"in flight")
    );
    assert!(
        matches!(node(&child_rec, w), Node::Pipe { .. }),
        "the write end is the child's alone"
    );

    let base = mounted(tmp.path());
    let mut rebuilt = Rebuilt::default();
    let parent2 = FileSystem::restore_in(&base, &parent_rec, &|_| true, 1, &mut rebuilt).unwrap();
    let child2 = FileSystem::restore_in(&base, &child_rec, &|_| true, 2, &mut rebuilt).unwrap();
    drop(rebuilt);
    let mut two = [0u8; 2];
    assert_eq!(child2.read(f, &mut two), Ok(2));
    assert_eq!(&two, b"23");
    assert_eq!(parent2.tell(f), Ok(4), "one offset for both processes");
    let mut buf = [0u8; 32];
    assert_eq!(parent2.read(r, &mut buf), Ok(9));
    assert_eq!(&buf[..9], b"in flight");
    child2.write(w, &[IoSlice::new(b"after")]).unwrap();
    assert_eq!(parent2.read(r, &mut buf), Ok(5));
    child2.close(w).unwrap();
    assert_eq!(
        parent2.read(r, &mut buf),
        Ok(0),
        "end of file once the writer closed"
    );
    assert_eq!(child2.read(b, &mut buf), Ok(12));
    assert_eq!(&buf[..12], b"to the child");
}

/// WASIX `fd_pipe`'s two-way pipe: bytes written at either end and not yet read at the other
/// are recorded with the end that will read them (left in the live pipe too), and the rebuilt
/// pipe has them there, carries bytes both ways, and records again as one pipe.
#[test]
fn a_two_way_pipe_is_rebuilt_with_what_waits_at_each_end() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = mounted(tmp.path());
    let (a, b) = fs.duplex_pipe().unwrap();
    fs.write(a, &[IoSlice::new(b"to b, ")]).unwrap();
    fs.write(a, &[IoSlice::new(b"twice")]).unwrap();
    fs.write(b, &[IoSlice::new(b"to a")]).unwrap();

    let record = fs.describe();
    let node = |fd: u32| record.fds.iter().find(|e| e.fd == fd).unwrap().node.clone();
    let Node::DuplexPipe {
        id,
        first: true,
        buffered,
    } = node(a)
    else {
        panic!("{:?}", node(a))
    };
    assert_eq!(buffered, b"to a");
    assert_eq!(
        node(b),
        Node::DuplexPipe {
            id,
            first: false,
            buffered: b"to b, twice".to_vec()
        }
    );
    let mut buf = [0u8; 32];
    assert_eq!(
        fs.read(b, &mut buf),
        Ok(11),
        "the live pipe keeps its bytes"
    );

    let restored = FileSystem::restore(&mounted(tmp.path()), &record, &|_| true).unwrap();
    assert_eq!(restored.read(a, &mut buf), Ok(4));
    assert_eq!(&buf[..4], b"to a");
    assert_eq!(restored.read(b, &mut buf), Ok(11));
    assert_eq!(&buf[..11], b"to b, twice");
    restored.write(b, &[IoSlice::new(b"back")]).unwrap();
    assert_eq!(restored.read(a, &mut buf), Ok(4));
    restored.write(a, &[IoSlice::new(b"forth")]).unwrap();
    let again = restored.describe();
    let ids: Vec<u64> = again
        .fds
        .iter()
        .filter_map(|e| match e.node {
            Node::DuplexPipe { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "both ends still name one pipe");
    assert_eq!(restored.read(b, &mut buf), Ok(5));
}

#[test]
fn a_missing_file_or_mount_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = mounted(tmp.path());
    let f = fs
        .open(3, false, b"gone.txt", oflags::CREAT, FILE_RIGHTS, 0, 0)
        .unwrap();
    let record = fs.describe();
    std::fs::remove_file(tmp.path().join("gone.txt")).unwrap();
    let Err(e) = FileSystem::restore(&mounted(tmp.path()), &record, &|_| true) else {
        panic!("restored without the file")
    };
    assert!(
        matches!(&e, RestoreError::Reopen { path, fd, errno: Errno::Noent, .. } if path == "gone.txt" && *fd == f),
        "{e}"
    );
    assert!(e.to_string().contains("gone.txt"));

    let elsewhere = tempfile::tempdir().unwrap();
    let other = FileSystem::builder()
        .mount(elsewhere.path(), "/other")
        .unwrap()
        .build();
    let Err(e) = FileSystem::restore(&other, &record, &|_| true) else {
        panic!("restored without the mount")
    };
    assert!(
        matches!(&e, RestoreError::Unmounted { mount, .. } if mount == "/data"),
        "{e}"
    );
    assert!(e.to_string().contains("--dir"));
}
