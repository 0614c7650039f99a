//! Fleet benchmark (issue 15, docs/fleet.md): nftban nodes sharing bans
//! over Debian's nats-server with JetStream, each node in a private network
//! namespace of its own, the server in a hub namespace joined to each node
//! by a veth pair. Run it with `bash bench/fleet.sh` (docs/performance.md,
//! "Fleet"); it needs root, `ip` and /usr/sbin/nats-server.
//!
//! ```text
//! fleet_bench NFTBAN_BIN [--samples N] [--bans N] [--poll-secs S] [--poll-samples N]
//! ```
//!
//! The kernel side of the latency and poll phases is read as in the daemon
//! benchmark: nf_tables events in each node's namespace, stamped by the
//! kernel (examples/daemon_bench/watch.rs); the host's clock is the same for
//! every namespace, so a line's write on node A and the element's event on
//! node B compare. The throughput and catch-up phases listen to no events
//! (a listener makes the kernel build an event per element added, in the
//! adding engine's time, which no node in production pays): they look the
//! set's first and last address up, then every one ([`Node::probe`]).
//!
//! Phases, in one run:
//! - latency: attackers one at a time, 3 lines each into A's log (maxretry
//!   3), the third written 5 ms after the first two; from its `write` to the
//!   element in A's set (nftban alone) and in B's (through NATS).
//! - throughput: `nftban ban - --jail asterisk` of 100,000 addresses on A;
//!   on B, from the first of them to the last in the kernel.
//! - catch-up: node C started afresh (empty history) beside the stream that
//!   holds those bans: from spawning it to the last element in its set.
//! - poll: the nearest existing practice, a CrowdSec-style bouncer: a node P
//!   without `fleet:`, fed by a poller that every 10 s asks A for its bans
//!   (`nftban status asterisk --json`) and bans the new ones on P
//!   (`nftban ban -`); attackers on A at spread times, from the third line's
//!   write to the element in P's set.

use std::collections::HashSet;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nftban::netns::NetNs;

#[path = "daemon_bench/added.rs"]
mod added;
// The fleet benchmark uses only part of the watch the daemon benchmark shares.
#[allow(dead_code)]
#[path = "daemon_bench/watch.rs"]
mod watch;

use watch::Watch;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const NATS_SERVER: &str = "/usr/sbin/nats-server";
const SET: &str = "asterisk_v4";

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let bin = PathBuf::from(
        args.next()
            .ok_or("usage: fleet_bench NFTBAN_BIN [--samples N] [--bans N] [--poll-secs S] [--poll-samples N]")?,
    );
    let (mut samples, mut bans, mut poll_secs, mut poll_samples) = (200usize, 100_000usize, 10u64, 60usize);
    while let Some(a) = args.next() {
        let v: usize = args
            .next()
            .and_then(|v| v.parse().ok())
            .filter(|&v| v > 0)
            .ok_or(format!("{a} takes a positive whole number"))?;
        match a.as_str() {
            "--samples" => samples = v,
            "--bans" => bans = v,
            "--poll-secs" => poll_secs = v as u64,
            "--poll-samples" => poll_samples = v,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if !nftban::netns::is_root() {
        return Err("needs root (private network namespaces)".into());
    }
    let nats = Nats::start()?;
    let mut a = Node::start(&bin, Some(&nats), "a", true)?;
    let mut b = Node::start(&bin, Some(&nats), "b", true)?;
    // Warm-up: A has read its file and published once, B has read the
    // stream and made its sets.
    let w = Ipv4Addr::new(100, 127, 255, 1);
    a.write(&attack_line(w).repeat(3))?;
    for n in [&mut a, &mut b] {
        if n.watch.wait_for(w, Instant::now() + Duration::from_secs(30))?.is_none() {
            return Err(format!(
                "warm-up ban not in {}'s set within 30 s; see {}",
                n.name,
                n.dir.display()
            )
            .into());
        }
    }

    latency(&mut a, &mut b, samples)?;
    let live = throughput(&bin, &mut a, &mut b, bans)?;
    catch_up(&bin, &nats, live)?;
    poll(&bin, &mut a, poll_secs, poll_samples)?;
    a.stop();
    b.stop();
    Ok(())
}

/// Phase 1: a log line on A to the element in A's and in B's set.
fn latency(a: &mut Node, b: &mut Node, n: usize) -> Res<()> {
    println!("\n### Latency: third line written on A → element in the kernel set of A, of B\n");
    println!("{n} attackers one after the other, 3 lines each (maxretry 3), the third written 5 ms after the first two; 10 ms between attackers.\n");
    let (mut on_a, mut on_b, mut missed) = (Vec::new(), Vec::new(), 0);
    for i in 0..n {
        let x = attacker(1, i);
        a.write(&attack_line(x).repeat(2))?;
        std::thread::sleep(Duration::from_millis(5));
        let t0 = SystemTime::now();
        a.write(&attack_line(x))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        match (a.watch.wait_for(x, deadline)?, b.watch.wait_for(x, deadline)?) {
            (Some(ta), Some(tb)) => {
                on_a.push(ta.duration_since(t0).unwrap_or_default());
                on_b.push(tb.duration_since(t0).unwrap_or_default());
            }
            _ => missed += 1,
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    on_a.sort();
    on_b.sort();
    println!("| element in | samples | p50 ms | p99 ms | max ms | not in both within 10 s |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, v) in [("A (nftban alone)", &on_a), ("B (through NATS)", &on_b)] {
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {missed} |",
            v.len(),
            ms(pct(v, 0.50)),
            ms(pct(v, 0.99)),
            ms(v.last().copied().unwrap_or_default())
        );
    }
    Ok(())
}

/// Phase 2: `nftban ban -` of `n` addresses on A, applied on B. Returns
/// the addresses B holds after it (what a new node is to catch up on).
///
/// Nobody listens to nf_tables events in A's and B's namespaces meanwhile:
/// while a socket listens, the kernel builds an event for every element
/// added, in the time of the engine that adds it (docs/performance.md,
/// "Restore with and without a listener"), a cost a node in production
/// does not pay for a benchmark. B's set is probed instead, one element
/// lookup at a time: its first address until it is there, then its last,
/// then one count of the whole set. A's time is its CLI's last answer (a
/// chunk is answered once its bans are in the kernel).
fn throughput(bin: &Path, a: &mut Node, b: &mut Node, n: usize) -> Res<Vec<Ipv4Addr>> {
    println!("\n### Throughput: {n} bans by hand on A (`nftban ban - --jail asterisk`), applied on B\n");
    let addrs: Vec<Ipv4Addr> = (0..n).map(|i| attacker(2, i)).collect();
    a.watch.close()?;
    b.watch.close()?;
    let mut live: Vec<Ipv4Addr> = b
        .watch
        .seen
        .keys()
        .filter_map(|a| match a {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
        .collect();
    let mut list = String::with_capacity(n * 16);
    for x in &addrs {
        list.push_str(&x.to_string());
        list.push('\n');
    }
    let (first, last) = (addrs[0], addrs[n - 1]);
    let prober = b.probe(first, last, addrs.iter().copied().collect(), Duration::from_secs(120))?;
    let t0 = SystemTime::now();
    let mut cli = Command::new(bin)
        .args(["ban", "-", "--jail", "asterisk", "--config"])
        .arg(a.dir.join("nftban.yaml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    cli.stdin.take().ok_or("no stdin")?.write_all(list.as_bytes())?;
    if !cli.wait()?.success() {
        return Err("nftban ban - failed on A".into());
    }
    let answered = SystemTime::now();
    let seen = prober.join().map_err(|_| "the prober panicked")??;
    let since = |t: SystemTime| t.duration_since(t0).unwrap_or_default();
    println!("From spawning the CLI on A (t0). Nobody listens to nf_tables events on A or B in this phase (in production nobody does, and a listener makes the kernel build an event per element in the adding engine's time): A's time is its CLI's last answer, given once the last chunk is in A's kernel; B's set is probed with one element lookup every {PROBE_EVERY:?} (its first address, then its last), then a sample of a thousand and every address looked up again (last: when every one was there; the last column says how many were not yet when the last was); at most 120 s.\n");
    println!("| set | elements | t0 → first ms | t0 → last ms | first → last ms | bans/s (first → last) | bans/s (t0 → last) | missing with the last (of the sample; of all) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let a_ms = since(answered);
    println!(
        "| A | {n} answered | - | {:.1} | - | - | {:.0} | |",
        ms(a_ms),
        n as f64 / a_ms.as_secs_f64().max(1e-6)
    );
    match seen {
        Probed {
            got,
            times: Some((first, last)),
            late: (sample, all),
        } => {
            let spread = last.duration_since(first).unwrap_or_default();
            println!(
                "| B | {got} of {n} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {sample}; {all} |",
                ms(since(first)),
                ms(since(last)),
                ms(spread),
                got as f64 / spread.as_secs_f64().max(1e-6),
                got as f64 / since(last).as_secs_f64().max(1e-6)
            );
        }
        Probed { got, times: None, .. } => println!("| B | {got} of {n} | - | - | - | - | - | - |"),
    }
    live.extend(addrs);
    Ok(live)
}

/// How often the throughput phase looks B's first and last address up.
const PROBE_EVERY: Duration = Duration::from_micros(500);

/// What [`Node::probe`] saw: how many of the addresses the set held at the
/// end, and when the first and the last were first there.
struct Probed {
    got: usize,
    times: Option<(SystemTime, SystemTime)>,
    /// Missing once the last was there: of the sample of a thousand, and
    /// of all once the sample was whole.
    late: (usize, usize),
}

/// One node's kernel set looked up, from a thread that entered the node's
/// namespace, until a deadline.
struct Prober {
    fw: nftban::firewall::netlink::Netlink,
    ns: String,
    deadline: Instant,
}

/// One round of [`Prober::until_none_missing`].
struct Pass {
    /// Missing at the first lookup of each.
    at_first: usize,
    /// Still missing at the deadline.
    left: usize,
    /// When the last missing one showed, if some were missing at first.
    whole_at: Option<SystemTime>,
}

impl Prober {
    /// Enter `ns` (this thread's namespace from now on) and open netlink there.
    fn open(ns: String, deadline: Instant) -> Result<Prober, String> {
        watch::enter(&ns).map_err(|e| e.to_string())?;
        let fw = nftban::firewall::netlink::Netlink::open().map_err(|e| e.to_string())?;
        Ok(Prober { fw, ns, deadline })
    }

    fn holds(&mut self, x: Ipv4Addr) -> Result<bool, String> {
        self.fw
            .holds(SET, &ipnet::IpNet::from(IpAddr::V4(x)))
            .map_err(|e| format!("look up {x} on {}: {e}", self.ns))
    }

    /// When `x` was first there, looked up every [`PROBE_EVERY`]; `None`
    /// past the deadline.
    fn seen(&mut self, x: Ipv4Addr) -> Result<Option<SystemTime>, String> {
        while Instant::now() < self.deadline {
            if self.holds(x)? {
                return Ok(Some(SystemTime::now()));
            }
            std::thread::sleep(PROBE_EVERY);
        }
        Ok(None)
    }

    /// Every one of `missing` looked up, then those still missing again
    /// every [`PROBE_EVERY`], until none is or the deadline passes.
    fn until_none_missing(&mut self, mut missing: Vec<Ipv4Addr>) -> Result<Pass, String> {
        let mut at_first = None;
        loop {
            let mut kept = Vec::new();
            for x in missing {
                if !self.holds(x)? {
                    kept.push(x);
                }
            }
            missing = kept;
            let first = *at_first.get_or_insert(missing.len());
            if missing.is_empty() || Instant::now() >= self.deadline {
                let whole_at = (first > 0 && missing.is_empty()).then(SystemTime::now);
                return Ok(Pass {
                    at_first: first,
                    left: missing.len(),
                    whole_at,
                });
            }
            std::thread::sleep(PROBE_EVERY);
        }
    }

    /// When `first` and then `last` were there, then every one of `want`
    /// looked up (a listing is no count: a dump while the kernel's hash
    /// table is resized gives some elements twice and misses others).
    /// First a sample of a thousand, again and again while some are missing
    /// (then the last counts from when none is): a peer's batch that came
    /// late shows there within a few ms. Then all of them, again for those
    /// missing until none is; if some were, the last counts from the end
    /// of that pass (an upper bound).
    fn run(mut self, first: Ipv4Addr, last: Ipv4Addr, want: HashSet<Ipv4Addr>) -> Result<Probed, String> {
        let mut times = match self.seen(first)? {
            Some(t1) => self.seen(last)?.map(|t2| (t1, t2)),
            None => None,
        };
        let all: Vec<Ipv4Addr> = want.iter().copied().collect();
        let sample: Vec<Ipv4Addr> = all.iter().step_by((all.len() / 1000).max(1)).copied().collect();
        let mut late = Vec::new();
        let mut left = 0;
        for list in [sample, all] {
            let pass = self.until_none_missing(list)?;
            if let (Some(t2), Some((t1, _))) = (pass.whole_at, times) {
                times = Some((t1, t2));
            }
            late.push(pass.at_first);
            left = pass.left;
        }
        Ok(Probed {
            got: want.len() - left,
            times,
            late: (late[0], late[1]),
        })
    }
}

/// Phase 3: a new node catching up on what the stream holds: `live`, the
/// bans B holds, the last of them the stream's last. C is not watched
/// (as in the throughput phase): once it answers, its set is probed for
/// that last address, then for every one.
fn catch_up(bin: &Path, nats: &Nats, live: Vec<Ipv4Addr>) -> Res<()> {
    println!("\n### Catch-up: node C started afresh beside the stream\n");
    let expected = live.len();
    let last = *live.last().ok_or("no live bans to catch up on")?;
    let t0 = SystemTime::now();
    let mut c = Node::start(bin, Some(nats), "c", false)?;
    let seen = c
        .probe(last, last, live.into_iter().collect(), Duration::from_secs(120))?
        .join()
        .map_err(|_| "the prober panicked")??;
    // From the spawn: the namespace and the veth pair to the NATS server
    // made before it are the benchmark's, not the node's.
    let setup = c.spawned.duration_since(t0).unwrap_or_default();
    let answered = c.answered.duration_since(c.spawned).unwrap_or_default();
    println!("C's history is empty; the stream holds every ban of the run so far ({expected} live bans, as on B). From spawning C's process to its first answer on the control socket, and to the last element in its set; at most 120 s. Before the spawn, the benchmark made C's namespace and its link to the NATS server. Nobody listens to nf_tables events on C: once C answers, its set is probed for the stream's last ban every {PROBE_EVERY:?}, then a sample of a thousand and every live ban looked up again (were it there at the first lookup, the time is an upper bound).\n");
    println!("| live bans | in C's set | namespace, link ms | spawn → answers ms | spawn → last element ms | bans/s | missing with the last (of the sample; of all) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    match seen.times {
        Some((_, l)) => {
            let t = l.duration_since(c.spawned).unwrap_or_default();
            println!(
                "| {expected} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {}; {} |",
                seen.got,
                ms(setup),
                ms(answered),
                ms(t),
                expected as f64 / t.as_secs_f64(),
                seen.late.0,
                seen.late.1
            );
        }
        None => println!(
            "| {expected} | {} when stopped | {:.0} | {:.0} | > 120000 (cap) | - | - |",
            seen.got,
            ms(setup),
            ms(answered)
        ),
    }
    c.stop();
    Ok(())
}

/// Phase 4: a CrowdSec-style bouncer polling A every `secs` seconds.
fn poll(bin: &Path, a: &mut Node, secs: u64, n: usize) -> Res<()> {
    println!("\n### The nearest existing practice: a poll every {secs} s (CrowdSec-style bouncer)\n");
    let mut p = Node::start(bin, None, "p", true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (stop, bin) = (stop.clone(), bin.to_path_buf());
        let (from, to) = (a.dir.join("nftban.yaml"), p.dir.join("nftban.yaml"));
        std::thread::spawn(move || poller(&bin, &from, &to, secs, &stop))
    };
    // Spread the attackers over 3 poll intervals, at times that do not
    // line up with the polls.
    let span = Duration::from_secs(3 * secs);
    let start = Instant::now();
    let mut sent = Vec::new();
    for i in 0..n {
        let due = start + span.mul_f64((i as f64 + 0.37) / n as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let x = attacker(3, i);
        a.write(&attack_line(x).repeat(2))?;
        let t0 = SystemTime::now();
        a.write(&attack_line(x))?;
        sent.push((x, t0));
    }
    let deadline = Instant::now() + Duration::from_secs(secs + 15);
    let mut lat = Vec::new();
    for (x, t0) in &sent {
        if let Some(t) = p.watch.wait_for(*x, deadline)? {
            lat.push(t.duration_since(*t0).unwrap_or_default());
        }
    }
    stop.store(true, Ordering::Relaxed);
    let polls = poller.join().map_err(|_| "the poller panicked")??;
    lat.sort();
    let s = secs as f64;
    println!("{n} attackers on A spread over {} s; a poller asks A for its bans every {secs} s ({polls} polls, each `nftban status asterisk --json` then `nftban ban -` of the new ones on P); from the third line's write on A to the element in P's set. A poll's wait is uniform over the interval, so expected p50 = {:.1} s and p99 = {:.1} s plus the poll's own work.\n", span.as_secs(), s * 0.5, s * 0.99);
    println!("| path | samples | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| poll every {secs} s, measured | {} of {n} | {:.0} | {:.0} | {:.0} |",
        lat.len(),
        ms(pct(&lat, 0.50)),
        ms(pct(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
    println!(
        "| poll every {secs} s, expected | - | {:.0} | {:.0} | {:.0} |",
        s * 500.0,
        s * 990.0,
        s * 1000.0
    );
    p.stop();
    Ok(())
}

/// Every `secs` s: A's bans, the new ones banned on P. The first poll only
/// takes what A already holds (a bouncer's start). Returns the polls made.
fn poller(bin: &Path, from: &Path, to: &Path, secs: u64, stop: &AtomicBool) -> Result<usize, String> {
    let mut known: HashSet<String> = HashSet::new();
    let mut polls = 0;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() < next {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        next += Duration::from_secs(secs);
        let out = Command::new(bin)
            .args(["status", "asterisk", "--json", "--config"])
            .arg(from)
            .output()
            .map_err(|e| format!("status on A: {e}"))?;
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("status --json on A: {e}"))?;
        let now: Vec<String> = v["banned"]
            .as_array()
            .map(|a| a.iter().filter_map(|b| b["ip"].as_str().map(String::from)).collect())
            .unwrap_or_default();
        let new: Vec<String> = now.into_iter().filter(|ip| known.insert(ip.clone())).collect();
        if polls > 0 && !new.is_empty() {
            let mut cli = Command::new(bin)
                .args(["ban", "-", "--jail", "asterisk", "--config"])
                .arg(to)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| format!("ban on P: {e}"))?;
            let list = new.join("\n") + "\n";
            cli.stdin
                .take()
                .ok_or("no stdin")?
                .write_all(list.as_bytes())
                .map_err(|e| e.to_string())?;
            cli.wait().map_err(|e| e.to_string())?;
        }
        polls += 1;
    }
    Ok(polls)
}

/// nats-server with JetStream in a hub namespace, its store in a temporary
/// folder; each node joins the hub by a veth pair on a /24 of its own.
struct Nats {
    child: Option<Child>,
    links: std::cell::Cell<u32>,
    // Dropped after `Drop::drop` stopped the server.
    hub: NetNs,
    _dir: tempfile::TempDir,
}

impl Nats {
    fn start() -> Res<Nats> {
        let hub = NetNs::create("fbench-nats")?;
        let dir = tempfile::Builder::new().prefix("nftban-fbench-").tempdir()?;
        let log_path = dir.path().join("nats.log");
        let log = std::fs::File::create(&log_path)?;
        let mut cmd = hub.command(NATS_SERVER);
        cmd.args(["-js", "-sd"])
            .arg(dir.path().join("store"))
            .args(["-a", "0.0.0.0", "-p", "4222"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: prctl in the child before exec; async-signal-safe. The
        // server dies with the benchmark.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let nats = Nats {
            child: Some(cmd.spawn()?),
            links: std::cell::Cell::new(0),
            hub,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&log_path)?.contains("Server is ready") {
            if Instant::now() > deadline {
                return Err(format!(
                    "nats-server not ready within 30 s: {}",
                    std::fs::read_to_string(&log_path)?
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        println!("nats-server: {}", version());
        Ok(nats)
    }

    /// Join `node` to the hub; the server's URL as `node` reaches it.
    fn link(&self, node: &NetNs) -> Res<String> {
        let n = self.links.get() + 1;
        self.links.set(n);
        NetNs::link_named(
            &self.hub,
            &format!("h{n}"),
            &format!("10.78.{n}.1/24"),
            node,
            "nats0",
            &format!("10.78.{n}.2/24"),
        )?;
        Ok(format!("nats://10.78.{n}.1:4222"))
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling a child this program spawned and has not reaped.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

fn version() -> String {
    Command::new(NATS_SERVER)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// One nftban daemon in its namespace, with its folder, log file and
/// event watch on its asterisk IPv4 set.
struct Node {
    name: String,
    child: Option<Child>,
    log: std::fs::File,
    watch: Watch,
    dir: PathBuf,
    /// When its process was spawned (its namespace, the veth pair to the
    /// NATS server and the kernel watch were made before).
    spawned: SystemTime,
    /// When it first answered on its control socket.
    answered: SystemTime,
    // Dropped after `Drop::drop` stopped the daemon: the namespace, then
    // the folder.
    _ns: NetNs,
    _tmp: tempfile::TempDir,
}

impl Node {
    /// A node in a fresh namespace and folder, in the fleet when `nats` is
    /// given, started and answering; with a kernel event watch on its set
    /// when `watched`.
    fn start(bin: &Path, nats: Option<&Nats>, name: &str, watched: bool) -> Res<Node> {
        let tmp = tempfile::Builder::new().prefix("nftban-fbench-").tempdir()?;
        let dir = tmp.path().to_path_buf();
        let ns = NetNs::create(&format!("fbench-{name}"))?;
        let fleet = match nats {
            // Limits raised past the throughput phase: the benchmark
            // measures the path, not the per-peer rate limit.
            Some(nats) => format!(
                "fleet: {{node: {name}, servers: [{}], stream: FBENCH, subject_prefix: fbench, limits: {{rate: 1000000/second, burst: 1000000}}}}\n",
                nats.link(&ns)?
            ),
            None => String::new(),
        };
        let watch = if watched { Watch::open(&ns, SET)? } else { Watch::idle() };
        std::fs::create_dir_all(dir.join("log"))?;
        let log_path = dir.join("log").join("messages");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let config = dir.join("nftban.yaml");
        std::fs::write(
            &config,
            format!(
                "socket: {0}/nftban.sock\ndatabase: {0}/nftban.db\nlog: {{target: {0}/nftban.log}}\ndefaults: {{findtime: 10m, maxretry: 3, bantime: 1h}}\n{fleet}jails:\n  asterisk:\n    ruleset: asterisk\n    files: [{1}]\n",
                dir.display(),
                log_path.display()
            ),
        )?;
        let out = std::fs::File::create(dir.join("nftban.out"))?;
        let spawned = SystemTime::now();
        let mut child = ns
            .command(bin)
            .args(["run", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = Command::new(bin)
                .args(["status", "--config"])
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                break;
            }
            if let Some(st) = child.try_wait()? {
                let out = std::fs::read_to_string(dir.join("nftban.out")).unwrap_or_default();
                return Err(format!("node {name} exited at start ({st}): {out}").into());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("node {name} did not answer within 60 s; see {}", dir.display()).into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Node {
            name: name.to_string(),
            child: Some(child),
            log,
            watch,
            dir,
            spawned,
            answered: SystemTime::now(),
            _ns: ns,
            _tmp: tmp,
        })
    }

    /// From a thread in this node's namespace: when `first`, then `last`,
    /// is in its set (one lookup every [`PROBE_EVERY`]), then how many of
    /// `want` the set holds (each looked up, those missing again until none
    /// is or `within` is over; if some were missing after `last`, the end of
    /// the pass that found them all counts as the last).
    fn probe(
        &self,
        first: Ipv4Addr,
        last: Ipv4Addr,
        want: HashSet<Ipv4Addr>,
        within: Duration,
    ) -> Res<std::thread::JoinHandle<Result<Probed, String>>> {
        let ns = self._ns.name.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || -> Result<Probed, String> {
            let opened = Prober::open(ns, Instant::now() + within);
            let _ = ready_tx.send(opened.as_ref().map(|_| ()).map_err(String::clone));
            opened?.run(first, last, want)
        });
        ready_rx.recv().map_err(|_| "the prober stopped")??;
        Ok(handle)
    }

    fn write(&mut self, text: &str) -> Res<()> {
        self.log.write_all(text.as_bytes())?;
        Ok(())
    }

    /// SIGTERM, wait up to 30 s, then SIGKILL.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling a child this program spawned and has not reaped.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    eprintln!("node {} did not stop within 30 s of SIGTERM: killed", self.name);
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.watch.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Attacker `i` of a phase: 100.64.0.0/10 (shared address space), apart
/// per phase.
fn attacker(phase: u32, i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + (phase << 17) + 1 + i as u32)
}

/// A chan_sip registration failure the asterisk ruleset counts.
fn attack_line(a: Ipv4Addr) -> String {
    format!(
        "{} NOTICE[2143] chan_sip.c: Registration from '\"100\" <sip:100@10.0.0.1>' failed for '{a}:5060' - Wrong password\n",
        nftban::commands::demo::asterisk_now()
    )
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
