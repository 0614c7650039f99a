//! Helpers shared by the integration tests: the built binary, a config in
//! a temp folder ([`Setup`]), the daemon's status as the typed contract
//! ([`status`]), a daemon in a namespace ([`Daemon`]), the kernel's state
//! read back with `nft -j` and packets sent through namespaces
//! ([`kernel`]), the guard of kernel tests ([`kernel_test!`]) and a
//! pseudo-terminal ([`Pty`]), a SIP test bed: Kamailio and its clients
//! ([`sip_bed`]), a NATS JetStream bed for the fleet ([`NatsBed`]), and an
//! HTTP server for the feeds ([`shared_web`]).

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use nftban::netns::NetNs;

mod daemon;
mod guard;
mod http;
mod kernel;
mod nats;
mod pty;
mod sip;
mod status;

pub use daemon::*;
pub use guard::*;
pub use http::*;
pub use kernel::*;
pub use nats::*;
pub use pty::*;
pub use sip::*;
pub use status::*;

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

/// An Asterisk line, dated now, that the `asterisk` ruleset counts as a
/// failure of `addr` (an IPv6 address in brackets: `[2001:db8::66]`).
pub fn failed_registration(addr: &str) -> String {
    format!("{} NOTICE[31015]: chan_sip.c:25824 in handle_request_register: Registration from '<sip:100@192.0.2.1>' failed for '{addr}:5060' - Wrong password", asterisk_now())
}

/// Append `lines` to the file `path` (created if missing), each with its
/// newline.
pub fn append_to(path: &Path, lines: &[impl AsRef<str>]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{}", l.as_ref()).unwrap();
    }
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

/// Copy the history's WAL into its file and cut the WAL to nothing, after
/// the daemon's own checkpoint if one runs (its checkpoint thread's runs
/// make a truncating one answer busy). For tests that fill the disk or
/// write over the file: a WAL with room left takes SQLite's writes without
/// a new block, and its pages would hide what was written over.
pub fn empty_wal(db: &Path) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    // A read first: until the connection has read the file, it does not
    // know it is in WAL mode, and a checkpoint answers "not in WAL mode".
    let _: i64 = c
        .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    wait_for("the WAL to be checkpointed and cut to nothing", || {
        let busy: i64 = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0)).ok()?;
        let empty = std::fs::metadata(&wal).map_or(true, |m| m.len() == 0);
        (busy == 0 && empty).then_some(())
    });
}

/// A jail of the `asterisk` ruleset reading `files`, as YAML under
/// `jails:` (for [`Setup::jails`]).
pub fn asterisk_jail(name: &str, files: &[&Path]) -> String {
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    format!("  {name}:\n    ruleset: asterisk\n    files: [{}]\n", files.join(", "))
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
        Setup::asterisk_in(tempfile::tempdir().unwrap(), extra)
    }

    /// As [`Setup::asterisk`], in a folder the shipped unit lets the
    /// daemon see: `nftban check` warns about logs under /tmp or /var/tmp
    /// (`PrivateTmp=yes`) and /home or /root (`ProtectHome=yes`). The target
    /// folder if the checkout is not under one of them; else, as root, a
    /// folder under /var/cache/nftban-test; else `None`, and the test says
    /// why it skips.
    pub fn asterisk_outside_tmp(extra: &str) -> Option<Setup> {
        let hidden = ["/tmp", "/var/tmp", "/home", "/root"];
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = if !hidden.iter().any(|h| target.starts_with(h)) {
            tempfile::tempdir_in(target).unwrap()
        } else {
            let cache = Path::new("/var/cache/nftban-test/check");
            match std::fs::create_dir_all(cache).and_then(|()| tempfile::tempdir_in(cache)) {
                Ok(dir) => dir,
                Err(e) => {
                    eprintln!(
                        "skipped: the checkout ({}) is where the shipped unit hides files, and {}: {e}; \
                         run as root or from a checkout outside /tmp, /home and /root",
                        target.display(),
                        cache.display()
                    );
                    return None;
                }
            }
        };
        Some(Setup::asterisk_in(dir, extra))
    }

    fn asterisk_in(dir: tempfile::TempDir, extra: &str) -> Setup {
        let log = dir.path().join("messages");
        std::fs::write(&log, "").unwrap();
        let config = dir.path().join("nftban.yaml");
        let s = Setup { dir, config, log };
        s.jails(&format!("{}{extra}", asterisk_jail("asterisk", &[&s.log])));
        s
    }

    /// Write the config anew: control socket and history in the folder,
    /// defaults (findtime 10m, maxretry 3, bantime 1h; ignoreip loopback
    /// and 192.0.2.99), and `jails`, the YAML under `jails:`.
    pub fn jails(&self, jails: &str) {
        std::fs::write(
            &self.config,
            format!(
                "socket: {0}/nftban.sock\ndatabase: {0}/nftban.db\ndefaults: {{findtime: 10m, maxretry: 3, bantime: 1h, ignoreip: [127.0.0.0/8, \"::1\", 192.0.2.99]}}\njails:\n{jails}",
                self.dir.path().display(),
            ),
        )
        .unwrap();
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

    /// The daemon's control socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("nftban.sock")
    }

    /// Append `lines` to the log.
    pub fn append(&self, lines: &[impl AsRef<str>]) {
        append_to(&self.log, lines);
    }

    /// Append `n` failures of `addr` to the log (see
    /// [`failed_registration`]).
    pub fn failures(&self, addr: &str, n: usize) {
        self.append(&vec![failed_registration(addr); n]);
    }

    /// `nftban ARGS --config <this config>`.
    pub fn cli(&self, args: &[&str]) -> Output {
        run(nftban().args(args).arg("--config").arg(&self.config))
    }

    /// `nftban ARGS --config <this config>`, which must succeed.
    pub fn cli_ok(&self, args: &[&str]) -> Output {
        let o = self.cli(args);
        assert!(o.status.success(), "nftban {}: {}", args.join(" "), stderr(&o));
        o
    }

    /// `nftban ARGS --config <this config>` with `input` on its stdin
    /// (`ban -`).
    pub fn cli_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = nftban()
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stdin = child.stdin.take().unwrap();
        // Written on a thread of its own: the child may answer before it
        // has read everything, and both pipes must not fill at once.
        std::thread::scope(|sc| {
            sc.spawn(move || stdin.write_all(input.as_bytes()).unwrap());
            child.wait_with_output().expect("wait")
        })
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
