//! `ban`, `unban`, `reload`: ask the daemon over its control socket and
//! print the answer for people (or JSON for scripts).

use std::io::{BufRead, Write as _};

use crate::cli::ConfigArg;
use crate::config::{config_path, format_duration, parse_duration, socket_of};
use crate::control::client::call;
use crate::control::protocol::{BanResult, UnbanResult};
use crate::control::Request;
use std::time::Duration;

fn socket(c: &ConfigArg) -> std::path::PathBuf {
    socket_of(&config_path(c.config.as_deref()))
}

pub(super) fn ask<T: serde::de::DeserializeOwned>(c: &ConfigArg, req: &Request) -> anyhow::Result<T> {
    let resp = call(&socket(c), req)?;
    if !resp.ok {
        anyhow::bail!(
            "{}",
            resp.error.unwrap_or_else(|| "the daemon refused the request".into())
        );
    }
    Ok(resp.data()?)
}

/// Addresses per request. `nftban ban -` of a million addresses goes as
/// 100 requests, so neither side ever holds more than one chunk (its
/// request, parsed list and answer), however long the list
/// (docs/performance.md, "Memory").
const CHUNK: usize = crate::control::protocol::BAN_CHUNK;

/// Hand the addresses of `args` to `send` in chunks of [`CHUNK`], each
/// checked before it goes. `-` among the arguments means: read addresses
/// from stdin, one or more per line (blank lines and `#` comments
/// skipped), streamed rather than read whole. An invalid address stops
/// the reading: the chunks before it were already sent, and the error says
/// how many addresses that was. With no address at all, one empty chunk is
/// sent, for the daemon's own error.
fn in_chunks(args: Vec<String>, mut send: impl FnMut(Vec<String>) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut chunk: Vec<String> = Vec::new();
    let mut sent = 0usize;
    let mut add = |a: String, chunk: &mut Vec<String>, sent: &mut usize| -> anyhow::Result<()> {
        if let Err(e) = crate::address::parse_net(&a) {
            let before = if *sent > 0 {
                format!(" ({} addresses before it were sent already)", *sent)
            } else {
                String::new()
            };
            anyhow::bail!("`{a}`: {e}{before}");
        }
        chunk.push(a);
        if chunk.len() >= CHUNK {
            *sent += chunk.len();
            send(std::mem::take(chunk))?;
        }
        Ok(())
    };
    for a in args {
        if a == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let t = line.split('#').next().unwrap_or("");
                for word in t.split_whitespace() {
                    add(word.to_string(), &mut chunk, &mut sent)?;
                }
            }
        } else {
            add(a, &mut chunk, &mut sent)?;
        }
    }
    if !chunk.is_empty() || sent == 0 {
        send(chunk)?;
    }
    Ok(())
}

pub fn ban(
    addrs: Vec<String>,
    jail: String,
    bantime: Option<String>,
    force: bool,
    json: bool,
    c: &ConfigArg,
) -> anyhow::Result<u8> {
    let bantime = match bantime {
        Some(t) => Some(
            parse_duration(&t)
                .map_err(|e| anyhow::anyhow!("--bantime: {e}"))?
                .as_secs(),
        ),
        None => None,
    };
    // Printed chunk by chunk, so nothing grows with the number of addresses.
    let (mut banned, mut failed) = (0usize, 0usize);
    in_chunks(addrs, |addrs| {
        let r: BanResult = ask(
            c,
            &Request::Ban {
                addrs,
                jail: Some(jail.clone()),
                bantime,
                force,
            },
        )?;
        banned += r.banned.len();
        failed += r.failed.len();
        let mut out = std::io::stdout().lock();
        if json {
            // One line per request: JSON lines, as long as the list.
            writeln!(out, "{}", serde_json::to_string(&r)?)?;
            return Ok(());
        }
        for b in &r.banned {
            writeln!(
                out,
                "banned {} in jail {} for {}",
                b.ip,
                r.jail,
                format_duration(Duration::from_secs(b.expires_in))
            )?;
        }
        for a in &r.already_covered {
            writeln!(out, "already banned: {a}")?;
        }
        for f in &r.failed {
            eprintln!("nftban: not banned: {f}");
        }
        Ok(())
    })?;
    Ok(if banned == 0 || failed > 0 { 1 } else { 0 })
}

pub fn unban(addrs: Vec<String>, jail: Option<String>, json: bool, c: &ConfigArg) -> anyhow::Result<u8> {
    let mut unbanned = 0usize;
    in_chunks(addrs, |addrs| {
        let r: UnbanResult = ask(
            c,
            &Request::Unban {
                addrs,
                jail: jail.clone(),
            },
        )?;
        unbanned += r.unbanned.len();
        let mut out = std::io::stdout().lock();
        if json {
            writeln!(out, "{}", serde_json::to_string(&r)?)?;
            return Ok(());
        }
        for (ip, jail) in &r.unbanned {
            writeln!(out, "unbanned {ip} from jail {jail}")?;
        }
        for why in &r.not_banned {
            eprintln!("nftban: {why}");
        }
        Ok(())
    })?;
    Ok(if unbanned == 0 { 1 } else { 0 })
}

/// `reload --json`: `{"message": ...}`, the daemon's answer. A refused
/// reload is an error (exit 2) as without `--json`.
#[derive(serde::Serialize)]
struct Reloaded {
    message: String,
}

pub fn reload(json: bool, c: &ConfigArg) -> anyhow::Result<u8> {
    let said: String = ask(c, &Request::Reload)?;
    if json {
        outln!("{}", serde_json::to_string(&Reloaded { message: said })?)?;
    } else {
        outln!("{said}")?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: usize) -> Vec<String> {
        (0..n as u32)
            .map(|i| std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string())
            .collect()
    }

    #[test]
    fn addresses_go_in_chunks_of_ten_thousand() {
        let mut sizes = Vec::new();
        in_chunks(addrs(25_000), |c| {
            sizes.push(c.len());
            Ok(())
        })
        .unwrap();
        assert_eq!(sizes, [10_000, 10_000, 5_000]);
        let mut sizes = Vec::new();
        in_chunks(addrs(20_000), |c| {
            sizes.push(c.len());
            Ok(())
        })
        .unwrap();
        assert_eq!(sizes, [10_000, 10_000], "no empty request after a full chunk");
        let mut sizes = Vec::new();
        in_chunks(vec![], |c| {
            sizes.push(c.len());
            Ok(())
        })
        .unwrap();
        assert_eq!(sizes, [0], "the daemon says what is wrong with no address");
    }

    #[test]
    fn an_invalid_address_stops_and_says_what_went_already() {
        let mut list = addrs(15_000);
        list[12_345] = "300.1.2.3".into();
        let mut sent = 0;
        let err = in_chunks(list, |c| {
            sent += c.len();
            Ok(())
        })
        .unwrap_err()
        .to_string();
        assert_eq!(sent, 10_000);
        assert!(err.starts_with("`300.1.2.3`: "), "{err}");
        assert!(err.ends_with("(10000 addresses before it were sent already)"), "{err}");
    }
}
