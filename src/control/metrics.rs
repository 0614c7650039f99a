//! An optional Prometheus endpoint (`metrics: {listen: 127.0.0.1:9477}`;
//! off by default). It asks the engine for the same status as
//! `nftban status --json` and prints it in the text exposition format, so
//! the figures can never disagree with the CLI's.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use super::protocol::Status;

/// Render a status as Prometheus text.
pub fn render(st: &Status) -> String {
    let mut o = String::new();
    type Get = fn(&super::protocol::JailStatus) -> u64;
    let per_jail: [(&str, &str, &str, Get); 11] = [
        (
            "nftban_lines_read_total",
            "counter",
            "Lines read from the jail's sources since start.",
            |j| j.sources.iter().map(|s| s.lines).sum(),
        ),
        (
            "nftban_lines_matched_total",
            "counter",
            "Lines that matched the jail's ruleset since start.",
            |j| j.sources.iter().map(|s| s.matched).sum(),
        ),
        (
            "nftban_failures_total",
            "counter",
            "Failures counted (ignoreip excluded) since start.",
            |j| j.total_failed,
        ),
        ("nftban_bans_total", "counter", "Bans made since start.", |j| {
            j.total_banned
        }),
        (
            "nftban_unbans_total",
            "counter",
            "Bans lifted by hand since start.",
            |j| j.total_unbanned,
        ),
        ("nftban_banned", "gauge", "Addresses and prefixes banned now.", |j| {
            j.currently_banned
        }),
        (
            "nftban_failing",
            "gauge",
            "Addresses with failures within findtime and no ban yet.",
            |j| j.currently_failed,
        ),
        (
            "nftban_evicted_total",
            "counter",
            "Addresses forgotten because of max_tracked.",
            |j| j.evicted,
        ),
        (
            "nftban_dropped_packets_total",
            "counter",
            "Packets the jail's rules dropped or rejected.",
            |j| j.packets,
        ),
        (
            "nftban_dropped_bytes_total",
            "counter",
            "Bytes the jail's rules dropped or rejected.",
            |j| j.bytes,
        ),
        (
            "nftban_kernel_refused_total",
            "counter",
            "Bans of the jail the kernel refused.",
            |j| j.kernel_errors,
        ),
    ];
    for (name, kind, help, get) in per_jail {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for j in &st.jails {
            let _ = writeln!(o, "{name}{{jail=\"{}\"}} {}", j.name, get(j));
        }
    }
    let _ = writeln!(
        o,
        "# HELP nftban_kernel_errors_total Kernel requests that failed since start."
    );
    let _ = writeln!(
        o,
        "# TYPE nftban_kernel_errors_total counter\nnftban_kernel_errors_total {}",
        st.kernel_errors
    );
    let _ = writeln!(
        o,
        "# HELP nftban_history_errors_total Ban history writes that failed since start."
    );
    let _ = writeln!(
        o,
        "# TYPE nftban_history_errors_total counter\nnftban_history_errors_total {}",
        st.history_errors
    );
    o
}

/// Bind the endpoint; a non-loopback address is allowed but warned about.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "metrics endpoint listens beyond localhost: anyone who reaches it sees ban figures");
    }
    TcpListener::bind(addr)
}

/// Serve forever; `status` asks the engine.
pub fn serve(listener: TcpListener, status: impl Fn() -> Option<Status>) {
    for conn in listener.incoming().flatten() {
        if let Err(e) = answer(conn, &status) {
            tracing::debug!(error = %e, "metrics request failed");
        }
    }
}

fn answer(mut conn: TcpStream, status: &impl Fn() -> Option<Status>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut request = String::new();
    BufReader::new(conn.try_clone()?).take_line(&mut request)?;
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let (code, body) = if !request.starts_with("GET ") {
        ("405 Method Not Allowed", "only GET\n".to_string())
    } else if path != "/metrics" {
        ("404 Not Found", "see /metrics\n".to_string())
    } else {
        match status() {
            Some(st) => ("200 OK", render(&st)),
            None => ("503 Service Unavailable", "the daemon is stopping\n".to_string()),
        }
    };
    write!(
        conn,
        "HTTP/1.0 {code}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

trait TakeLine {
    fn take_line(&mut self, out: &mut String) -> std::io::Result<usize>;
}

impl<R: BufRead> TakeLine for R {
    /// Read one line, at most 8 KiB.
    fn take_line(&mut self, out: &mut String) -> std::io::Result<usize> {
        use std::io::Read;
        self.take(8192).read_line(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::JailStatus;

    fn jail(name: &str, banned: u64) -> JailStatus {
        JailStatus {
            name: name.into(),
            ruleset: name.into(),
            files: vec![],
            journal: vec![],
            currently_failed: 2,
            total_failed: 7,
            currently_banned: banned,
            total_banned: 3,
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
        }
    }

    #[test]
    fn renders_per_jail_series_and_serves_them() {
        let st = Status {
            jails: vec![jail("sshd", 1), jail("manual", 0)],
            kernel_errors: 4,
            history_errors: 0,
        };
        let text = render(&st);
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
        assert!(ok.ends_with(&text));
        assert!(get("/").starts_with("HTTP/1.0 404"));
    }
}
