//! One request line in, one answer line out, under limits a client cannot
//! stretch: the request must be whole before a deadline counted from the
//! connection (not per read, which a client sending a byte now and then
//! would reset), no longer than a bound, and within a budget shared by
//! all connections; the answer must be taken before a deadline too.
//!
//! Every way a line can fail to be a request is a [`BadRequest`], whose
//! message goes back to the client as the answer's `error`: nothing a
//! client sends goes unanswered.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::Request;

/// A connection whose reads and writes can wait at most a given time: the
/// control socket's and the metrics endpoint's.
pub trait Timed: Read + Write {
    fn read_timeout(&self, t: Duration) -> std::io::Result<()>;
    fn write_timeout(&self, t: Duration) -> std::io::Result<()>;
}

impl Timed for &UnixStream {
    fn read_timeout(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))
    }
    fn write_timeout(&self, t: Duration) -> std::io::Result<()> {
        self.set_write_timeout(Some(t))
    }
}

impl Timed for &TcpStream {
    fn read_timeout(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))
    }
    fn write_timeout(&self, t: Duration) -> std::io::Result<()> {
        self.set_write_timeout(Some(t))
    }
}

/// Why a line is not a request. The message is what the client is told,
/// after `bad request: `.
#[derive(Debug, thiserror::Error)]
pub enum BadRequest {
    /// Not text: the protocol is JSON, which is UTF-8.
    #[error("not UTF-8 (invalid byte at offset {at})")]
    NotUtf8 { at: usize },
    /// Text, but not JSON.
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// JSON, but not one of the protocol's requests (unknown `cmd`, a
    /// missing or unknown field, a wrong type).
    #[error("{0}")]
    NotARequest(#[source] serde_json::Error),
    /// Nothing but white space before the newline or the end.
    #[error("empty: a request is one JSON object on one line, such as {{\"cmd\":\"status\"}}")]
    Empty,
    /// No newline within the size bound.
    #[error("longer than {limit} bytes without a newline")]
    TooLong { limit: usize },
    /// No whole line before the deadline, counted from `since`.
    #[error("no whole line within {}s of {since} (a request is one line, sent at once)", .deadline.as_secs_f64())]
    TooSlow { deadline: Duration, since: Since },
}

/// From when a line's deadline counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// The connection's first line.
    Connecting,
    /// A line after a request that said `follows`: from when that request
    /// was read.
    RequestBefore,
}

impl std::fmt::Display for Since {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Since::Connecting => "connecting",
            Since::RequestBefore => "the request before it (which said `follows`)",
        })
    }
}

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    /// The client sent what is not a request; it is told why.
    #[error("bad request: {0}")]
    Bad(#[from] BadRequest),
    /// Other clients' requests fill the budget; this one is told to retry.
    #[error("busy: requests of other clients fill the {limit} bytes read at once; try again")]
    Busy { limit: usize },
    /// The connection broke: nobody to answer.
    #[error("reading the request: {0}")]
    Io(#[from] std::io::Error),
}

/// Bytes of requests held at once, all connections together, so that many
/// clients sending large requests (and then nothing) cannot make the
/// daemon hold more than this.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    pub fn new(limit: usize) -> Budget {
        Budget {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// Take `n` bytes, or false if that would pass the limit.
    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&u| u <= self.limit)
            })
            .is_ok()
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// Bytes held now.
    #[cfg(test)]
    fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// A request line's bytes, counted in a [`Budget`] until dropped.
pub struct Held<'a> {
    bytes: Vec<u8>,
    budget: &'a Budget,
}

impl<'a> Held<'a> {
    fn new(budget: &'a Budget) -> Held<'a> {
        Held {
            bytes: Vec::new(),
            budget,
        }
    }

    fn extend(&mut self, part: &[u8]) -> Result<(), Unreadable> {
        if !self.budget.take(part.len()) {
            return Err(Unreadable::Busy {
                limit: self.budget.limit,
            });
        }
        self.bytes.extend_from_slice(part);
        Ok(())
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.budget.give(self.bytes.len());
    }
}

/// The lines of one connection, read one at a time: what a read took past
/// a line's end is the start of the next one (a client may send its next
/// request before the answer to this one, see [`Request::follows`]).
#[derive(Default)]
pub struct Lines {
    rest: Vec<u8>,
    /// A line was read already: the next one's deadline counts from then.
    read_one: bool,
}

impl Lines {
    /// Read one line (without its newline; the end of the stream also
    /// ends it) of at most `max` bytes, whole `within` the time from now.
    pub fn read<'a>(
        &mut self,
        mut stream: impl Timed,
        max: usize,
        within: Duration,
        budget: &'a Budget,
    ) -> Result<Held<'a>, Unreadable> {
        let deadline = Instant::now() + within;
        let since = match std::mem::replace(&mut self.read_one, true) {
            false => Since::Connecting,
            true => Since::RequestBefore,
        };
        let too_slow = || BadRequest::TooSlow {
            deadline: within,
            since,
        };
        let mut line = Held::new(budget);
        let rest = std::mem::take(&mut self.rest);
        if self.add(&mut line, &rest, max)? {
            return Ok(line);
        }
        let mut chunk = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(too_slow().into());
            }
            // The time left, not a fixed timeout: each byte of a trickle
            // brings the deadline no further.
            stream.read_timeout(left)?;
            let n = match stream.read(&mut chunk) {
                Ok(0) => return Ok(line),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return Err(too_slow().into())
                }
                Err(e) => return Err(e.into()),
            };
            if self.add(&mut line, &chunk[..n], max)? {
                return Ok(line);
            }
        }
    }

    /// Add `bytes` to `line` up to its end, if they hold it (then true,
    /// and what follows is kept for the next line).
    fn add(&mut self, line: &mut Held<'_>, bytes: &[u8], max: usize) -> Result<bool, Unreadable> {
        let (part, whole) = match memchr::memchr(b'\n', bytes) {
            Some(end) => {
                self.rest.extend_from_slice(&bytes[end + 1..]);
                (&bytes[..end], true)
            }
            None => (bytes, false),
        };
        if line.bytes.len() + part.len() > max {
            return Err(BadRequest::TooLong { limit: max }.into());
        }
        line.extend(part)?;
        Ok(whole)
    }
}

/// Read one line of a connection that carries one request: see
/// [`Lines::read`].
pub fn read_line<'a>(
    stream: impl Timed,
    max: usize,
    within: Duration,
    budget: &'a Budget,
) -> Result<Held<'a>, Unreadable> {
    Lines::default().read(stream, max, within, budget)
}

/// The request a line holds, or why it holds none.
pub fn parse(line: &[u8]) -> Result<Request, BadRequest> {
    let text = std::str::from_utf8(line).map_err(|e| BadRequest::NotUtf8 { at: e.valid_up_to() })?;
    if text.trim().is_empty() {
        return Err(BadRequest::Empty);
    }
    serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => BadRequest::NotARequest(e),
        _ => BadRequest::NotJson(e),
    })
}

/// Write all of `bytes` before `deadline`: a client that does not read its
/// answer is let go then, however little it takes at a time.
pub fn write_before(mut stream: impl Timed, bytes: &[u8], deadline: Instant) -> std::io::Result<()> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client did not take its answer in time",
            ));
        }
        stream.write_timeout(left)?;
        match stream.write(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind of bad line, and the message the client reads.
    #[test]
    fn says_what_is_wrong_with_a_line() {
        let cases: [(&[u8], &str); 6] = [
            (
                b"{\"cmd\":\"status\",\"jail\":\"\xff\"}",
                "not UTF-8 (invalid byte at offset 24)",
            ),
            (b"status", "not JSON: expected value at line 1 column 1"),
            (
                b"{\"cmd\":\"status\"",
                "not JSON: EOF while parsing an object at line 1 column 15",
            ),
            (
                b"{\"cmd\":\"stop\"}",
                "unknown variant `stop`, expected one of `status`, `ban`, `unban`, `reload`",
            ),
            (b"{\"cmd\":\"status\",\"x\":1}", "unknown field `x`"),
            (
                b" \r\t",
                "empty: a request is one JSON object on one line, such as {\"cmd\":\"status\"}",
            ),
        ];
        for (line, want) in cases {
            let got = parse(line).expect_err(want).to_string();
            assert!(got.starts_with(want), "{}: {got}", String::from_utf8_lossy(line));
        }
        assert_eq!(
            parse(b"{\"cmd\":\"status\",\"jail\":\"sshd\"}\r").unwrap(),
            Request::Status {
                jail: Some("sshd".into()),
                brief: false,
            }
        );
    }

    /// serde's internally tagged enums buffer a request before reading its
    /// `cmd`; deep nesting stops at serde_json's recursion limit, on the
    /// small stack of a client thread.
    #[test]
    fn a_deeply_nested_line_is_refused_not_a_stack_overflow() {
        let mut line = b"{\"cmd\":\"status\",\"jail\":".to_vec();
        line.extend(std::iter::repeat_n(b'[', 100_000));
        let got = std::thread::Builder::new()
            .stack_size(super::super::server::CLIENT_STACK)
            .spawn(move || parse(&line).map_err(|e| e.to_string()))
            .unwrap()
            .join()
            .unwrap();
        assert!(got.unwrap_err().contains("recursion limit exceeded"));
    }

    #[test]
    fn the_budget_is_shared_and_given_back() {
        let budget = Budget::new(10);
        let mut a = Held::new(&budget);
        a.extend(b"123456").unwrap();
        let mut b = Held::new(&budget);
        assert!(matches!(b.extend(b"12345"), Err(Unreadable::Busy { limit: 10 })));
        b.extend(b"1234").unwrap();
        assert_eq!(budget.used(), 10);
        drop(a);
        assert_eq!(budget.used(), 4);
        b.extend(b"123456").unwrap();
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    fn pair() -> (UnixStream, UnixStream) {
        UnixStream::pair().unwrap()
    }

    const FAR: Duration = Duration::from_secs(60);

    #[test]
    fn reads_up_to_the_newline_or_the_end() {
        let budget = Budget::new(1 << 20);
        let (mut client, server) = pair();
        client.write_all(b"{\"cmd\":\"reload\"}\nignored").unwrap();
        let line = read_line(&server, 100, FAR, &budget).unwrap();
        assert_eq!(line.bytes(), b"{\"cmd\":\"reload\"}");
        assert_eq!(budget.used(), 16);
        drop(line);
        assert_eq!(budget.used(), 0);

        let (mut client, server) = pair();
        client.write_all(b"{\"cmd\":\"reload\"}").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let line = read_line(&server, 100, FAR, &budget).unwrap();
        assert_eq!(line.bytes(), b"{\"cmd\":\"reload\"}");
    }

    /// Lines sent in one write, and a line split over writes, come one
    /// per read of the same `Lines`, each counted on its own; what is
    /// left after the last newline is the start of the next line.
    #[test]
    fn lines_of_one_connection_keep_what_a_read_took_past_a_line() {
        let budget = Budget::new(1 << 20);
        let (mut client, server) = pair();
        client.write_all(b"one\ntwo\nthr").unwrap();
        let mut lines = Lines::default();
        let one = lines.read(&server, 100, FAR, &budget).unwrap();
        assert_eq!(one.bytes(), b"one");
        assert_eq!(budget.used(), 3, "only the line is held, not what follows it");
        let two = lines.read(&server, 100, FAR, &budget).unwrap();
        assert_eq!(two.bytes(), b"two");
        client.write_all(b"ee\n").unwrap();
        assert_eq!(lines.read(&server, 100, FAR, &budget).unwrap().bytes(), b"three");
        drop((one, two));
        client.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(lines.read(&server, 100, FAR, &budget).unwrap().bytes(), b"");
        // The bound holds for a line that began in an earlier read.
        let (mut client, server) = pair();
        client.write_all(b"a\n0123456789ab\n").unwrap();
        let mut lines = Lines::default();
        assert_eq!(lines.read(&server, 10, FAR, &budget).unwrap().bytes(), b"a");
        assert!(matches!(
            lines.read(&server, 10, FAR, &budget),
            Err(Unreadable::Bad(BadRequest::TooLong { limit: 10 }))
        ));
    }

    /// A line that follows another and does not come in time is told so
    /// from the request before it, not from connecting.
    #[test]
    fn a_slow_line_after_a_request_counts_from_that_request() {
        let budget = Budget::new(1 << 20);
        let (mut client, server) = pair();
        client.write_all(b"one\n").unwrap();
        let mut lines = Lines::default();
        assert_eq!(lines.read(&server, 100, FAR, &budget).unwrap().bytes(), b"one");
        let err = lines
            .read(&server, 100, Duration::from_millis(50), &budget)
            .err()
            .expect("no second line");
        assert!(
            matches!(
                err,
                Unreadable::Bad(BadRequest::TooSlow {
                    since: Since::RequestBefore,
                    ..
                })
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "bad request: no whole line within 0.05s of the request before it (which said `follows`) (a request is one line, sent at once)"
        );
        drop(client);
    }

    /// The bound is on the line: exactly `max` bytes and a newline pass,
    /// one more byte does not (even when it comes in another read).
    #[test]
    fn a_line_longer_than_the_bound_is_refused() {
        let budget = Budget::new(1 << 20);
        let (mut client, server) = pair();
        client.write_all(&[b'x'; 10]).unwrap();
        client.write_all(b"\n").unwrap();
        assert_eq!(read_line(&server, 10, FAR, &budget).unwrap().bytes().len(), 10);

        let (mut client, server) = pair();
        client.write_all(&[b'x'; 10]).unwrap();
        let reader = std::thread::spawn(move || {
            let budget = Budget::new(1 << 20);
            read_line(&server, 10, FAR, &budget).err().map(|e| e.to_string())
        });
        client.write_all(b"x\n").unwrap();
        assert_eq!(
            reader.join().unwrap().as_deref(),
            Some("bad request: longer than 10 bytes without a newline")
        );
    }

    /// A byte every few milliseconds does not move the deadline: the read
    /// ends at it with "too slow", though no single read waited long.
    #[test]
    fn a_trickle_does_not_stretch_the_deadline() {
        let budget = Budget::new(1 << 20);
        let (mut client, server) = pair();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let trickle = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) && client.write_all(b" ").is_ok() {
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        let err = read_line(&server, 1 << 20, Duration::from_millis(300), &budget)
            .err()
            .expect("too slow");
        stop.store(true, Ordering::Relaxed);
        trickle.join().unwrap();
        assert!(matches!(err, Unreadable::Bad(BadRequest::TooSlow { .. })), "{err}");
        assert!(
            err.to_string().starts_with("bad request: no whole line within"),
            "{err}"
        );
    }

    /// A client that does not read its answer is let go at the deadline,
    /// with an error, rather than holding its thread.
    #[test]
    fn an_answer_nobody_reads_stops_at_the_deadline() {
        let (_client, server) = pair();
        let big = vec![b'x'; 16 << 20];
        let err = write_before(&server, &big, Instant::now() + Duration::from_millis(200)).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ),
            "{err}"
        );
    }

    #[test]
    fn writes_all_of_the_answer() {
        let (client, server) = pair();
        write_before(&server, b"{\"ok\":true}\n", Instant::now() + FAR).unwrap();
        drop(server);
        let mut got = String::new();
        (&client).read_to_string(&mut got).unwrap();
        assert_eq!(got, "{\"ok\":true}\n");
    }
}
