//! The soak's traffic: who attacks when (a deterministic plan), the
//! Asterisk lines themselves, and the ground truth, computed from the dates
//! the written lines carry (not from the plan: a writer that ran late
//! changes the dates, and the truth follows them).
//!
//! Attackers of five kinds, each a distinct address (one in ten IPv6, each
//! in a /64 of its own), new ones starting all through the run at fixed
//! rates:
//!
//! - `burst`: 3 failures within 2 s: must be banned;
//! - `slow`: 3 failures over findtime/2: must be banned (their windows
//!   straddle rotations and the restart);
//! - `below`: 2 failures: never banned; a line read twice would ban them;
//! - `spaced`: 3 failures 0.6 × findtime apart, so never 3 within findtime:
//!   never banned (their first failure must expire from the window);
//! - `ignored`: 5 failures from an `ignoreip` range: never banned.
//!
//! Ordinary lines fill the rest, some of them decoys: addresses in fields
//! an attacker writes (SIP From URIs), which the ruleset must never take.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The jail's `ignoreip`: the `ignored` attackers come from these.
pub const IGNOREIP: [&str; 2] = ["100.127.0.0/16", "2001:db8:a::/48"];

/// splitmix64: small, fast, and the same everywhere.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// How an attacker behaves, and so whether it must be banned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Burst,
    Slow,
    Below,
    Spaced,
    Ignored,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Burst, Kind::Slow, Kind::Below, Kind::Spaced, Kind::Ignored];

    /// New attackers of this kind per second of the run.
    pub fn per_second(self) -> u64 {
        match self {
            Kind::Burst => 10,
            Kind::Slow => 3,
            Kind::Below => 50,
            Kind::Spaced => 3,
            Kind::Ignored => 1,
        }
    }

    /// When its lines come, in ms after its first one.
    fn offsets(self, rng: &mut Rng, findtime_ms: u64) -> Vec<u64> {
        let mut v = match self {
            Kind::Burst => vec![0, rng.below(2_000), rng.below(2_000)],
            Kind::Slow => vec![0, findtime_ms / 4, findtime_ms / 2],
            Kind::Below => vec![0, rng.below(findtime_ms / 2)],
            Kind::Spaced => vec![0, findtime_ms * 6 / 10, findtime_ms * 12 / 10],
            Kind::Ignored => vec![
                0,
                rng.below(2_000),
                rng.below(2_000),
                rng.below(2_000),
                rng.below(2_000),
            ],
        };
        v.sort_unstable();
        v
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Burst => "burst",
            Kind::Slow => "slow",
            Kind::Below => "below",
            Kind::Spaced => "spaced",
            Kind::Ignored => "ignored",
        }
    }

    /// What it does, for the report.
    pub fn describe(self, findtime: Duration) -> String {
        let f = findtime.as_secs();
        match self {
            Kind::Burst => "3 failures within 2 s: must be banned".into(),
            Kind::Slow => format!("3 failures over {} s (findtime/2): must be banned", f / 2),
            Kind::Below => format!("2 failures within {} s: never banned", f / 2),
            Kind::Spaced => format!(
                "3 failures {} s apart, never 3 within findtime: never banned",
                f * 6 / 10
            ),
            Kind::Ignored => "5 failures within 2 s from ignoreip: never banned".into(),
        }
    }
}

/// One attacker.
#[derive(Clone, Copy, Debug)]
pub struct Attacker {
    pub addr: IpAddr,
    pub kind: Kind,
}

/// Every attacker, and every attack line as (ms after the start, attacker
/// index), in time order.
pub struct Plan {
    pub attackers: Vec<Attacker>,
    pub events: Vec<(u64, u32)>,
}

/// The plan of a run of `duration` for a jail with `findtime`; the same
/// arguments give the same plan. An attacker's lines all fall at least 2 s
/// before the end; a kind that cannot fit (`spaced` in a short run) has no
/// attackers.
pub fn plan(duration: Duration, findtime: Duration, seed: u64) -> Plan {
    let mut rng = Rng(seed);
    let total_ms = duration.as_millis() as u64;
    let findtime_ms = findtime.as_millis() as u64;
    let mut attackers = Vec::new();
    let mut events = Vec::new();
    let (mut hostile, mut ignored) = (0u32, 0u32);
    for kind in Kind::ALL {
        let n = kind.per_second() * duration.as_secs();
        for _ in 0..n {
            let offsets = kind.offsets(&mut rng, findtime_ms);
            let span = *offsets.last().unwrap_or(&0);
            let Some(room) = total_ms.checked_sub(span + 2_000).filter(|&r| r > 0) else {
                break;
            };
            let start = rng.below(room);
            let addr = if kind == Kind::Ignored {
                ignored += 1;
                ignored_addr(ignored)
            } else {
                hostile += 1;
                hostile_addr(hostile)
            };
            let id = attackers.len() as u32;
            attackers.push(Attacker { addr, kind });
            events.extend(offsets.iter().map(|o| (start + o, id)));
        }
    }
    events.sort_unstable();
    Plan { attackers, events }
}

/// Attacker `i` (from 1): one in ten IPv6, each in a /64 of its own in
/// 2001:db8:100::/40; the others in 100.64.0.0/10 below 100.127.0.0
/// (shared address space: nobody's real host), .0 and .255 left out.
fn hostile_addr(i: u32) -> IpAddr {
    if i % 10 == 0 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0x100 + (i >> 16) as u16,
            i as u16,
            0,
            0,
            0,
            1,
        ))
    } else {
        let n = i - i / 10;
        let host = n % 254 + 1;
        let net = n / 254;
        assert!(net < 0x3f00, "too many attackers for 100.64.0.0 - 100.126.255.255");
        IpAddr::V4(Ipv4Addr::from(
            u32::from(Ipv4Addr::new(100, 64, 0, 0)) + (net << 8) + host,
        ))
    }
}

/// An address of the `ignoreip` ranges, one in five IPv6.
fn ignored_addr(i: u32) -> IpAddr {
    if i % 5 == 0 {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xa, i as u16, 0, 0, 0, 1))
    } else {
        IpAddr::V4(Ipv4Addr::new(100, 127, (i >> 8) as u8, i as u8))
    }
}

/// What must happen to an attacker, by the dates (Unix seconds, in write
/// order) of its lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truth {
    Ban,
    NoBan,
    /// Three failures spanning within 2 s of findtime: the second-granular
    /// dates cannot say; counted apart (the plan keeps far from this).
    Unsure,
}

/// The daemon's rule on the dates lines carry: banned once `maxretry`
/// failures are less than `findtime` apart (a failure counts while its age
/// is under findtime), unless from ignoreip.
pub fn truth(dates: &[i64], findtime: i64, maxretry: usize, ignored: bool) -> Truth {
    if ignored || maxretry == 0 || dates.len() < maxretry {
        return Truth::NoBan;
    }
    let mut unsure = false;
    for w in dates.windows(maxretry) {
        let span = w[maxretry - 1] - w[0];
        if (span - findtime).abs() <= 2 {
            unsure = true;
        } else if span < findtime {
            return Truth::Ban;
        }
    }
    if unsure {
        Truth::Unsure
    } else {
        Truth::NoBan
    }
}

/// Asterisk's date, local time, for the second the line is written: the
/// text is made once per second.
pub struct Clock {
    secs: i64,
    text: String,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            secs: i64::MIN,
            text: String::new(),
        }
    }

    /// (Unix seconds, `YYYY-MM-DD HH:MM:SS`) of now.
    pub fn now(&mut self) -> (i64, &str) {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if secs != self.secs {
            self.secs = secs;
            self.text = local_date(secs);
        }
        (self.secs, &self.text)
    }
}

fn local_date(secs: i64) -> String {
    // SAFETY: localtime_r with valid pointers; tm is plain data.
    let tm = unsafe {
        let t = secs as libc::time_t;
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        tm
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// `[2001:db8::1]` for IPv6 (SIP's `host:port`), the address for IPv4.
fn bracket(a: &IpAddr) -> String {
    match a {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

const EXTS: &[&str] = &["100", "101", "102", "200", "1000", "admin", "test", "2001", "9001"];

fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len() as u64) as usize]
}

/// How many kinds of attack line there are.
pub const ATTACK_LINES: u64 = 10;

/// Attack line `variant` (below [`ATTACK_LINES`]) of `a`, dated `t`,
/// appended to `out` with its newline: each one a failure of `a` for the
/// shipped `asterisk` ruleset (checked at start with `nftban test`).
pub fn attack_line(out: &mut String, variant: u64, rng: &mut Rng, t: &str, a: &IpAddr) {
    let lwp = 1000 + rng.below(9000);
    let port = 5060 + rng.below(100);
    let ext = pick(rng, EXTS);
    let v = if a.is_ipv4() { 4 } else { 6 };
    let _ = match variant {
        0 => writeln!(
            out,
            "[{t}] NOTICE[{lwp}] chan_sip.c: Registration from '<sip:{ext}@192.0.2.1>' failed for '{}:{port}' - {}",
            bracket(a),
            pick(rng, &["Wrong password", "No matching peer found", "Username/auth name mismatch"])
        ),
        1 => writeln!(
            out,
            "[{t}] NOTICE[{lwp}][C-{:08x}] chan_sip.c: Call from '' ({}:{port}) to extension '0011{}' rejected because extension not found in context 'public'.",
            rng.below(1 << 32),
            bracket(a),
            rng.below(1_000_000_000)
        ),
        2 => writeln!(
            out,
            "[{t}] NOTICE[{lwp}] res_pjsip/pjsip_distributor.c: Request '{}' from '\"{ext}\" <sip:{ext}@192.0.2.1>' failed for '{}:{port}' (callid: {:016x}) - {}",
            pick(rng, &["REGISTER", "INVITE"]),
            bracket(a),
            rng.next(),
            pick(rng, &["No matching endpoint found", "Failed to authenticate"])
        ),
        3 => writeln!(
            out,
            "[{t}] SECURITY[{lwp}] res_security_log.c: SecurityEvent=\"InvalidAccountID\",EventTV=\"{t}.000+0000\",Severity=\"Error\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"{ext}\",SessionID=\"{:x}\",LocalAddress=\"IPV{v}/UDP/{}/5060\",RemoteAddress=\"IPV{v}/UDP/{a}/{port}\"",
            rng.next(),
            if v == 4 { "192.0.2.1" } else { "2001:db8::1" }
        ),
        4 => writeln!(
            out,
            "[{t}] SECURITY[{lwp}] res_security_log.c: SecurityEvent=\"ChallengeResponseFailed\",EventTV=\"{t}.000+0000\",Severity=\"Error\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"{ext}\",SessionID=\"{:x}\",LocalAddress=\"IPV{v}/UDP/{}/5060\",RemoteAddress=\"IPV{v}/UDP/{a}/{port}\",Challenge=\"{:08x}\",Response=\"{:032x}\",ExpectedResponse=\"\"",
            rng.next(),
            if v == 4 { "192.0.2.1" } else { "2001:db8::1" },
            rng.below(1 << 32),
            rng.next()
        ),
        5 => writeln!(
            out,
            "[{t}] NOTICE[{lwp}][C-{:08x}] Ext. {}: Incoming SIP connection from unknown peer failed for {a} - Unknown connection from peer",
            rng.below(1 << 32),
            rng.below(1_000_000_000_000)
        ),
        6 => writeln!(out, "[{t}] NOTICE[{lwp}] manager.c: {a} failed to authenticate as '{ext}'"),
        7 => writeln!(
            out,
            "[{t}] NOTICE[{lwp}]: chan_sip.c:25824 in handle_request_register: Registration from '<sip:{ext}@192.0.2.1>' failed for '{}:{port}' - Wrong password",
            bracket(a)
        ),
        // An injection attempt: the From mimics the message with a decoy
        // address; the address Asterisk wrote (the last) is the attacker's.
        8 => writeln!(
            out,
            "[{t}] NOTICE[{lwp}] chan_sip.c: Registration from '<sip:{ext}@x>' failed for '{}' - Wrong password' failed for '{}:{port}' - Wrong password",
            decoy(rng),
            bracket(a)
        ),
        _ => writeln!(
            out,
            "[{t}] NOTICE[{lwp}] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from '<sip:{ext}@{}>' failed for '{}:{port}' (callid: {:016x}) - No matching endpoint found",
            decoy(rng),
            bracket(a),
            rng.next()
        ),
    };
}

/// How many kinds of ordinary line there are; the last two are decoys.
pub const ORDINARY_LINES: u64 = 12;

/// Ordinary line `variant` (below [`ORDINARY_LINES`]), dated `t`, appended
/// to `out` with its newline: no failure for the ruleset.
pub fn ordinary_line(out: &mut String, variant: u64, rng: &mut Rng, t: &str) {
    let lwp = 1000 + rng.below(9000);
    let ext = pick(rng, EXTS);
    let call = rng.below(1 << 32);
    let u = Ipv4Addr::new(10, rng.below(4) as u8, rng.below(256) as u8, 1 + rng.below(254) as u8);
    let _ = match variant {
        0 => writeln!(out, "[{t}] VERBOSE[{lwp}][C-{call:08x}] pbx.c: Executing [{ext}@from-internal:1] Dial(\"PJSIP/{ext}-{call:08x}\", \"PJSIP/200,30,tT\") in new stack"),
        1 => writeln!(out, "[{t}] VERBOSE[{lwp}][C-{call:08x}] app_dial.c: Called PJSIP/200"),
        2 => writeln!(out, "[{t}] VERBOSE[{lwp}][C-{call:08x}] app_dial.c: PJSIP/200-{call:08x} is ringing"),
        3 => writeln!(out, "[{t}] VERBOSE[{lwp}][C-{call:08x}] app_dial.c: PJSIP/200-{call:08x} answered PJSIP/{ext}-{call:08x}"),
        4 => writeln!(out, "[{t}] VERBOSE[{lwp}][C-{call:08x}] pbx.c: Spawn extension (from-internal, 200, 1) exited non-zero on 'PJSIP/{ext}-{call:08x}'"),
        5 => writeln!(out, "[{t}] VERBOSE[{lwp}] res_pjsip_registrar.c: Added contact 'sip:{ext}@{u}:5060;transport=udp' to AOR '{ext}' with expiration of 3600 seconds"),
        6 => writeln!(out, "[{t}] NOTICE[{lwp}] chan_sip.c: Registration from '<sip:{ext}@192.0.2.1>' succeeded"),
        7 => writeln!(out, "[{t}] SECURITY[{lwp}] res_security_log.c: SecurityEvent=\"SuccessfulAuth\",EventTV=\"{t}.000+0000\",Severity=\"Informational\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"{ext}\",SessionID=\"{call:x}\",LocalAddress=\"IPV4/UDP/192.0.2.1/5060\",RemoteAddress=\"IPV4/UDP/{u}/5060\",UsingPassword=\"1\""),
        8 => writeln!(out, "[{t}] VERBOSE[{lwp}] res_pjsip/pjsip_options.c: Contact {ext}/sip:{ext}@{u}:5060 is now Reachable.  RTT: {}.{:03} msec", rng.below(50), rng.below(1000)),
        9 => writeln!(out, "[{t}] WARNING[{lwp}][C-{call:08x}] res_rtp_asterisk.c: {u}:{} -- Strict RTP learning complete - Locking on source address", 10000 + rng.below(10000)),
        // Decoys: only the attacker-written From URI holds an address.
        10 => writeln!(out, "[{t}] NOTICE[{lwp}] chan_sip.c: Failed to authenticate device {ext}<sip:{ext}@{}>;tag={:08x}", decoy(rng), rng.below(1 << 32)),
        _ => writeln!(out, "[{t}] NOTICE[{lwp}] chan_sip.c: Sending fake auth rejection for device {ext}<sip:{ext}@{}>;tag={:08x}", decoy(rng), rng.below(1 << 32)),
    };
}

/// An address only attackers write (233.252.0.0/24, MCAST-TEST-NET, or
/// 2001:db8:ffff::/48): never to be banned.
fn decoy(rng: &mut Rng) -> IpAddr {
    if rng.below(10) < 7 {
        IpAddr::V4(Ipv4Addr::new(233, 252, 0, 1 + rng.below(254) as u8))
    } else {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0xffff,
            0,
            0,
            0,
            0,
            1 + rng.below(0xfffe) as u16,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_follows_the_window() {
        let f = 600;
        assert_eq!(truth(&[0, 1, 2], f, 3, false), Truth::Ban);
        assert_eq!(truth(&[0, 1, 2], f, 3, true), Truth::NoBan);
        assert_eq!(truth(&[0, 300], f, 3, false), Truth::NoBan);
        // 0.6 findtime apart: never three within findtime.
        assert_eq!(truth(&[0, 360, 720, 1080], f, 3, false), Truth::NoBan);
        // Near the boundary the dates cannot say.
        assert_eq!(truth(&[0, 300, 599], f, 3, false), Truth::Unsure);
        assert_eq!(truth(&[0, 300, 601], f, 3, false), Truth::Unsure);
        assert_eq!(truth(&[0, 300, 597], f, 3, false), Truth::Ban);
        // A line read twice is a third failure.
        assert_eq!(truth(&[0, 10, 10], f, 3, false), Truth::Ban);
    }

    #[test]
    fn the_plan_is_deterministic_and_every_kind_gets_its_verdict() {
        let (d, f) = (Duration::from_secs(120), Duration::from_secs(40));
        let a = plan(d, f, 7);
        let b = plan(d, f, 7);
        assert_eq!(a.events, b.events);
        assert!(a.events.last().unwrap().0 <= 118_000);
        let mut dates: Vec<Vec<i64>> = vec![Vec::new(); a.attackers.len()];
        for &(ms, id) in &a.events {
            dates[id as usize].push((ms / 1000) as i64);
        }
        for kind in Kind::ALL {
            let of_kind: Vec<usize> = (0..a.attackers.len())
                .filter(|&i| a.attackers[i].kind == kind)
                .collect();
            assert!(!of_kind.is_empty(), "{kind:?}");
            for i in of_kind {
                let t = truth(&dates[i], 40, 3, kind == Kind::Ignored);
                let want = if matches!(kind, Kind::Burst | Kind::Slow) {
                    Truth::Ban
                } else {
                    Truth::NoBan
                };
                assert_eq!(t, want, "{kind:?} {:?}", dates[i]);
            }
        }
        let mut addrs: Vec<IpAddr> = a
            .attackers
            .iter()
            .filter(|x| x.kind != Kind::Ignored)
            .map(|x| x.addr)
            .collect();
        let n = addrs.len();
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), n, "attacker addresses are distinct");
    }
}
