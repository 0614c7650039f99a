//! The soak's report: Markdown, ready to paste (docs/reliability.md,
//! "Soak"), with the checks and whether they all passed.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use nftban::control::protocol::{JailStatus, SourceStatus, Status};

use crate::traffic::{self, Kind, Truth};
use crate::writer::Log;
use crate::{daemon, Args, Restart, Row, Sample, MAXRETRY, SAMPLE};

/// What the run was.
pub struct Setup<'a> {
    pub args: &'a Args,
    pub duration: Duration,
    pub findtime: Duration,
    pub bantime: Duration,
    pub load_before: String,
    pub load_after: String,
    pub dir: &'a Path,
    pub first_start: Duration,
}

/// How the run ended.
pub struct End {
    pub written: u64,
    pub finished: Duration,
    pub catch_up: Duration,
    pub status: Status,
    pub jail: JailStatus,
    pub kernel: daemon::Kernel,
    pub cpu_secs: f64,
    pub alive: Duration,
    pub hwm_kb: Option<u64>,
    pub exit: Option<ExitStatus>,
    pub stopped_in: Duration,
}

/// The Markdown report, and whether every check passed.
pub fn report(s: &Setup, l: &Log, r: &Restart, e: &End, rows: &[Row], samples: &[Sample]) -> (String, bool) {
    let mut o = String::new();
    let a = s.args;
    let _ = writeln!(
        o,
        "## Soak: {} at {} lines/s, {}\n",
        fmt_minutes(s.duration),
        group(a.rate),
        utc_now()
    );
    let _ = writeln!(
        o,
        "- Command: `{}`",
        std::env::var("SOAK_COMMAND").unwrap_or_else(|_| format!("bash bench/soak.sh --minutes {}", a.minutes))
    );
    let _ = writeln!(o, "- Commit: {}", commit());
    let _ = writeln!(o, "- Machine: {}", machine());
    let _ = writeln!(o, "- Load average: {} before, {} after", s.load_before, s.load_after);
    let _ = writeln!(
        o,
        "- Rotations: {0} rename + create and {0} copytruncate while a daemon runs (older copies shifted, at most 3 kept), one rename while none runs; one restart halfway",
        a.rotations
    );
    let _ = writeln!(
        o,
        "- Daemon: `nftban run` (release build) in a private network namespace; one jail, shipped `asterisk` ruleset, on `log/messages*` (a glob: the rotated copies are read too, each line once); findtime {} s (a third of the run, 20 s to 10 min), maxretry {MAXRETRY}, bantime {} s (the run plus an hour: no ban expires), ignoreip {}; seed {}",
        s.findtime.as_secs(),
        s.bantime.as_secs(),
        traffic::IGNOREIP.join(", "),
        a.seed
    );

    // Traffic.
    let _ = writeln!(o, "\n### Traffic\n");
    let secs = e.finished.as_secs_f64();
    let late = e.finished.saturating_sub(s.duration);
    let _ = writeln!(
        o,
        "{} lines written in {:.1} s: **{} lines/s**; the writer was at most {:.0} ms behind its schedule (at {}){}. {} attack lines ({:.2}%), among ordinary lines of which one in fifty is a decoy (an address in an attacker-written SIP From URI).\n",
        group(e.written),
        secs,
        group((e.written as f64 / secs.max(1e-9)).round() as u64),
        l.behind.0.as_secs_f64() * 1000.0,
        fmt_dur(l.behind.1),
        if late > Duration::from_secs(1) {
            format!(", and **fell behind**: its last line came {:.1} s after the end of the schedule", late.as_secs_f64())
        } else {
            String::new()
        },
        group(l.attack_lines),
        l.attack_lines as f64 * 100.0 / e.written.max(1) as f64
    );
    let status_banned: HashSet<IpAddr> = e.jail.banned.iter().filter_map(|b| b.ip.parse().ok()).collect();
    let status_other: Vec<&str> = e
        .jail
        .banned
        .iter()
        .filter(|b| b.ip.parse::<IpAddr>().is_err())
        .map(|b| b.ip.as_str())
        .collect();
    let f = s.findtime.as_secs() as i64;
    let truths: Vec<Truth> = l
        .attackers()
        .iter()
        .zip(&l.dates)
        .map(|(at, d)| traffic::truth(d, f, MAXRETRY, at.kind == Kind::Ignored))
        .collect();
    let _ = writeln!(
        o,
        "| attackers | what they do | new per s | attackers | lines | must be banned | in the kernel | in status |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|");
    for kind in Kind::ALL {
        let idx: Vec<usize> = (0..l.attackers().len())
            .filter(|&i| l.attackers()[i].kind == kind && !l.dates[i].is_empty())
            .collect();
        let count = |f: &dyn Fn(usize) -> bool| idx.iter().filter(|&&i| f(i)).count();
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            kind.name(),
            kind.describe(s.findtime),
            kind.per_second(),
            group(idx.len() as u64),
            group(idx.iter().map(|&i| l.dates[i].len() as u64).sum()),
            group(count(&|i| truths[i] == Truth::Ban) as u64),
            group(count(&|i| e.kernel.addrs.contains(&l.attackers()[i].addr)) as u64),
            group(count(&|i| status_banned.contains(&l.attackers()[i].addr)) as u64),
        );
    }
    let unsure = truths.iter().filter(|t| **t == Truth::Unsure).count();
    if unsure > 0 || l.unwritten_attack_lines() > 0 {
        let _ = writeln!(
            o,
            "\n{unsure} attackers' dates fell within 2 s of findtime (not counted either way); {} planned attack lines were not written.",
            l.unwritten_attack_lines()
        );
    }

    // Events.
    let _ = writeln!(o, "\n### Events\n");
    let _ = writeln!(o, "| time | event |\n|---|---|");
    let _ = writeln!(
        o,
        "| 0:00 | daemon 1 answering status {} ms after its start; the writer starts |",
        s.first_start.as_millis()
    );
    let mut events: Vec<(Duration, String)> = l.notes.clone();
    events.push((
        r.at,
        format!(
            "restart: the writer held until daemon 1 had read {} of {} lines written ({} ms); SIGTERM, the writer goes on; daemon 1 {} after {} ms, leaving {} lines after its saved positions ({})",
            r.read.map_or("?".into(), group),
            group(r.written),
            r.caught_up_in.as_millis(),
            match r.exit {
                Some(st) if st.success() => "exited (0)".to_string(),
                Some(st) => format!("exited ({st})"),
                None => "was killed (no exit within 30 s)".to_string(),
            },
            r.stopped_in.as_millis(),
            group(r.left.lines),
            r.left
                .files
                .iter()
                .map(|(n, k)| format!("{n} {}", group(*k)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ));
    events.push((
        r.started,
        format!(
            "daemon 2 started on the same config, history and namespace ({:.1} s after daemon 1 exited at {}), answering after {} ms; {} lines were written while no daemon ran",
            (r.started - r.exited).as_secs_f64(),
            fmt_dur(r.exited),
            r.started_in.as_millis(),
            group(r.down_lines)
        ),
    ));
    events.push((
        e.finished,
        format!(
            "the writer's last line; daemon 2 had read everything {:.1} s later",
            e.catch_up.as_secs_f64()
        ),
    ));
    events.sort_by_key(|(at, _)| *at);
    for (at, what) in &events {
        let _ = writeln!(o, "| {} | {what} |", fmt_dur(*at));
    }

    // Checks.
    let mut checks: Vec<(String, String, bool)> = Vec::new();
    let mut details: Vec<String> = Vec::new();
    let read1 = r.read.unwrap_or(0);
    checks.push((
        "daemon 1 read every line written before its stop, once (status `lines` = lines written)".into(),
        format!(
            "{} read, {} written{}",
            r.read.map_or("?".into(), group),
            group(r.written),
            difference(read1, r.written)
        ),
        r.read == Some(r.written),
    ));
    let read2: u64 = e.jail.sources.iter().map(|s| s.lines).sum();
    let want2 = e.written - r.written_at_exit + r.left.lines;
    checks.push((
        "daemon 2 read every line daemon 1 left and every later one, once".into(),
        format!(
            "{} read; {} left by daemon 1 + {} written after its stop = {}{}",
            group(read2),
            group(r.left.lines),
            group(e.written - r.written_at_exit),
            group(want2),
            difference(read2, want2)
        ),
        read2 == want2,
    ));
    checks.push((
        "the positions daemon 1 saved fit the files".into(),
        if r.left.problems.is_empty() {
            format!("{} files", r.left.files.len())
        } else {
            r.left.problems.join("; ")
        },
        r.left.problems.is_empty(),
    ));
    let decided: HashSet<IpAddr> = e.kernel.addrs.union(&status_banned).copied().collect();
    let expected: HashSet<IpAddr> = l
        .attackers()
        .iter()
        .zip(&truths)
        .filter(|(_, t)| **t == Truth::Ban)
        .map(|(at, _)| at.addr)
        .collect();
    let unsure_addrs: HashSet<IpAddr> = l
        .attackers()
        .iter()
        .zip(&truths)
        .filter(|(_, t)| **t == Truth::Unsure)
        .map(|(at, _)| at.addr)
        .collect();
    let who = |addr: &IpAddr| -> String {
        match l.attackers().iter().position(|at| at.addr == *addr) {
            Some(i) => format!(
                "{addr} ({}, lines dated {})",
                l.attackers()[i].kind.name(),
                l.dates[i]
                    .iter()
                    .map(|d| format!("+{}s", d - l.dates[i][0]))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            None => format!("{addr} (no attacker)"),
        }
    };
    let mut missed: Vec<&IpAddr> = expected.difference(&decided).collect();
    missed.sort();
    let mut wrong: Vec<&IpAddr> = decided
        .iter()
        .filter(|x| !expected.contains(x) && !unsure_addrs.contains(x))
        .collect();
    wrong.sort();
    let mut lost_kernel: Vec<&IpAddr> = expected
        .iter()
        .filter(|x| status_banned.contains(x) && !e.kernel.addrs.contains(x))
        .collect();
    lost_kernel.sort();
    let mut lost_status: Vec<&IpAddr> = expected
        .iter()
        .filter(|x| e.kernel.addrs.contains(x) && !status_banned.contains(x))
        .collect();
    lost_status.sort();
    let mut list = |name: &str, v: &[&IpAddr]| {
        if !v.is_empty() {
            details.push(format!(
                "{name} ({}): {}",
                v.len(),
                v.iter().take(10).map(|x| who(x)).collect::<Vec<_>>().join("; ")
            ));
        }
    };
    list("missed", &missed);
    list("wrong bans", &wrong);
    list("lost from the kernel", &lost_kernel);
    list("lost from status", &lost_status);
    let others: Vec<&str> = e
        .kernel
        .other
        .iter()
        .map(String::as_str)
        .chain(status_other.iter().copied())
        .collect();
    if !others.is_empty() {
        details.push(format!("prefixes or other elements banned: {}", others.join(", ")));
    }
    checks.push((
        "missed lines: expected bans the daemon never made (an attack line not counted)".into(),
        format!("{} of {}", missed.len(), group(expected.len() as u64)),
        missed.is_empty(),
    ));
    checks.push((
        "wrong bans: banned (kernel or status) though the ground truth says never".into(),
        format!("{}", wrong.len() + others.len()),
        wrong.is_empty() && others.is_empty(),
    ));
    checks.push((
        "lost bans: expected, in status but not in the kernel".into(),
        format!("{}", lost_kernel.len()),
        lost_kernel.is_empty(),
    ));
    checks.push((
        "lost bans: expected, in the kernel but not in status".into(),
        format!("{}", lost_status.len()),
        lost_status.is_empty(),
    ));
    let errs = |j: &JailStatus| {
        let src = |f: fn(&SourceStatus) -> u64| j.sources.iter().map(f).sum::<u64>();
        [
            j.kernel_errors,
            j.evicted,
            src(|s| s.truncated),
            src(|s| s.invalid_utf8),
        ]
    };
    let e1 = r.last_status.as_ref().map(errs).unwrap_or_default();
    let e2 = errs(&e.jail);
    let sum: Vec<u64> = (0..4).map(|i| e1[i] + e2[i]).collect();
    checks.push((
        "errors: kernel refusals, history writes, addresses evicted, lines cut, bad UTF-8".into(),
        format!(
            "{}, {}, {}, {}, {}",
            sum[0], e.status.history_errors, sum[1], sum[2], sum[3]
        ),
        sum.iter().all(|&x| x == 0) && e.status.history_errors == 0 && e.status.kernel_errors == 0,
    ));
    let clean = |x: &Option<ExitStatus>| x.is_some_and(|s| s.success());
    checks.push((
        "both daemons stopped cleanly on SIGTERM".into(),
        format!(
            "daemon 1 in {} ms ({}), daemon 2 in {} ms ({})",
            r.stopped_in.as_millis(),
            r.exit.map_or("killed".into(), |s| s.to_string()),
            e.stopped_in.as_millis(),
            e.exit.map_or("killed".into(), |s| s.to_string())
        ),
        clean(&r.exit) && clean(&e.exit),
    ));
    let failed = checks.iter().filter(|c| !c.2).count();
    let _ = writeln!(o, "\n### Checks\n");
    let _ = writeln!(o, "| check | result | |\n|---|---|---|");
    for (what, result, ok) in &checks {
        let _ = writeln!(o, "| {what} | {result} | {} |", if *ok { "ok" } else { "**FAILED**" });
    }
    for d in &details {
        let _ = writeln!(o, "\n- {d}");
    }
    if failed == 0 {
        let _ = writeln!(o, "\nAll {} checks passed.", checks.len());
    } else {
        let _ = writeln!(
            o,
            "\n**{failed} of {} checks FAILED**; the folder is kept: {}",
            checks.len(),
            s.dir.display()
        );
    }

    // Memory and CPU.
    let _ = writeln!(o, "\n### Memory and CPU\n");
    let _ = writeln!(
        o,
        "RSS: VmRSS of the daemon; CPU: its utime+stime since the previous row, in % of one core; banned: `currently_banned` of its status.\n"
    );
    let _ = writeln!(
        o,
        "| time | daemon | RSS MB | CPU % | lines written | banned |\n|---:|---:|---:|---:|---:|---:|"
    );
    for row in rows {
        let _ = writeln!(
            o,
            "| {} | {} | {:.1} | {:.1} | {} | {} |",
            fmt_dur(row.at),
            row.daemon,
            row.rss_kb as f64 / 1024.0,
            row.cpu,
            group(row.written),
            row.banned.map_or("?".into(), group)
        );
    }
    let mut lines = Vec::new();
    for (n, hwm) in [(1u8, r.hwm_kb), (2, e.hwm_kb)] {
        let v: Vec<u64> = samples.iter().filter(|x| x.daemon == n).map(|x| x.rss_kb).collect();
        if let (Some(first), Some(last), Some(max)) = (v.first(), v.last(), v.iter().max()) {
            lines.push(format!(
                "daemon {n}: first {:.1}, last {:.1}, max {:.1} MB (peak VmHWM {})",
                *first as f64 / 1024.0,
                *last as f64 / 1024.0,
                *max as f64 / 1024.0,
                hwm.map_or("?".into(), |h| format!("{:.1} MB", h as f64 / 1024.0))
            ));
        }
    }
    let _ = writeln!(
        o,
        "\nRSS every {} s ({} samples): {}.",
        SAMPLE.as_secs(),
        samples.len(),
        lines.join("; ")
    );
    let pct = |cpu: f64, alive: Duration| cpu / alive.as_secs_f64().max(1e-9) * 100.0;
    let _ = writeln!(
        o,
        "\nCPU over each daemon's life (start-up included): {:.1}% of one core in all; daemon 1 {:.1}% ({:.1} s over {:.0} s), daemon 2 {:.1}% ({:.1} s over {:.0} s).",
        pct(r.cpu_secs + e.cpu_secs, r.alive + e.alive),
        pct(r.cpu_secs, r.alive),
        r.cpu_secs,
        r.alive.as_secs_f64(),
        pct(e.cpu_secs, e.alive),
        e.cpu_secs,
        e.alive.as_secs_f64()
    );
    (o, failed == 0)
}

/// What a line count off by some says: `: 75,004 more (lines read twice)`.
fn difference(read: u64, want: u64) -> String {
    match read.cmp(&want) {
        std::cmp::Ordering::Equal => String::new(),
        std::cmp::Ordering::Greater => format!(": **{} more** (lines read twice)", group(read - want)),
        std::cmp::Ordering::Less => format!(": **{} fewer** (lines not read)", group(want - read)),
    }
}

/// `12,345,678`.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `m:ss`, or `h:mm:ss` from an hour.
pub fn fmt_dur(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn fmt_minutes(d: Duration) -> String {
    let m = d.as_secs_f64() / 60.0;
    if m == m.trunc() {
        format!("{m:.0} min")
    } else {
        format!("{m:.1} min")
    }
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn utc_now() -> String {
    run_text(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])).unwrap_or_default()
}

/// `SOAK_COMMIT`, else the checkout's short commit (`-dirty` with local changes).
fn commit() -> String {
    if let Ok(c) = std::env::var("SOAK_COMMIT") {
        return c;
    }
    let Some(c) = run_text(Command::new("git").args(["rev-parse", "--short", "HEAD"])) else {
        return "?".into();
    };
    let dirty = run_text(Command::new("git").args(["status", "--porcelain", "--untracked-files=no"]))
        .is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{c}-dirty")
    } else {
        c
    }
}

/// CPU model, CPUs, memory, kernel, nftables.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or("?".into(), |kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let nft = run_text(Command::new("nft").arg("-v")).unwrap_or_default();
    format!("{model}, {cpus} CPUs, {mem}, kernel {}, {nft}", kernel.trim())
}

fn run_text(cmd: &mut Command) -> Option<String> {
    let o = cmd.output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}
