//! `nftban run` inside a namespace, its stderr in a file of the test's
//! folder, stopped (SIGTERM) on drop even when an assertion fails.

use std::process::{Child, Command, Stdio};

use super::{wait_for, NetNs, Setup};

/// `nftban run` inside a namespace; SIGTERM and wait on drop.
pub struct Daemon {
    pub child: Child,
    pub stderr: std::path::PathBuf,
}

impl Daemon {
    /// Start on `setup`'s config and wait until it answers status.
    pub fn start(ns: &NetNs, setup: &Setup) -> Daemon {
        let d = Daemon::spawn(ns, setup, |_| {});
        wait_for("the daemon to answer status", || setup.try_status());
        d
    }

    /// Start without waiting for it; `configure` adds to the command
    /// (environment, a piped stdin). Its stdin is otherwise closed.
    pub fn spawn(ns: &NetNs, setup: &Setup, configure: impl FnOnce(&mut Command)) -> Daemon {
        let stderr = setup.dir.path().join(format!("daemon-{}.log", std::process::id()));
        let mut cmd = ns.command(env!("CARGO_BIN_EXE_nftban"));
        cmd.args(["run", "--config"])
            .arg(&setup.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&stderr)
                    .unwrap(),
            );
        configure(&mut cmd);
        Daemon {
            child: cmd.spawn().unwrap(),
            stderr,
        }
    }

    /// What it logged (of every daemon started on this setup).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Send SIGTERM, without waiting.
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Wait for the exit; true if it was a success.
    pub fn wait(mut self) -> bool {
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// SIGTERM and wait; true if it exited with success.
    pub fn stop(self) -> bool {
        self.terminate();
        self.wait()
    }

    /// SIGKILL, as a crash, and wait.
    pub fn kill(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child, not yet waited for (the
        // callers wait after signalling), so the pid is still its.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Not after `wait`: the pid may be someone else's by now.
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGTERM);
            let _ = self.child.wait();
        }
    }
}
