//! The events as JSON lines to a file and/or a Unix socket (`events:` in
//! the config), for SIEMs and chat-ops, written by a thread of their own
//! that subscribes to the [`Hub`](super::Hub) like any client: a sink that
//! is slow or stuck loses events (and writes a `lost` event once it
//! catches up), it never holds the engine.
//!
//! A sink that fails (a full disk, a socket nobody listens on) is logged
//! at most once a minute ([`Throttle`]) with the count of batches it
//! missed, and tried again at the next event: never fatal.
//!
//! The file is created with mode 0600 (the events name addresses), opened
//! for appending, and opened again when it is moved or removed (logrotate
//! without `copytruncate`): before each batch its path is compared with
//! the file held. The socket may be a datagram socket (one JSON object per
//! datagram, without newline) or a stream socket (JSON lines), found out
//! at connection.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Event, Next, Subscription};
use crate::throttle::Throttle;

/// The most events written in one batch.
const BATCH: usize = 1024;

/// How long a socket peer may take to accept a batch before the sink gives
/// up on it (and connects again at the next event).
const SOCKET_WAIT: Duration = Duration::from_secs(2);

/// Where events go.
pub trait Sink {
    /// What the log calls it: `events file /var/log/nftban/events.jsonl`.
    fn name(&self) -> String;
    /// Write one batch of events (each a JSON line, newline included).
    fn write(&mut self, lines: &[Vec<u8>]) -> std::io::Result<()>;
}

/// Start the thread that writes what `sub` gets to `sinks`. Returns at
/// once; the thread ends once the hub is closed (or gone) and what was
/// queued for it is written.
pub fn spawn(sub: Subscription, sinks: Vec<Box<dyn Sink + Send>>) -> std::io::Result<Writer> {
    let thread = std::thread::Builder::new()
        .name("events-sinks".into())
        .spawn(move || run(sub, sinks))?;
    Ok(Writer(thread))
}

/// The sinks' thread.
pub struct Writer(std::thread::JoinHandle<()>);

impl Writer {
    /// Wait, at most `bound`, for the thread to write what was queued
    /// (the hub closed first): a stop does not drop the last events, and
    /// a sink that hangs does not hold the stop.
    pub fn finish(self, bound: Duration) {
        let start = Instant::now();
        while !self.0.is_finished() && start.elapsed() < bound {
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.0.is_finished() {
            let _ = self.0.join();
        } else {
            tracing::warn!("ban events not all written at the stop: a sink is stuck");
        }
    }
}

/// Write every event `sub` gets to each sink, batch by batch.
fn run(mut sub: Subscription, sinks: Vec<Box<dyn Sink + Send>>) {
    let mut sinks: Vec<(Box<dyn Sink + Send>, Throttle)> =
        sinks.into_iter().map(|s| (s, Throttle::default())).collect();
    loop {
        let first = match sub.next(Duration::from_secs(1)) {
            Next::Event(e) => e,
            Next::Idle => continue,
            Next::Closed => return,
        };
        let lines = batch(first, &mut sub);
        for (sink, failed) in &mut sinks {
            deliver(sink.as_mut(), failed, &lines);
        }
    }
}

/// `first` and whatever else waits, up to [`BATCH`], as JSON lines.
fn batch(first: Arc<Event>, sub: &mut Subscription) -> Vec<Vec<u8>> {
    let mut lines = vec![first.json_line()];
    while lines.len() < BATCH {
        match sub.try_next() {
            Some(e) => lines.push(e.json_line()),
            None => break,
        }
    }
    lines
}

/// Write `lines` to `sink`; a failure is logged under `failed`'s pace.
fn deliver(sink: &mut dyn Sink, failed: &mut Throttle, lines: &[Vec<u8>]) {
    if let Err(e) = sink.write(lines) {
        if let Some(n) = failed.note(Instant::now()) {
            tracing::warn!(
                "{}: {e}; {n} batch(es) of events not delivered since the last message (tried again at the next event)",
                sink.name()
            );
        }
    }
}

/// The JSON lines file (`events.file`).
pub struct FileSink {
    path: PathBuf,
    /// The file held, and its (device, inode) when opened.
    open: Option<(File, (u64, u64))>,
}

impl FileSink {
    pub fn new(path: PathBuf) -> FileSink {
        FileSink { path, open: None }
    }

    /// Whether the path no longer names the file held: moved away by
    /// rotation, removed, or replaced.
    fn moved(&self, id: (u64, u64)) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(m) => (m.dev(), m.ino()) != id,
            Err(_) => true,
        }
    }

    /// Open (or create, 0600) the file for appending; its folder too
    /// (0700) if missing. Symbolic links are not followed, and only a
    /// regular file is written (a FIFO at the path must not block the
    /// thread).
    fn open(path: &Path) -> std::io::Result<(File, (u64, u64))> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)?;
        let meta = file.metadata()?;
        if !meta.file_type().is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        Ok((file, (meta.dev(), meta.ino())))
    }
}

impl Sink for FileSink {
    fn name(&self) -> String {
        format!("events file {}", self.path.display())
    }

    fn write(&mut self, lines: &[Vec<u8>]) -> std::io::Result<()> {
        if self.open.as_ref().is_some_and(|(_, id)| self.moved(*id)) {
            self.open = None;
        }
        let (file, _) = match &mut self.open {
            Some(open) => open,
            None => self.open.insert(FileSink::open(&self.path)?),
        };
        // One write for the batch: lines of other writers (none expected)
        // never land inside one of ours.
        let result = file.write_all(&lines.concat());
        if result.is_err() {
            // Opened again at the next batch: the disk may have been freed,
            // the file replaced.
            self.open = None;
        }
        result
    }
}

/// A connection to the events socket.
enum Conn {
    Datagram(UnixDatagram),
    Stream(UnixStream),
}

/// The Unix socket (`events.socket`), datagram or stream.
pub struct SocketSink {
    path: PathBuf,
    conn: Option<Conn>,
}

impl SocketSink {
    pub fn new(path: PathBuf) -> SocketSink {
        SocketSink { path, conn: None }
    }

    /// Connect as a datagram socket, or as a stream one if that is what
    /// listens (connect(2) says EPROTOTYPE).
    fn connect(path: &Path) -> std::io::Result<Conn> {
        let d = UnixDatagram::unbound()?;
        match d.connect(path) {
            Ok(()) => {
                d.set_write_timeout(Some(SOCKET_WAIT))?;
                Ok(Conn::Datagram(d))
            }
            Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
                let s = UnixStream::connect(path)?;
                s.set_write_timeout(Some(SOCKET_WAIT))?;
                Ok(Conn::Stream(s))
            }
            Err(e) => Err(e),
        }
    }
}

impl Sink for SocketSink {
    fn name(&self) -> String {
        format!("events socket {}", self.path.display())
    }

    fn write(&mut self, lines: &[Vec<u8>]) -> std::io::Result<()> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self.conn.insert(SocketSink::connect(&self.path)?),
        };
        let result = match conn {
            Conn::Datagram(d) => lines
                .iter()
                .try_for_each(|l| d.send(l.strip_suffix(b"\n").unwrap_or(l)).map(drop)),
            Conn::Stream(s) => s.write_all(&lines.concat()),
        };
        if result.is_err() {
            self.conn = None;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Hub, Kind};
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixListener;
    use std::time::SystemTime;

    fn line(i: u32) -> Vec<u8> {
        Event::new(Kind::Ban, "sshd", format!("192.0.2.{i}"), SystemTime::UNIX_EPOCH).json_line()
    }

    fn ips(text: &str) -> Vec<String> {
        text.lines()
            .map(|l| serde_json::from_str::<Event>(l).unwrap().ip.unwrap())
            .collect()
    }

    /// Created 0600 whatever the umask allows, appended to, and opened
    /// anew once rotated away (the rotated file keeps what it had).
    #[test]
    fn the_file_is_0600_and_follows_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log/events.jsonl");
        let mut sink = FileSink::new(path.clone());
        sink.write(&[line(1), line(2)]).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::rename(&path, dir.path().join("log/events.jsonl.1")).unwrap();
        sink.write(&[line(3)]).unwrap();
        let old = std::fs::read_to_string(dir.path().join("log/events.jsonl.1")).unwrap();
        assert_eq!(ips(&old), ["192.0.2.1", "192.0.2.2"]);
        assert_eq!(ips(&std::fs::read_to_string(&path).unwrap()), ["192.0.2.3"]);
        // Removed: made again.
        std::fs::remove_file(&path).unwrap();
        sink.write(&[line(4)]).unwrap();
        assert_eq!(ips(&std::fs::read_to_string(&path).unwrap()), ["192.0.2.4"]);
    }

    /// A path that cannot be a file fails with an error, and the next
    /// write, once it can, succeeds.
    #[test]
    fn a_failing_file_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::create_dir(&path).unwrap();
        let mut sink = FileSink::new(path.clone());
        assert!(sink.write(&[line(1)]).is_err());
        std::fs::remove_dir(&path).unwrap();
        sink.write(&[line(2)]).unwrap();
        assert_eq!(ips(&std::fs::read_to_string(&path).unwrap()), ["192.0.2.2"]);
    }

    #[test]
    fn a_datagram_socket_gets_one_object_per_datagram() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("siem.sock");
        let mut sink = SocketSink::new(path.clone());
        // Nobody listens yet: an error, not a panic, and tried again.
        assert!(sink.write(&[line(1)]).is_err());
        let rx = UnixDatagram::bind(&path).unwrap();
        sink.write(&[line(2), line(3)]).unwrap();
        let mut buf = [0u8; 4096];
        for want in ["192.0.2.2", "192.0.2.3"] {
            let n = rx.recv(&mut buf).unwrap();
            assert_ne!(buf[n - 1], b'\n');
            let e: Event = serde_json::from_slice(&buf[..n]).unwrap();
            assert_eq!(e.ip.as_deref(), Some(want));
        }
    }

    /// A stream socket gets JSON lines; when its reader goes away and
    /// another comes, the sink connects again.
    #[test]
    fn a_stream_socket_gets_json_lines_and_is_reconnected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let mut sink = SocketSink::new(path.clone());
        sink.write(&[line(1), line(2)]).unwrap();
        let (conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn);
        let mut got = String::new();
        reader.read_line(&mut got).unwrap();
        reader.read_line(&mut got).unwrap();
        assert_eq!(ips(&got), ["192.0.2.1", "192.0.2.2"]);
        drop(reader);
        // The peer is gone: the first write after may still be buffered,
        // a later one fails; then the sink connects again.
        let delivered = (3..10).find(|&i| sink.write(&[line(i)]).is_err());
        assert!(delivered.is_some(), "writes to a closed peer never failed");
        sink.write(&[line(20)]).unwrap();
        let (conn, _) = listener.accept().unwrap();
        let mut got = String::new();
        BufReader::new(conn).read_line(&mut got).unwrap();
        assert_eq!(ips(&got), ["192.0.2.20"]);
    }

    /// Through the hub and the sinks' thread: the events, in order, in the
    /// file.
    #[test]
    fn the_thread_writes_what_the_hub_publishes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let hub = Hub::default();
        let sinks: Vec<Box<dyn Sink + Send>> = vec![Box::new(FileSink::new(path.clone()))];
        let writer = spawn(hub.subscribe(None).unwrap(), sinks).unwrap();
        for i in 1..=3 {
            let ip = format!("192.0.2.{i}");
            hub.publish(Event::new(Kind::Ban, "sshd", ip, SystemTime::UNIX_EPOCH));
        }
        // As the daemon stops: closed, then what was queued is written.
        hub.close();
        writer.finish(Duration::from_secs(30));
        assert_eq!(
            ips(&std::fs::read_to_string(&path).unwrap()),
            ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
        );
    }
}
