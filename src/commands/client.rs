//! `status`, `ban`, `unban`: ask the daemon over its control socket and
//! print the answer for people (or JSON for scripts).

use std::fmt::Write as _;
use std::io::BufRead;

use crate::cli::ConfigArg;
use crate::config::{config_path, format_duration, parse_duration, socket_of};
use crate::control::client::call;
use crate::control::protocol::{BanResult, JailStatus, Status, UnbanResult};
use crate::control::Request;
use std::time::Duration;

fn socket(c: &ConfigArg) -> std::path::PathBuf {
    socket_of(&config_path(c.config.as_deref()))
}

fn ask<T: serde::de::DeserializeOwned>(c: &ConfigArg, req: &Request) -> anyhow::Result<T> {
    let resp = call(&socket(c), req)?;
    if !resp.ok {
        anyhow::bail!(
            "{}",
            resp.error.unwrap_or_else(|| "the daemon refused the request".into())
        );
    }
    Ok(serde_json::from_value(resp.data)?)
}

/// `-` among the arguments means: read addresses from stdin, one per line
/// (blank lines and `#` comments skipped).
fn expand_stdin(addrs: Vec<String>) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for a in addrs {
        if a == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let t = line.split('#').next().unwrap_or("").trim();
                out.extend(t.split_whitespace().map(str::to_string));
            }
        } else {
            out.push(a);
        }
    }
    Ok(out)
}

pub fn status(jail: Option<String>, json: bool, c: &ConfigArg) -> anyhow::Result<u8> {
    match jail {
        Some(name) => {
            let st: JailStatus = ask(c, &Request::Status { jail: Some(name) })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                print!("{}", format_jail(&st));
            }
        }
        None => {
            let st: Status = ask(c, &Request::Status { jail: None })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                print!("{}", format_all(&st));
            }
        }
    }
    Ok(0)
}

/// fail2ban-client's layout, plus a Sources block that says why a jail may
/// be silent.
pub fn format_jail(st: &JailStatus) -> String {
    let mut o = String::new();
    let banned: Vec<String> = st
        .banned
        .iter()
        .map(|b| {
            let left = format_duration(Duration::from_secs(b.expires_in));
            match &b.reason {
                Some(why) => format!("{} ({left} left; {why})", b.ip),
                None => format!("{} ({left} left)", b.ip),
            }
        })
        .collect();
    let _ = writeln!(o, "Status for the jail: {}", st.name);
    let _ = writeln!(
        o,
        "|- Filter (ruleset {}; ban after {} failures within {} for {})",
        st.ruleset,
        st.maxretry,
        format_duration(Duration::from_secs(st.findtime)),
        format_duration(Duration::from_secs(st.bantime))
    );
    let _ = writeln!(o, "|  |- Currently failed: {}", st.currently_failed);
    let _ = writeln!(o, "|  |- Total failed:     {}", st.total_failed);
    let _ = writeln!(o, "|  `- File list:        {}", st.files.join(" "));
    let _ = writeln!(o, "{}- Actions", if st.sources.is_empty() { '`' } else { '|' });
    let pad = if st.sources.is_empty() { "   " } else { "|  " };
    let _ = writeln!(o, "{pad}|- Currently banned: {}", st.currently_banned);
    let _ = writeln!(o, "{pad}|- Total banned:     {}", st.total_banned);
    let _ = writeln!(
        o,
        "{pad}|- Dropped:          {} packets, {} bytes",
        st.packets, st.bytes
    );
    if st.kernel_errors > 0 {
        let _ = writeln!(
            o,
            "{pad}|- Kernel refused:   {} ban(s) (see the daemon's log)",
            st.kernel_errors
        );
    }
    let _ = writeln!(o, "{pad}`- Banned IP list:   {}", banned.join(" "));
    if !st.sources.is_empty() {
        let _ = writeln!(o, "`- Sources");
        for (i, s) in st.sources.iter().enumerate() {
            let corner = if i + 1 == st.sources.len() { '`' } else { '|' };
            let last = s
                .last_match_ago
                .map(|a| format!("; last match {} ago", format_duration(Duration::from_secs(a))))
                .unwrap_or_default();
            let _ = writeln!(o, "   {corner}- {}: {}{last}", s.path, s.diagnosis);
        }
    }
    o
}

pub fn format_all(st: &Status) -> String {
    let mut o = String::new();
    let names: Vec<&str> = st.jails.iter().map(|j| j.name.as_str()).collect();
    let _ = writeln!(o, "Status");
    let _ = writeln!(o, "|- Number of jail:      {}", st.jails.len());
    let _ = writeln!(o, "|- Kernel errors:       {}", st.kernel_errors);
    let _ = writeln!(o, "`- Jail list:   {}", names.join(", "));
    for j in &st.jails {
        let _ = writeln!(
            o,
            "   {}: {} currently failed, {} banned now, {} banned in total, {} packets ({} bytes) dropped",
            j.name, j.currently_failed, j.currently_banned, j.total_banned, j.packets, j.bytes
        );
        for s in &j.sources {
            let _ = writeln!(o, "      {}: {}", s.path, s.diagnosis);
        }
    }
    o
}

pub fn ban(addrs: Vec<String>, jail: String, bantime: Option<String>, c: &ConfigArg) -> anyhow::Result<u8> {
    let addrs = expand_stdin(addrs)?;
    for a in &addrs {
        crate::matcher::parse_net(a).map_err(|e| anyhow::anyhow!("`{a}`: {e}"))?;
    }
    let bantime = match bantime {
        Some(t) => Some(
            parse_duration(&t)
                .map_err(|e| anyhow::anyhow!("--bantime: {e}"))?
                .as_secs(),
        ),
        None => None,
    };
    let r: BanResult = ask(
        c,
        &Request::Ban {
            addrs,
            jail: Some(jail),
            bantime,
        },
    )?;
    for b in &r.banned {
        println!(
            "banned {} in jail {} for {}",
            b.ip,
            r.jail,
            format_duration(Duration::from_secs(b.expires_in))
        );
    }
    for a in &r.already_covered {
        println!("already banned: {a}");
    }
    for f in &r.failed {
        eprintln!("nftban: not banned: {f}");
    }
    Ok(if r.banned.is_empty() || !r.failed.is_empty() {
        1
    } else {
        0
    })
}

pub fn unban(addrs: Vec<String>, jail: Option<String>, c: &ConfigArg) -> anyhow::Result<u8> {
    let addrs = expand_stdin(addrs)?;
    for a in &addrs {
        crate::matcher::parse_net(a).map_err(|e| anyhow::anyhow!("`{a}`: {e}"))?;
    }
    let r: UnbanResult = ask(c, &Request::Unban { addrs, jail })?;
    for (ip, jail) in &r.unbanned {
        println!("unbanned {ip} from jail {jail}");
    }
    for why in &r.not_banned {
        eprintln!("nftban: {why}");
    }
    Ok(if r.unbanned.is_empty() { 1 } else { 0 })
}

pub fn reload(c: &ConfigArg) -> anyhow::Result<u8> {
    let said: String = ask(c, &Request::Reload)?;
    println!("{said}");
    Ok(0)
}
