//! A real full disk for tests: a small tmpfs mounted in a mount namespace
//! of the calling thread alone, and a file that fills it. Needs root; the
//! mount never reaches the host (the namespace is made private first) and
//! ends with the thread.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Whether these tests can run here; if not, says so for `test`.
pub fn possible(test: &str) -> bool {
    let root = crate::netns::is_root();
    if !root {
        eprintln!("skipped {test}: needs root to mount a tmpfs in a private mount namespace");
    }
    root
}

/// Run `f` on a thread of its own, with a tmpfs of `size` (e.g. `64k`)
/// mounted at a new temp folder, passed to `f`; a panic in `f` is the
/// test's.
pub fn with_small_disk(size: &str, f: impl FnOnce(&Path) + Send + 'static) {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().to_path_buf();
    let size = size.to_string();
    let run = std::thread::spawn(move || {
        private_tmpfs(&mount, &size).unwrap();
        f(&mount);
    })
    .join();
    if let Err(panic) = run {
        std::panic::resume_unwind(panic);
    }
}

/// Mount a tmpfs of `size` at `dir`, in a mount namespace of the calling
/// thread alone.
fn private_tmpfs(dir: &Path, size: &str) -> std::io::Result<()> {
    let fail = || Err(std::io::Error::last_os_error());
    let target = CString::new(dir.as_os_str().as_bytes()).unwrap();
    let options = CString::new(format!("size={size},mode=0700")).unwrap();
    let none = std::ptr::null();
    // SAFETY: unshare and mount with valid NUL-terminated strings and null
    // pointers where the kernel allows them. CLONE_NEWNS implies CLONE_FS,
    // which a thread may unshare: the namespace is this thread's alone, and
    // MS_PRIVATE on / keeps the tmpfs from propagating to the host.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return fail();
        }
        if libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            none,
            libc::MS_REC | libc::MS_PRIVATE,
            none.cast(),
        ) != 0
        {
            return fail();
        }
        if libc::mount(
            c"nftban-test".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            options.as_ptr().cast(),
        ) != 0
        {
            return fail();
        }
    }
    Ok(())
}

/// Fill the file system of `dir` to its last page with the file
/// `dir/filler`; remove that file to free the space.
pub fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 4096];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    path
}
