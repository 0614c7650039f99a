//! Deterministic log generator for the detection benchmark (bench/detection.sh).
//!
//! Writes a log of N lines mixing attacks (lines of the kinds the shipped
//! `asterisk` or `sshd` ruleset catches, from many IPv4 and IPv6 addresses)
//! with ordinary traffic (successful registrations and logins, calls,
//! verbose noise, cron, systemd), plus decoys: lines whose attacker-written
//! fields (SIP From URI, SSH user name) hold other addresses that must never
//! be banned. Beside the log it writes `OUT.hosts`: the ground truth, the
//! sorted set of attacking addresses, one per line.
//!
//! ```text
//! cargo run --release --example gen_logs -- asterisk 1000000 /tmp/asterisk.log [SEED]
//! cargo run --release --example gen_logs -- sshd 1000000 /tmp/sshd.log [SEED]
//! ```
//!
//! The same kind, line count and seed always give the same bytes. The sshd
//! log uses the classic `sshd[PID]` tag (OpenSSH before 9.8, e.g. Debian 12)
//! so that fail2ban 1.0's stock filter, which predates `sshd-session`, sees
//! the same lines as the other tools.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// splitmix64: small, fast, and deterministic across platforms.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Attacker addresses: all of the IPv4 documentation ranges (762 hosts)
/// and as many IPv6 addresses in 2001:db8::/32.
fn attacker_pool(rng: &mut Rng) -> Vec<IpAddr> {
    let mut pool = Vec::new();
    for net in [[192, 0, 2], [198, 51, 100], [203, 0, 113]] {
        for host in 1..=254u8 {
            pool.push(IpAddr::V4(Ipv4Addr::new(net[0], net[1], net[2], host)));
        }
    }
    for i in 0..762u16 {
        let a = rng.below(0xffff) as u16;
        pool.push(IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            a,
            0,
            0,
            0,
            i >> 8,
            (i & 0xff) + 1,
        )));
    }
    pool
}

/// Addresses of the site's own users (never attackers).
fn user_addr(rng: &mut Rng) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        10,
        rng.below(4) as u8,
        rng.below(256) as u8,
        1 + rng.below(254) as u8,
    ))
}

/// Decoy addresses that only appear in attacker-written fields
/// (233.252.0.0/24, MCAST-TEST-NET, and 2001:db8:ffff::/48): a correct
/// ruleset never bans them.
fn decoy_addr(rng: &mut Rng) -> IpAddr {
    if rng.chance(70) {
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

/// A clock that advances about 1,000,000 lines a day.
struct Clock {
    secs: u64,
}

impl Clock {
    fn tick(&mut self, rng: &mut Rng) {
        if rng.chance(10) {
            self.secs += 1;
        }
    }
    fn hms(&self) -> (u64, u64, u64, u64) {
        let day = self.secs / 86400;
        (day, self.secs % 86400 / 3600, self.secs % 3600 / 60, self.secs % 60)
    }
    /// `2026-11-25 04:00:00` (Asterisk's file log).
    fn asterisk(&self) -> String {
        let (d, h, m, s) = self.hms();
        format!("2026-11-{:02} {h:02}:{m:02}:{s:02}", 25 + d.min(5))
    }
    /// `Nov 25 04:00:00` (syslog).
    fn syslog(&self) -> String {
        let (d, h, m, s) = self.hms();
        format!("Nov {:2} {h:02}:{m:02}:{s:02}", 25 + d.min(5))
    }
}

/// `[2001:db8::1]` for IPv6, the address for IPv4 (SIP `host:port` form).
fn bracket(a: &IpAddr) -> String {
    match a {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

fn ipv(a: &IpAddr) -> u8 {
    if a.is_ipv4() {
        4
    } else {
        6
    }
}

const EXTS: &[&str] = &["100", "101", "102", "200", "1000", "admin", "test", "2001", "9001"];
const USERS: &[&str] = &[
    "root", "admin", "oracle", "test", "ubuntu", "git", "postgres", "user", "guest", "pi",
];

fn asterisk_attack(rng: &mut Rng, t: &str, a: &IpAddr) -> String {
    let lwp = 1000 + rng.below(9000);
    let port = 5060 + rng.below(100);
    let ext = rng.pick(EXTS);
    match rng.below(10) {
        0 | 1 => format!(
            "[{t}] NOTICE[{lwp}] chan_sip.c: Registration from '<sip:{ext}@192.0.2.1>' failed for '{}:{port}' - {}",
            bracket(a),
            rng.pick(&["Wrong password", "No matching peer found", "Username/auth name mismatch"])
        ),
        2 => format!(
            "[{t}] NOTICE[{lwp}][C-{:08x}] chan_sip.c: Call from '' ({}:{port}) to extension '0011{}' rejected because extension not found in context 'public'.",
            rng.below(1 << 32),
            bracket(a),
            rng.below(1_000_000_000)
        ),
        3 | 4 => format!(
            "[{t}] NOTICE[{lwp}] res_pjsip/pjsip_distributor.c: Request '{}' from '\"{ext}\" <sip:{ext}@192.0.2.1>' failed for '{}:{port}' (callid: {:016x}) - {}",
            rng.pick(&["REGISTER", "INVITE"]),
            bracket(a),
            rng.next(),
            rng.pick(&["No matching endpoint found", "Failed to authenticate"])
        ),
        5 | 6 => {
            let (event, extra) = if rng.chance(50) {
                ("InvalidAccountID", String::new())
            } else {
                (
                    "ChallengeResponseFailed",
                    format!(
                        ",Challenge=\"{:08x}\",Response=\"{:032x}\",ExpectedResponse=\"\"",
                        rng.below(1 << 32),
                        rng.next()
                    ),
                )
            };
            let v = ipv(a);
            format!(
                "[{t}] SECURITY[{lwp}] res_security_log.c: SecurityEvent=\"{event}\",EventTV=\"{t}.000+0000\",Severity=\"Error\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"{ext}\",SessionID=\"{:x}\",LocalAddress=\"IPV{v}/UDP/{}/5060\",RemoteAddress=\"IPV{v}/UDP/{a}/{port}\"{extra}",
                rng.next(),
                if v == 4 { "192.0.2.1" } else { "2001:db8::1" }
            )
        }
        7 => format!(
            "[{t}] NOTICE[{lwp}][C-{:08x}] Ext. {}: Incoming SIP connection from unknown peer failed for {a} - Unknown connection from peer",
            rng.below(1 << 32),
            rng.below(1_000_000_000_000)
        ),
        8 => format!("[{t}] NOTICE[{lwp}] manager.c: {a} failed to authenticate as '{ext}'"),
        // injection attempt: the From mimics the message with a decoy
        // address; the address Asterisk wrote (last) is the attacker's
        _ => format!(
            "[{t}] NOTICE[{lwp}] chan_sip.c: Registration from '<sip:{ext}@x>' failed for '{}' - Wrong password' failed for '{}:{port}' - Wrong password",
            decoy_addr(rng),
            bracket(a)
        ),
    }
}

fn asterisk_noise(rng: &mut Rng, t: &str) -> String {
    let lwp = 1000 + rng.below(9000);
    let ext = rng.pick(EXTS);
    let call = rng.below(1 << 32);
    let u = user_addr(rng);
    match rng.below(12) {
        0 => format!("[{t}] VERBOSE[{lwp}][C-{call:08x}] pbx.c: Executing [{ext}@from-internal:1] Dial(\"PJSIP/{ext}-{call:08x}\", \"PJSIP/200,30,tT\") in new stack"),
        1 => format!("[{t}] VERBOSE[{lwp}][C-{call:08x}] app_dial.c: Called PJSIP/200"),
        2 => format!("[{t}] VERBOSE[{lwp}][C-{call:08x}] app_dial.c: PJSIP/200-{call:08x} is ringing"),
        3 => format!("[{t}] VERBOSE[{lwp}][C-{call:08x}] app_dial.c: PJSIP/200-{call:08x} answered PJSIP/{ext}-{call:08x}"),
        4 => format!("[{t}] VERBOSE[{lwp}][C-{call:08x}] pbx.c: Spawn extension (from-internal, 200, 1) exited non-zero on 'PJSIP/{ext}-{call:08x}'"),
        5 => format!("[{t}] VERBOSE[{lwp}] res_pjsip_registrar.c: Added contact 'sip:{ext}@{u}:5060;transport=udp' to AOR '{ext}' with expiration of 3600 seconds"),
        6 => format!("[{t}] NOTICE[{lwp}] chan_sip.c: Registration from '<sip:{ext}@192.0.2.1>' succeeded"),
        7 => format!("[{t}] SECURITY[{lwp}] res_security_log.c: SecurityEvent=\"SuccessfulAuth\",EventTV=\"{t}.000+0000\",Severity=\"Informational\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"{ext}\",SessionID=\"{call:x}\",LocalAddress=\"IPV4/UDP/192.0.2.1/5060\",RemoteAddress=\"IPV4/UDP/{u}/5060\",UsingPassword=\"1\""),
        8 => format!("[{t}] VERBOSE[{lwp}] res_pjsip/pjsip_options.c: Contact {ext}/sip:{ext}@{u}:5060 is now Reachable.  RTT: {}.{:03} msec", rng.below(50), rng.below(1000)),
        9 => format!("[{t}] WARNING[{lwp}][C-{call:08x}] res_rtp_asterisk.c: {u}:{} -- Strict RTP learning complete - Locking on source address", 10000 + rng.below(10000)),
        // decoys: only the attacker-written From URI holds an address
        10 => format!("[{t}] NOTICE[{lwp}] chan_sip.c: Failed to authenticate device {ext}<sip:{ext}@{}>;tag={:08x}", decoy_addr(rng), rng.below(1 << 32)),
        _ => format!("[{t}] NOTICE[{lwp}] chan_sip.c: Sending fake auth rejection for device {ext}<sip:{ext}@{}>;tag={:08x}", decoy_addr(rng), rng.below(1 << 32)),
    }
}

fn sshd_attack(rng: &mut Rng, t: &str, a: &IpAddr) -> String {
    let pid = 10000 + rng.below(90000);
    let port = 1024 + rng.below(64000);
    let user = rng.pick(USERS);
    let s = format!("{t} srv sshd[{pid}]:");
    match rng.below(10) {
        0..=2 => format!("{s} Failed password for {user} from {a} port {port} ssh2"),
        3 | 4 => format!("{s} Failed password for invalid user {user} from {a} port {port} ssh2"),
        5 => format!("{s} Invalid user {user} from {a} port {port}"),
        6 => format!("{s} Connection closed by invalid user {user} {a} port {port} [preauth]"),
        7 => format!(
            "{s} error: maximum authentication attempts exceeded for {user} from {a} port {port} ssh2 [preauth]"
        ),
        8 => format!(
            "{s} Disconnecting authenticating user {user} {a} port {port}: Too many authentication failures [preauth]"
        ),
        // injection attempt: the user name mimics the message with a decoy
        _ => format!(
            "{s} Failed password for invalid user {user} from {} port 22 ssh2 from {a} port {port} ssh2",
            decoy_addr(rng)
        ),
    }
}

fn sshd_noise(rng: &mut Rng, t: &str) -> String {
    let pid = 10000 + rng.below(90000);
    let port = 1024 + rng.below(64000);
    let u = user_addr(rng);
    let user = rng.pick(&["alice", "bob", "deploy", "backup"]);
    match rng.below(12) {
        0 => format!(
            "{t} srv sshd[{pid}]: Accepted publickey for {user} from {u} port {port} ssh2: ED25519 SHA256:{:016x}",
            rng.next()
        ),
        1 => format!(
            "{t} srv sshd[{pid}]: pam_unix(sshd:session): session opened for user {user}(uid=1000) by {user}(uid=0)"
        ),
        2 => format!("{t} srv sshd[{pid}]: Received disconnect from {u} port {port}:11: disconnected by user"),
        3 => format!("{t} srv sshd[{pid}]: Disconnected from user {user} {u} port {port}"),
        4 => format!("{t} srv sshd[{pid}]: pam_unix(sshd:session): session closed for user {user}"),
        5 => format!("{t} srv CRON[{pid}]: pam_unix(cron:session): session opened for user root(uid=0) by root(uid=0)"),
        6 => format!("{t} srv CRON[{pid}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)"),
        7 => format!(
            "{t} srv systemd[1]: Started session-{}.scope - Session {} of User {user}.",
            pid, pid
        ),
        8 => format!("{t} srv systemd-logind[612]: New session {pid} of user {user}."),
        9 => format!("{t} srv sshd[{pid}]: Connection closed by {u} port {port} [preauth]"),
        10 => format!(
            "{t} srv kernel: [UFW BLOCK] IN=eth0 OUT= MAC= SRC={u} DST=192.0.2.1 LEN=40 PROTO=TCP SPT={port} DPT=23"
        ),
        // decoy: a user name holding an address, from a site user
        _ => format!("{t} srv sshd[{pid}]: Accepted password for {user} from {u} port {port} ssh2"),
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: gen_logs asterisk|sshd LINES OUT [SEED]");
        std::process::exit(2);
    }
    let kind = args[0].as_str();
    let lines: u64 = args[1].parse().expect("LINES is a number");
    let out = &args[2];
    let seed: u64 = args.get(3).map(|s| s.parse().expect("SEED is a number")).unwrap_or(1);
    if kind != "asterisk" && kind != "sshd" {
        eprintln!("unknown kind {kind}: asterisk or sshd");
        std::process::exit(2);
    }
    let mut rng = Rng(seed);
    let pool = attacker_pool(&mut rng);
    let mut truth = BTreeSet::new();
    let mut clock = Clock { secs: 0 };
    let mut w = BufWriter::with_capacity(1 << 20, File::create(out)?);
    for _ in 0..lines {
        clock.tick(&mut rng);
        // One line in five is an attack; a few attackers are much busier.
        let line = if rng.chance(20) {
            let a = if rng.chance(30) {
                pool[rng.below(20) as usize]
            } else {
                *rng.pick(&pool)
            };
            truth.insert(a);
            if kind == "asterisk" {
                asterisk_attack(&mut rng, &clock.asterisk(), &a)
            } else {
                sshd_attack(&mut rng, &clock.syslog(), &a)
            }
        } else if kind == "asterisk" {
            asterisk_noise(&mut rng, &clock.asterisk())
        } else {
            sshd_noise(&mut rng, &clock.syslog())
        };
        w.write_all(line.as_bytes())?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    let mut h = BufWriter::new(File::create(format!("{out}.hosts"))?);
    for a in &truth {
        writeln!(h, "{a}")?;
    }
    h.flush()?;
    eprintln!("{out}: {lines} lines, {} attacking hosts in {out}.hosts", truth.len());
    Ok(())
}
