//! A pseudo-terminal, for what `nftban test` shows on a terminal only.

use std::process::{Command, Output, Stdio};

/// A pseudo-terminal: the master side to read what a child writes, the
/// slave side to give the child as its stdout or stderr (it is a terminal
/// to `isatty`). posix_openpt and friends are in every libc (openpty may
/// need libutil).
pub struct Pty {
    pub master: std::fs::File,
    pub slave: std::fs::File,
}

impl Pty {
    pub fn open() -> Pty {
        use std::os::fd::FromRawFd;
        // SAFETY: plain libc calls on a descriptor this function owns; the
        // name buffer outlives ptsname_r, which NUL-terminates it.
        unsafe {
            let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
            assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
            let master = std::fs::File::from_raw_fd(fd);
            assert_eq!(libc::grantpt(fd), 0, "grantpt");
            assert_eq!(libc::unlockpt(fd), 0, "unlockpt");
            let mut name = [0 as libc::c_char; 128];
            assert_eq!(libc::ptsname_r(fd, name.as_mut_ptr(), name.len()), 0, "ptsname_r");
            let path = std::ffi::CStr::from_ptr(name.as_ptr()).to_str().unwrap().to_string();
            use std::os::unix::fs::OpenOptionsExt;
            let slave = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY)
                .open(&path)
                .unwrap();
            Pty { master, slave }
        }
    }

    /// Runs `cmd` with stderr on the terminal (stdout and stdin as `cmd`
    /// says), and returns its output and all the terminal showed.
    pub fn run_on_stderr(self, cmd: &mut Command) -> (Output, Vec<u8>) {
        use std::io::Read;
        let Pty { mut master, slave } = self;
        let child = cmd.stderr(Stdio::from(slave)).spawn().expect("spawn");
        // The command keeps its copy of the slave until dropped: replace it,
        // so that reading the master ends (EIO) when the child is gone.
        cmd.stderr(Stdio::null());
        let reader = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match master.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                    Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
                    Err(e) => panic!("reading the terminal: {e}"),
                }
            }
            seen
        });
        let out = child.wait_with_output().expect("wait");
        (out, reader.join().unwrap())
    }
}
