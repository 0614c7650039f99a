//! Control socket benchmark: how long `status` takes while a crowd of
//! clients holds connections to the daemon, saying nothing or a byte now
//! and then. Run it with `bash bench/control.sh` (docs/performance.md,
//! "Control socket"); it needs root and `ip` (the daemon runs in a private
//! network namespace it creates and deletes).
//!
//! ```text
//! control_bench NFTBAN_BIN [--clients N] [--samples N] [--bans N]
//! ```
//!
//! One daemon, one jail, `--bans` addresses banned by hand first (so that
//! `status` has something to say). Then three phases, each `--samples`
//! requests one every 20 ms (so that a phase spans the daemon's 5 s
//! deadline, and the crowd's clients are cut and reconnect during it):
//! - alone: no other client;
//! - idle: `--clients` clients connected that send nothing;
//! - trickling: `--clients` clients that send a space every half second.
//!
//! A sample is one `status` round trip through the library's client (the
//! CLI's own `call`: connect, write, read the whole answer), timed from
//! before the connect to the end of the answer. The crowd is kept whole: a
//! client the daemon answers ("too slow") or closes is replaced at once,
//! as an attacker would. Reported: median, 99th percentile and maximum of
//! each phase, how many samples were answered "busy", and the daemon's
//! resident memory and threads at the phase's end.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nftban::control::client::call;
use nftban::control::Request;
use nftban::netns::NetNs;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Args {
    nftban: PathBuf,
    clients: usize,
    samples: usize,
    bans: usize,
}

fn args() -> Res<Args> {
    let mut it = std::env::args().skip(1);
    let nftban = PathBuf::from(
        it.next()
            .ok_or("usage: control_bench NFTBAN_BIN [--clients N] [--samples N] [--bans N]")?,
    );
    let mut a = Args {
        nftban,
        clients: 1000,
        samples: 500,
        bans: 1000,
    };
    while let Some(flag) = it.next() {
        let n: usize = it.next().ok_or(format!("{flag} needs a number"))?.parse()?;
        match flag.as_str() {
            "--clients" => a.clients = n,
            "--samples" => a.samples = n,
            "--bans" => a.bans = n,
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    Ok(a)
}

/// This process's soft limit on open files raised to the hard one: the
/// crowd holds a descriptor per client.
fn raise_open_files(clients: usize) -> Res<()> {
    let (_, now) = nftban::control::server::raise_open_files()?;
    if now < clients as u64 + 100 {
        return Err(format!("the open files limit ({now}) is too low for {clients} clients").into());
    }
    Ok(())
}

/// The daemon in its namespace; SIGTERM and wait on drop.
struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child, not yet waited for.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn start_daemon(ns: &NetNs, nftban: &Path, dir: &Path) -> Res<Daemon> {
    let log = dir.join("messages");
    std::fs::write(&log, "")?;
    let config = dir.join("nftban.yaml");
    std::fs::write(
        &config,
        format!(
            "socket: {0}/nftban.sock\ndatabase: {0}/nftban.db\nlog: {{target: {0}/daemon.log}}\njails:\n  asterisk:\n    ruleset: asterisk\n    files: [{1}]\n",
            dir.display(),
            log.display()
        ),
    )?;
    let child = ns
        .command(nftban)
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let d = Daemon { child };
    let socket = dir.join("nftban.sock");
    let start = Instant::now();
    while call(
        &socket,
        &Request::Status {
            jail: None,
            brief: false,
        },
    )
    .map(|r| !r.ok)
    .unwrap_or(true)
    {
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!("the daemon did not answer; see {}/daemon.log", dir.display()).into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(d)
}

/// Clients that say nothing (or a space every half second), each replaced
/// as soon as the daemon answers or closes it. One thread, poll(2).
struct Crowd {
    stop: Arc<AtomicBool>,
    connected: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<usize>,
}

impl Crowd {
    fn start(socket: PathBuf, n: usize, trickle: bool) -> Crowd {
        let stop = Arc::new(AtomicBool::new(false));
        let connected = Arc::new(AtomicUsize::new(0));
        let (stop2, connected2) = (stop.clone(), connected.clone());
        let thread = std::thread::spawn(move || {
            let connect = || UnixStream::connect(&socket).ok();
            let mut conns = Vec::new();
            for _ in 0..n {
                let Some(c) = connect() else { return 0 };
                conns.push(c);
                connected2.fetch_add(1, Ordering::SeqCst);
            }
            let mut replaced = 0;
            let mut trickled = Instant::now();
            while !stop2.load(Ordering::Relaxed) {
                let mut fds: Vec<libc::pollfd> = conns
                    .iter()
                    .map(|c| libc::pollfd {
                        fd: c.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    })
                    .collect();
                // SAFETY: poll over descriptors this thread owns.
                unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
                for i in (0..fds.len()).filter(|&i| fds[i].revents != 0) {
                    let mut sink = Vec::new();
                    let _ = conns[i].set_nonblocking(true);
                    let _ = conns[i].read_to_end(&mut sink);
                    match connect() {
                        Some(c) => conns[i] = c,
                        None => return replaced,
                    }
                    replaced += 1;
                }
                if trickle && trickled.elapsed() >= Duration::from_millis(500) {
                    for c in &mut conns {
                        let _ = c.write_all(b" ");
                    }
                    trickled = Instant::now();
                }
            }
            replaced
        });
        Crowd {
            stop,
            connected,
            thread,
        }
    }

    fn wait_connected(&self, n: usize) -> Res<()> {
        let start = Instant::now();
        while self.connected.load(Ordering::SeqCst) < n {
            if start.elapsed() > Duration::from_secs(60) {
                return Err("the crowd could not connect".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Stop; how many clients were replaced.
    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

/// `samples` status round trips, one every 20 ms: their times, and how
/// many were answered other than ok.
fn sample(socket: &Path, samples: usize) -> (Vec<Duration>, usize) {
    let mut times = Vec::with_capacity(samples);
    let mut not_ok = 0;
    for _ in 0..samples {
        let t = Instant::now();
        let ok = call(
            socket,
            &Request::Status {
                jail: None,
                brief: false,
            },
        )
        .map(|r| r.ok)
        .unwrap_or(false);
        times.push(t.elapsed());
        not_ok += usize::from(!ok);
        std::thread::sleep(Duration::from_millis(20));
    }
    times.sort();
    (times, not_ok)
}

/// The daemon's resident memory (KiB) and threads, from /proc.
fn rss_and_threads(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("Threads:"))
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// One line of the table: the phase, its times, its answers other than
/// ok, the daemon's memory and threads, the crowd's replaced clients.
fn report(phase: &str, times: &[Duration], not_ok: usize, (rss, threads): (u64, u64), replaced: &str) {
    let p = |q: f64| ms(times[((times.len() - 1) as f64 * q).round() as usize]);
    println!(
        "{phase:<10} | {:>7} | {:>7} | {:>7} | {not_ok:>6} | {:>8} | {threads:>7} | {replaced}",
        p(0.5),
        p(0.99),
        p(1.0),
        rss / 1024,
    );
}

fn main() -> Res<()> {
    let a = args()?;
    raise_open_files(a.clients)?;
    let ns = NetNs::create("cbench")?;
    let dir = tempfile::Builder::new().prefix("nftban-cbench-").tempdir()?;
    let d = start_daemon(&ns, &a.nftban, dir.path())?;
    let socket = dir.path().join("nftban.sock");
    let pid = d.child.id();
    let addrs: Vec<String> = (0..a.bans)
        .map(|i| format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255))
        .collect();
    for chunk in addrs.chunks(nftban::control::protocol::BAN_CHUNK) {
        let r = call(
            &socket,
            &Request::Ban {
                addrs: chunk.to_vec(),
                jail: None,
                bantime: None,
                force: false,
                more: false,
                follows: false,
            },
        )?;
        if !r.ok {
            return Err(format!("ban refused: {:?}", r.error).into());
        }
    }
    println!(
        "# {} status requests per phase, one every 20 ms; {} clients in the crowd; {} bans",
        a.samples, a.clients, a.bans
    );
    println!("phase      | p50 ms  | p99 ms  | max ms  | not ok | RSS MiB  | threads | clients replaced");
    println!("-----------|---------|---------|---------|--------|----------|---------|-----------------");
    let (times, not_ok) = sample(&socket, a.samples);
    report("alone", &times, not_ok, rss_and_threads(pid), "-");
    for (phase, trickle) in [("idle", false), ("trickling", true)] {
        let crowd = Crowd::start(socket.clone(), a.clients, trickle);
        crowd.wait_connected(a.clients)?;
        let (times, not_ok) = sample(&socket, a.samples);
        let daemon = rss_and_threads(pid);
        let replaced = crowd.stop();
        report(phase, &times, not_ok, daemon, &replaced.to_string());
        // Let the daemon see the crowd go before the next phase.
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(d);
    Ok(())
}
