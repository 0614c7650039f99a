//! One module per subcommand; `dispatch` runs the chosen one and returns
//! the exit code.

pub mod client;
pub mod demo;
pub mod events;
pub mod generate;
pub mod test;

use crate::cli::Command;
use crate::config::{config_path, Config};
use crate::firewall::render_ruleset;

/// Run a subcommand; `Ok(code)` is the exit code, `Err` exits with 2.
pub fn dispatch(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Run(c) => {
            // Everything the daemon creates (ban history, pending file, log
            // file, their folders) is its own: no umask it was started
            // with may open them to other users. The store also creates
            // its files with explicit modes (store::files).
            // SAFETY: umask(2) only swaps the process's mask; it cannot fail.
            unsafe { libc::umask(0o077) };
            let config = Config::load(&config_path(c.config.as_deref()))?;
            crate::logging::init(&config.log)?;
            let firewall = crate::firewall::open_kernel()?;
            crate::daemon::run(config, firewall)?;
            Ok(0)
        }
        Command::Reload(c) => client::reload(&c),
        Command::Events { json, jail, config } => events::events(json, jail, &config),
        Command::Check(c) => {
            let path = config_path(c.config.as_deref());
            let config = Config::load(&path)?;
            // A ruleset whose examples fail would ban the wrong hosts or none.
            let mut bad = 0;
            for j in &config.jails {
                for e in example_failures(&j.rules, &j.matcher) {
                    eprintln!("{e}");
                    bad += 1;
                }
            }
            if bad > 0 {
                anyhow::bail!("{bad} ruleset example(s) do not hold");
            }
            // The daemon writes every ban there before the kernel gets it:
            // a read-only or foreign folder must fail here, not at start.
            crate::store::check_writable(&config.database)?;
            // Read only: a damaged history is reported, not moved (the
            // daemon moves it aside when it starts).
            crate::store::check_intact(&config.database)?;
            println!("{}: OK", path.display());
            println!(
                "logs go to: {}",
                match config.log.target.as_str() {
                    "stderr" => "stderr (under systemd: the journal)".to_string(),
                    "journald" => "the systemd journal (journalctl -t nftban)".to_string(),
                    "syslog" => format!("syslog via {} (facility daemon, tag nftban)", crate::logging::DEV_LOG),
                    path => format!("the file {path}"),
                }
            );
            println!("control socket: {}", config.socket.display());
            println!("ban history: {} (writable)", config.database.display());
            if let Some(m) = &config.metrics {
                println!("metrics: http://{}/metrics (Prometheus)", m.listen);
            }
            let sinks: Vec<String> = [("the file", &config.events.file), ("the socket", &config.events.socket)]
                .into_iter()
                .filter_map(|(what, p)| Some(format!("{what} {}", p.as_ref()?.display())))
                .collect();
            if !sinks.is_empty() {
                println!("ban events: JSON lines to {}", sinks.join(" and "));
            }
            if let Some(f) = &config.fleet {
                println!(
                    "fleet: node {} on {} (stream {}, subjects {}.>); publishes {}; accepts {}; peers' prefixes up to /{} (IPv4), /{} (IPv6), at most {} bans each (burst {})",
                    f.node,
                    f.servers.join(", "),
                    f.stream,
                    f.subject_prefix,
                    f.publish.join(", "),
                    f.accept.keys().cloned().collect::<Vec<_>>().join(", "),
                    f.ipv4_prefix,
                    f.ipv6_prefix,
                    f.rate,
                    f.burst
                );
            }
            for j in &config.jails {
                println!(
                    "jail {}: ruleset {}{}, {} file(s){}, ban after {} failures within {} for {}",
                    j.name,
                    j.ruleset,
                    j.rules
                        .mode
                        .as_deref()
                        .map(|m| format!(" (mode {m})"))
                        .unwrap_or_default(),
                    j.files.len(),
                    if j.stdin { " and stdin" } else { "" },
                    j.maxretry,
                    crate::config::format_duration(j.findtime),
                    crate::config::format_duration(j.bantime)
                );
                for f in j.files.iter().filter(|f| crate::sources::glob::is_pattern(f)) {
                    let found = crate::sources::glob::expand(f);
                    match found.len() {
                        0 => println!("  {}: no file matches yet (files created later are read)", f.display()),
                        n => println!(
                            "  {}: matches {n} file(s) now: {}",
                            f.display(),
                            found
                                .iter()
                                .map(|p| p.display().to_string())
                                .collect::<Vec<_>>()
                                .join(" ")
                        ),
                    }
                }
            }
            if let Some(sip) = &config.sip {
                let ports = |kind: &str, ports: &[u16]| {
                    (!ports.is_empty()).then(|| {
                        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
                        format!("{kind} {}", list.join(","))
                    })
                };
                let metered: Vec<String> = [ports("UDP", &sip.udp), ports("TCP", &sip.tcp), ports("TLS", &sip.tls)]
                    .into_iter()
                    .flatten()
                    .collect();
                println!(
                    "sip kernel meter: {}; a source over {} (burst {}) is dropped and banned in jail {}{} for {}; IPv6 per /{}; {} trusted prefix(es) never metered",
                    metered.join(", "),
                    sip.rate,
                    sip.burst,
                    sip.jail,
                    if config.sip_implicit_jail { " (made for it)" } else { "" },
                    crate::config::format_duration(sip.bantime),
                    sip.ipv6_prefix,
                    sip.trusted.len()
                );
            }
            Ok(0)
        }
        Command::Ruleset(c) => {
            let config = Config::load(&config_path(c.config.as_deref()))?;
            print!("{}", render_ruleset(&config.table_spec()));
            Ok(0)
        }
        Command::Status { jail, json, config } => client::status(jail, json, &config),
        Command::Ban {
            addrs,
            jail,
            bantime,
            force,
            config,
        } => client::ban(addrs, jail, bantime, force, &config),
        Command::Unban { addrs, jail, config } => client::unban(addrs, jail, &config),
        Command::Test {
            log,
            rule,
            json,
            print_missed,
            print_matched,
        } => test::run(
            &log,
            &rule,
            test::Output {
                json,
                print_missed,
                print_matched,
            },
        ),
        Command::Demo => demo::run(),
        Command::Teardown(c) => teardown(&c),
        Command::Generate { what } => generate::run(what),
    }
}

/// `nftban teardown`: the table named in the config deleted from the kernel
/// (exit 0), or none there (exit 1). A running daemon would put it straight
/// back (it heals deletions by other tools) and would then believe bans the
/// kernel no longer holds: while its socket answers, nothing is deleted.
fn teardown(c: &crate::cli::ConfigArg) -> anyhow::Result<u8> {
    let path = config_path(c.config.as_deref());
    let config = Config::load(&path)?;
    if std::os::unix::net::UnixStream::connect(&config.socket).is_ok() {
        anyhow::bail!(
            "the daemon is running (it answers on {}): stop it first (systemctl stop nftban), \
             or it would create table inet {} again",
            config.socket.display(),
            config.table_spec().table
        );
    }
    let table = config.table_spec().table;
    let mut firewall = crate::firewall::netlink::Netlink::open()?;
    if firewall.remove_table(&table)? {
        println!("table inet {table} deleted");
        Ok(0)
    } else {
        println!("table inet {table} is not there");
        Ok(1)
    }
}

/// The examples of a ruleset (for its mode) that do not give their host,
/// as `file:line:column: ...` messages.
fn example_failures(rules: &crate::matcher::Ruleset, matcher: &crate::matcher::Matcher) -> Vec<String> {
    use crate::matcher::LineMatch;
    let mut out = Vec::new();
    for (i, ex) in rules.examples.iter().enumerate() {
        let applies = ex.mode == rules.mode || (ex.mode.is_none() && ex.host.is_some());
        if !applies {
            continue;
        }
        let got = match matcher.match_line(&ex.line) {
            m @ LineMatch::Failure { .. } => m.failure_net().map(|n| crate::address::show(&n)),
            _ => None,
        };
        let want = ex
            .host
            .as_deref()
            .and_then(crate::address::parse_addr)
            .map(|a| a.to_string());
        if got != want {
            let e = rules.error_at(
                &["examples"],
                Some(i),
                format!(
                    "examples[{i}]: expected {}, got {}: {}",
                    want.as_deref().unwrap_or("no match"),
                    got.as_deref().unwrap_or("no match"),
                    ex.line
                ),
            );
            out.push(e.to_string());
        }
    }
    out
}
