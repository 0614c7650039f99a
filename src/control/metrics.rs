//! An optional Prometheus endpoint (`metrics: {listen: 127.0.0.1:9477}`;
//! off by default). It asks the engine for the same status as
//! `nftban status --json` and prints it in the Prometheus text format
//! (version 0.0.4) with the prometheus-client crate's encoder, so the
//! figures can never disagree with the CLI's.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::line::{read_line, write_before, Budget, Unreadable};
use super::protocol::{JailStatus, Status};

type Get = fn(&JailStatus) -> u64;

/// The per-jail metrics: name as scraped (the encoder adds a counter's
/// `_total` itself, so it is registered without it), type, help, and
/// where the value comes from.
const PER_JAIL: [(&str, MetricType, &str, Get); 11] = [
    (
        "nftban_lines_read_total",
        MetricType::Counter,
        "Lines read from the jail's sources since start.",
        |j| j.sources.iter().map(|s| s.lines).sum(),
    ),
    (
        "nftban_lines_matched_total",
        MetricType::Counter,
        "Lines that matched the jail's ruleset since start.",
        |j| j.sources.iter().map(|s| s.matched).sum(),
    ),
    (
        "nftban_failures_total",
        MetricType::Counter,
        "Failures counted (ignoreip excluded) since start.",
        |j| j.total_failed,
    ),
    (
        "nftban_bans_total",
        MetricType::Counter,
        "Bans made since start.",
        |j| j.total_banned,
    ),
    (
        "nftban_unbans_total",
        MetricType::Counter,
        "Bans lifted by hand since start.",
        |j| j.total_unbanned,
    ),
    (
        "nftban_banned",
        MetricType::Gauge,
        "Addresses and prefixes banned now.",
        |j| j.currently_banned,
    ),
    (
        "nftban_failing",
        MetricType::Gauge,
        "Addresses with failures within findtime and no ban yet.",
        |j| j.currently_failed,
    ),
    (
        "nftban_evicted_total",
        MetricType::Counter,
        "Addresses forgotten because of max_tracked.",
        |j| j.evicted,
    ),
    (
        "nftban_dropped_packets_total",
        MetricType::Counter,
        "Packets the jail's rules dropped or rejected.",
        |j| j.packets,
    ),
    (
        "nftban_dropped_bytes_total",
        MetricType::Counter,
        "Bytes the jail's rules dropped or rejected.",
        |j| j.bytes,
    ),
    (
        "nftban_kernel_refused_total",
        MetricType::Counter,
        "Bans of the jail the kernel refused.",
        |j| j.kernel_errors,
    ),
];

/// The figures of one scrape, taken from a status (without its lists of
/// banned addresses), in the status's jail order.
#[derive(Debug)]
struct Figures {
    jails: Vec<(String, [u64; PER_JAIL.len()])>,
    /// (jail, origin, bans since start), for `nftban_bans_by_origin_total`:
    /// only the origins a jail has bans of.
    by_origin: Vec<(String, String, u64)>,
    /// (jail, its lines that named a host), for the jails that resolve
    /// names or met some (`usedns`).
    names: Vec<(String, crate::status::NameStatus)>,
    kernel_errors: u64,
    history_errors: u64,
    /// The fleet's figures, when there is a fleet.
    fleet: Option<crate::status::FleetStatus>,
    /// The blocklist feeds' figures.
    feeds: Vec<crate::status::FeedStatus>,
}

impl Figures {
    fn of(st: &Status) -> Figures {
        Figures {
            jails: st
                .jails
                .iter()
                .map(|j| (j.name.clone(), PER_JAIL.map(|(.., get)| get(j))))
                .collect(),
            by_origin: st
                .jails
                .iter()
                .flat_map(|j| {
                    j.bans_by_origin
                        .iter()
                        .map(|(origin, &n)| (j.name.clone(), origin.clone(), n))
                })
                .collect(),
            names: st
                .jails
                .iter()
                .filter_map(|j| j.names.clone().map(|n| (j.name.clone(), n)))
                .collect(),
            kernel_errors: st.kernel_errors,
            history_errors: st.history_errors,
            fleet: st.fleet.clone(),
            feeds: st.feeds.clone(),
        }
    }
}

impl Figures {
    /// `usedns`: per jail, its lines that named a host by what became of
    /// them, and the lookups they started; only for the jails in `status`'s
    /// `names`.
    fn encode_names(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if self.names.is_empty() {
            return Ok(());
        }
        let kind = MetricType::Counter;
        let mut family = encoder.encode_descriptor(
            "nftban_host_name_lines",
            "Matched lines whose host was a name, by outcome (seen: all of them; resolved, unresolved, cache_hit, timeout, dropped: with usedns: yes).",
            None,
            kind,
        )?;
        for (jail, n) in &self.names {
            for (outcome, value) in [
                ("seen", n.names),
                ("resolved", n.resolved),
                ("unresolved", n.unresolved),
                ("cache_hit", n.cache_hits),
                ("timeout", n.timeouts),
                ("dropped", n.dropped),
            ] {
                let labels = [("jail", jail.as_str()), ("outcome", outcome)];
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "nftban_dns_lookups",
            "System resolver lookups started for the jail's lines (usedns: yes).",
            None,
            kind,
        )?;
        for (jail, n) in &self.names {
            let labels = [("jail", jail.as_str())];
            ConstCounter::new(n.lookups).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The name to register: without the `_total` the encoder adds to counters.
fn registered(name: &str, kind: MetricType) -> &str {
    match kind {
        MetricType::Counter => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    }
}

impl Collector for Figures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (i, (name, kind, help, _)) in PER_JAIL.into_iter().enumerate() {
            let mut family = encoder.encode_descriptor(registered(name, kind), help, None, kind)?;
            for (jail, values) in &self.jails {
                let labels = [("jail", jail.as_str())];
                let metric = family.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => ConstCounter::new(values[i]).encode(metric)?,
                    _ => ConstGauge::new(values[i]).encode(metric)?,
                }
            }
        }
        let kind = MetricType::Counter;
        let mut family = encoder.encode_descriptor(
            registered("nftban_bans_by_origin_total", kind),
            "Bans made since start, by origin (auto, manual, escalated, kernel meter).",
            None,
            kind,
        )?;
        for (jail, origin, value) in &self.by_origin {
            let labels = [("jail", jail.as_str()), ("origin", origin.as_str())];
            ConstCounter::new(*value).encode(family.encode_family(&labels)?)?;
        }
        self.encode_names(&mut encoder)?;
        for (name, help, value) in [
            (
                "nftban_kernel_errors_total",
                "Kernel requests that failed since start.",
                self.kernel_errors,
            ),
            (
                "nftban_history_errors_total",
                "Ban history writes that failed since start.",
                self.history_errors,
            ),
        ] {
            let kind = MetricType::Counter;
            ConstCounter::new(value).encode(encoder.encode_descriptor(registered(name, kind), help, None, kind)?)?;
        }
        if let Some(f) = &self.fleet {
            encode_fleet(f, &mut encoder)?;
        }
        if !self.feeds.is_empty() {
            encode_feeds(&self.feeds, &mut encoder)?;
        }
        Ok(())
    }
}

/// The fleet's metrics (`nftban_fleet_*`, docs/fleet.md).
fn encode_fleet(f: &crate::status::FleetStatus, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let counter = MetricType::Counter;
    for (name, help, value) in [
        (
            "nftban_fleet_published_total",
            "This node's bans and unbans stored by the fleet's stream.",
            f.published,
        ),
        (
            "nftban_fleet_duplicates_total",
            "Publishes the stream already held (stored once).",
            f.duplicates,
        ),
        (
            "nftban_fleet_received_total",
            "Peers' messages read from the stream.",
            f.received,
        ),
        (
            "nftban_fleet_applied_total",
            "Peers' bans handed to the jails.",
            f.applied,
        ),
        (
            "nftban_fleet_lifted_total",
            "Peers' unbans handed to the jails.",
            f.lifted,
        ),
        (
            "nftban_fleet_expired_total",
            "Peers' bans skipped because they had ended.",
            f.expired,
        ),
    ] {
        ConstCounter::new(value).encode(encoder.encode_descriptor(
            registered(name, counter),
            help,
            None,
            counter,
        )?)?;
    }
    let gauge = MetricType::Gauge;
    for (name, help, value) in [
        (
            "nftban_fleet_waiting",
            "This node's decisions not published yet.",
            f.waiting,
        ),
        (
            "nftban_fleet_connected",
            "1 while connected to NATS.",
            u64::from(f.state == "connected"),
        ),
    ] {
        ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, gauge)?)?;
    }
    let mut family = encoder.encode_descriptor(
        registered("nftban_fleet_refused_total", counter),
        "Peers' bans refused, by reason (ignoreip, never banned, too wide, rate, jail, malformed).",
        None,
        counter,
    )?;
    for (reason, value) in &f.refused {
        let labels = [("reason", reason.as_str())];
        ConstCounter::new(*value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The feeds' metrics (`nftban_feed_*`, docs/feeds.md), label `feed`.
fn encode_feeds(feeds: &[crate::status::FeedStatus], encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    type Of = fn(&crate::status::FeedStatus) -> u64;
    let gauges: [(&str, &str, Of); 2] = [
        ("nftban_feed_entries", "Entries of the feed in the kernel now.", |f| {
            f.entries
        }),
        (
            "nftban_feed_last_success_timestamp_seconds",
            "Unix time of the feed's last refresh that worked (0: none since start).",
            |f| f.last_success.unwrap_or(0),
        ),
    ];
    for (name, help, of) in gauges {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for f in feeds {
            ConstGauge::new(of(f)).encode(family.encode_family(&[("feed", f.name.as_str())])?)?;
        }
    }
    let counter = MetricType::Counter;
    let mut family = encoder.encode_descriptor(
        registered("nftban_feed_dropped_packets_total", counter),
        "Packets the feed's rules dropped or rejected.",
        None,
        counter,
    )?;
    for f in feeds {
        ConstCounter::new(f.packets).encode(family.encode_family(&[("feed", f.name.as_str())])?)?;
    }
    let mut family = encoder.encode_descriptor(
        registered("nftban_feed_refreshes_total", counter),
        "The feed's refreshes since start, by result (ok, unchanged, error).",
        None,
        counter,
    )?;
    for f in feeds {
        for (result, n) in &f.refreshes {
            let labels = [("feed", f.name.as_str()), ("result", result.as_str())];
            ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "nftban_feed_skipped",
        "Entries of the feed's list skipped, by reason (loopback, own address, ignoreip, private, never banned).",
        None,
        MetricType::Gauge,
    )?;
    for f in feeds {
        for (reason, n) in &f.skipped {
            let labels = [("feed", f.name.as_str()), ("reason", reason.as_str())];
            ConstGauge::new(*n).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

/// Render a status in the Prometheus text format (version 0.0.4, served as
/// [`prometheus_text::CONTENT_TYPE`]).
fn render(st: &Status) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Figures::of(st)));
    let mut out = String::new();
    prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// Bind the endpoint; a non-loopback address is allowed but warned about.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "metrics endpoint listens beyond localhost: anyone who reaches it sees ban figures");
    }
    TcpListener::bind(addr)
}

/// Whether this process could listen on `ip` (any free port): the address
/// is one of this host's and its family is allowed (a unit's
/// `RestrictAddressFamilies=` refuses the others with `EAFNOSUPPORT`).
/// For `nftban check`, which runs under the same sandbox as the daemon
/// when it is the unit's `ExecStartPre`. Port 0, so that a running daemon
/// holding the real port does not make it fail.
pub fn can_listen_on(ip: std::net::IpAddr) -> std::io::Result<()> {
    TcpListener::bind(SocketAddr::new(ip, 0)).map(drop)
}

/// How long a client has to send its request line, and to take the
/// answer: deadlines, not timeouts per read, so a client sending a byte
/// now and then cannot hold the endpoint past them.
const READ_WITHIN: Duration = Duration::from_secs(2);
const WRITE_WITHIN: Duration = Duration::from_secs(10);

/// The longest request line read (`GET /metrics HTTP/1.1` is 21 bytes).
const REQUEST_LINE: usize = 8192;

/// Serve forever; `status` asks the engine. HTTP by hand: one GET, one
/// blocking answer per scrape; an HTTP server crate would add far more code.
/// One scrape at a time on purpose: each asks the engine for a whole
/// status, and one scraper (or anyone who reaches the address) must not
/// queue more than one; the deadlines bound how long one client holds it.
pub fn serve(listener: TcpListener, status: impl Fn() -> Option<Status>) {
    let budget = Budget::new(REQUEST_LINE);
    for conn in listener.incoming().flatten() {
        if let Err(e) = answer(conn, &status, &budget) {
            tracing::debug!(error = %e, "metrics request failed");
        }
    }
}

fn answer(conn: TcpStream, status: &impl Fn() -> Option<Status>, budget: &Budget) -> std::io::Result<()> {
    let (code, body) = match read_line(&conn, REQUEST_LINE, READ_WITHIN, budget) {
        Err(Unreadable::Io(e)) => return Err(e),
        Err(e) => ("400 Bad Request", format!("{e}\n")),
        Ok(line) => {
            let request = String::from_utf8_lossy(line.bytes());
            let path = request.split_whitespace().nth(1).unwrap_or("");
            if !request.starts_with("GET ") {
                ("405 Method Not Allowed", "only GET\n".to_string())
            } else if path != "/metrics" {
                ("404 Not Found", "see /metrics\n".to_string())
            } else {
                match status().map(|st| render(&st)) {
                    Some(Ok(text)) => ("200 OK", text),
                    Some(Err(_)) => ("500 Internal Server Error", "cannot render the metrics\n".to_string()),
                    None => ("503 Service Unavailable", "the daemon is stopping\n".to_string()),
                }
            }
        }
    };
    let out = format!(
        "HTTP/1.0 {code}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        prometheus_text::CONTENT_TYPE,
        body.len()
    );
    write_before(&conn, out.as_bytes(), Instant::now() + WRITE_WITHIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::{JailStatus, SourceStatus};
    use std::io::Write;

    fn text(st: &Status) -> String {
        render(st).unwrap()
    }

    /// A status of these jails with nothing else to report.
    fn status(jails: Vec<JailStatus>) -> Status {
        Status {
            jails,
            kernel_errors: 0,
            history_errors: 0,
            history_waiting: 0,
            history_dropped: 0,
            most_banned: vec![],
            most_failed: vec![],
            fleet: None,
            feeds: Vec::new(),
        }
    }

    fn jail(name: &str, banned: u64) -> JailStatus {
        JailStatus {
            name: name.into(),
            ruleset: name.into(),
            files: vec![],
            journal: vec![],
            currently_failed: 2,
            total_failed: 7,
            not_counted: Default::default(),
            currently_banned: banned,
            total_banned: 3,
            bans_by_origin: Default::default(),
            total_unbanned: 1,
            banned: vec![],
            findtime: 600,
            maxretry: 3,
            bantime: 3600,
            evicted: 0,
            packets: 10,
            bytes: 640,
            kernel_errors: 0,
            sources: vec![],
            names: None,
        }
    }

    /// `usedns`: a jail's name lines by outcome and its lookups, only for
    /// the jails whose status has `names`.
    #[test]
    fn host_name_lines_are_rendered_for_the_jails_that_have_them() {
        let mut named = jail("named", 0);
        named.names = Some(crate::status::NameStatus {
            usedns: true,
            names: 9,
            lookups: 3,
            cache_hits: 4,
            resolved: 6,
            unresolved: 2,
            timeouts: 1,
            dropped: 0,
        });
        let st = status(vec![named, jail("sshd", 0)]);
        let text = text(&st);
        for want in [
            "# TYPE nftban_host_name_lines_total counter\n",
            "nftban_host_name_lines_total{jail=\"named\",outcome=\"seen\"} 9\n",
            "nftban_host_name_lines_total{jail=\"named\",outcome=\"resolved\"} 6\n",
            "nftban_host_name_lines_total{jail=\"named\",outcome=\"timeout\"} 1\n",
            "nftban_host_name_lines_total{jail=\"named\",outcome=\"cache_hit\"} 4\n",
            "nftban_dns_lookups_total{jail=\"named\"} 3\n",
        ] {
            assert!(text.contains(want), "missing {want} in {text}");
        }
        assert!(!text.contains("nftban_host_name_lines_total{jail=\"sshd\""), "{text}");
        assert!(!render(&Status {
            jails: vec![jail("sshd", 0)],
            ..st
        })
        .unwrap()
        .contains("host_name"));
    }

    #[test]
    fn renders_per_jail_series_and_serves_them() {
        let st = Status {
            kernel_errors: 4,
            ..status(vec![jail("sshd", 1), jail("manual", 0)])
        };
        let text = text(&st);
        assert!(text.contains("# TYPE nftban_bans_total counter\nnftban_bans_total{jail=\"sshd\"} 3\nnftban_bans_total{jail=\"manual\"} 3\n"), "{text}");
        assert!(text.contains("nftban_banned{jail=\"sshd\"} 1\n"));
        assert!(text.contains("nftban_kernel_errors_total 4\n"));
        assert!(
            text.contains("nftban_dropped_packets_total{jail=\"sshd\"} 10\n"),
            "{text}"
        );

        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let served = st.clone();
        std::thread::spawn(move || serve(listener, move || Some(served.clone())));
        let get = |path: &str| {
            let mut c = TcpStream::connect(addr).unwrap();
            write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut out = String::new();
            use std::io::Read;
            c.read_to_string(&mut out).unwrap();
            out
        };
        let ok = get("/metrics");
        assert!(ok.starts_with("HTTP/1.0 200 OK\r\n"), "{ok}");
        // What Prometheus expects of the text format, version 0.0.4.
        assert!(
            ok.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            "{ok}"
        );
        assert!(ok.ends_with(&text));
        assert!(get("/").starts_with("HTTP/1.0 404"));
    }

    /// A client sending a byte every 100 ms (never a whole line) is cut at
    /// the deadline for the request line, so a scrape behind it is
    /// answered; a per-read timeout would let the trickle go on for ever.
    #[test]
    fn a_trickling_client_does_not_hold_the_endpoint() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let st = status(vec![jail("sshd", 1)]);
        std::thread::spawn(move || serve(listener, move || Some(st.clone())));
        let mut trickle = TcpStream::connect(addr).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let trickler = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && trickle.write_all(b"G").is_ok() {
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        use std::io::Read;
        let _ = c.read_to_string(&mut out);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        trickler.join().unwrap();
        assert!(out.starts_with("HTTP/1.0 200 OK\r\n"), "{out:?}");
    }

    /// With a fleet: its counters, gauges and refusals by reason.
    #[test]
    fn renders_the_fleets_metrics() {
        let fleet = crate::status::FleetStatus {
            node: "pbx-a".into(),
            state: "connected".into(),
            published: 3,
            duplicates: 4,
            waiting: 5,
            received: 6,
            applied: 7,
            lifted: 8,
            expired: 9,
            refused: [("too wide".to_string(), 2), ("ignoreip".to_string(), 1)].into(),
            ..Default::default()
        };
        let st = Status {
            fleet: Some(fleet),
            ..status(vec![jail("sshd", 1)])
        };
        let text = render(&st).unwrap();
        for line in [
            "nftban_fleet_published_total 3",
            "nftban_fleet_duplicates_total 4",
            "nftban_fleet_waiting 5",
            "nftban_fleet_received_total 6",
            "nftban_fleet_applied_total 7",
            "nftban_fleet_lifted_total 8",
            "nftban_fleet_expired_total 9",
            "nftban_fleet_connected 1",
            "nftban_fleet_refused_total{reason=\"too wide\"} 2",
            "nftban_fleet_refused_total{reason=\"ignoreip\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        let without = Status { fleet: None, ..st };
        assert!(!render(&without).unwrap().contains("nftban_fleet"));
    }

    /// With feeds: entries, skipped by reason, refreshes by result, the
    /// last success and dropped packets, labelled by feed.
    #[test]
    fn renders_the_feeds_metrics() {
        let feed = crate::status::FeedStatus {
            name: "level1".into(),
            entries: 4521,
            skipped: [("private".to_string(), 4)].into(),
            refreshes: [("ok".to_string(), 3), ("error".to_string(), 1)].into(),
            last_success: Some(1_765_040_000),
            packets: 17,
            ..Default::default()
        };
        let st = Status {
            feeds: vec![feed],
            ..status(vec![jail("sshd", 1)])
        };
        let text = render(&st).unwrap();
        for line in [
            "nftban_feed_entries{feed=\"level1\"} 4521",
            "nftban_feed_skipped{feed=\"level1\",reason=\"private\"} 4",
            "nftban_feed_refreshes_total{feed=\"level1\",result=\"ok\"} 3",
            "nftban_feed_refreshes_total{feed=\"level1\",result=\"error\"} 1",
            "nftban_feed_last_success_timestamp_seconds{feed=\"level1\"} 1765040000",
            "nftban_feed_dropped_packets_total{feed=\"level1\"} 17",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        let without = Status { feeds: vec![], ..st };
        assert!(!render(&without).unwrap().contains("nftban_feed"));
    }

    fn source(lines: u64, matched: u64) -> SourceStatus {
        SourceStatus {
            path: "/var/log/x.log".into(),
            state: "reading".into(),
            error: None,
            lines,
            matched,
            too_old: 0,
            truncated: 0,
            invalid_utf8: 0,
            last_match_ago: None,
            diagnosis: String::new(),
            files: vec![],
        }
    }

    /// Every metric, with its HELP and TYPE lines, its labels and its
    /// value, exactly as exposed: the names are a contract with dashboards
    /// and alerts, and each value here is distinct so none can come from
    /// the wrong field.
    #[test]
    fn renders_every_metric_with_its_name_labels_and_value() {
        let sshd = JailStatus {
            currently_failed: 5,
            total_failed: 6,
            not_counted: Default::default(),
            currently_banned: 7,
            total_banned: 8,
            total_unbanned: 9,
            evicted: 10,
            packets: 11,
            bytes: 12,
            kernel_errors: 13,
            bans_by_origin: [("auto".to_string(), 5), ("kernel meter".to_string(), 3)].into(),
            sources: vec![source(100, 20), source(1, 2)],
            names: None,
            ..jail("sshd", 0)
        };
        let st = Status {
            kernel_errors: 14,
            history_errors: 15,
            ..status(vec![sshd, jail("manual", 0)])
        };
        let expected = "\
# HELP nftban_lines_read_total Lines read from the jail's sources since start.
# TYPE nftban_lines_read_total counter
nftban_lines_read_total{jail=\"sshd\"} 101
nftban_lines_read_total{jail=\"manual\"} 0
# HELP nftban_lines_matched_total Lines that matched the jail's ruleset since start.
# TYPE nftban_lines_matched_total counter
nftban_lines_matched_total{jail=\"sshd\"} 22
nftban_lines_matched_total{jail=\"manual\"} 0
# HELP nftban_failures_total Failures counted (ignoreip excluded) since start.
# TYPE nftban_failures_total counter
nftban_failures_total{jail=\"sshd\"} 6
nftban_failures_total{jail=\"manual\"} 7
# HELP nftban_bans_total Bans made since start.
# TYPE nftban_bans_total counter
nftban_bans_total{jail=\"sshd\"} 8
nftban_bans_total{jail=\"manual\"} 3
# HELP nftban_unbans_total Bans lifted by hand since start.
# TYPE nftban_unbans_total counter
nftban_unbans_total{jail=\"sshd\"} 9
nftban_unbans_total{jail=\"manual\"} 1
# HELP nftban_banned Addresses and prefixes banned now.
# TYPE nftban_banned gauge
nftban_banned{jail=\"sshd\"} 7
nftban_banned{jail=\"manual\"} 0
# HELP nftban_failing Addresses with failures within findtime and no ban yet.
# TYPE nftban_failing gauge
nftban_failing{jail=\"sshd\"} 5
nftban_failing{jail=\"manual\"} 2
# HELP nftban_evicted_total Addresses forgotten because of max_tracked.
# TYPE nftban_evicted_total counter
nftban_evicted_total{jail=\"sshd\"} 10
nftban_evicted_total{jail=\"manual\"} 0
# HELP nftban_dropped_packets_total Packets the jail's rules dropped or rejected.
# TYPE nftban_dropped_packets_total counter
nftban_dropped_packets_total{jail=\"sshd\"} 11
nftban_dropped_packets_total{jail=\"manual\"} 10
# HELP nftban_dropped_bytes_total Bytes the jail's rules dropped or rejected.
# TYPE nftban_dropped_bytes_total counter
nftban_dropped_bytes_total{jail=\"sshd\"} 12
nftban_dropped_bytes_total{jail=\"manual\"} 640
# HELP nftban_kernel_refused_total Bans of the jail the kernel refused.
# TYPE nftban_kernel_refused_total counter
nftban_kernel_refused_total{jail=\"sshd\"} 13
nftban_kernel_refused_total{jail=\"manual\"} 0
# HELP nftban_bans_by_origin_total Bans made since start, by origin (auto, manual, escalated, kernel meter).
# TYPE nftban_bans_by_origin_total counter
nftban_bans_by_origin_total{jail=\"sshd\",origin=\"auto\"} 5
nftban_bans_by_origin_total{jail=\"sshd\",origin=\"kernel meter\"} 3
# HELP nftban_kernel_errors_total Kernel requests that failed since start.
# TYPE nftban_kernel_errors_total counter
nftban_kernel_errors_total 14
# HELP nftban_history_errors_total Ban history writes that failed since start.
# TYPE nftban_history_errors_total counter
nftban_history_errors_total 15
";
        assert_eq!(text(&st), expected);
    }
}
