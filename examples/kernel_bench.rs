//! Kernel benchmark: how fast bans reach the kernel through
//! nftban's own netlink code, compared in the same run with `nft -f` and with
//! one `nft` process per ban (what fail2ban does), plus single-ban latency
//! and the daemon's memory holding many bans.
//!
//! Run it through `bash bench/kernel.sh`, which builds it in release mode
//! and runs it inside a private network namespace it creates and deletes:
//! this program changes the nftables ruleset of the namespace it runs in.
//! Arguments: the path of the release `nftban` binary, then the sizes
//! (default 1000 100000 1000000; `0` runs only the latency and memory parts,
//! `latency` or `memory` only that part, `memory-stdin` only its `nftban
//! ban -` row).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use ipnet::{IpNet, Ipv4Net};
use nftban::config::Config;
use nftban::daemon::Engine;
use nftban::firewall::netlink::monitor::Monitor;
use nftban::firewall::netlink::Netlink;
use nftban::firewall::{Action, Ban, Firewall, TableSpec};

/// Every element gets this timeout, long enough to outlive the run.
const TIMEOUT: Duration = Duration::from_secs(3600);
/// Table for the `nft` comparisons (nftban's own is `nftban`).
const NFT_TABLE: &str = "nftbench";
/// Longest an `nft -f` comparison may run before it is stopped.
const NFT_LIMIT: Duration = Duration::from_secs(240);
/// Elements per `add element` line of the `nft -f` file.
const NFT_LINE: usize = 1000;
/// Single bans timed for the latency figures.
const LATENCY_SAMPLES: usize = 1000;
/// Bans in the daemon whose memory is measured.
const MEMORY_BANS: usize = 1_000_000;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    if std::env::args().nth(1).as_deref() == Some(PEAK_INTO) {
        peak_into(std::env::args().skip(2).collect());
    }
    let mut args = std::env::args().skip(1);
    let nftban_bin = PathBuf::from(args.next().ok_or("usage: kernel_bench NFTBAN_BINARY [SIZES...]")?);
    let args: Vec<String> = args.collect();
    let work = tempfile::tempdir()?;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    if args == ["latency"] {
        latency(&mut seed)?;
        nft("delete table inet nftban").ok();
        return Ok(());
    }
    if args.first().map(String::as_str) == Some("bulk") {
        let sizes: Vec<usize> = args[1..].iter().map(|a| a.parse()).collect::<Result<_, _>>()?;
        bulk(&nftban_bin, work.path(), &sizes, &mut seed)?;
        nft("delete table inet nftban").ok();
        nft(&format!("delete table inet {NFT_TABLE}")).ok();
        return Ok(());
    }
    if args == ["memory"] || args == ["memory-stdin"] {
        memory(&nftban_bin, work.path(), &mut seed)?;
        nft("delete table inet nftban").ok();
        return Ok(());
    }
    let mut sizes: Vec<usize> = args.iter().map(|a| a.parse()).collect::<Result<_, _>>()?;
    if sizes.is_empty() {
        sizes = vec![1_000, 100_000, 1_000_000];
    }
    println!("| what | set type | elements | seconds | per second |");
    println!("|---|---|---|---|---|");
    // Size 0 skips the throughput part (latency and memory only).
    for &n in sizes.iter().filter(|&&n| n > 0) {
        let hosts = random_hosts(n, &mut seed);
        let prefixes = random_prefixes(n, &mut seed);

        // nftban: single addresses, then /31 prefixes.
        let t = nftban_add(&hosts, 32)?;
        row("nftban `Firewall::add`, addresses", &host_set_type(), n, t);
        let t = with_monitor(|| nftban_add(&hosts, 32))?;
        row(
            "nftban `Firewall::add`, addresses, while the daemon's event monitor listens",
            &host_set_type(),
            n,
            t,
        );
        let t = nftban_add(&prefixes, 31)?;
        row("nftban `Firewall::add`, /31 prefixes", "interval,timeout", n, t);

        // nft -f, one transaction, into the same kinds of set.
        nft_row(
            nft_file(work.path(), "timeout", &hosts, 32, 1),
            "one `nft -f` file, addresses",
            "timeout (hash)",
            n,
        );
        if n < 1_000_000 {
            let t = nft_file(work.path(), "interval,timeout", &hosts, 32, 1);
            nft_row(t, "one `nft -f` file, addresses", "interval,timeout", n);
        }
        let t = nft_file(work.path(), "interval,timeout", &prefixes, 31, 1);
        nft_row(t, "one `nft -f` file, /31 prefixes", "interval,timeout", n);
        if n >= 1_000_000 {
            // A million elements in one transaction is super-linear in the
            // kernel; nftban sends ~4 MiB batches, one transaction each.
            let t = nft_file(work.path(), "timeout", &hosts, 32, 10);
            nft_row(
                t,
                "ten `nft -f` files of 100,000 addresses, one after the other",
                "timeout (hash)",
                n,
            );
            let t = nft_file(work.path(), "interval,timeout", &prefixes, 31, 10);
            nft_row(t, "ten `nft -f` files of 100,000 /31 prefixes", "interval,timeout", n);
        }

        if n <= 1_000 {
            let t = nft_per_ban(&hosts, "hash", "timeout")?;
            row("one `nft add element` process per address", "timeout (hash)", n, t);
            let t = nft_per_ban(&hosts, "interval", "interval,timeout")?;
            row("one `nft add element` process per address", "interval,timeout", n, t);
        }
    }
    println!();
    latency(&mut seed)?;
    println!();
    bulk(&nftban_bin, work.path(), &[100_000, 1_000_000], &mut seed)?;
    println!();
    memory(&nftban_bin, work.path(), &mut seed)?;
    nft(&format!("delete table inet {NFT_TABLE}")).ok();
    nft("delete table inet nftban").ok();
    Ok(())
}

/// The set type nftban uses for single IPv4 addresses, as `nft` names its flags.
fn host_set_type() -> String {
    let spec = TableSpec {
        table: "x".into(),
        action: Action::Drop,
        hooks: vec![nftban::firewall::Hook::Input],
        jails: vec!["bench".into()],
        prefix_sets: nftban::firewall::PrefixSets::default(),
        sip: None,
    };
    let text = nftban::firewall::render_ruleset(&spec);
    let set = text.split("set bench_v4 {").nth(1).unwrap_or("");
    let flags = set.lines().find(|l| l.contains("flags")).unwrap_or("").trim();
    let flags = flags.trim_start_matches("flags ").to_string();
    if flags.contains("interval") {
        flags
    } else {
        format!("{flags} (hash)")
    }
}

fn row(what: &str, set: &str, n: usize, t: Duration) {
    println!(
        "| {what} | {set} | {n} | {:.3} | {:.0} |",
        t.as_secs_f64(),
        n as f64 / t.as_secs_f64()
    );
    let _ = std::io::stdout().flush();
}

/// xorshift64*: reproducible, no crate needed.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed >> 12;
    *seed ^= *seed << 25;
    *seed ^= *seed >> 27;
    seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// `n` distinct random IPv4 addresses (they are only set elements).
fn random_hosts(n: usize, seed: &mut u64) -> Vec<Ipv4Addr> {
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let a = (next(seed) >> 32) as u32;
        if seen.insert(a) {
            out.push(Ipv4Addr::from(a));
        }
    }
    out
}

/// `n` distinct random /31 prefixes (which never overlap one another).
fn random_prefixes(n: usize, seed: &mut u64) -> Vec<Ipv4Addr> {
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let a = (next(seed) >> 32) as u32 & !1;
        if seen.insert(a) {
            out.push(Ipv4Addr::from(a));
        }
    }
    out
}

/// A fresh `table inet nftban` with one jail, then one `Firewall::add` of
/// all `addrs` (as /`len`), timed from the call to the kernel's last ack.
fn nftban_add(addrs: &[Ipv4Addr], len: u8) -> Res<Duration> {
    nft("delete table inet nftban").ok();
    let mut fw = Netlink::open()?;
    fw.setup(&TableSpec {
        table: "nftban".into(),
        action: Action::Drop,
        hooks: vec![nftban::firewall::Hook::Input],
        jails: vec!["bench".into()],
        prefix_sets: nftban::firewall::PrefixSets::default(),
        sip: None,
    })?;
    let bans: Vec<Ban> = addrs
        .iter()
        .map(|a| Ban {
            jail: "bench".into(),
            net: IpNet::V4(Ipv4Net::new(*a, len).unwrap()),
            timeout: TIMEOUT,
        })
        .collect();
    let start = Instant::now();
    fw.add(&bans)?;
    Ok(start.elapsed())
}

/// Run `f` while a thread reads nf_tables events as the daemon does (the
/// kernel then builds one event per element added).
fn with_monitor<T>(f: impl FnOnce() -> T) -> T {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let mut monitor = Monitor::open("nftban").expect("monitor socket");
    let flag = stop.clone();
    let reader = std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            let _ = monitor.wait();
        }
    });
    let out = f();
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("monitor thread");
    out
}

/// The `nft` command line for one element.
fn element(a: &Ipv4Addr, len: u8) -> String {
    if len == 32 {
        format!("{a} timeout 1h")
    } else {
        format!("{a}/{len} timeout 1h")
    }
}

/// A row for an `nft` run, or "more than" when it was stopped.
fn nft_row(t: Res<Option<Duration>>, what: &str, set: &str, n: usize) {
    match t {
        Ok(Some(t)) => row(what, set, n, t),
        Ok(None) => println!(
            "| {what} | {set} | {n} | > {} (stopped) | < {:.0} |",
            NFT_LIMIT.as_secs(),
            n as f64 / NFT_LIMIT.as_secs_f64()
        ),
        Err(e) => println!("| {what} | {set} | {n} | failed: {e} | |"),
    }
}

/// A fresh table with one set `s` of `flags`, then `files` `nft -f` runs
/// one after the other, each adding its share of the elements in one
/// transaction; only the `nft -f` processes are timed. `None` if they took
/// longer than `NFT_LIMIT` (the run is stopped).
fn nft_file(dir: &Path, flags: &str, addrs: &[Ipv4Addr], len: u8, files: usize) -> Res<Option<Duration>> {
    Ok(nft_file_peak(dir, flags, addrs, len, files)?.map(|(t, _)| t))
}

/// [`nft_file`], and the highest peak RSS (kB) of its `nft` processes.
fn nft_file_peak(dir: &Path, flags: &str, addrs: &[Ipv4Addr], len: u8, files: usize) -> Res<Option<(Duration, i64)>> {
    fresh_nft_set(flags)?;
    let (mut total, mut peak) = (Duration::ZERO, 0);
    for part in addrs.chunks(addrs.len().div_ceil(files)) {
        match nft_one_file(dir, part, len, NFT_LIMIT.saturating_sub(total))? {
            Some((t, p)) => (total, peak) = (total + t, peak.max(p)),
            None => return Ok(None),
        }
    }
    Ok(Some((total, peak)))
}

/// One `nft -f` of `addrs`: how long it took and its peak RSS (kB, through
/// [`peak_into`]); `None` past `limit`.
fn nft_one_file(dir: &Path, addrs: &[Ipv4Addr], len: u8, limit: Duration) -> Res<Option<(Duration, i64)>> {
    // One `add element` line per 1,000 elements, all in one file and so in
    // one transaction: nft 1.0.6 is far slower on one line of a million
    // elements than on such lines.
    let mut text = String::with_capacity(addrs.len() * 32);
    for chunk in addrs.chunks(NFT_LINE) {
        let _ = write!(text, "add element inet {NFT_TABLE} s {{ ");
        for (i, a) in chunk.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            text.push_str(&element(a, len));
        }
        text.push_str(" }\n");
    }
    let file = dir.join(format!("elements-{}.nft", addrs.len()));
    std::fs::write(&file, text)?;
    use std::os::unix::process::CommandExt as _;
    let (mut cmd, peak) = measured(Path::new("nft"), dir)?;
    let start = Instant::now();
    let mut child = cmd
        .arg("-f")
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own group: past the limit, `nft` goes with the runner.
        .process_group(0)
        .spawn()?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > limit {
            // SAFETY: a signal to the process group of our own child.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            child.wait()?;
            std::fs::remove_file(&file)?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let t = start.elapsed();
    std::fs::remove_file(&file)?;
    if !status.success() {
        return Err(format!("nft -f {} failed", file.display()).into());
    }
    Ok(Some((t, peak_of(&peak))))
}

/// One `nft add element` process per address, as fail2ban does.
fn nft_per_ban(addrs: &[Ipv4Addr], _name: &str, flags: &str) -> Res<Duration> {
    fresh_nft_set(flags)?;
    let start = Instant::now();
    for a in addrs {
        nft(&format!("add element inet {NFT_TABLE} s {{ {} }}", element(a, 32)))?;
    }
    Ok(start.elapsed())
}

fn fresh_nft_set(flags: &str) -> Res<()> {
    nft(&format!("delete table inet {NFT_TABLE}")).ok();
    nft(&format!(
        "add table inet {NFT_TABLE}; add set inet {NFT_TABLE} s {{ type ipv4_addr; flags {flags}; }}"
    ))
}

fn nft(cmd: &str) -> Res<()> {
    let out = Command::new("nft").arg(cmd).stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(format!("nft {cmd}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

/// Decision-to-kernel latency of single bans, two ways.
///
/// Addresses: the engine (maxretry 1) decides on a failure and flushes its
/// one ban, as the daemon's loop does for a lone event; timed from the
/// `Engine::failure` call to the netlink ack at the end of `Engine::flush`.
/// Prefixes: one `Firewall::add` of a /31 into the interval set, of a /24
/// into the default masked set, of a /22 into the masked set that
/// `nftables.prefix_sets: {ipv4: [24, 22]}` adds, call to ack. Each with
/// the set empty and with many elements already in it.
fn latency(seed: &mut u64) -> Res<()> {
    println!("| single bans | set type | elements already in the set | samples | p50 µs | p99 µs | max µs |");
    println!("|---|---|---|---|---|---|---|");
    // (length, preload). /32: addresses, through the engine. /24: the
    // jail's masked hash set `bench_v4_24` (docs/firewall.md, "Prefix
    // sets"); /22: `bench_v4_22`, a length configured in
    // `nftables.prefix_sets`; /31: the interval set. No interval set of a
    // million: loading it takes far longer than the run may.
    for (len, preload) in [
        (32u8, 0usize),
        (32, 1_000_000),
        (31, 0),
        (31, 1_000),
        (31, 100_000),
        (24, 0),
        (24, 1_000),
        (24, 100_000),
        (24, 1_000_000),
        (22, 1_000),
        (22, 100_000),
        (22, 1_000_000),
    ] {
        let (prefix, masked) = (len < 32, len <= 24);
        nft("delete table inet nftban").ok();
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("nftban.yaml");
        let lengths = if len == 22 {
            "nftables: {prefix_sets: {ipv4: [24, 22]}}\n"
        } else {
            ""
        };
        let text = format!(
            "socket: {0}/nftban.sock\n{lengths}defaults: {{maxretry: 1, findtime: 10m, bantime: 1h}}\njails:\n  bench:\n    ruleset: asterisk\n    files: [{0}/none.log]\n",
            dir.path().display()
        );
        let cfg = Config::from_text(&config, &text)?;
        let mut engine = Engine::new(&cfg, Box::new(Netlink::open()?));
        engine.start(&cfg)?;
        // Preloads and prefix bans go straight to the firewall layer, set
        // up as the engine did (it keeps the sets: no second table).
        let mut firewall = Netlink::open()?;
        firewall.setup(&cfg.table_spec())?;
        // (Not 127.0.0.0/8: the default ignoreip would let those pass.)
        let mut all = if prefix {
            random_prefixes(2 * (preload + LATENCY_SAMPLES), seed)
        } else {
            random_hosts(2 * (preload + LATENCY_SAMPLES), seed)
        };
        // Unicast only: the engine never bans multicast, reserved or
        // loopback sources, which would leave the sample short.
        all.retain(|a| matches!(a.octets()[0], 1..=126 | 128..=223));
        if masked {
            let mut seen = HashSet::new();
            let mask = u32::MAX << (32 - len);
            all = random_hosts(2 * (preload + LATENCY_SAMPLES), seed)
                .into_iter()
                .map(|a| Ipv4Addr::from(u32::from(a) & mask))
                .filter(|a| matches!(a.octets()[0], 1..=126 | 128..=223) && seen.insert(*a))
                .collect();
        }
        all.truncate(preload + LATENCY_SAMPLES);
        let ban = |a: &Ipv4Addr| Ban {
            jail: "bench".into(),
            net: IpNet::V4(Ipv4Net::new(*a, len).unwrap()),
            timeout: TIMEOUT,
        };
        if preload > 0 {
            let bans: Vec<Ban> = all[LATENCY_SAMPLES..].iter().map(ban).collect();
            firewall.add(&bans)?;
        }
        let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
        for a in &all[..LATENCY_SAMPLES] {
            let start = Instant::now();
            if prefix {
                firewall.add(&[ban(a)])?;
            } else {
                let now = SystemTime::now();
                engine.failure_of(0, IpNet::from(IpAddr::V4(*a)), now, now);
                engine.flush(now);
            }
            samples.push(start.elapsed());
        }
        let status = engine.status(SystemTime::now(), true);
        if status.kernel_errors > 0 {
            return Err(format!("{} kernel errors during the latency run", status.kernel_errors).into());
        }
        if !prefix && status.jails[0].total_banned != LATENCY_SAMPLES as u64 {
            return Err(format!("only {} of the single bans were decided", status.jails[0].total_banned).into());
        }
        samples.sort();
        let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)].as_micros();
        let (what, set) = if masked {
            (
                format!("one /{len}: `Firewall::add` → netlink ack"),
                format!("timeout (hash), masked /{len} set"),
            )
        } else if prefix {
            (
                "one /31: `Firewall::add` → netlink ack".to_string(),
                "interval,timeout".to_string(),
            )
        } else {
            (
                "one address: `Engine::failure` decision → `Engine::flush` netlink ack".to_string(),
                "timeout (hash)".to_string(),
            )
        };
        println!(
            "| {what} | {set} | {preload} | {} | {} | {} | {} |",
            samples.len(),
            pct(0.50),
            pct(0.99),
            samples.last().unwrap().as_micros()
        );
    }
    Ok(())
}

/// The daemon's memory holding `MEMORY_BANS` bans, two ways: bans decided
/// from log lines (a file of one failure per address, maxretry 1), and all
/// given at once with `nftban ban -`. VmRSS once the last ban is in the
/// kernel, and VmHWM (peak); for `nftban ban -` also the client's peak
/// RSS (its ru_maxrss, through [`peak_into`]).
fn memory(bin: &Path, dir: &Path, seed: &mut u64) -> Res<()> {
    let addrs: Vec<Ipv4Addr> = random_hosts(MEMORY_BANS * 2, seed)
        .into_iter()
        .filter(|a| matches!(a.octets()[0], 1..=126 | 128..=223))
        .take(MEMORY_BANS)
        .collect();
    if addrs.len() < MEMORY_BANS {
        return Err("not enough unicast addresses drawn".into());
    }
    let last = addrs[MEMORY_BANS - 1];
    println!(
        "| daemon (`nftban run`) | RSS before | RSS holding {MEMORY_BANS} bans | peak RSS | time to ban all | client peak RSS |"
    );
    println!("|---|---|---|---|---|---|");
    // `memory-stdin` as the argument: the `nftban ban -` way only.
    let ways: &[bool] = if std::env::args().any(|a| a == "memory-stdin") {
        &[false]
    } else {
        &[true, false]
    };
    for &from_log in ways {
        nft("delete table inet nftban").ok();
        // A fresh history in the work folder for each way (not the default
        // /var/lib/nftban, and not restoring the other way's bans).
        for f in ["nftban.db", "nftban.db-wal", "nftban.db-shm"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let log = dir.join("bench.log");
        std::fs::write(&log, "")?;
        let config = dir.join("daemon.yaml");
        std::fs::write(
            &config,
            format!(
                "socket: {0}/nftban.sock\ndatabase: {0}/nftban.db\ndefaults: {{maxretry: 1, findtime: 10m, bantime: 1h}}\njails:\n  bench:\n    ruleset: asterisk\n    files: [{1}]\n",
                dir.display(),
                log.display()
            ),
        )?;
        let mut daemon = Command::new(bin)
            .args(["run", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let pid = daemon.id();
        let rss_before = loop {
            let st = Command::new(bin)
                .args(["status", "--config"])
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            if st.success() {
                break proc_status(pid, "VmRSS")?;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let start = Instant::now();
        let mut client_peak = "-".to_string();
        let what = if from_log {
            let mut text = String::with_capacity(MEMORY_BANS * 100);
            for a in &addrs {
                let _ = writeln!(
                    text,
                    "[2026-11-25 10:00:00] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for '{a}:5060' - Wrong password"
                );
            }
            std::fs::OpenOptions::new()
                .append(true)
                .open(&log)?
                .write_all(text.as_bytes())?;
            "from log lines (one failure each, maxretry 1)"
        } else {
            let mut text = String::with_capacity(MEMORY_BANS * 16);
            for a in &addrs {
                let _ = writeln!(text, "{a}");
            }
            let (mut cmd, peak) = measured(bin, dir)?;
            let mut cli = cmd
                .args(["ban", "-", "--jail", "bench", "--config"])
                .arg(&config)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()?;
            cli.stdin.take().ok_or("no stdin")?.write_all(text.as_bytes())?;
            if !cli.wait()?.success() {
                return Err("nftban ban - failed".into());
            }
            client_peak = format!("{} kB", peak_of(&peak));
            "all at once, `nftban ban -`"
        };
        // Done when the last address is in the kernel.
        let probe = format!("get element inet nftban bench_v4 {{ {last} }}");
        let deadline = Instant::now() + Duration::from_secs(600);
        while nft(&probe).is_err() {
            if Instant::now() > deadline {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                let _ = daemon.wait();
                return Err(format!("{last} never reached the kernel").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let t = start.elapsed();
        let rss = proc_status(pid, "VmRSS")?;
        let hwm = proc_status(pid, "VmHWM")?;
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        daemon.wait()?;
        println!(
            "| {what} | {rss_before} | {rss} | {hwm} | {:.1} s ({:.0}/s) | {client_peak} |",
            t.as_secs_f64(),
            MEMORY_BANS as f64 / t.as_secs_f64()
        );
    }
    Ok(())
}

/// A daemon of the benchmark: `nftban run` on a config in `dir` with one
/// jail `bench` and the history on, its log (stderr) in `dir/daemon.log`.
struct Daemon {
    bin: PathBuf,
    child: std::process::Child,
    config: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// Started, and answering `status`.
    fn start(bin: &Path, dir: &Path) -> Res<Daemon> {
        Daemon::start_with(bin, dir, "")
    }

    /// As [`Daemon::start`], with `extra` (top-level YAML: `feeds:`,
    /// `nftables:`) in the config.
    fn start_with(bin: &Path, dir: &Path, extra: &str) -> Res<Daemon> {
        // The watched log in a folder of its own, as /var/log is apart
        // from /var/lib/nftban: in the database's folder, every write to
        // the history woke the file source's folder watch (which showed in
        // the daemon's CPU during `ban -`), which no real layout does.
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let log = logs.join("bench.log");
        if !log.exists() {
            std::fs::write(&log, "")?;
        }
        let config = dir.join("daemon.yaml");
        std::fs::write(
            &config,
            format!(
                "socket: {0}/nftban.sock\ndatabase: {0}/nftban.db\n{extra}defaults: {{maxretry: 1, findtime: 10m, bantime: 1h}}\njails:\n  bench:\n    ruleset: asterisk\n    files: [{1}]\n",
                dir.display(),
                log.display()
            ),
        )?;
        let daemon_log = dir.join("daemon.log");
        let child = Command::new(bin)
            .args(["run", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&daemon_log)?)
            .spawn()?;
        let d = Daemon {
            bin: bin.to_path_buf(),
            child,
            config,
            log: daemon_log,
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        while !d.cli(&["status"], None)?.0 {
            if Instant::now() > deadline {
                return Err("the daemon never answered status".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(d)
    }

    /// Run `nftban ARGS --config ...` with `input` on its stdin: whether it
    /// succeeded, how long it took, and its peak RSS (kB, through [`peak_into`]).
    fn cli(&self, args: &[&str], input: Option<&str>) -> Res<(bool, Duration, i64)> {
        let dir = self.config.parent().ok_or("the config has no folder")?;
        let (mut cmd, peak) = measured(&self.bin, dir)?;
        let start = Instant::now();
        let mut cli = cmd
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        if let Some(text) = input {
            cli.stdin.take().ok_or("no stdin")?.write_all(text.as_bytes())?;
        }
        let ok = cli.wait()?.success();
        Ok((ok, start.elapsed(), peak_of(&peak)))
    }

    /// Log lines holding `what`.
    fn log_lines(&self, what: &str) -> Res<usize> {
        Ok(std::fs::read_to_string(&self.log)?
            .lines()
            .filter(|l| l.contains(what))
            .count())
    }

    /// Wait (at most 120 s) until the daemon has moved every ban of its
    /// pending file (`nftban.db-pending` in `dir`) into SQLite: it empties
    /// the file after each move.
    fn history_caught_up(&self, dir: &Path) -> Res<()> {
        let pending = dir.join("nftban.db-pending");
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::fs::metadata(&pending).map_or(0, |m| m.len()) > 0 {
            if Instant::now() > deadline {
                return Err(format!("{} is not empty after 120 s", pending.display()).into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The daemon's VmRSS once idle (and its peak): read after a pause
    /// longer than the one after which the history's mover gives back its
    /// page cache (`store::mover::IDLE`, 1 s).
    fn settled(&self) -> Res<String> {
        std::thread::sleep(Duration::from_secs(2));
        Ok(format!(
            "{} ({} peak)",
            proc_status(self.pid(), "VmRSS")?,
            proc_status(self.pid(), "VmHWM")?
        ))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, and wait for the end.
    fn stop(mut self) -> Res<()> {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait()?;
        Ok(())
    }
}

/// No table in the kernel and no history in `dir`: the next daemon starts
/// from nothing.
fn start_afresh(dir: &Path) {
    nft("delete table inet nftban").ok();
    for f in ["nftban.db", "nftban.db-wal", "nftban.db-shm", "nftban.db-pending"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
}

/// The bulk path end to end (issue 16): `nftban ban -` and `unban -` of `n`
/// addresses into a running daemon with the history on, timed from the
/// client's start to its exit (the daemon answers once the bans are in
/// the history and the kernel), beside one `nft -f` of the same elements
/// into a timeout set; how many log lines each request wrote; the daemon's
/// peak memory; a restart that restores them all into an empty kernel (a
/// reboot); and `ban -` of 100,000 distinct /24s beside `nft -f` into an
/// interval set.
fn bulk(bin: &Path, dir: &Path, sizes: &[usize], seed: &mut u64) -> Res<()> {
    println!("| bulk, end to end | elements | seconds | per second | `nft -f` same elements, seconds | nftban / `nft -f` | log lines | daemon peak RSS | daemon RSS settled: history caught up, 2 s idle (peak) | client peak RSS | `nft -f` peak RSS |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let unicast = |a: &Ipv4Addr| matches!(a.octets()[0], 1..=126 | 128..=223);
    let mut runs: Vec<(&str, usize, u8)> = sizes.iter().map(|&n| ("addresses", n, 32)).collect();
    // (100,000 /24s: the feed load; fewer when asked for less.)
    let prefixes = sizes.iter().copied().max().unwrap_or(0).min(100_000);
    if prefixes > 0 {
        runs.push(("/24 prefixes", prefixes, 24));
    }
    for (kind, n, len) in runs {
        let addrs: Vec<Ipv4Addr> = if len == 32 {
            random_hosts(n * 2, seed).into_iter().filter(unicast).take(n).collect()
        } else {
            let mut seen = HashSet::new();
            random_hosts(n * 3, seed)
                .into_iter()
                .map(|a| Ipv4Addr::from(u32::from(a) & 0xffff_ff00))
                .filter(|a| unicast(a) && seen.insert(*a))
                .take(n)
                .collect()
        };
        if addrs.len() < n {
            return Err("not enough unicast addresses drawn".into());
        }
        let mut text = String::with_capacity(n * 20);
        for a in &addrs {
            let _ = writeln!(text, "{}", element(a, len).trim_end_matches(" timeout 1h"));
        }
        start_afresh(dir);
        let d = Daemon::start(bin, dir)?;
        let (ok, t_ban, client) = d.cli(&["ban", "-", "--jail", "bench"], Some(&text))?;
        if !ok {
            return Err(format!("nftban ban - of {n} {kind} failed").into());
        }
        let set = if len == 32 { "bench_v4" } else { "bench_v4_24" };
        let last = addrs[n - 1];
        nft(&format!("get element inet nftban {set} {{ {last} }}"))
            .map_err(|e| format!("{last} is not in the kernel after `ban -`: {e}"))?;
        let ban_lines = d.log_lines("Ban ")?;
        let peak = proc_status(d.pid(), "VmHWM")?;
        // The answer comes once the bans are in the kernel and the pending
        // file; the mover carries them into SQLite after it, and its page
        // cache grows then. What the daemon holds once that is done and
        // the work's memory is given back, read before `nft -f` runs
        // (which then has the machine to itself).
        d.history_caught_up(dir)?;
        let settled = d.settled()?;
        let (nft_flags, nft_set) = if len == 32 {
            ("timeout", "timeout (hash)")
        } else {
            ("interval,timeout", "interval,timeout")
        };
        let t_nft = nft_file_peak(dir, nft_flags, &addrs, len, 1);
        nft(&format!("delete table inet {NFT_TABLE}")).ok();
        let (t_nft, nft_peak) = match t_nft {
            Ok(Some((t, p))) => (Some(t), format!("{p} kB")),
            _ => (None, "-".into()),
        };
        let rel = |t: Duration| match t_nft {
            Some(nt) => (
                format!("{:.2}", nt.as_secs_f64()),
                format!("{:.1}×", nt.as_secs_f64() / t.as_secs_f64()),
            ),
            None => ("-".into(), "-".into()),
        };
        let (nt, ratio) = rel(t_ban);
        println!(
            "| `nftban ban -` ({kind}; `nft -f` into {nft_set}) | {n} | {:.2} | {:.0} | {nt} | {ratio} | {ban_lines} | {peak} | {settled} | {client} kB | {nft_peak} |",
            t_ban.as_secs_f64(),
            n as f64 / t_ban.as_secs_f64()
        );

        // A reboot: the kernel forgets everything; the daemon restores
        // every running ban from the history. Timed from the start of
        // `nftban run` to its first answer (the restore comes first).
        let d = if len == 32 && n >= 1_000_000 {
            d.stop()?;
            nft("delete table inet nftban")?;
            let start = Instant::now();
            let d = Daemon::start(bin, dir)?;
            let t = start.elapsed();
            nft(&format!("get element inet nftban {set} {{ {last} }}"))
                .map_err(|e| format!("{last} was not restored: {e}"))?;
            let peak = proc_status(d.pid(), "VmHWM")?;
            println!(
                "| restart into an empty kernel, restoring every ban (to the first `status` answer) | {n} | {:.2} | {:.0} | | | | {peak} | {} | | |",
                t.as_secs_f64(),
                n as f64 / t.as_secs_f64(),
                d.settled()?
            );
            d
        } else {
            d
        };

        let before = d.log_lines("Unban ")?;
        let (ok, t_unban, client) = d.cli(&["unban", "-", "--jail", "bench"], Some(&text))?;
        if !ok {
            return Err(format!("nftban unban - of {n} {kind} failed").into());
        }
        if nft(&format!("get element inet nftban {set} {{ {last} }}")).is_ok() {
            return Err(format!("{last} is still in the kernel after `unban -`").into());
        }
        let unban_lines = d.log_lines("Unban ")? - before;
        let peak = proc_status(d.pid(), "VmHWM")?;
        d.history_caught_up(dir)?;
        println!(
            "| `nftban unban -` ({kind}) | {n} | {:.2} | {:.0} | | | {unban_lines} | {peak} | {} | {client} kB | |",
            t_unban.as_secs_f64(),
            n as f64 / t_unban.as_secs_f64(),
            d.settled()?
        );
        d.stop()?;
    }
    if prefixes > 0 {
        feed_load(bin, dir, prefixes, 24, "", seed)?;
        feed_load(
            bin,
            dir,
            prefixes,
            22,
            "nftables: {prefix_sets: {ipv4: [24, 22]}}\n",
            seed,
        )?;
    }
    Ok(())
}

/// A blocklist feed of `n` distinct public /`len` prefixes from a local
/// file (`feeds: {bench: {file: ..., format: plain}}`, `extra` in the
/// config too), timed from the daemon's spawn to its last prefix in the
/// kernel (`nft get element` every 10 ms): the feed is read, parsed,
/// filtered and applied as one transaction after the start. Beside one
/// `nft -f` of the same prefixes into an interval set.
fn feed_load(bin: &Path, dir: &Path, n: usize, len: u8, extra: &str, seed: &mut u64) -> Res<()> {
    // Public ranges only: a feed skips private, reserved and documentation
    // ranges, and the last prefix must be one it keeps.
    let public = |a: &Ipv4Addr| {
        !matches!(
            a.octets()[0],
            0 | 10 | 100 | 127 | 169 | 172 | 192 | 198 | 203 | 224..=255
        )
    };
    let mask = u32::MAX << (32 - len);
    let mut seen = HashSet::new();
    let nets: Vec<Ipv4Addr> = random_hosts(n * 3, seed)
        .into_iter()
        .map(|a| Ipv4Addr::from(u32::from(a) & mask))
        .filter(|a| public(a) && seen.insert(*a))
        .take(n)
        .collect();
    if nets.len() < n {
        return Err("not enough public prefixes drawn".into());
    }
    let list = dir.join("feed.txt");
    let mut text = String::with_capacity(n * 20);
    for a in &nets {
        let _ = writeln!(text, "{a}/{len}");
    }
    std::fs::write(&list, text)?;
    start_afresh(dir);
    // No kept list of an earlier run: the load is the file's.
    let _ = std::fs::remove_dir_all(dir.join("feeds"));
    let feeds = format!("feeds: {{bench: {{file: {}, format: plain}}}}\n", list.display());
    let start = Instant::now();
    let d = Daemon::start_with(bin, dir, &format!("{extra}{feeds}"))?;
    let last = nets[n - 1];
    let set = format!("feed_bench_v4_{len}");
    let deadline = start + Duration::from_secs(120);
    while nft(&format!("get element inet nftban {set} {{ {last} }}")).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{last}/{len} of the feed is not in {set} after 120 s").into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = start.elapsed();
    let peak = proc_status(d.pid(), "VmHWM")?;
    d.stop()?;
    let t_nft = nft_file_peak(dir, "interval,timeout", &nets, len, 1);
    nft(&format!("delete table inet {NFT_TABLE}")).ok();
    let (nt, ratio, nft_peak) = match t_nft {
        Ok(Some((nt, p))) => (
            format!("{:.2}", nt.as_secs_f64()),
            format!("{:.1}×", nt.as_secs_f64() / t.as_secs_f64()),
            format!("{p} kB"),
        ),
        _ => ("-".into(), "-".into(), "-".into()),
    };
    let layout = if extra.is_empty() {
        ""
    } else {
        ", `prefix_sets` /24 /22"
    };
    println!(
        "| a feed of /{len} prefixes from a file, daemon spawn → last prefix in the kernel ({set}{layout}; `nft -f` into interval,timeout) | {n} | {:.2} | {:.0} | {nt} | {ratio} | | {peak} | | | {nft_peak} |",
        t.as_secs_f64(),
        n as f64 / t.as_secs_f64()
    );
    Ok(())
}

/// A field of /proc/PID/status, e.g. `VmRSS` → `123456 kB`.
fn proc_status(pid: u32, field: &str) -> Res<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status").into())
}

/// The argument that makes this program the runner of [`peak_into`].
const PEAK_INTO: &str = "--peak-into";

/// `--peak-into FILE BIN ARGS...`: run BIN with ARGS (stdin, stdout and
/// stderr passed on), write its peak RSS in kB (its `ru_maxrss`) to FILE,
/// and exit as it did. A client is measured through this fresh process
/// rather than spawned from the benchmark itself: Linux counts in a
/// process's `ru_maxrss` the RSS it had before its exec, and a client
/// spawned straight from the benchmark, which holds a million addresses,
/// showed the benchmark's size rather than its own.
fn peak_into(args: Vec<String>) -> ! {
    let [file, bin, rest @ ..] = args.as_slice() else {
        eprintln!("usage: kernel_bench {PEAK_INTO} FILE BIN ARGS...");
        std::process::exit(2);
    };
    let child = match Command::new(bin).args(rest).spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("{bin}: {e}");
            std::process::exit(2);
        }
    };
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals of the right types.
    let waited = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let _ = std::fs::write(file, usage.ru_maxrss.to_string());
    let ok = waited >= 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    std::process::exit(if ok { 0 } else { 1 });
}

/// A command for `bin`'s `args` that runs through [`peak_into`], and the
/// file its peak RSS is written to.
fn measured(bin: &Path, dir: &Path) -> Res<(Command, PathBuf)> {
    let file = dir.join("peak-rss");
    let _ = std::fs::remove_file(&file);
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg(PEAK_INTO).arg(&file).arg(bin);
    Ok((cmd, file))
}

/// The peak RSS [`peak_into`] wrote to `file`, in kB (0 if it did not).
fn peak_of(file: &Path) -> i64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}
