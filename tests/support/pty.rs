//! A pseudo-terminal, for what `nftban test` and `nftban status` show on a
//! terminal only.

use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};

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

    /// Starts `cmd` with stdout on the terminal (stderr piped), to be read
    /// while it runs: a command that runs until interrupted
    /// (`status --watch`).
    pub fn spawn_on_stdout(self, cmd: &mut Command) -> Running {
        use std::io::Read;
        let Pty { mut master, slave } = self;
        let child = cmd
            .stdout(Stdio::from(slave))
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // As in run_on_stderr: reading the master ends when the child is gone.
        cmd.stdout(Stdio::null());
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match master.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        Running {
            child,
            rx,
            seen: Vec::new(),
        }
    }
}

/// A command running with its stdout on a [`Pty`]; SIGKILLed on drop if
/// still running.
pub struct Running {
    pub child: Child,
    rx: Receiver<Vec<u8>>,
    /// All the terminal showed so far.
    pub seen: Vec<u8>,
}

impl Running {
    /// Read until `done` holds for what the terminal showed (panics after
    /// a generous deadline: this waits for output, it measures nothing).
    pub fn wait_until(&mut self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let text = String::from_utf8_lossy(&self.seen).into_owned();
            if done(&text) {
                return text;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; the terminal showed:\n{text}"
            );
            if let Ok(chunk) = self.rx.recv_timeout(left.min(std::time::Duration::from_millis(200))) {
                self.seen.extend_from_slice(&chunk);
            }
        }
    }

    /// SIGINT (Ctrl-C), and the exit status.
    pub fn interrupt(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child, not yet waited for.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        self.child.wait().expect("wait")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
