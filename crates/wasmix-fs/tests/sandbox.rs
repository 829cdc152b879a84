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
