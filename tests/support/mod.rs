//! Helpers shared by the integration tests: the built binary, a daemon in a
//! namespace, and reading the kernel's state back with `nft -j`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use nftban::netns::NetNs;

mod guard;
pub use guard::*;

/// The `nftban` binary under test.
pub fn nftban() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nftban"))
}

/// Run and capture; stdin closed.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("spawn")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asterisk's timestamp for now, local time (`[YYYY-MM-DD HH:MM:SS]`): the
/// daemon counts a failure at the time its line carries, so test lines must
/// be dated now to count.
pub fn asterisk_now() -> String {
    let o = Command::new("date").arg("+[%Y-%m-%d %H:%M:%S]").output().unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// Poll `f` until it gives a value; panics with `what` after a generous
/// deadline. This waits for an event, it does not measure time.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A temp folder with a config and a log file.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Setup {
    /// Config with one asterisk jail (maxretry 3) on `log`; `extra` is
    /// appended to the jail's keys.
    pub fn asterisk(extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("messages");
        std::fs::write(&log, "").unwrap();
        let config = dir.path().join("nftban.yaml");
        std::fs::write(
            &config,
            format!(
                "socket: {0}/nftban.sock\ndatabase: {0}/nftban.db\ndefaults: {{findtime: 10m, maxretry: 3, bantime: 1h, ignoreip: [127.0.0.0/8, \"::1\", 192.0.2.99]}}\njails:\n  asterisk:\n    ruleset: asterisk\n    files: [{1}]\n{extra}",
                dir.path().display(),
                log.display()
            ),
        )
        .unwrap();
        Setup { dir, config, log }
    }

    /// Put `line` (top-level YAML, e.g. `nftables: {hooks: [forward]}`)
    /// at the start of the config, replacing an earlier line with the same
    /// key.
    pub fn top(&self, line: &str) {
        let key = line.split(':').next().unwrap();
        let text = std::fs::read_to_string(&self.config).unwrap();
        let rest: Vec<&str> = text.lines().filter(|l| !l.starts_with(&format!("{key}:"))).collect();
        std::fs::write(&self.config, format!("{line}\n{}\n", rest.join("\n"))).unwrap();
    }

    pub fn append(&self, lines: &[&str]) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&self.log).unwrap();
        for l in lines {
            writeln!(f, "{l}").unwrap();
        }
    }

    /// `nftban ARGS --config <this config>`.
    pub fn cli(&self, args: &[&str]) -> Output {
        run(nftban().args(args).arg("--config").arg(&self.config))
    }

    /// `nftban status JAIL --json`, parsed.
    pub fn status(&self, jail: &str) -> Option<serde_json::Value> {
        let o = self.cli(&["status", jail, "--json"]);
        if !o.status.success() {
            return None;
        }
        serde_json::from_slice(&o.stdout).ok()
    }
}

/// `nftban run` inside a namespace; SIGTERM and wait on drop.
pub struct Daemon {
    pub child: Child,
    pub stderr: PathBuf,
}

impl Daemon {
    pub fn start(ns: &NetNs, setup: &Setup) -> Daemon {
        let stderr = setup.dir.path().join(format!("daemon-{}.log", std::process::id()));
        let child = ns
            .command(env!("CARGO_BIN_EXE_nftban"))
            .args(["run", "--config"])
            .arg(&setup.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&stderr)
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        let d = Daemon { child, stderr };
        wait_for("the daemon to answer status", || setup.status("asterisk"));
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM and wait; returns the exit status success.
    pub fn stop(mut self) -> bool {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let ok = self.child.wait().map(|s| s.success()).unwrap_or(false);
        std::mem::forget(self);
        ok
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// `nft -j list table inet nftban` inside `ns`, through the typed schema
/// of the `nftables` crate.
pub fn nft_table(ns: &NetNs) -> nftables::schema::Nftables<'static> {
    let o = run(ns.command("nft").args(["-j", "list", "table", "inet", "nftban"]));
    assert!(o.status.success(), "nft list failed: {}", stderr(&o));
    let text: &'static str = Box::leak(stdout(&o).into_boxed_str());
    serde_json::from_str(text).expect("nft JSON")
}

/// Elements of a set as (address or prefix, timeout seconds), from nft's JSON.
pub fn set_elements(ns: &NetNs, set: &str) -> Vec<(String, Option<u32>)> {
    let o = run(ns.command("nft").args(["-j", "list", "set", "inet", "nftban", set]));
    assert!(o.status.success(), "nft list set failed: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut out = Vec::new();
    for item in v["nftables"].as_array().unwrap() {
        if let Some(elems) = item["set"]["elem"].as_array() {
            for e in elems {
                out.push(element(e));
            }
        }
    }
    out
}

fn element(e: &serde_json::Value) -> (String, Option<u32>) {
    if let Some(s) = e.as_str() {
        return (s.to_string(), None);
    }
    if let Some(el) = e.get("elem") {
        let (val, _) = element(&el["val"]);
        return (val, el["timeout"].as_u64().map(|t| t as u32));
    }
    if let Some(p) = e.get("prefix") {
        return (format!("{}/{}", p["addr"].as_str().unwrap(), p["len"]), None);
    }
    (e.to_string(), None)
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

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
