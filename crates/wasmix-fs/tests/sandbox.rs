//! The file system seen through `FileSystem`, against real host directories.

use wasmix_fs::abi::{oflags, rights};
use wasmix_fs::{Errno, FileSystem};

fn mounted() -> (tempfile::TempDir, FileSystem, u32) {
    let tmp = tempfile::tempdir().unwrap();
    let fs = FileSystem::builder()
        .mount(tmp.path(), "/")
        .unwrap()
        .build();
    (tmp, fs, 3)
}

#[test]
fn reopen_root_with_its_rights() {
    let (_t, fs, root) = mounted();
    let st = fs.fdstat(root).unwrap();
    fs.open(
        root,
        false,
        b".",
        0,
        st.rights_base,
        st.rights_inheriting,
        0,
    )
    .unwrap();
    fs.open(root, false, b".", oflags::DIRECTORY, rights::FD_READ, 0, 0)
        .unwrap();
    assert_eq!(
        fs.open(
            root,
            false,
            b".",
            oflags::DIRECTORY,
            rights::FD_READ | rights::FD_WRITE,
            0,
            0
        ),
        Err(Errno::Isdir)
    );
}

#[test]
fn too_many_mounts_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = FileSystem::builder();
    let mut refused = None;
    for i in 0..2000 {
        match b.mount(tmp.path(), &format!("/m{i}")) {
            Ok(next) => b = next,
            Err(e) => {
                refused = Some((i, e.to_string()));
                break;
            }
        }
    }
    let (n, msg) = refused.expect("the limit is enforced");
    assert!(msg.contains("too many --dir mounts"), "{msg}");
    let fs = FileSystem::builder()
        .mount(tmp.path(), "/")
        .unwrap()
        .build();
    assert!(fs.prestat(3).is_ok());
    assert!(n > 1000);
}

#[test]
fn chdir_follows_mounts_and_refuses_files_and_outside_paths() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    std::fs::write(tmp.path().join("file"), b"x").unwrap();
    let fs = FileSystem::builder()
        .mount(tmp.path(), "/data")
        .unwrap()
        .build();
    assert_eq!(fs.cwd(), "/");
    fs.chdir(b"/data/sub").unwrap();
    assert_eq!(fs.cwd(), "/data/sub");
    fs.chdir(b"..").unwrap();
    assert_eq!(fs.cwd(), "/data");
    assert_eq!(fs.chdir(b"file"), Err(Errno::Notdir));
    assert_eq!(fs.chdir(b"missing"), Err(Errno::Noent));
    assert_eq!(fs.chdir(b"/elsewhere"), Err(Errno::Noent));
    assert_eq!(fs.cwd(), "/data");
    assert_eq!(wasmix_fs::normalize("/a/b", "../../../c/./d"), "/c/d");
}

#[test]
fn pipe_reports_eof_after_the_writer_closes_and_epipe_after_the_reader() {
    let fs = FileSystem::new();
    let (r, w) = fs.pipe().unwrap();
    let w2 = fs.dup(w, 0, false).unwrap();
    assert_eq!(fs.write(w, &[std::io::IoSlice::new(b"hi")]).unwrap(), 2);
    fs.close(w).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(fs.read(r, &mut buf).unwrap(), 2);
    fs.close(w2).unwrap();
    assert_eq!(
        fs.read(r, &mut buf).unwrap(),
        0,
        "EOF once every writer is gone"
    );
    let (r, w) = fs.pipe().unwrap();
    fs.close(r).unwrap();
    assert_eq!(
        fs.write(w, &[std::io::IoSlice::new(b"x")]),
        Err(Errno::Pipe)
    );
}
