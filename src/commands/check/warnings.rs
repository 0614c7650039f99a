//! What `nftban check` warns about: what the daemon would trip on at start
//! or would not see once running, though the config itself is valid.
//!
//! Warnings do not change the exit code. The shipped unit runs `check` as
//! its `ExecStartPre`, and a log file that does not exist yet (a service
//! installed after nftban, a log created at its first line) must not keep
//! the daemon from starting: it waits for the file and reads it once it
//! appears. What the daemon cannot start without (an unwritable or
//! damaged history, a bad config) stays an error, checked by the caller.
//!
//! The checks model the daemon under the shipped unit
//! (deploy/nftban.service): root with `CAP_DAC_READ_SEARCH`, so file
//! permissions never keep it from a log (what does is a missing file, a
//! path that names no regular file, a file system that refuses even root,
//! and the unit's own sandbox: `ProtectHome=yes`, `PrivateTmp=yes`); and no
//! `CAP_NET_BIND_SERVICE`, so no port below 1024 for the metrics endpoint.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::Path;

use serde::Serialize;

use crate::config::Config;

/// One warning: the config key at fault, the path or address it names,
/// and what happens and what to do, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Dotted key: `jails.asterisk.files`, `log.target`, `metrics.listen`.
    pub key: String,
    /// The file, pattern or address the key gives.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.key, self.path, self.message)
    }
}

/// Every warning for `config`: the files the daemon writes (database,
/// socket, log file), the log target, metrics, then each jail's files.
pub fn of(config: &Config) -> Vec<Warning> {
    let mut out = Vec::new();
    let written = [
        ("database", &config.database, "the ban history"),
        ("socket", &config.socket, "the control socket"),
    ];
    for (key, path, what) in written {
        if let Some(message) = unit_writes(path, what) {
            out.push(Warning {
                key: key.into(),
                path: path.display().to_string(),
                message,
            });
        }
    }
    if config.log.target.starts_with('/') {
        if let Some(message) = unit_writes(Path::new(&config.log.target), "the log file") {
            out.push(Warning {
                key: "log.target".into(),
                path: config.log.target.clone(),
                message,
            });
        }
    }
    if let Some(file) = &config.events.file {
        if let Some(message) = unit_writes(file, "the events file") {
            out.push(Warning {
                key: "events.file".into(),
                path: file.display().to_string(),
                message,
            });
        }
    }
    // A socket another program listens on: the daemon only connects, which
    // a read-only file system allows; a hidden folder does not.
    if let Some(socket) = &config.events.socket {
        if let Some(message) = sandboxed(socket) {
            out.push(Warning {
                key: "events.socket".into(),
                path: socket.display().to_string(),
                message,
            });
        }
    }
    if let Some(w) = log_target(&config.log.target) {
        out.push(w);
    }
    if let Some(m) = &config.metrics {
        out.extend(metrics(m.listen));
    }
    for f in config.feeds.iter() {
        // The files a feed reads, looked at as the daemon under the unit
        // would see them (a list under /home or /tmp it would never see).
        let read = match &f.source {
            crate::config::FeedSource::File(p) => Some(("file", p)),
            crate::config::FeedSource::Url { key_file, .. } => key_file.as_ref().map(|p| ("key_file", p)),
        };
        if let Some((key, path)) = read {
            let why = sandboxed(path).or_else(|| match std::fs::File::open(path) {
                Ok(_) => None,
                Err(e) => Some(format!(
                    "cannot be read ({e}): the feed fails until it can (its previous list, if any, stays)"
                )),
            });
            if let Some(message) = why {
                out.push(Warning {
                    key: format!("feeds.{}.{key}", f.name),
                    path: path.display().to_string(),
                    message,
                });
            }
        }
        if let Some(asked) = f.raised_from {
            out.push(Warning {
                key: format!("feeds.{}.refresh", f.name),
                path: f.source_text(),
                message: format!(
                    "{} is below this source's polite minimum; nftban fetches it every {} (docs/feeds.md, \"Politeness\")",
                    crate::config::format_duration(asked),
                    crate::config::format_duration(f.refresh)
                ),
            });
        }
    }
    if let Some(fleet) = &config.fleet {
        out.extend(fleet_servers(config, fleet));
        for (key, path) in fleet.files() {
            if let Err(e) = std::fs::File::open(path) {
                out.push(Warning {
                    key: key.into(),
                    path: path.display().to_string(),
                    message: format!("cannot be read ({e}): the daemon would not connect to the fleet (fix it, then `nftban reload`)"),
                });
            }
        }
    }
    for j in &config.jails {
        if !j.journal.is_empty() {
            if let Some(why) = crate::sources::journal::no_journal() {
                out.push(Warning {
                    key: format!("jails.{}.journal", j.name),
                    path: crate::sources::journal::label(&j.journal),
                    message: why,
                });
            }
        }
        for (what, why) in &j.rules.left_out {
            out.push(Warning {
                key: format!("jails.{}.ruleset", j.name),
                path: j.rules.origin.clone(),
                message: format!("left out, nftban cannot run it: `{what}`: {why}"),
            });
        }
        let key = format!("jails.{}.files", j.name);
        for f in &j.files {
            let message = if crate::sources::glob::is_pattern(f) {
                pattern(f)
            } else {
                log_file(f)
            };
            if let Some(message) = message {
                out.push(Warning {
                    key: key.clone(),
                    path: f.display().to_string(),
                    message,
                });
            }
        }
    }
    out
}

/// A NATS server of the fleet that a jail could ban: one ban of its address
/// (a scan from it, a peer's ban, which this node refuses, is another
/// matter) leaves this node deaf to the fleet for the ban's time.
fn fleet_servers(config: &Config, fleet: &crate::config::FleetSpec) -> Vec<Warning> {
    let mut out = Vec::new();
    for (url, addrs) in fleet.each_server() {
        for addr in addrs {
            let open: Vec<&str> = config
                .jails
                .iter()
                .filter(|j| !j.ignoreip.iter().any(|n| n.contains(&addr)))
                .map(|j| j.name.as_str())
                .collect();
            if open.is_empty() {
                continue;
            }
            out.push(Warning {
                key: "fleet.servers".into(),
                path: url.to_string(),
                message: format!(
                    "{addr} is not in the ignoreip of jail(s) {}: a ban of it there would leave this node deaf to the fleet for the ban's time; add it to defaults.ignoreip",
                    open.join(", ")
                ),
            });
        }
    }
    out
}

/// Folders the shipped unit hides from the daemon, and the setting that does.
const SANDBOXED: &[(&str, &str)] = &[
    ("/home", "ProtectHome=yes"),
    ("/root", "ProtectHome=yes"),
    ("/run/user", "ProtectHome=yes"),
    ("/tmp", "PrivateTmp=yes"),
    ("/var/tmp", "PrivateTmp=yes"),
];

/// Why the daemon under the shipped unit would not see `path`.
fn sandboxed(path: &Path) -> Option<String> {
    let (dir, setting) = SANDBOXED.iter().find(|(dir, _)| path.starts_with(dir))?;
    Some(format!(
        "is under {dir}, which the shipped unit hides from the daemon ({setting} in nftban.service): \
         it would never see this file; use another folder, or relax {setting} in a drop-in"
    ))
}

/// The folders the shipped unit lets the daemon write: `StateDirectory=`,
/// `RuntimeDirectory=` and `LogsDirectory=` (`ProtectSystem=strict` makes
/// the rest of the disk read-only to it).
const WRITABLE: &[&str] = &["/var/lib/nftban", "/run/nftban", "/var/log/nftban"];

/// Why the daemon under the shipped unit could not keep `what` at `path`,
/// a file it creates and writes.
fn unit_writes(path: &Path, what: &str) -> Option<String> {
    if WRITABLE.iter().any(|dir| path.starts_with(dir)) {
        return None;
    }
    if let Some(dir) = ["/tmp", "/var/tmp"].into_iter().find(|dir| path.starts_with(dir)) {
        return Some(format!(
            "is under {dir}, which the shipped unit makes private to the daemon (PrivateTmp=yes) and removes when \
             it stops: {what} would be out of reach of other processes and gone at every restart; use {} instead",
            match what {
                "the control socket" => "/run/nftban/",
                "the log file" | "the events file" => "/var/log/nftban/",
                _ => "/var/lib/nftban/",
            }
        ));
    }
    Some(format!(
        "is outside {}, the only folders the shipped unit lets the daemon write (ProtectSystem=strict; \
         StateDirectory=, RuntimeDirectory=, LogsDirectory=): under the unit it could not create {what}{}; \
         move it there, or add ReadWritePaths= for its folder in a drop-in",
        WRITABLE.join(", "),
        if what == "the events file" {
            " and would write no event (it runs on)"
        } else {
            " and would exit at start"
        }
    ))
}

/// A log file (no wildcard).
fn log_file(path: &Path) -> Option<String> {
    if let Some(why) = sandboxed(path) {
        return Some(why);
    }
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Some(
                "does not exist: the daemon starts anyway, waits for it and reads it once it is created \
                 (check the path if the service already logs)"
                    .into(),
            )
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            return Some(format!(
                "cannot be looked at by this user ({e}); the daemon (root with CAP_DAC_READ_SEARCH) may \
                 still read it: run `nftban check` as root to know"
            ))
        }
        Err(e) => return Some(format!("cannot be read by the daemon: {e}")),
    };
    if let Err(e) = crate::regular::check(path, &meta) {
        return Some(format!("{e}: the daemon never reads it (it looks again every second)"));
    }
    // Permissions do not stop the daemon (CAP_DAC_READ_SEARCH), but a file
    // system may refuse even root (NFS root_squash, FUSE): as root, try.
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        if let Err(e) = crate::regular::open(path) {
            return Some(format!("cannot be read by the daemon, even as root: {e}"));
        }
    }
    None
}

/// A glob pattern: no match today is a warning; files created later are
/// read.
fn pattern(path: &Path) -> Option<String> {
    if let Some(why) = sandboxed(path) {
        return Some(why);
    }
    crate::sources::glob::expand(path)
        .is_empty()
        .then(|| "no file matches it yet: the daemon starts anyway and reads files that appear later".into())
}

/// `log.target`: the socket or file the daemon writes its log to at start.
fn log_target(target: &str) -> Option<Warning> {
    let at = |path: &str, message: String| Warning {
        key: "log.target".into(),
        path: path.into(),
        message,
    };
    match target {
        "syslog" => {
            let dev_log = crate::logging::DEV_LOG;
            crate::logging::Syslog::connect(Path::new(dev_log)).err().map(|e| {
                at(
                    dev_log,
                    format!(
                        "log.target syslog: cannot reach {dev_log} ({e}): the daemon would exit at start; \
                         install a syslog daemon (or run systemd-journald), or use `log.target: journald` or `stderr`"
                    ),
                )
            })
        }
        "journald" => {
            const JOURNAL: &str = crate::sources::journal::JOURNALD_SOCKET;
            crate::logging::Syslog::connect(Path::new(JOURNAL)).err().map(|e| {
                at(
                    JOURNAL,
                    format!(
                        "log.target journald: cannot reach the journal's socket ({e}): the daemon would exit at start; \
                         use `log.target: stderr` where systemd-journald does not run"
                    ),
                )
            })
        }
        _ => None,
    }
}

/// The metrics endpoint as the daemon under the shipped unit would bind it.
fn metrics(listen: SocketAddr) -> Vec<Warning> {
    let at = |message: String| Warning {
        key: "metrics.listen".into(),
        path: listen.to_string(),
        message,
    };
    let mut out = Vec::new();
    let first_free = unprivileged_port_start();
    if listen.port() != 0 && listen.port() < first_free {
        out.push(at(format!(
            "port {} is privileged (below net.ipv4.ip_unprivileged_port_start, {first_free}): the shipped unit \
             gives the daemon no CAP_NET_BIND_SERVICE, so it could not listen there and would exit at start; \
             use a port from {first_free} up (9477 is nftban's usual)",
            listen.port()
        )));
    }
    if let Err(e) = crate::control::metrics::can_listen_on(listen.ip()) {
        let why = match e.raw_os_error() {
            Some(libc::EADDRNOTAVAIL) => format!("{} is not an address of this host", listen.ip()),
            Some(libc::EAFNOSUPPORT) => {
                "this address family is refused here (a unit's RestrictAddressFamilies= without AF_INET and \
                 AF_INET6, as the shipped unit has them?)"
                    .to_string()
            }
            _ => e.to_string(),
        };
        out.push(at(format!(
            "cannot listen on it: {why}: the daemon would exit at start"
        )));
    }
    out
}

/// The first port an unprivileged socket may bind (1024 unless lowered).
fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rule of a fail2ban filter that nftban cannot run (a typo in a
    /// hand-edited filter) is left out, as fail2ban would refuse the
    /// file: `check` says so, naming the jail, the filter and the rule.
    #[test]
    fn a_filter_rule_left_out_is_warned_of() {
        let dir = tempfile::tempdir().unwrap();
        let filter = "[Definition]\nfailregex = ^Login failed from <HOST>$\n            ^Bad (thing from <HOST>$\n";
        std::fs::write(dir.path().join("badf.conf"), filter).unwrap();
        let text = "jails:\n  myapp:\n    ruleset: badf.conf\n    files: [/var/log/myapp.log]\n";
        let config = Config::from_text(&dir.path().join("nftban.yaml"), text).unwrap();
        let left: Vec<Warning> = of(&config)
            .into_iter()
            .filter(|w| w.key == "jails.myapp.ruleset")
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].path, dir.path().join("badf.conf").display().to_string());
        assert!(
            left[0]
                .message
                .starts_with("left out, nftban cannot run it: `^Bad (thing from <HOST>$`: unclosed group"),
            "{}",
            left[0].message
        );
    }

    /// The fleet's NATS server outside a jail's `ignoreip`: one ban of it
    /// there leaves the node deaf to the fleet; `check` says so, naming
    /// the jails. Inside every jail's `ignoreip`: nothing to say.
    #[test]
    fn a_fleet_server_a_jail_could_ban_is_warned_of() {
        let text = |ignoreip: &str| {
            format!("defaults: {{ignoreip: [{ignoreip}]}}\nfleet: {{node: a, servers: ['nats://10.77.0.1:4222']}}\njails:\n  sshd: {{ruleset: sshd, files: [/var/log/auth.log]}}\n")
        };
        let warned = |ignoreip: &str| -> Vec<Warning> {
            let config = Config::from_text(Path::new("/etc/nftban/nftban.yaml"), &text(ignoreip)).unwrap();
            of(&config).into_iter().filter(|w| w.key == "fleet.servers").collect()
        };
        let w = warned("192.0.2.0/24");
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].path, "nats://10.77.0.1:4222");
        assert!(
            w[0].message.starts_with("10.77.0.1 is not in the ignoreip of jail(s) "),
            "{}",
            w[0].message
        );
        assert!(w[0].message.contains("sshd"), "{}", w[0].message);
        assert!(warned("10.77.0.0/24").is_empty());
    }

    /// A fleet's credentials or TLS file that cannot be read: `check`
    /// warns at its key (the daemon would not connect).
    #[test]
    fn fleet_files_and_servers_are_checked() {
        let text = "defaults: {ignoreip: [10.77.0.1]}\nfleet: {node: a, servers: ['nats://10.77.0.1:4222'], auth: {creds_file: /nonexistent/a.creds}, tls: {ca_file: /nonexistent/ca.pem}}\njails:\n  sshd: {ruleset: sshd, files: [/var/log/auth.log]}\n";
        let config = Config::from_text(Path::new("/etc/nftban/nftban.yaml"), text).unwrap();
        let keys: Vec<String> = of(&config)
            .into_iter()
            .filter(|w| w.key.starts_with("fleet."))
            .map(|w| format!("{}: {}", w.key, w.path))
            .collect();
        assert_eq!(
            keys,
            [
                "fleet.auth.creds_file: /nonexistent/a.creds",
                "fleet.tls.ca_file: /nonexistent/ca.pem"
            ]
        );
    }

    /// A feed's file or key file the daemon could not read (missing, or
    /// where the unit hides it): warned of at its key, as a jail's log.
    #[test]
    fn a_feeds_files_are_looked_at_as_a_jails() {
        let text = "feeds:\n  f1: {file: /nonexistent/missing.txt, format: plain}\n  f2: {file: /tmp/list.txt, format: plain}\n  f3: {url: 'https://x.org/{key}', key_file: /nonexistent/k, format: plain}\n";
        let config = Config::from_text(Path::new("/etc/nftban/nftban.yaml"), text).unwrap();
        let feeds: Vec<String> = of(&config)
            .into_iter()
            .filter(|w| w.key.starts_with("feeds."))
            .map(|w| {
                format!(
                    "{}: {}: {}",
                    w.key,
                    w.path,
                    w.message.split(' ').take(3).collect::<Vec<_>>().join(" ")
                )
            })
            .collect();
        assert_eq!(
            feeds,
            [
                "feeds.f1.file: /nonexistent/missing.txt: cannot be read",
                "feeds.f2.file: /tmp/list.txt: is under /tmp,",
                "feeds.f3.key_file: /nonexistent/k: cannot be read",
            ]
        );
    }

    /// A feed polled faster than its source allows: the warning names the
    /// key, the source and the interval used instead.
    #[test]
    fn a_refresh_below_the_polite_minimum_is_raised_and_said() {
        let text = "feeds:\n  sh: {url: 'https://www.spamhaus.org/drop/drop.txt', format: drop, refresh: 5m}\n  mine: {file: /etc/nftban/mine.txt, format: plain, refresh: 5m}\n";
        let config = Config::from_text(Path::new("/etc/nftban/nftban.yaml"), text).unwrap();
        let feeds: Vec<Warning> = of(&config)
            .into_iter()
            .filter(|w| w.key.starts_with("feeds.") && w.key.ends_with(".refresh"))
            .collect();
        assert_eq!(feeds.len(), 1, "{feeds:?}");
        assert_eq!(feeds[0].key, "feeds.sh.refresh");
        assert_eq!(feeds[0].path, "https://www.spamhaus.org/drop/drop.txt");
        assert!(
            feeds[0]
                .message
                .starts_with("5m is below this source's polite minimum; nftban fetches it every 1h"),
            "{}",
            feeds[0].message
        );
        let summary = super::super::summary(&config);
        let want = "feed sh: drop from https://www.spamhaus.org/drop/drop.txt every 1h into sets feed_sh_*, never blocking what jail manual's ignoreip holds nor private ranges";
        assert!(summary.iter().any(|l| l == want), "{summary:?}");
    }

    #[test]
    fn the_units_hidden_folders_are_named_with_their_setting() {
        let home = sandboxed(Path::new("/home/pbx/asterisk.log")).unwrap();
        assert!(
            home.starts_with("is under /home, which the shipped unit hides"),
            "{home}"
        );
        assert!(home.contains("ProtectHome=yes"), "{home}");
        let tmp = sandboxed(Path::new("/tmp/x/messages")).unwrap();
        assert!(tmp.contains("PrivateTmp=yes"), "{tmp}");
        assert_eq!(sandboxed(Path::new("/var/log/asterisk/messages")), None);
        // A prefix of a folder name is not that folder.
        assert_eq!(sandboxed(Path::new("/homer/x.log")), None);
    }

    /// The defaults are where the unit lets the daemon write; elsewhere,
    /// the warning says which setting stops it.
    #[test]
    fn files_the_daemon_writes_must_be_where_the_unit_lets_it() {
        assert_eq!(
            unit_writes(Path::new("/var/lib/nftban/nftban.db"), "the ban history"),
            None
        );
        assert_eq!(
            unit_writes(Path::new("/run/nftban/nftban.sock"), "the control socket"),
            None
        );
        let srv = unit_writes(Path::new("/srv/nftban.db"), "the ban history").unwrap();
        assert!(
            srv.contains("ProtectSystem=strict") && srv.contains("ReadWritePaths="),
            "{srv}"
        );
        let tmp = unit_writes(Path::new("/tmp/nftban.sock"), "the control socket").unwrap();
        assert!(
            tmp.contains("PrivateTmp=yes") && tmp.ends_with("use /run/nftban/ instead"),
            "{tmp}"
        );
        assert!(unit_writes(Path::new("/var/lib/nftbanx/db"), "the ban history").is_some());
        // Messages are prose: no run of spaces from a wrapped literal.
        for m in [srv, tmp, sandboxed(Path::new("/root/x.log")).unwrap()] {
            assert!(!m.contains("  "), "{m}");
        }
    }
}
