//! Where the daemon's log goes (`log.target` in the config, docs/faq.md row 5):
//! `stderr`, `journald` (the journal's native protocol, with priorities and
//! fields, through tracing-journald), `syslog` (RFC 3164 datagrams to
//! `/dev/log`, facility daemon, priority from the level), or a file path.
//!
//! `stderr` is coloured only on a terminal: under systemd or in a file the
//! escape codes would be noise in every line. And when stderr is the
//! journal itself (systemd says so in `JOURNAL_STREAM`, the device and
//! inode of the stream it gave as stderr), the default `stderr` speaks the
//! journal's native protocol instead, so that each line keeps its priority
//! and fields without a config change.

use std::fs::OpenOptions;
use std::io::{self, IsTerminal, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// The syslog socket of the system.
pub const DEV_LOG: &str = "/dev/log";

/// The level, and the NATS client's own lines at `debug` only: it logs
/// every failed reconnect (an `INFO`, or an `ERROR` for a refused login,
/// every second or two for as long as the server is away), which the
/// fleet says once per change instead (origin::fleet::connect).
fn filter(log: &LogConfig) -> EnvFilter {
    EnvFilter::try_from_env("NFTBAN_LOG").unwrap_or_else(|_| {
        let quiet = match log.level.as_str() {
            "debug" | "trace" => "",
            _ => ",async_nats=off",
        };
        EnvFilter::new(format!("{}{quiet}", log.level))
    })
}

/// Why the log target cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// `log.target: journald` without a journal.
    #[error("log.target journald: cannot reach the journal's socket: {0}")]
    Journald(std::io::Error),
    /// `log.target: syslog` without a syslog socket.
    #[error("log.target syslog: cannot reach {DEV_LOG}: {0}")]
    Syslog(std::io::Error),
    /// A log file that cannot be opened for appending.
    #[error("cannot open log file {path} (log.target): {error}")]
    File { path: String, error: std::io::Error },
}

/// Install the global subscriber for the daemon. `NFTBAN_LOG` (a tracing
/// filter) overrides the level, for debugging.
pub fn init(log: &LogConfig) -> Result<(), LogError> {
    match log.target.as_str() {
        "stderr" => {
            // Under systemd, the journal itself: the native protocol keeps
            // priorities and fields.
            if let Some(layer) = stderr_is_the_journal()
                .then(tracing_journald::layer)
                .and_then(Result::ok)
            {
                let layer = layer.with_syslog_identifier("nftban".into());
                tracing_subscriber::registry().with(filter(log)).with(layer).init();
                return Ok(());
            }
            tracing_subscriber::fmt()
                .with_env_filter(filter(log))
                .with_target(false)
                .with_ansi(io::stderr().is_terminal())
                .with_writer(io::stderr)
                .init();
        }
        "journald" => {
            let layer = tracing_journald::layer()
                .map_err(LogError::Journald)?
                .with_syslog_identifier("nftban".into());
            tracing_subscriber::registry().with(filter(log)).with(layer).init();
        }
        "syslog" => {
            let writer = Syslog::connect(Path::new(DEV_LOG)).map_err(LogError::Syslog)?;
            tracing_subscriber::fmt()
                .with_env_filter(filter(log))
                .with_target(false)
                .with_ansi(false)
                .without_time()
                .with_level(false)
                .with_writer(writer)
                .init();
        }
        path => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|error| LogError::File {
                    path: path.to_string(),
                    error,
                })?;
            tracing_subscriber::fmt()
                .with_env_filter(filter(log))
                .with_target(false)
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .init();
        }
    }
    Ok(())
}

/// Whether stderr is the stream systemd connected to the journal:
/// `JOURNAL_STREAM` is `DEVICE:INODE` of that stream, and stays in the
/// environment of children whose stderr is something else, so the two
/// are compared.
fn stderr_is_the_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(var) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    // The magic link is followed to the stream itself (a pipe, a socket).
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| journal_stream_is(&var, m.dev(), m.ino()))
}

/// Whether `JOURNAL_STREAM`'s value names the file of device `dev` and
/// inode `ino`.
fn journal_stream_is(var: &str, dev: u64, ino: u64) -> bool {
    var.split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        == Some((dev, ino))
}

/// Writes each log event as one syslog datagram.
pub struct Syslog {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Syslog {
    /// Connect to a syslog socket (`/dev/log`, or another path in tests).
    pub fn connect(path: &Path) -> io::Result<Syslog> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        Ok(Syslog {
            socket,
            path: path.to_path_buf(),
        })
    }
}

/// Syslog severity of a tracing level (facility daemon = 3).
fn priority(level: &Level) -> u8 {
    let severity = match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    };
    3 * 8 + severity
}

/// One event being formatted; sent as one datagram when dropped.
pub struct SyslogLine<'a> {
    syslog: &'a Syslog,
    buf: Vec<u8>,
}

impl Write for SyslogLine<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine<'_> {
    fn drop(&mut self) {
        let text = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
        if text.len() <= self.prefix_len() {
            return;
        }
        if self.syslog.socket.send(text).is_err() {
            // The syslog daemon restarted: reconnect once and retry.
            if self.syslog.socket.connect(&self.syslog.path).is_ok() {
                let _ = self.syslog.socket.send(text);
            }
        }
    }
}

impl SyslogLine<'_> {
    fn prefix_len(&self) -> usize {
        self.buf.iter().position(|&b| b == b':').map(|i| i + 2).unwrap_or(0)
    }
}

impl Syslog {
    fn line(&self, priority: u8) -> SyslogLine<'_> {
        let buf = format!("<{priority}>nftban[{}]: ", std::process::id()).into_bytes();
        SyslogLine { syslog: self, buf }
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = SyslogLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        self.line(priority(&Level::INFO))
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        self.line(priority(meta.level()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The NATS client's own lines (a failed reconnect every second or
    /// two, for as long as the server is away) are off unless debugging.
    #[test]
    fn the_nats_clients_own_lines_are_off_below_debug() {
        let with = |level: &str| {
            let log = LogConfig {
                target: "stderr".into(),
                level: level.into(),
            };
            std::env::var_os("NFTBAN_LOG")
                .is_none()
                .then(|| filter(&log).to_string())
        };
        if let Some(info) = with("info") {
            assert!(info.contains("async_nats=off"), "{info}");
            assert!(!with("debug").unwrap().contains("async_nats"));
        }
    }

    #[test]
    fn journal_stream_names_one_file() {
        assert!(journal_stream_is("8:12345", 8, 12345));
        assert!(!journal_stream_is("8:12345", 8, 12346));
        assert!(!journal_stream_is("9:12345", 8, 12345));
        assert!(!journal_stream_is("", 8, 12345));
        assert!(!journal_stream_is("8", 8, 12345));
        assert!(!journal_stream_is("x:y", 8, 12345));
    }

    #[test]
    fn syslog_lines_carry_priority_and_tag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let syslog = Syslog::connect(&path).unwrap();
        let sub = tracing_subscriber::fmt()
            .with_target(false)
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .with_writer(syslog)
            .finish();
        tracing::subscriber::with_default(sub, || {
            tracing::warn!("Ban 192.0.2.1 for 1h");
            tracing::info!(jail = "sshd", "hello");
        });
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        let first = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert_eq!(
            first,
            format!("<28>nftban[{}]: Ban 192.0.2.1 for 1h", std::process::id())
        );
        let n = server.recv(&mut buf).unwrap();
        let second = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(second.starts_with("<30>nftban["), "{second}");
        assert!(second.ends_with("hello jail=\"sshd\""), "{second}");
    }
}
