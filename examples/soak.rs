//! Soak benchmark: `nftban run` for N minutes at 10,000 lines/s with a
//! known ground truth, through log rotations and a restart. Run it with
//! `bash bench/soak.sh [--minutes N]` (needs root, `ip`, `nft`).
//!
//! ```text
//! soak NFTBAN_BIN [--minutes N] [--rate LINES_PER_S] [--rotations N] [--seed S]
//! ```
//!
//! One daemon in a private network namespace (deleted at the end), with one
//! jail of the shipped `asterisk` ruleset on `log/messages*` in a temporary
//! folder. A writer thread appends Asterisk lines dated now at the rate,
//! following a deterministic plan of attackers ([`traffic`]): some must be
//! banned, some must never be (too few failures, failures too far apart,
//! or from `ignoreip`), among ordinary lines and decoys. findtime is a
//! third of the run (20 s to 10 min) so that failure windows expire during
//! it; bantime is the run plus an hour, so no ban expires.
//!
//! During the run: at 1/8, 3/8 and 6/8 of it a rename rotation, at 2/8, 5/8
//! and 7/8 a copytruncate ([`writer`]; `--rotations N` makes it N of each,
//! evenly spread, alternating); at 4/8 a restart: the writer is
//! held until the daemon has read every line written (its `status` line
//! count must equal them), SIGTERM, the writer goes on; once the daemon has
//! exited, the positions it saved are read from its history and the lines
//! after them counted ([`daemon::left_to_read`]); 2.5 s later a rename
//! rotation that no daemon sees; 5 s after the exit the daemon is started
//! again on the same config, history and namespace. At the end,
//! once the second daemon has read everything, the checks: its line count
//! must be exactly the lines written after the first one stopped plus those
//! that one left; the bans, in the kernel (`nft -j list set`) and in
//! `nftban status --json`, must be exactly the ground truth's, which is
//! computed from the dates the written lines carry.
//!
//! Memory: VmRSS every 5 s; CPU: utime+stime of the daemon. The report is
//! Markdown on stdout; progress goes to stderr. Exit code 0 when every
//! check passed, 3 when one failed (the folder is then kept), 2 on error.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nftban::control::protocol::JailStatus;
use nftban::netns::NetNs;

use daemon::{Daemon, Left};
use report::{fmt_dur, loadavg, End, Setup};
use writer::{Log, Rotation};

#[path = "soak/daemon.rs"]
mod daemon;
#[path = "soak/report.rs"]
mod report;
#[path = "soak/traffic.rs"]
mod traffic;
#[path = "soak/writer.rs"]
mod writer;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const MAXRETRY: usize = 3;
/// How long no daemon runs at the restart (the writer goes on).
const DOWN: Duration = Duration::from_secs(5);
/// How often RSS and CPU are read.
const SAMPLE: Duration = Duration::from_secs(5);

struct Args {
    bin: PathBuf,
    minutes: f64,
    rate: u64,
    /// Rotations of each kind.
    rotations: u32,
    seed: u64,
}

fn args() -> Res<Args> {
    let mut it = std::env::args().skip(1);
    let usage = "usage: soak NFTBAN_BIN [--minutes N] [--rate LINES_PER_S] [--rotations N] [--seed S]";
    let bin = PathBuf::from(it.next().ok_or(usage)?);
    let mut a = Args {
        bin,
        minutes: 10.0,
        rate: 10_000,
        rotations: 3,
        seed: 1,
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(usage)?;
        match flag.as_str() {
            "--minutes" => a.minutes = value.parse()?,
            "--rate" => a.rate = value.parse()?,
            "--rotations" => a.rotations = value.parse()?,
            "--seed" => a.seed = value.parse()?,
            _ => return Err(format!("unknown argument {flag}; {usage}").into()),
        }
    }
    if a.minutes.is_nan() || a.minutes < 0.5 || a.rate == 0 {
        return Err("--minutes must be at least 0.5, --rate above 0".into());
    }
    Ok(a)
}

fn main() {
    let code = match args().and_then(|a| soak(&a)) {
        Ok(true) => 0,
        Ok(false) => 3,
        Err(e) => {
            eprintln!("soak: {e}");
            2
        }
    };
    std::process::exit(code);
}

/// One reading of the daemon's process.
struct Sample {
    daemon: u8,
    rss_kb: u64,
}

/// One row of the memory table.
struct Row {
    at: Duration,
    daemon: u8,
    rss_kb: u64,
    cpu: f64,
    written: u64,
    banned: Option<u64>,
}

/// The running daemon and what is needed to say how much CPU it used.
struct Current {
    daemon: Daemon,
    number: u8,
    /// (time, ticks) at the previous table row.
    last_row: (Instant, u64),
}

/// What happened at the restart.
struct Restart {
    at: Duration,
    /// Lines written when the writer was held, and what daemon 1 had read.
    written: u64,
    read: Option<u64>,
    caught_up_in: Duration,
    exit: Option<ExitStatus>,
    stopped_in: Duration,
    /// Lines written when the positions were read, and what daemon 1 left.
    written_at_exit: u64,
    left: Left,
    /// When daemon 1 had exited and daemon 2 answered (since the start).
    exited: Duration,
    started: Duration,
    started_in: Duration,
    down_lines: u64,
    /// Daemon 1's last status and CPU.
    last_status: Option<JailStatus>,
    cpu_secs: f64,
    alive: Duration,
    hwm_kb: Option<u64>,
}

fn soak(a: &Args) -> Res<bool> {
    if !nftban::netns::is_root() {
        return Err("needs root (a private network namespace)".into());
    }
    let load_before = loadavg();
    let duration = Duration::from_secs((a.minutes * 60.0).round() as u64);
    let findtime = Duration::from_secs((duration.as_secs() / 3).clamp(20, 600));
    let bantime = duration + Duration::from_secs(3600);
    let restart_at = duration / 2;
    // 2N + 1 evenly spaced moments: the middle one is the restart, the
    // others rotations, alternately rename and copytruncate.
    let n = a.rotations;
    let rotations: Vec<(Duration, Rotation)> = (1..=2 * n + 1)
        .filter(|&k| k != n + 1)
        .enumerate()
        .map(|(i, k)| {
            let how = if i % 2 == 0 {
                Rotation::Rename
            } else {
                Rotation::CopyTruncate
            };
            (duration * k / (2 * n + 2), how)
        })
        .collect();
    let row_every = if duration <= Duration::from_secs(120) {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(60 * (duration.as_secs() / 60).div_ceil(15).max(1))
    };

    let tmp = tempfile::Builder::new().prefix("nftban-soak-").tempdir()?;
    let dir = tmp.path().to_path_buf();
    let logdir = dir.join("log");
    let config = dir.join("nftban.yaml");
    let database = dir.join("nftban.db");
    let out = dir.join("nftban.out");
    std::fs::write(
        &config,
        format!(
            "socket: {d}/nftban.sock\ndatabase: {db}\nlog: {{target: {d}/nftban.log}}\ndefaults: {{findtime: {f}s, maxretry: {MAXRETRY}, bantime: {b}s, ignoreip: [{ig}]}}\njails:\n  asterisk:\n    ruleset: asterisk\n    files: [\"{l}/{n}*\"]\n",
            d = dir.display(),
            db = database.display(),
            f = findtime.as_secs(),
            b = bantime.as_secs(),
            ig = traffic::IGNOREIP.map(|i| format!("\"{i}\"")).join(", "),
            l = logdir.display(),
            n = writer::NAME,
        ),
    )?;
    preflight(&a.bin, &dir)?;

    let plan = traffic::plan(duration, findtime, a.seed);
    let total = a.rate * duration.as_secs();
    let log = Arc::new(Mutex::new(Log::create(&logdir, a.rate, total, plan, a.seed)?));
    let ns = NetNs::create("soak")?;
    eprintln!(
        "soak: {} in {}, namespace {}; {} lines at {}/s, findtime {} s",
        fmt_dur(duration),
        dir.display(),
        ns.name,
        total,
        a.rate,
        findtime.as_secs()
    );
    let (d1, first_start) = Daemon::start(&a.bin, &ns, &config, &out)?;
    eprintln!(
        "soak: daemon 1 (pid {}) answering after {} ms",
        d1.pid,
        first_start.as_millis()
    );

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, stop, rotations) = (log.clone(), stop.clone(), rotations.clone());
        std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || writer::run(log, start, rotations, stop))?
    };
    // Stop the writer however this ends.
    let _stop_writer = StopOnDrop(stop.clone());

    let mut cur = Current {
        last_row: (d1.spawned, 0),
        daemon: d1,
        number: 1,
    };
    let mut samples: Vec<Sample> = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    let mut restart: Option<Restart> = None;
    let (mut next_sample, mut next_row) = (Duration::ZERO, row_every);
    let mut notes_seen = 0;
    while !writer.is_finished() {
        let now = start.elapsed();
        if restart.is_none() && now >= restart_at {
            let (r, d2) = do_restart(a, &ns, (&config, &database, &out), &log, start, cur)?;
            restart = Some(r);
            cur = Current {
                last_row: (d2.spawned, 0),
                daemon: d2,
                number: 2,
            };
            continue;
        }
        if now >= next_sample {
            if let Some((_, rss)) = daemon::cpu_and_rss(cur.daemon.pid) {
                samples.push(Sample {
                    daemon: cur.number,
                    rss_kb: rss,
                });
            }
            next_sample += SAMPLE;
        }
        // Not right after a start: a row's CPU is over at least a second.
        if now >= next_row && cur.last_row.0.elapsed() >= Duration::from_secs(1) {
            let written = lock(&log)?.written;
            rows.push(row(a, &config, &mut cur, now, written));
            let r = rows.last().ok_or("no row")?;
            eprintln!(
                "[{}] daemon {}: RSS {:.1} MB, CPU {:.1}%, {} lines written, {} banned",
                fmt_dur(now),
                r.daemon,
                r.rss_kb as f64 / 1024.0,
                r.cpu,
                r.written,
                r.banned.map_or("?".into(), |b| b.to_string())
            );
            next_row += row_every;
        }
        {
            let l = lock(&log)?;
            for (at, note) in &l.notes[notes_seen..] {
                eprintln!("[{}] {note}", fmt_dur(*at));
            }
            notes_seen = l.notes.len();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    writer.join().map_err(|_| "the writer panicked")??;
    let restart = restart.ok_or("the run ended before the restart")?;

    // The end: wait until the second daemon has read every line.
    let (written_end, finished) = {
        let l = lock(&log)?;
        (l.written, l.finished.unwrap_or_else(|| start.elapsed()))
    };
    let want = written_end - restart.written_at_exit + restart.left.lines;
    let (final_status, catch_up) = catch_up(&a.bin, &config, want);
    let now = start.elapsed();
    rows.push(row(a, &config, &mut cur, now, written_end));
    let (st, jail) = final_status.ok_or("the second daemon does not answer status at the end")?;
    let kernel = daemon::kernel(&ns)?;
    let (ticks2, rss2) = daemon::cpu_and_rss(cur.daemon.pid).unwrap_or((0, 0));
    samples.push(Sample {
        daemon: 2,
        rss_kb: rss2,
    });
    let hwm2 = daemon::proc_status_kb(cur.daemon.pid, "VmHWM");
    let alive2 = cur.daemon.spawned.elapsed();
    cur.daemon.terminate();
    let t_stop = Instant::now();
    let exit2 = cur.daemon.wait();
    let stopped2 = t_stop.elapsed();
    drop(ns);
    let load_after = loadavg();

    let l = lock(&log)?;
    let end = End {
        written: written_end,
        finished,
        catch_up,
        status: st,
        jail,
        kernel,
        cpu_secs: ticks2 as f64 / daemon::clock_ticks(),
        alive: alive2,
        hwm_kb: hwm2,
        exit: exit2,
        stopped_in: stopped2,
    };
    let setup = Setup {
        args: a,
        duration,
        findtime,
        bantime,
        load_before,
        load_after,
        dir: &dir,
        first_start,
    };
    let (text, passed) = report::report(&setup, &l, &restart, &end, &rows, &samples);
    print!("{text}");
    if !passed {
        let kept = tmp.keep();
        eprintln!(
            "soak: a check failed; the folder is kept for inspection (the daemon's log is nftban.log): {}",
            kept.display()
        );
    }
    Ok(passed)
}

/// Sets `stop` when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn lock(log: &Mutex<Log>) -> Res<std::sync::MutexGuard<'_, Log>> {
    log.lock().map_err(|_| "the writer's lock is poisoned".into())
}

/// A row of the memory table: RSS now, CPU since the previous row.
fn row(a: &Args, config: &Path, cur: &mut Current, at: Duration, written: u64) -> Row {
    let now = Instant::now();
    let (ticks, rss) = daemon::cpu_and_rss(cur.daemon.pid).unwrap_or((cur.last_row.1, 0));
    let secs = now.duration_since(cur.last_row.0).as_secs_f64();
    let cpu = (ticks - cur.last_row.1.min(ticks)) as f64 / daemon::clock_ticks() / secs.max(1e-3) * 100.0;
    cur.last_row = (now, ticks);
    let banned = daemon::status(&a.bin, config).map(|(_, j)| j.currently_banned);
    Row {
        at,
        daemon: cur.number,
        rss_kb: rss,
        cpu,
        written,
        banned,
    }
}

/// The restart in the middle (see the module doc). Returns what happened
/// and the second daemon.
fn do_restart(
    a: &Args,
    ns: &NetNs,
    (config, database, out): (&Path, &Path, &Path),
    log: &Mutex<Log>,
    start: Instant,
    cur: Current,
) -> Res<(Restart, Daemon)> {
    let d1 = cur.daemon;
    let spawned1 = d1.spawned;
    let at = start.elapsed();
    eprintln!(
        "[{}] restart: holding the writer until daemon 1 has read everything",
        fmt_dur(at)
    );
    let guard = lock(log)?;
    let written = guard.written;
    let t0 = Instant::now();
    let mut last_status = None;
    let mut read = None;
    while t0.elapsed() < Duration::from_secs(10) {
        if let Some((_, j)) = daemon::status(&a.bin, config) {
            let lines = j.sources.iter().map(|s| s.lines).sum::<u64>();
            read = Some(lines);
            last_status = Some(j);
            if lines >= written {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let caught_up_in = t0.elapsed();
    let (ticks, _) = daemon::cpu_and_rss(d1.pid).unwrap_or((0, 0));
    let hwm_kb = daemon::proc_status_kb(d1.pid, "VmHWM");
    d1.terminate();
    let t_term = Instant::now();
    drop(guard);
    let exit = d1.wait();
    let stopped_in = t_term.elapsed();
    let exited = start.elapsed();
    let alive = t_term.duration_since(spawned1);
    let (written_at_exit, left) = {
        let guard = lock(log)?;
        let left = daemon::left_to_read(database, guard.dir())?;
        (guard.written, left)
    };
    eprintln!(
        "[{}] daemon 1 stopped in {} ms ({}); it left {} lines to read",
        fmt_dur(start.elapsed()),
        stopped_in.as_millis(),
        exit.map_or("killed after 30 s".into(), |s| s.to_string()),
        left.lines
    );
    // Halfway through the downtime, a rotation no daemon sees (the next
    // one must recognise the old file under its new name by its head).
    let down_from = Instant::now();
    std::thread::sleep(DOWN / 2);
    lock(log)?.rotate_now(Rotation::Rename, start.elapsed(), ", while no daemon runs")?;
    std::thread::sleep(DOWN.saturating_sub(down_from.elapsed()));
    let down_lines = lock(log)?.written - written_at_exit;
    let (d2, started_in) = Daemon::start(&a.bin, ns, config, out)?;
    let started = start.elapsed();
    eprintln!(
        "[{}] daemon 2 (pid {}) answering after {} ms",
        fmt_dur(start.elapsed()),
        d2.pid,
        started_in.as_millis()
    );
    Ok((
        Restart {
            at,
            written,
            read,
            caught_up_in,
            exit,
            stopped_in,
            written_at_exit,
            left,
            exited,
            started,
            started_in,
            down_lines,
            last_status,
            cpu_secs: ticks as f64 / daemon::clock_ticks(),
            alive,
            hwm_kb,
        },
        d2,
    ))
}

/// Wait until the daemon has read `want` lines (or more), or its count has
/// not moved for 10 s, then until its ban count has not moved for 1 s.
/// Its last status, and how long the wait took.
fn catch_up(
    bin: &Path,
    config: &Path,
    want: u64,
) -> (Option<(nftban::control::protocol::Status, JailStatus)>, Duration) {
    let t0 = Instant::now();
    let (mut last, mut moved) = (None::<(u64, u64)>, Instant::now());
    let mut status = None;
    loop {
        let s = daemon::status(bin, config);
        if let Some((_, j)) = &s {
            let now = (j.sources.iter().map(|s| s.lines).sum::<u64>(), j.currently_banned);
            if last != Some(now) {
                moved = Instant::now();
            }
            last = Some(now);
            let quiet = moved.elapsed();
            if (now.0 >= want && quiet >= Duration::from_secs(1)) || quiet >= Duration::from_secs(10) {
                return (s, t0.elapsed());
            }
        }
        status = s.or(status);
        if t0.elapsed() > Duration::from_secs(120) {
            return (status, t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Check that the line kinds the writer uses are what the plan assumes:
/// `nftban test` with the shipped ruleset finds each attack line's address
/// once, and nothing in the ordinary lines and decoys.
fn preflight(bin: &Path, dir: &Path) -> Res<()> {
    let mut text = String::new();
    let mut want = BTreeMap::new();
    let mut rng = traffic::Rng(99);
    let mut clock = traffic::Clock::new();
    let (_, t) = clock.now();
    let t = t.to_string();
    for v in 0..traffic::ATTACK_LINES {
        for a in [
            IpAddr::from([100, 64, 200, 1 + v as u8]),
            IpAddr::from([0x2001, 0xdb8, 0x1ff, v as u16, 0, 0, 0, 1]),
        ] {
            traffic::attack_line(&mut text, v, &mut rng, &t, &a);
            want.insert(a.to_string(), 1u64);
        }
    }
    for v in 0..traffic::ORDINARY_LINES {
        for _ in 0..3 {
            traffic::ordinary_line(&mut text, v, &mut rng, &t);
        }
    }
    let file = dir.join("preflight.log");
    std::fs::write(&file, &text)?;
    let o = Command::new(bin)
        .arg("test")
        .arg(&file)
        .args(["asterisk", "--json"])
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .map_err(|e| format!("nftban test --json: {e}: {}", String::from_utf8_lossy(&o.stderr)))?;
    let got: BTreeMap<String, u64> = v["hosts"]
        .as_object()
        .ok_or("nftban test --json: no `hosts`")?
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
        .collect();
    if got != want {
        return Err(format!(
            "the writer's lines are not what the ground truth assumes: nftban test found {got:?}, expected {want:?} (lines in {})",
            file.display()
        )
        .into());
    }
    Ok(())
}
