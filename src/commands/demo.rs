//! `nftban demo`: the main job end to end, on a private stage.
//!
//! Two network namespaces joined by a veth pair: a "PBX" (192.0.2.1) where
//! `nftban run` watches an Asterisk log, and an "attacker" (192.0.2.66).
//! The demo writes the Asterisk attack lines of docs/faq.md into the log, shows
//! the attacker's address land in the kernel set with its own timeout, its
//! SIP packets dropped, and passing again after `nftban unban`. Everything
//! is removed at the end (deleting the namespaces removes their tables).

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::ConfigArg;
use crate::control::client::call;
use crate::control::protocol::JailStatus;
use crate::control::Request;
use crate::netns::{is_root, udp_echo, udp_probe, NetNs};

const PBX: &str = "192.0.2.1";
const ATTACKER: &str = "192.0.2.66";

/// The attack, as the PBX logs it: docs/faq.md rows 3, 4 and 9, three times
/// each (maxretry 3), plus a host with too few failures and an ignored one.
fn attack_lines() -> Vec<String> {
    // Dated now: nftban takes a failure's time from its line, and lines
    // older than findtime would (rightly) ban nobody.
    let now = asterisk_now();
    let mut lines = Vec::new();
    for _ in 0..3 {
        lines.push(format!("{now} NOTICE[2116] chan_sip.c: Call from '' (195.154.134.116:5071) to extension '8011441295298642' rejected because extension not found in context 'public'."));
        lines.push(format!("{now} NOTICE[-1] Ext. 9015448702956577: Incoming SIP connection from unknown peer failed for 31.3.244.234 - Unknown connection from peer"));
        lines.push(format!("{now} NOTICE[31015]: chan_sip.c:25824 in handle_request_register: Registration from '<sip:100@{PBX}>' failed for '{ATTACKER}:5060' - Wrong password"));
        lines.push(format!("{now} NOTICE[31015]: chan_sip.c:25824 in handle_request_register: Registration from '<sip:100@{PBX}>' failed for '127.0.0.1:5060' - Wrong password"));
    }
    lines.push(format!("{now} NOTICE[31015] chan_sip.c: Registration from '<sip:200@{PBX}>' failed for '198.51.100.9:5060' - Wrong password"));
    lines
}

/// The local time as Asterisk writes it: `[YYYY-MM-DD HH:MM:SS]` (also
/// used by the daemon benchmark to date its lines).
pub fn asterisk_now() -> String {
    // SAFETY: time and localtime_r with valid pointers; tm is plain data.
    let tm = unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        tm
    };
    format!(
        "[{:04}-{:02}-{:02} {:02}:{:02}:{:02}]",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn say(step: &str) {
    println!("\n==> {step}");
}

fn probe(attacker: &NetNs) -> anyhow::Result<bool> {
    let to: SocketAddr = format!("{PBX}:5060").parse()?;
    Ok(udp_probe(attacker, to, Duration::from_millis(700))?)
}

fn show_probe(passed: bool) {
    if passed {
        println!("    SIP OPTIONS from {ATTACKER} to {PBX}:5060 -> answered (packets pass)");
    } else {
        println!("    SIP OPTIONS from {ATTACKER} to {PBX}:5060 -> no answer (dropped in the kernel)");
    }
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            anyhow::bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn run() -> anyhow::Result<u8> {
    if !is_root() {
        anyhow::bail!("nftban demo needs root: it creates two private network namespaces (your own network and ruleset are not touched). Try: sudo nftban demo");
    }
    let exe = std::env::current_exe()?;
    let dir = tempfile::Builder::new().prefix("nftban-demo-").tempdir()?;
    let log = dir.path().join("messages");
    let socket = dir.path().join("nftban.sock");
    let config = dir.path().join("nftban.yaml");
    std::fs::write(&log, "")?;
    std::fs::write(
        &config,
        format!(
            "socket: {}\ndatabase: {}\nnftables: {{table: nftban, action: drop}}\ndefaults: {{findtime: 10m, maxretry: 3, bantime: 2m, ignoreip: [127.0.0.0/8, \"::1\"]}}\njails:\n  asterisk:\n    ruleset: asterisk\n    files: [{}]\n",
            socket.display(),
            dir.path().join("nftban.db").display(),
            log.display()
        ),
    )?;

    say("Setting up two private network namespaces joined by a veth pair");
    let pbx = NetNs::create("demo-pbx")?;
    let attacker = NetNs::create("demo-attacker")?;
    NetNs::link(&pbx, &format!("{PBX}/24"), &attacker, &format!("{ATTACKER}/24"))?;
    println!(
        "    {} (PBX, {PBX}) <-> {} (attacker, {ATTACKER})",
        pbx.name, attacker.name
    );
    udp_echo(&pbx, format!("{PBX}:5060").parse()?)?;

    say(&format!(
        "Starting `nftban run` in the PBX namespace, watching {}",
        log.display()
    ));
    let daemon_log = dir.path().join("nftban.log");
    let child = pbx
        .command(&exe)
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&daemon_log)?)
        .spawn()
        .context("cannot start the daemon")?;
    let daemon = Daemon(child);
    let cfg = ConfigArg {
        config: Some(config.clone()),
    };
    let status = |c: &ConfigArg| -> Option<JailStatus> {
        let resp = call(
            &crate::config::socket_of(c.config.as_deref()?),
            &Request::Status {
                jail: Some("asterisk".into()),
                brief: false,
            },
        )
        .ok()?;
        resp.data().ok()
    };
    let started = wait_for("the daemon's control socket", Duration::from_secs(10), || status(&cfg));
    if started.is_err() {
        eprintln!("{}", std::fs::read_to_string(&daemon_log).unwrap_or_default());
    }
    started?;
    // Give the fresh veth a moment before the first packet.
    std::thread::sleep(Duration::from_millis(500));

    say("Before the attack");
    let before = probe(&attacker)?;
    show_probe(before);

    say("The attack: writing the Asterisk lines of docs/faq.md to the log");
    {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log)?;
        for l in attack_lines() {
            println!("    {l}");
            writeln!(f, "{l}")?;
        }
    }
    let st = wait_for("the ban of the attacker", Duration::from_secs(10), || {
        status(&cfg).filter(|s| s.banned.iter().any(|b| b.ip == ATTACKER) && s.currently_banned >= 3)
    })?;

    say("nftban status asterisk");
    print!("{}", super::status::format_jail(&st));

    say(&format!(
        "What the kernel holds (sets asterisk_v4, asterisk_v6 and their _net prefix sets in table inet nftban, read over netlink in {})",
        pbx.name
    ));
    for el in kernel_elements(&pbx, "asterisk")? {
        println!("    {el}");
    }

    say("During the ban");
    let during = probe(&attacker)?;
    show_probe(during);

    say(&format!("nftban unban {ATTACKER}"));
    super::client::unban(vec![ATTACKER.into()], None, false, &cfg)?;
    let after = probe(&attacker)?;
    show_probe(after);

    drop(daemon);
    let never: Vec<&str> = ["127.0.0.1", "198.51.100.9"]
        .into_iter()
        .filter(|a| st.banned.iter().any(|b| b.ip == *a))
        .collect();
    let ok = before && !during && after && never.is_empty();
    say("Result");
    println!(
        "    attacker banned after 3 failures, dropped while banned, passing after unban: {}",
        if before && !during && after { "yes" } else { "NO" }
    );
    println!(
        "    127.0.0.1 (ignoreip) and 198.51.100.9 (1 failure, below maxretry) never banned: {}",
        if never.is_empty() { "yes" } else { "NO" }
    );
    println!(
        "    cleaning up: namespaces {} and {} are deleted with their nftables tables",
        pbx.name, attacker.name
    );
    if !ok {
        eprintln!(
            "daemon log:\n{}",
            std::fs::read_to_string(&daemon_log).unwrap_or_default()
        );
    }
    Ok(if ok { 0 } else { 1 })
}

/// The jail's kernel elements, listed over netlink from inside `ns`.
fn kernel_elements(ns: &NetNs, jail: &str) -> anyhow::Result<Vec<String>> {
    let name = ns.name.clone();
    let jail = jail.to_string();
    std::thread::spawn(move || -> anyhow::Result<Vec<String>> {
        let ns = NetNs { name };
        let r = ns.enter();
        std::mem::forget(ns);
        r?;
        let mut fw = crate::firewall::netlink::Netlink::open()?;
        use crate::firewall::Firewall;
        Ok(fw
            .list(&jail)?
            .iter()
            .map(|e| {
                let t = e
                    .expires_in
                    .map(|d| format!(" expires {}", crate::config::format_duration(d)))
                    .unwrap_or_default();
                format!("{}{t}", crate::address::show(&e.net))
            })
            .collect())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("listing thread panicked"))?
}
