//! The daemon as the soak sees it from outside: the process (`nftban run`
//! in the namespace), its status (`nftban status --json`), the kernel's
//! sets (`nft -j list set`), /proc figures, and the reading positions it
//! saved at its stop.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nftban::control::protocol::{JailStatus, Status};
use nftban::netns::NetNs;

use crate::Res;

/// `nftban run` in the namespace.
pub struct Daemon {
    child: Child,
    pub pid: u32,
    /// When it was spawned.
    pub spawned: Instant,
}

impl Daemon {
    /// Start on `config`, its output appended to `out`; wait until it
    /// answers status (its sources are open by then).
    pub fn start(bin: &Path, ns: &NetNs, config: &Path, out: &Path) -> Res<(Daemon, Duration)> {
        let t0 = Instant::now();
        let out = std::fs::OpenOptions::new().create(true).append(true).open(out)?;
        let child = ns
            .command(bin)
            .args(["run", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        let pid = child.id();
        let mut d = Daemon {
            child,
            pid,
            spawned: t0,
        };
        while status(bin, config).is_none() {
            if let Some(st) = d.child.try_wait()? {
                return Err(format!("nftban run exited at start ({st})").into());
            }
            if t0.elapsed() > Duration::from_secs(60) {
                return Err("nftban run did not answer status within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok((d, t0.elapsed()))
    }

    /// Send SIGTERM.
    pub fn terminate(&self) {
        // SAFETY: kill(2) on our own child, not yet waited for.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
    }

    /// Wait for the exit, at most 30 s, then SIGKILL. The exit status, or
    /// `None` if it had to be killed.
    pub fn wait(mut self) -> Option<ExitStatus> {
        self.reap()
    }

    fn reap(&mut self) -> Option<ExitStatus> {
        let t0 = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if t0.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    /// A daemon left running (the soak failed on the way) is stopped, so
    /// that none outlives its namespace.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
            self.reap();
        }
    }
}

/// `nftban status --json` and its jail `asterisk`, or `None` while no
/// daemon answers.
pub fn status(bin: &Path, config: &Path) -> Option<(Status, JailStatus)> {
    let o = Command::new(bin)
        .args(["status", "--json", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !o.status.success() {
        return None;
    }
    let st: Status = serde_json::from_slice(&o.stdout).ok()?;
    let jail = st.jails.iter().find(|j| j.name == "asterisk")?.clone();
    Some((st, jail))
}

/// What the kernel holds in the jail's four sets.
pub struct Kernel {
    /// Addresses of `asterisk_v4` and `asterisk_v6`.
    pub addrs: HashSet<IpAddr>,
    /// Anything else (prefixes in the `_net` sets, unparsable elements).
    pub other: Vec<String>,
}

/// The elements of the jail's sets, read with `nft -j list set` in `ns`.
pub fn kernel(ns: &NetNs) -> Res<Kernel> {
    let mut k = Kernel {
        addrs: HashSet::new(),
        other: Vec::new(),
    };
    for set in ["asterisk_v4", "asterisk_v6", "asterisk_v4_net", "asterisk_v6_net"] {
        let o = ns
            .command("nft")
            .args(["-j", "list", "set", "inet", "nftban", set])
            .stdin(Stdio::null())
            .output()?;
        if !o.status.success() {
            return Err(format!(
                "nft -j list set inet nftban {set}: {}",
                String::from_utf8_lossy(&o.stderr)
            )
            .into());
        }
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
        let items = v["nftables"].as_array().ok_or("nft -j: no `nftables` array")?;
        for e in items.iter().filter_map(|i| i["set"]["elem"].as_array()).flatten() {
            let text = element(e);
            match text.parse::<IpAddr>() {
                Ok(a) if !set.ends_with("_net") => {
                    k.addrs.insert(a);
                }
                _ => k.other.push(format!("{text} (in {set})")),
            }
        }
    }
    Ok(k)
}

/// An element of nft's JSON as text: the address, or `addr/len`.
fn element(e: &serde_json::Value) -> String {
    if let Some(s) = e.as_str() {
        return s.to_string();
    }
    if let Some(el) = e.get("elem") {
        return element(&el["val"]);
    }
    if let Some(p) = e.get("prefix") {
        return format!("{}/{}", p["addr"].as_str().unwrap_or("?"), p["len"]);
    }
    e.to_string()
}

/// (utime+stime in clock ticks, VmRSS in kB) of a process, if it runs.
pub fn cpu_and_rss(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // After the command: state is field 3, utime 14, stime 15.
    let ticks = f.get(11)? + f.get(12)?;
    Some((ticks, proc_status_kb(pid, "VmRSS")?))
}

/// A `kB` field of /proc/PID/status.
pub fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let v = text.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    v.trim().trim_end_matches("kB").trim().parse().ok()
}

pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// A reading position the daemon saved: offset, and the fingerprint of
/// the file's head (length, FNV-1a hash).
#[derive(Clone, Copy, Debug)]
struct Saved {
    offset: u64,
    head_len: u64,
    head_hash: u64,
}

/// What a stopped daemon left to read in the log folder: the lines after
/// the positions it saved, which the next start must read, each once.
pub struct Left {
    /// Lines after the saved positions, all files.
    pub lines: u64,
    /// Per file: its name and the lines left after its position.
    pub files: Vec<(String, u64)>,
    /// Files the next start would not read as they are (no position saved,
    /// or one that does not fit the file): each a problem.
    pub problems: Vec<String>,
}

/// Read the positions in the stopped daemon's history (`database`) and
/// count the lines after them in each file of `dir` the jail reads.
pub fn left_to_read(database: &Path, dir: &Path) -> Res<Left> {
    let db = rusqlite::Connection::open_with_flags(database, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut saved = HashMap::new();
    {
        let mut q = db.prepare("SELECT path, offset, head_len, head_hash FROM positions")?;
        let rows = q.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Saved {
                    offset: r.get::<_, i64>(1)? as u64,
                    head_len: r.get::<_, i64>(2)? as u64,
                    head_hash: r.get::<_, i64>(3)? as u64,
                },
            ))
        })?;
        for row in rows {
            let (path, s) = row?;
            saved.insert(PathBuf::from(path), s);
        }
    }
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(crate::writer::NAME))
        })
        .collect();
    names.sort();
    let mut left = Left {
        lines: 0,
        files: Vec::new(),
        problems: Vec::new(),
    };
    for path in names {
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let mut f = std::fs::File::open(&path)?;
        let after = match saved.get(&path) {
            None => {
                left.problems.push(format!(
                    "{name}: no position saved (the next start reads it from its end)"
                ));
                0
            }
            Some(s) if !fits(&mut f, s)? => {
                left.problems.push(format!(
                    "{name}: the saved position does not fit the file (its head or length differs)"
                ));
                newlines(&mut f, 0)?
            }
            Some(s) => newlines(&mut f, s.offset)?,
        };
        left.lines += after;
        left.files.push((name, after));
    }
    Ok(left)
}

/// Whether a saved position belongs to the file: its head hashes the same
/// and it is at least that long.
fn fits(f: &mut std::fs::File, s: &Saved) -> Res<bool> {
    let len = f.metadata()?.len();
    if len < s.offset || len < s.head_len {
        return Ok(false);
    }
    let mut head = vec![0u8; s.head_len as usize];
    f.seek(SeekFrom::Start(0))?;
    f.read_exact(&mut head)?;
    Ok(fnv1a(&head) == s.head_hash)
}

/// FNV-1a, 64 bit, as the daemon fingerprints a file's head.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Newlines from `offset` to the end of the file.
fn newlines(f: &mut std::fs::File, offset: u64) -> Res<u64> {
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0;
    loop {
        let got = f.read(&mut buf)?;
        if got == 0 {
            return Ok(n);
        }
        n += buf[..got].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}
