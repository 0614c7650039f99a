//! Daemon benchmark: `nftban run` beside Debian's fail2ban-server,
//! on the same generated Asterisk log, each daemon in its own private network
//! namespace. Run it with `bash bench/daemon.sh` (docs/performance.md,
//! "Daemon"); it needs root, `ip`, `nft` and fail2ban.
//!
//! ```text
//! daemon_bench NFTBAN_BIN [--only nftban|fail2ban] [--phases latency,burst,steady,restore,flood] [--quick] [--flood-rate LINES_PER_S] [--flood-secs S] [--flood-per-attacker N]
//! ```
//!
//! Every phase starts each daemon afresh in a new namespace, with a fresh
//! folder (config, log, database), and measures the kernel side by listening
//! to nf_tables events in that namespace ([`AddedElements`]): one NEWSETELEM
//! per element, stamped by the kernel, whether nftban adds it over netlink or
//! fail2ban runs `nft add element`. Log lines carry the current time (a line
//! older than findtime counts for neither daemon). Both daemons get the same
//! lines in the same order: the line maker below is deterministic apart from
//! the date.
//!
//! Phases:
//! - latency: attackers one at a time, 3 lines each (maxretry 3), the third
//!   written after the first two; from the `write` of the third line to the
//!   kernel's event for the address.
//! - burst: 5,000 new attackers, 3 lines each (all first lines, then all
//!   second, then all third), in one write; until the last is in the kernel.
//! - steady: 10,000 lines/s (one write per millisecond tick) for 30 s, one
//!   line in ten an attack, each attacker 3 lines; CPU (utime+stime of the
//!   daemon over the writing interval), peak RSS, and the lag: from the write
//!   of the last attack line to its ban.
//! - restore: 100,000 running bans in the daemon's history, daemon started in
//!   a fresh namespace: until all are in the kernel. For nftban also a third
//!   start in a namespace nobody listens to (as in production): until the
//!   daemon's log line after the kernel accepted the batch.
//! - flood: 1,000,000 lines/s into the one file for 10 s (`--flood-rate`,
//!   `--flood-secs`), 1,000 lines a write, one in five an attack; each
//!   attacker has 200 attack lines (`--flood-per-attacker`), banned at its
//!   third, so 1,000 bans/s. How far the daemon has read (nftban: status
//!   `lines`; fail2ban: its file offset), sampled over time; the lag from
//!   the write of each attacker's third line to its ban; CPU and RSS as in
//!   steady.
//!
//! fail2ban phases are capped (see `Sizes`), and the output says when a cap
//! was hit and how far fail2ban got.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nftban::netns::NetNs;

use watch::Watch;

// A module of this example (Cargo would take `examples/added.rs` for an
// example of its own).
#[path = "daemon_bench/added.rs"]
mod added;
#[path = "daemon_bench/watch.rs"]
mod watch;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// How much work each phase does, and how long fail2ban may take.
struct Sizes {
    latency_samples: usize,
    burst: usize,
    steady_secs: u64,
    steady_rate: u64,
    restore: usize,
    /// The flood: lines/s, seconds, attack lines per attacker.
    flood_rate: u64,
    flood_secs: u64,
    flood_per_attacker: u64,
    /// Caps for fail2ban (nftban gets the same caps; it never needs them).
    latency_cap: Duration,
    burst_cap: Duration,
    lag_cap: Duration,
    restore_cap: Duration,
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            latency_samples: 200,
            burst: 5_000,
            steady_secs: 30,
            steady_rate: 10_000,
            restore: 100_000,
            flood_rate: 1_000_000,
            flood_secs: 10,
            flood_per_attacker: 200,
            latency_cap: Duration::from_secs(60),
            burst_cap: Duration::from_secs(60),
            lag_cap: Duration::from_secs(60),
            restore_cap: Duration::from_secs(120),
        }
    }

    fn quick() -> Sizes {
        Sizes {
            latency_samples: 30,
            burst: 1_000,
            steady_secs: 5,
            steady_rate: 10_000,
            restore: 10_000,
            flood_rate: 1_000_000,
            flood_secs: 3,
            flood_per_attacker: 200,
            latency_cap: Duration::from_secs(15),
            burst_cap: Duration::from_secs(15),
            lag_cap: Duration::from_secs(15),
            restore_cap: Duration::from_secs(20),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Nftban,
    Fail2ban,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Nftban => "nftban",
            Kind::Fail2ban => "fail2ban",
        }
    }

    /// The set the jail's IPv4 bans go to.
    fn set(self) -> &'static str {
        match self {
            Kind::Nftban => "asterisk_v4",
            Kind::Fail2ban => "addr-set-asterisk",
        }
    }
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let bin = PathBuf::from(args.next().ok_or(
        "usage: daemon_bench NFTBAN_BIN [--only nftban|fail2ban] [--phases latency,burst,steady,restore,flood] [--quick] [--flood-rate LINES_PER_S] [--flood-secs S] [--flood-per-attacker N]",
    )?);
    let mut kinds = vec![Kind::Nftban, Kind::Fail2ban];
    let mut phases: Vec<String> = ["latency", "burst", "steady", "restore", "flood"]
        .map(String::from)
        .to_vec();
    let mut sizes = Sizes::full();
    let (mut flood_rate, mut flood_secs, mut flood_per_attacker) = (None, None, None);
    let number = |name: &str, v: Option<String>| -> Res<u64> {
        match v.as_deref().map(str::parse::<u64>) {
            Some(Ok(n)) if n > 0 => Ok(n),
            _ => Err(format!("{name} takes a positive whole number").into()),
        }
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--only" => {
                kinds = match args.next().as_deref() {
                    Some("nftban") => vec![Kind::Nftban],
                    Some("fail2ban") => vec![Kind::Fail2ban],
                    other => return Err(format!("--only nftban|fail2ban, not {other:?}").into()),
                }
            }
            "--phases" => {
                phases = args
                    .next()
                    .ok_or("--phases LIST")?
                    .split(',')
                    .map(String::from)
                    .collect()
            }
            "--quick" => sizes = Sizes::quick(),
            "--flood-rate" => flood_rate = Some(number(&a, args.next())?),
            "--flood-secs" => flood_secs = Some(number(&a, args.next())?),
            "--flood-per-attacker" => flood_per_attacker = Some(number(&a, args.next())?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    sizes.flood_rate = flood_rate.unwrap_or(sizes.flood_rate);
    sizes.flood_secs = flood_secs.unwrap_or(sizes.flood_secs);
    sizes.flood_per_attacker = flood_per_attacker.unwrap_or(sizes.flood_per_attacker);
    if !nftban::netns::is_root() {
        return Err("needs root (private network namespaces)".into());
    }
    if kinds.contains(&Kind::Fail2ban) {
        println!("fail2ban backend: {}", fail2ban_backend());
    }
    let bench = Bench { bin, sizes };
    for phase in &phases {
        match phase.as_str() {
            "latency" => bench.latency(&kinds)?,
            "burst" => bench.burst(&kinds)?,
            "steady" => bench.steady(&kinds)?,
            "restore" => bench.restore(&kinds)?,
            "flood" => bench.flood(&kinds)?,
            other => return Err(format!("unknown phase {other}").into()),
        }
    }
    Ok(())
}

struct Bench {
    bin: PathBuf,
    sizes: Sizes,
}

impl Bench {
    fn latency(&self, kinds: &[Kind]) -> Res<()> {
        let s = &self.sizes;
        println!("\n### Ban latency: third line written → element in the kernel\n");
        println!("{} attackers one after the other, 3 lines each (maxretry 3); the third line is written 5 ms after the first two; at most {} s per daemon.\n", s.latency_samples, s.latency_cap.as_secs());
        println!("| daemon | samples | p50 ms | p99 ms | max ms | not banned within 10 s |");
        println!("|---|---:|---:|---:|---:|---:|");
        for &kind in kinds {
            let mut run = Run::start(kind, &self.bin)?;
            run.warm_up()?;
            let started = Instant::now();
            let mut lat = Vec::new();
            let mut missed = 0;
            for i in 0..s.latency_samples {
                if started.elapsed() > s.latency_cap {
                    break;
                }
                let a = attacker(1, i);
                run.write(&format!("{}{}", attack_line(a), attack_line(a)))?;
                std::thread::sleep(Duration::from_millis(5));
                let t0 = SystemTime::now();
                run.write(&attack_line(a))?;
                match run.watch.wait_for(a, Instant::now() + Duration::from_secs(10))? {
                    Some(at) => lat.push(at.duration_since(t0).unwrap_or_default()),
                    None => missed += 1,
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            lat.sort();
            println!(
                "| {} | {} | {:.2} | {:.2} | {:.2} | {missed} |",
                kind.name(),
                lat.len(),
                ms(pct(&lat, 0.50)),
                ms(pct(&lat, 0.99)),
                ms(lat.last().copied().unwrap_or_default()),
            );
            run.stop();
        }
        Ok(())
    }

    fn burst(&self, kinds: &[Kind]) -> Res<()> {
        let s = &self.sizes;
        let n = s.burst;
        println!("\n### Burst: {n} new attackers, 3 lines each, in one write\n");
        println!(
            "All first lines, then all second lines, then all third lines ({} lines, one `write`); at most {} s per daemon.\n",
            3 * n,
            s.burst_cap.as_secs()
        );
        println!("| daemon | banned | seconds until the last was in the kernel | bans/s |");
        println!("|---|---:|---:|---:|");
        for &kind in kinds {
            let mut run = Run::start(kind, &self.bin)?;
            run.warm_up()?;
            let before = run.watch.count();
            let mut text = String::with_capacity(n * 3 * 120);
            for _round in 0..3 {
                for i in 0..n {
                    text.push_str(&attack_line(attacker(2, i)));
                }
            }
            let t0 = SystemTime::now();
            run.write(&text)?;
            let last = run.watch.wait_count(before + n, Instant::now() + s.burst_cap)?;
            let banned = run.watch.count() - before;
            let secs = last.and_then(|l| l.duration_since(t0).ok()).map(|d| d.as_secs_f64());
            match (banned == n, secs) {
                (true, Some(t)) => println!("| {} | {banned} | {t:.3} | {:.0} |", kind.name(), n as f64 / t),
                _ => {
                    let t = s.burst_cap.as_secs_f64();
                    println!(
                        "| {} | {banned} of {n} when stopped | > {t:.0} (cap) | {:.0} |",
                        kind.name(),
                        banned as f64 / t
                    )
                }
            }
            run.stop();
        }
        Ok(())
    }

    fn steady(&self, kinds: &[Kind]) -> Res<()> {
        let s = &self.sizes;
        let total = s.steady_secs * s.steady_rate;
        let attackers = total / 30;
        println!(
            "\n### Steady load: {} lines/s for {} s, one in ten an attack\n",
            s.steady_rate, s.steady_secs
        );
        println!("{total} lines written in one `write` per millisecond tick; attack lines come from {attackers} new attackers, 3 lines each (so {} bans/s). CPU: utime+stime of the daemon's process (all threads) over the writing interval, as % of one core; for nftban split into its file reader thread (reading and matching) and the rest (mostly the engine thread: bans, history, netlink); for fail2ban also its children's (`nft`, reaped) in brackets. Lag: from the write of the last attack line to its ban, waiting at most {} s.\n", s.steady_rate / 30, s.lag_cap.as_secs());
        println!("| daemon | lines/s written | CPU % of one core | peak RSS MB | banned when the writer stopped | lag of the last ban |");
        println!("|---|---:|---:|---:|---:|---|");
        for &kind in kinds {
            let mut run = Run::start(kind, &self.bin)?;
            run.warm_up()?;
            let before = run.watch.count();
            let cpu0 = cpu_ticks(run.pid())?;
            let readers0 = reader_ticks(run.pid());
            let start = Instant::now();
            let (mut written, mut attack) = (0u64, 0u64);
            let mut last_attack_written = SystemTime::now();
            let mut text = String::new();
            while written < total {
                let due = ((start.elapsed().as_secs_f64() * s.steady_rate as f64) as u64).min(total);
                text.clear();
                let mut has_attack = false;
                while written < due {
                    if written % 10 == 0 {
                        text.push_str(&attack_line(attacker(3, (attack / 3) as usize)));
                        attack += 1;
                        has_attack = true;
                    } else {
                        text.push_str(&noise_line(written));
                    }
                    written += 1;
                }
                if !text.is_empty() {
                    let t = SystemTime::now();
                    run.write(&text)?;
                    if has_attack {
                        last_attack_written = t;
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let wall = start.elapsed();
            let cpu1 = cpu_ticks(run.pid())?;
            let readers1 = reader_ticks(run.pid());
            run.watch.drain()?;
            let at_stop = run.watch.count() - before;
            let last = attacker(3, (attack / 3 - 1) as usize);
            let lag = run.watch.wait_for(last, Instant::now() + s.lag_cap)?;
            let lag = match lag {
                Some(at) => format!(
                    "{:.3} s",
                    at.duration_since(last_attack_written).unwrap_or_default().as_secs_f64()
                ),
                None => format!(
                    "> {} s (cap): {} of {attackers} banned by then",
                    s.lag_cap.as_secs(),
                    run.watch.count() - before
                ),
            };
            let tck = clock_ticks();
            let own = (cpu1.0 - cpu0.0) as f64 / tck / wall.as_secs_f64() * 100.0;
            let children = (cpu1.1 - cpu0.1) as f64 / tck / wall.as_secs_f64() * 100.0;
            let readers = readers1.saturating_sub(readers0) as f64 / tck / wall.as_secs_f64() * 100.0;
            let cpu = match kind {
                Kind::Nftban => format!("{own:.1} (reader {readers:.1}, engine {:.1})", own - readers),
                Kind::Fail2ban => format!("{own:.1} (+{children:.1})"),
            };
            let hwm = proc_status_kb(run.pid(), "VmHWM")? as f64 / 1024.0;
            println!(
                "| {} | {:.0} | {cpu} | {hwm:.1} | {at_stop} of {attackers} | {lag} |",
                kind.name(),
                written as f64 / wall.as_secs_f64(),
            );
            run.stop();
        }
        Ok(())
    }

    fn restore(&self, kinds: &[Kind]) -> Res<()> {
        let s = &self.sizes;
        let n = s.restore;
        println!("\n### Restore: {n} running bans in the history, daemon started in a fresh namespace\n");
        println!("nftban: the bans were given with `nftban ban - --jail asterisk` to a first daemon, which was stopped; fail2ban: {n} rows inserted into the `bips` and `bans` tables of its dbfile (created by a first start). From spawning the daemon to the last element's event; at most {} s.\n", s.restore_cap.as_secs());
        println!("| daemon | restored | seconds | bans/s | peak RSS MB |");
        println!("|---|---:|---:|---:|---:|");
        let mut without_listener = None;
        for &kind in kinds {
            let dir = tempfile::Builder::new().prefix("nftban-dbench-").tempdir()?;
            let addrs: Vec<Ipv4Addr> = (0..n).map(|i| attacker(4, i)).collect();
            {
                let mut first = Run::start_in(kind, &self.bin, dir.path())?;
                match kind {
                    Kind::Nftban => {
                        let mut list = String::with_capacity(n * 16);
                        for a in &addrs {
                            let _ = writeln!(list, "{a}");
                        }
                        let mut cli = Command::new(&self.bin)
                            .args(["ban", "-", "--jail", "asterisk", "--config"])
                            .arg(dir.path().join("nftban.yaml"))
                            .stdin(Stdio::piped())
                            .stdout(Stdio::null())
                            .spawn()?;
                        cli.stdin.take().ok_or("no stdin")?.write_all(list.as_bytes())?;
                        if !cli.wait()?.success() {
                            return Err("nftban ban - failed".into());
                        }
                        first.stop();
                    }
                    Kind::Fail2ban => {
                        first.stop();
                        fill_fail2ban_db(&dir.path().join("f2b.sqlite3"), &addrs)?;
                    }
                }
            }
            let ns = NetNs::create(&format!("dbench-{}", kind.name()))?;
            let watch = Watch::open(&ns, kind.set())?;
            let t0 = SystemTime::now();
            let mut run = Run::spawn(kind, &self.bin, ns, dir, watch)?;
            let last = run.watch.wait_count(n, Instant::now() + s.restore_cap)?;
            let restored = run.watch.count();
            let hwm = proc_status_kb(run.pid(), "VmHWM")? as f64 / 1024.0;
            match (restored >= n, last.and_then(|l| l.duration_since(t0).ok())) {
                (true, Some(t)) => println!(
                    "| {} | {restored} | {:.3} | {:.0} | {hwm:.1} |",
                    kind.name(),
                    t.as_secs_f64(),
                    n as f64 / t.as_secs_f64()
                ),
                _ => {
                    let t = s.restore_cap.as_secs_f64();
                    println!(
                        "| {} | {restored} of {n} when stopped | > {t:.0} (cap) | {:.0} | {hwm:.1} |",
                        kind.name(),
                        restored as f64 / t
                    )
                }
            }
            run.stop();
            if kind == Kind::Nftban {
                without_listener = Some(restore_without_listener(&self.bin, run, n)?);
            }
        }
        if let Some((restored, secs)) = without_listener {
            println!(
                "\nnftban without an event listener (as in production, where the daemon pauses its own monitor for big batches): started a third time on the same history in a fresh namespace that nobody listens to, {secs:.3} s from spawning it to its log line after the kernel accepted the batch (the line's own timestamp); {restored} elements in the set afterwards."
            );
        }
        Ok(())
    }

    fn flood(&self, kinds: &[Kind]) -> Res<()> {
        let s = &self.sizes;
        let (rate, secs, per) = (s.flood_rate, s.flood_secs, s.flood_per_attacker);
        let total = rate * secs;
        let attack_lines = total.div_ceil(5);
        // Attackers with at least maxretry lines (a last one with fewer is
        // never banned).
        let attackers = attack_lines / per + u64::from(attack_lines % per >= MAXRETRY);
        if attackers > 27 << 17 {
            return Err(format!("the flood needs {attackers} attackers, more than the 3.5 million addresses it has; raise --flood-per-attacker").into());
        }
        let rest = per.saturating_sub(MAXRETRY);
        println!("\n### Flood: {rate} lines/s into one file for {secs} s, one in five an attack\n");
        println!(
            "{total} lines written in one `write` per millisecond tick ({} lines a write); the attack lines come from {attackers} new attackers, {per} consecutive attack lines each: the {MAXRETRY}rd makes the ban due, the {rest} after it are the flood going on from a banned address (its packets already logged), so {:.0} bans/s. Read: nftban's status `lines` count (control socket, every {} ms), fail2ban's offset in the file (/proc/PID/fdinfo); behind = lines written before the question that were not read by the answer. Lag: from the write of each attacker's {MAXRETRY}rd line to its element in the kernel, over all attackers (one not banned by the cap counts as later than any). CPU over the writing interval as in the steady phase; the writer's own thread in the last column. Waiting at most {} s after the writer stopped.\n",
            rate / 1000,
            rate as f64 / 5.0 / per as f64,
            SAMPLE_EVERY.as_millis(),
            s.lag_cap.as_secs()
        );
        println!("| daemon | lines/s written | lines/s read while writing | behind when the writer stopped | caught up | banned when the writer stopped | lag p50 / p99 / max ms | banned within the cap | CPU % of one core | peak RSS MB | writer CPU % |");
        println!("|---|---:|---:|---:|---|---:|---|---:|---|---:|---:|");
        let noise: Vec<String> = (0..NOISE_POOL).map(noise_body).collect();
        let mut timelines = Vec::new();
        for &kind in kinds {
            let mut run = Run::start(kind, &self.bin)?;
            run.warm_up()?;
            let before = run.watch.count();
            let probe = Probe::new(&run)?;
            let progress = Arc::new(Progress::default());
            let start = Instant::now();
            let sampler = {
                let (probe, progress) = (probe.clone(), progress.clone());
                std::thread::spawn(move || sample(&probe, &progress, start))
            };
            let cpu0 = cpu_ticks(run.pid())?;
            let readers0 = reader_ticks(run.pid());
            let writer0 = thread_cpu();
            let (mut written, mut attack) = (0u64, 0u64);
            let mut bytes = 0u64;
            let mut due_at: Vec<Option<SystemTime>> = vec![None; attackers as usize];
            let mut body = (u64::MAX, String::new());
            let mut text = String::with_capacity(2 * (rate / 1000) as usize * 140);
            let mut due_now = Vec::new();
            while written < total {
                let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
                text.clear();
                due_now.clear();
                let date = nftban::commands::demo::asterisk_now();
                while written < due {
                    text.push_str(&date);
                    if written % 5 == 0 {
                        let who = attack / per;
                        if body.0 != who {
                            body = (who, attack_body(attacker(5, who as usize)));
                        }
                        text.push_str(&body.1);
                        if attack % per == MAXRETRY - 1 {
                            due_now.push(who as usize);
                        }
                        attack += 1;
                    } else {
                        text.push_str(&noise[(written % NOISE_POOL) as usize]);
                    }
                    written += 1;
                }
                if !text.is_empty() {
                    let t = SystemTime::now();
                    run.write(&text)?;
                    bytes += text.len() as u64;
                    progress.bytes.store(bytes, Ordering::Relaxed);
                    progress.written.store(written, Ordering::Relaxed);
                    for &w in &due_now {
                        due_at[w] = Some(t);
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let wall = start.elapsed();
            let writer = thread_cpu().saturating_sub(writer0);
            let cpu1 = cpu_ticks(run.pid())?;
            let readers1 = reader_ticks(run.pid());
            let behind_at_stop = probe.read(&progress).map(|r| total.saturating_sub(r));
            run.watch.drain()?;
            let at_stop = run.watch.count() - before;
            // Until every line is read and every attacker banned, or the cap.
            let deadline = Instant::now() + s.lag_cap;
            loop {
                let done_reading = progress.read.load(Ordering::Relaxed) >= total;
                if (done_reading && run.watch.count() - before >= attackers as usize) || Instant::now() >= deadline {
                    break;
                }
                run.watch
                    .pump((Instant::now() + Duration::from_millis(100)).min(deadline))?;
            }
            let read_at_end = probe.read(&progress);
            progress.stop.store(true, Ordering::Relaxed);
            let samples = sampler.join().map_err(|_| "the sampler panicked")?;
            let hwm = proc_status_kb(run.pid(), "VmHWM")? as f64 / 1024.0;
            run.watch.drain()?;

            // Read while writing: the last sample taken before the writer stopped.
            let read_while = samples
                .iter()
                .filter(|x| x.at <= wall)
                .filter_map(|x| x.read.map(|r| (x.answered, r)))
                .next_back();
            let read_rate = read_while.map_or("?".to_string(), |(at, r)| format!("{:.0}", r as f64 / at.as_secs_f64()));
            let caught = samples
                .iter()
                .find(|x| x.read.is_some_and(|r| r >= total))
                .map(|x| x.at);
            let caught = match (caught, read_at_end) {
                (Some(at), _) if at <= wall => "at once".to_string(),
                (Some(at), _) => format!("{:.2} s after the writer stopped", (at - wall).as_secs_f64()),
                (None, Some(r)) => format!("no: {} lines behind at the cap", total.saturating_sub(r)),
                (None, None) => "?".to_string(),
            };
            let behind = behind_at_stop.map_or("?".to_string(), |b| b.to_string());
            let mut lag: Vec<Duration> = Vec::new();
            for (i, t) in due_at.iter().enumerate() {
                if let (Some(t), Some(at)) = (t, run.watch.seen.get(&IpAddr::V4(attacker(5, i)))) {
                    lag.push(at.duration_since(*t).unwrap_or_default());
                }
            }
            lag.sort();
            let banned = lag.len();
            // Over all attackers: one not banned by the cap is later than any.
            let lag_pct = |q: f64| {
                let i = ((q * attackers as f64).ceil() as usize).clamp(1, attackers as usize) - 1;
                lag.get(i)
                    .map_or(format!("> {} s", s.lag_cap.as_secs()), |d| format!("{:.1}", ms(*d)))
            };
            let tck = clock_ticks();
            let w = wall.as_secs_f64();
            let own = (cpu1.0 - cpu0.0) as f64 / tck / w * 100.0;
            let children = (cpu1.1 - cpu0.1) as f64 / tck / w * 100.0;
            let readers = readers1.saturating_sub(readers0) as f64 / tck / w * 100.0;
            let cpu = match kind {
                Kind::Nftban => format!("{own:.1} (reader {readers:.1}, engine {:.1})", own - readers),
                Kind::Fail2ban => format!("{own:.1} (+{children:.1})"),
            };
            println!(
                "| {} | {:.0} | {read_rate} | {behind} | {caught} | {at_stop} of {attackers} | {} / {} / {} | {banned} of {attackers} | {cpu} | {hwm:.1} | {:.1} |",
                kind.name(),
                written as f64 / w,
                lag_pct(0.50),
                lag_pct(0.99),
                lag_pct(1.0),
                writer.as_secs_f64() / w * 100.0,
            );
            timelines.push((kind, samples));
            run.stop();
        }
        println!("\nBehind (lines written but not yet read) over time, one sample a second; `?` where the daemon did not answer:\n");
        for (kind, samples) in timelines {
            let mut line = String::new();
            let mut next = Duration::ZERO;
            for x in &samples {
                if x.at >= next {
                    let b = x
                        .read
                        .map_or("?".to_string(), |r| x.written.saturating_sub(r).to_string());
                    let _ = write!(line, " {:.0} s: {b};", x.at.as_secs_f64());
                    next = x.at + Duration::from_secs(1) - SAMPLE_EVERY / 2;
                }
            }
            println!("- {}:{}", kind.name(), line.trim_end_matches(';'));
        }
        Ok(())
    }
}

/// Restart nftban on the history `run` left (its bans still running) in a
/// fresh namespace that nobody listens to; returns the elements then in
/// the kernel and the seconds from spawn to the daemon's "restored" line.
fn restore_without_listener(bin: &Path, mut run: Run, n: usize) -> Res<(usize, f64)> {
    run.stop();
    // The folder stays for the third start; the namespace goes with `run`.
    let tmp = run._tmp.take();
    let dir = run.dir.clone();
    drop(run);
    let ns = NetNs::create("dbench-nftban")?;
    let t0 = SystemTime::now();
    let mut again = Run::spawn_at(Kind::Nftban, bin, &ns, &dir, Watch::idle())?;
    again.ns = Some(ns);
    let log = std::fs::read_to_string(dir.join("nftban.log"))?;
    let want = format!("restored {n} bans in");
    let at = log
        .lines()
        .filter(|l| l.contains(&want))
        .filter_map(log_time)
        .find(|&t| t >= t0)
        .ok_or("no 'restored' line from the third start")?;
    let out = again
        .ns
        .as_ref()
        .ok_or("no namespace")?
        .command("nft")
        .args(["list", "set", "inet", "nftban", Kind::Nftban.set()])
        .output()?;
    let inside = String::from_utf8_lossy(&out.stdout).matches(" expires ").count();
    again.stop();
    drop(again);
    drop(tmp);
    Ok((inside, at.duration_since(t0)?.as_secs_f64()))
}

/// The time at the start of a log line, `2026-12-04T15:08:17.254499Z`.
fn log_time(line: &str) -> Option<SystemTime> {
    let t = line.get(..27)?.strip_suffix('Z')?;
    let num = |a: usize, b: usize| t.get(a..b)?.parse::<i64>().ok();
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hh, mm, ss, us) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 26)?);
    // Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?) + Duration::from_micros(us as u64))
}

/// One daemon in its namespace, with its folder, log file and event watch.
struct Run {
    kind: Kind,
    child: Option<Child>,
    log: std::fs::File,
    watch: Watch,
    dir: PathBuf,
    bin: PathBuf,
    /// Kept for their Drop, which runs after `Run`'s own (the daemon is
    /// stopped first): the namespace is deleted, then the folder.
    ns: Option<NetNs>,
    _tmp: Option<tempfile::TempDir>,
}

impl Run {
    /// A fresh folder and namespace, the daemon started and answering.
    fn start(kind: Kind, bin: &Path) -> Res<Run> {
        let dir = tempfile::Builder::new().prefix("nftban-dbench-").tempdir()?;
        let ns = NetNs::create(&format!("dbench-{}", kind.name()))?;
        let watch = Watch::open(&ns, kind.set())?;
        Run::spawn(kind, bin, ns, dir, watch)
    }

    /// Like `start`, in a folder the caller keeps (for a second start).
    fn start_in(kind: Kind, bin: &Path, dir: &Path) -> Res<Run> {
        let ns = NetNs::create(&format!("dbench-{}", kind.name()))?;
        let watch = Watch::open(&ns, kind.set())?;
        let mut run = Run::spawn_at(kind, bin, &ns, dir, watch)?;
        run.ns = Some(ns);
        Ok(run)
    }

    fn spawn(kind: Kind, bin: &Path, ns: NetNs, dir: tempfile::TempDir, watch: Watch) -> Res<Run> {
        let mut run = Run::spawn_at(kind, bin, &ns, dir.path(), watch)?;
        run.ns = Some(ns);
        run._tmp = Some(dir);
        Ok(run)
    }

    fn spawn_at(kind: Kind, bin: &Path, ns: &NetNs, dir: &Path, watch: Watch) -> Res<Run> {
        // The watched log in a folder of its own, as /var/log/asterisk is:
        // nftban watches the folder, and the daemons' own files (history,
        // their logs) stay outside it.
        std::fs::create_dir_all(dir.join("log"))?;
        let log_path = dir.join("log").join("messages");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let out = std::fs::File::create(dir.join(format!("{}.out", kind.name())))?;
        let child = match kind {
            Kind::Nftban => {
                let config = dir.join("nftban.yaml");
                if !config.exists() {
                    std::fs::write(
                        &config,
                        format!(
                            "socket: {0}/nftban.sock\ndatabase: {0}/nftban.db\nlog: {{target: {0}/nftban.log}}\ndefaults: {{findtime: 10m, maxretry: 3, bantime: 1h}}\njails:\n  asterisk:\n    ruleset: asterisk\n    files: [{1}]\n",
                            dir.display(),
                            log_path.display()
                        ),
                    )?;
                }
                ns.command(bin)
                    .args(["run", "--config"])
                    .arg(&config)
                    .stdin(Stdio::null())
                    .stdout(out.try_clone()?)
                    .stderr(out)
                    .spawn()?
            }
            Kind::Fail2ban => {
                let conf = dir.join("conf");
                if !conf.exists() {
                    fail2ban_conf(dir, &conf, &log_path)?;
                }
                ns.command("fail2ban-server")
                    .args(["-f", "-x", "-c"])
                    .arg(&conf)
                    .arg("-s")
                    .arg(dir.join("f2b.sock"))
                    .arg("-p")
                    .arg(dir.join("f2b.pid"))
                    .stdin(Stdio::null())
                    .stdout(out.try_clone()?)
                    .stderr(out)
                    .spawn()?
            }
        };
        // The caller puts its namespace in `ns` (also if this fails: it
        // still owns it then, and deletes it).
        let mut run = Run {
            kind,
            child: Some(child),
            log,
            watch,
            dir: dir.to_path_buf(),
            bin: bin.to_path_buf(),
            ns: None,
            _tmp: None,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !run.answers() {
            if Instant::now() > deadline {
                return Err(format!("{} did not answer within 60 s; see {}", kind.name(), run.dir.display()).into());
            }
            if let Some(st) = run.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let out = std::fs::read_to_string(run.dir.join(format!("{}.out", kind.name()))).unwrap_or_default();
                return Err(format!("{} exited at start ({st}): {out}", kind.name()).into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(run)
    }

    /// Does the daemon answer on its control socket?
    fn answers(&self) -> bool {
        let st = match self.kind {
            Kind::Nftban => Command::new(&self.bin)
                .args(["status", "--config"])
                .arg(self.dir.join("nftban.yaml"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status(),
            Kind::Fail2ban => Command::new("fail2ban-client")
                .arg("-s")
                .arg(self.dir.join("f2b.sock"))
                .args(["status", "asterisk"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status(),
        };
        st.map(|s| s.success()).unwrap_or(false)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    fn write(&mut self, text: &str) -> Res<()> {
        self.log.write_all(text.as_bytes())?;
        Ok(())
    }

    /// One attacker banned before measuring: the daemon has read the file
    /// once, and fail2ban has run its actionstart (it creates its table at
    /// the first ban).
    fn warm_up(&mut self) -> Res<()> {
        let a = Ipv4Addr::new(100, 127, 255, 1);
        self.write(&attack_line(a).repeat(3))?;
        if self
            .watch
            .wait_for(a, Instant::now() + Duration::from_secs(30))?
            .is_none()
        {
            return Err(format!(
                "{}: the warm-up attacker was not banned within 30 s; see {}",
                self.kind.name(),
                self.dir.display()
            )
            .into());
        }
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
                    eprintln!("{} did not stop within 30 s of SIGTERM: killed", self.kind.name());
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

impl Drop for Run {
    fn drop(&mut self) {
        self.stop();
    }
}

/// fail2ban's config: Debian's /etc/fail2ban without jail.d, the asterisk
/// jail on our log with nftables-allports (one set, one `nft add element`
/// per ban), pyinotify when installed (else polling), everything else in
/// `dir`.
fn fail2ban_conf(dir: &Path, conf: &Path, log: &Path) -> Res<()> {
    let st = Command::new("cp").arg("-r").arg("/etc/fail2ban").arg(conf).status()?;
    if !st.success() {
        return Err("cannot copy /etc/fail2ban".into());
    }
    for e in std::fs::read_dir(conf.join("jail.d"))? {
        std::fs::remove_file(e?.path())?;
    }
    std::fs::write(
        conf.join("fail2ban.local"),
        format!(
            "[Definition]\nloglevel = INFO\nlogtarget = {0}/f2b.log\nsocket = {0}/f2b.sock\npidfile = {0}/f2b.pid\ndbfile = {0}/f2b.sqlite3\n",
            dir.display()
        ),
    )?;
    std::fs::write(
        conf.join("jail.local"),
        format!(
            "[DEFAULT]\nbackend = {}\nusedns = no\nignoreself = false\n\n[asterisk]\nenabled = true\nfindtime = 10m\nmaxretry = 3\nbantime = 1h\nlogpath = {}\naction = nftables-allports[name=asterisk, protocol=\"tcp,udp\"]\n",
            fail2ban_backend(),
            log.display()
        ),
    )?;
    Ok(())
}

/// `pyinotify` if Debian's python3 can import it, else `polling`.
pub fn fail2ban_backend() -> &'static str {
    let ok = Command::new("/usr/bin/python3")
        .args(["-c", "import pyinotify"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        "pyinotify"
    } else {
        "polling"
    }
}

/// Running bans in fail2ban's dbfile, as its own ban would write them.
fn fill_fail2ban_db(db: &Path, addrs: &[Ipv4Addr]) -> Res<()> {
    let mut c = rusqlite::Connection::open(db)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let tx = c.transaction()?;
    {
        let mut bips = tx.prepare(
            "INSERT OR REPLACE INTO bips(ip, jail, timeofban, bantime, bancount, data) VALUES (?1, 'asterisk', ?2, 3600, 1, ?3)",
        )?;
        let mut bans = tx.prepare(
            "INSERT INTO bans(jail, ip, timeofban, bantime, bancount, data) VALUES ('asterisk', ?1, ?2, 3600, 1, ?3)",
        )?;
        for a in addrs {
            let ip = a.to_string();
            let data = format!("{{\"failures\": 3, \"ip4\": \"{ip}\"}}");
            bips.execute(rusqlite::params![ip, now, data])?;
            bans.execute(rusqlite::params![ip, now, data])?;
        }
    }
    tx.execute("UPDATE jails SET enabled = 1 WHERE name = 'asterisk'", [])?;
    tx.commit()?;
    Ok(())
}

/// Attacker `i` of phase `phase`: distinct addresses in 100.64.0.0/10
/// (shared address space: never anyone's real host), 2^17 per phase.
fn attacker(phase: u32, i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + (phase << 17) + 1 + i as u32)
}

/// A chan_sip registration failure: both the asterisk ruleset and
/// fail2ban's asterisk filter count it.
fn attack_line(a: Ipv4Addr) -> String {
    format!("{}{}", nftban::commands::demo::asterisk_now(), attack_body(a))
}

/// An attack line after its date.
fn attack_body(a: Ipv4Addr) -> String {
    format!(" NOTICE[2143] chan_sip.c: Registration from '\"100\" <sip:100@10.0.0.1>' failed for '{a}:5060' - Wrong password\n")
}

/// Ordinary traffic neither daemon counts (its address is a user's).
fn noise_line(k: u64) -> String {
    format!("{}{}", nftban::commands::demo::asterisk_now(), noise_body(k))
}

/// A noise line after its date.
fn noise_body(k: u64) -> String {
    let user = format!("10.{}.{}.{}", k % 4, (k / 4) % 256, 1 + (k / 1024) % 254);
    match k % 4 {
        0 => format!(" VERBOSE[2231][C-{k:08x}] pbx.c:     -- Executing [200@default:1] Dial(\"SIP/100-{k:08x}\", \"SIP/200,30\") in new stack\n"),
        1 => format!(" VERBOSE[2143] chan_sip.c:     -- Registered SIP '100' at {user}:5060\n"),
        2 => format!(" VERBOSE[2231][C-{k:08x}] app_dial.c:     -- SIP/200-{k:08x} answered SIP/100-{k:08x}\n"),
        _ => " NOTICE[2143] chan_sip.c: Peer '100' is now Reachable. (12ms / 2000ms)\n".to_string(),
    }
}

/// The jails' maxretry in both daemons' configs.
const MAXRETRY: u64 = 3;
/// Different noise lines the flood cycles through (made once: making each
/// line anew would cost the writer more than a core at 1,000,000 lines/s).
const NOISE_POOL: u64 = 1 << 16;
/// How often the flood asks how far the daemon has read.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// What the flood's writer has done, and the furthest read seen.
#[derive(Default)]
struct Progress {
    written: AtomicU64,
    bytes: AtomicU64,
    read: AtomicU64,
    stop: AtomicBool,
}

/// One look at a daemon's reading: lines written before the question
/// (asked `at`), lines read by the answer (`None`: no answer), which came
/// `answered`.
struct Sample {
    at: Duration,
    answered: Duration,
    written: u64,
    read: Option<u64>,
}

/// Ask every [`SAMPLE_EVERY`] until told to stop.
fn sample(probe: &Probe, p: &Progress, start: Instant) -> Vec<Sample> {
    let mut out = Vec::new();
    while !p.stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let written = p.written.load(Ordering::Relaxed);
        let read = probe.read(p);
        if let Some(r) = read {
            p.read.fetch_max(r, Ordering::Relaxed);
        }
        out.push(Sample {
            at: t.duration_since(start),
            answered: start.elapsed(),
            written,
            read,
        });
        std::thread::sleep(SAMPLE_EVERY.saturating_sub(t.elapsed()));
    }
    out
}

/// How far a daemon has read the flood's file.
#[derive(Clone)]
enum Probe {
    /// nftban: its status `lines` count, less the count before the flood.
    Nftban { socket: PathBuf, lines0: u64 },
    /// fail2ban, which counts no lines: the offset of its descriptor on
    /// the file, less the offset before the flood, in lines.
    Fail2ban { pid: u32, log: PathBuf, pos0: u64 },
}

impl Probe {
    fn new(run: &Run) -> Res<Probe> {
        Ok(match run.kind {
            Kind::Nftban => {
                let socket = run.dir.join("nftban.sock");
                let lines0 = nftban_lines(&socket).ok_or("nftban did not answer status")?;
                Probe::Nftban { socket, lines0 }
            }
            Kind::Fail2ban => {
                let log = run.dir.join("log").join("messages").canonicalize()?;
                let pos0 = std::fs::metadata(&log)?.len();
                Probe::Fail2ban {
                    pid: run.pid(),
                    log,
                    pos0,
                }
            }
        })
    }

    /// Flood lines read so far, if the daemon tells.
    fn read(&self, p: &Progress) -> Option<u64> {
        match self {
            Probe::Nftban { socket, lines0 } => nftban_lines(socket).map(|l| l.saturating_sub(*lines0)),
            Probe::Fail2ban { pid, log, pos0 } => {
                // fail2ban opens the file for each round of reading: try
                // for a while before giving up on this look.
                let pos = (0..20).find_map(|_| {
                    let p = fd_pos(*pid, log);
                    if p.is_none() {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    p
                })?;
                let (bytes, written) = (p.bytes.load(Ordering::Relaxed), p.written.load(Ordering::Relaxed));
                if bytes == 0 {
                    return Some(0);
                }
                let b = pos.saturating_sub(*pos0).min(bytes);
                Some((b as f64 / bytes as f64 * written as f64) as u64)
            }
        }
    }
}

/// The `lines` count of the asterisk jail's sources.
fn nftban_lines(socket: &Path) -> Option<u64> {
    let resp = nftban::control::client::call(
        socket,
        &nftban::control::Request::Status {
            jail: Some("asterisk".into()),
            brief: false,
        },
    )
    .ok()?;
    if !resp.ok {
        return None;
    }
    let st: nftban::control::protocol::JailStatus = resp.data().ok()?;
    Some(st.sources.iter().map(|s| s.lines).sum())
}

/// The offset of `pid`'s descriptor open on `file`, if it has one.
fn fd_pos(pid: u32, file: &Path) -> Option<u64> {
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        if std::fs::read_link(e.path()).ok().as_deref() == Some(file) {
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", e.file_name().to_string_lossy())).ok()?;
            return info
                .lines()
                .find_map(|l| l.strip_prefix("pos:"))
                .and_then(|v| v.trim().parse().ok());
        }
    }
    None
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given; rusage is plain data.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// (utime+stime, cutime+cstime) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Res<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = &text[text.rfind(')').ok_or("bad /proc stat")? + 1..];
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // After the command: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    Ok((f[11] + f[12], f[13] + f[14]))
}

/// utime+stime of a process's file reader threads (nftban names them
/// `src-JAILS`), in clock ticks; 0 if there are none.
fn reader_ticks(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    let mut sum = 0;
    for t in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (text.find('('), text.rfind(')')) else {
            continue;
        };
        if !text[open + 1..close].starts_with("src-") {
            continue;
        }
        let f: Vec<u64> = text[close + 1..]
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        sum += f[11] + f[12];
    }
    sum
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

fn proc_status_kb(pid: u32, field: &str) -> Res<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let v = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .ok_or("no field")?;
    Ok(v.trim().trim_end_matches("kB").trim().parse()?)
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
