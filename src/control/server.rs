//! The daemon's end of the control socket.
//!
//! Each connection carries one request line and gets one response line,
//! always: a line that is not a request (not UTF-8, not JSON, too long, too
//! slow) is answered with what is wrong with it. Requests are handed to the
//! engine through `handle`, so all state changes happen on the engine's
//! thread, one request at a time, in order.
//!
//! Clients are served at once, each on a thread of its own, so that one
//! that connects and says nothing, or a byte now and then, holds only its
//! own thread, never `nftban status` or `nftban ban` behind it. A thread per
//! connection rather than a pool over poll(2): reading is then plain
//! blocking I/O with deadlines ([`line`](super::line)), and an idle client
//! costs a small stack ([`CLIENT_STACK`]), not the latency of the others
//! (bench/control.sh measures both). What a client may take is bounded by
//! [`Limits`]: a deadline for its whole request line, its size, the bytes
//! of all requests held at once, a deadline for taking its answer, and the
//! number of clients served at once, past which a new one is answered
//! "busy" and closed.
//!
//! One request is answered with more than one line: `events`, whose
//! answer is followed by the events as they happen ([`subscriber`](super::subscriber)).
//! And one connection carries more than one request: the chunks of a
//! `ban -` that say `follows`, each read while the one before is carried
//! out ([`serve_chunks`]).

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::line::{parse, write_before, Budget, Held, Lines, Unreadable};
use super::{Request, Response};
use crate::events::{Hub, Subscription};

/// Why the control socket cannot be bound. Each names the path.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A daemon answers on the path already.
    #[error("another nftban is already running on {}", .path.display())]
    InUse { path: PathBuf },
    /// Something other than a socket is at the path: it is never removed,
    /// since a typo in `socket:` must not delete a file.
    #[error(
        "{} is {what}, not a socket: nftban only replaces a socket left by a daemon that died; move it away or set `socket:` to another path",
        .path.display()
    )]
    NotASocket { path: PathBuf, what: &'static str },
    /// The folder for the socket cannot be created.
    #[error("cannot create the folder {}", .path.display())]
    Folder { path: PathBuf, source: std::io::Error },
    /// What is at the path cannot be looked at.
    #[error("cannot look at {}", .path.display())]
    Inspect { path: PathBuf, source: std::io::Error },
    /// A dead daemon's socket cannot be removed.
    #[error("cannot remove the socket {} left by a daemon that died", .path.display())]
    RemoveStale { path: PathBuf, source: std::io::Error },
    /// bind(2) or chmod(2) failed.
    #[error("cannot bind {} with mode 0600", .path.display())]
    Bind { path: PathBuf, source: std::io::Error },
}

/// What a file type is, in words, for [`BindError::NotASocket`].
fn file_kind(t: std::fs::FileType) -> &'static str {
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a fifo"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_char_device() {
        "a character device"
    } else {
        "not a socket"
    }
}

/// A bound control socket; the file is removed on drop.
pub struct Server {
    pub listener: UnixListener,
    path: PathBuf,
}

impl Server {
    /// Bind `path` with mode 0600. A socket left by a dead daemon is
    /// replaced; a live daemon on the same path is an error, and so is
    /// anything at the path that is not a socket (it is left alone).
    pub fn bind(path: &Path) -> Result<Server, BindError> {
        let at = |path: &Path| path.to_path_buf();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| BindError::Folder { path: at(dir), source })?;
        }
        // lstat, not stat: a symbolic link is not followed, nor removed.
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if UnixStream::connect(path).is_ok() {
                    return Err(BindError::InUse { path: at(path) });
                }
                std::fs::remove_file(path).map_err(|source| BindError::RemoveStale { path: at(path), source })?;
            }
            Ok(meta) => {
                return Err(BindError::NotASocket {
                    path: at(path),
                    what: file_kind(meta.file_type()),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(BindError::Inspect { path: at(path), source }),
        }
        let bind_err = |source| BindError::Bind { path: at(path), source };
        // Bind with a tight umask so the socket is never briefly open to all.
        // SAFETY: umask only changes this process's file-creation mask.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        unsafe { libc::umask(old) };
        let listener = bound.map_err(bind_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
        Ok(Server {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// A second handle on the socket, for the thread that serves it.
    pub fn listener(&self) -> std::io::Result<UnixListener> {
        self.listener.try_clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What one client may take of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; past it, a new one is answered "busy"
    /// and closed.
    pub clients: usize,
    /// The longest request line, in bytes.
    pub request_bytes: usize,
    /// Bytes of requests held at once, all clients together.
    pub held_bytes: usize,
    /// From the connection to a whole request line.
    pub read: Duration,
    /// To write the whole answer.
    pub write: Duration,
}

impl Limits {
    /// The limits of `nftban run` (docs/cli.md, "The control socket").
    /// A request line of [`BAN_CHUNK`](super::protocol::BAN_CHUNK)
    /// addresses in their longest forms is about half of `request_bytes`
    /// (`protocol::tests`). The CLI sends its line at once and reads its
    /// answer at once, so the deadlines only ever end clients that stall.
    pub const DEFAULT: Limits = Limits {
        clients: 4096,
        request_bytes: 1 << 20,
        held_bytes: 64 << 20,
        read: Duration::from_secs(5),
        write: Duration::from_secs(10),
    };

    /// These limits with at most half of `open_files` (the process's
    /// limit on descriptors) for clients: the sources, the history and
    /// netlink keep the rest.
    pub fn within_open_files(self, open_files: u64) -> Limits {
        let half = usize::try_from(open_files / 2).unwrap_or(usize::MAX);
        Limits {
            clients: self.clients.min(half).max(1),
            ..self
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// The stack of a client's thread: it reads a line, parses it (serde_json
/// stops nesting at 128 levels, `line::tests`), waits for the engine and
/// writes the answer. Small, since a thousand idle clients each hold one.
pub const CLIENT_STACK: usize = 256 << 10;

/// Raise the soft limit on open files to the hard one, so that the
/// clients [`Limits::clients`] admits get descriptors (systemd starts
/// services with a soft limit of 1024 and a hard one far above). Returns
/// the soft limit before and after.
pub fn raise_open_files() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the struct we own; raising the soft
        // limit up to the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((before, lim.rlim_cur))
}

/// Why a client is turned away without being read.
#[derive(Debug, thiserror::Error)]
enum Busy {
    #[error("busy: serving the most clients at once ({0}); try again")]
    Clients(usize),
    #[error("busy: cannot start a thread for this client ({0}); try again")]
    Thread(#[source] std::io::Error),
}

/// How many requests are being answered, from a whole request line to its
/// answer written, mirrored into the daemon's `answering` flag (true while
/// there is one): a reload restarts the process only once the flag is
/// down, so its "ok", and any other answer on its way, leaves first. The
/// count and the flag change together under the lock, so the flag never
/// says "none" while one is on its way.
struct InFlight {
    count: Mutex<usize>,
    flag: Arc<AtomicBool>,
}

impl InFlight {
    fn begin(&self) -> Answering<'_> {
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        *count += 1;
        self.flag.store(true, Ordering::SeqCst);
        Answering(self)
    }
}

/// One request being answered; dropped once its answer is written (or
/// cannot be).
struct Answering<'a>(&'a InFlight);

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        let mut count = self.0.count.lock().unwrap_or_else(|e| e.into_inner());
        *count -= 1;
        if *count == 0 {
            self.0.flag.store(false, Ordering::SeqCst);
        }
    }
}

/// What every client's thread shares.
struct Shared<H> {
    limits: Limits,
    handle: H,
    in_flight: InFlight,
    budget: Budget,
    /// Connections being served.
    open: AtomicUsize,
    /// Where `events` subscribers subscribe.
    hub: Hub,
}

/// A connection's place among [`Limits::clients`], given back on drop.
struct Slot<H>(Arc<Shared<H>>);

impl<H> Drop for Slot<H> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serve connections forever, each on a thread of its own, under
/// `limits`; `handle` answers each request (the daemon's hands it to the
/// engine, which takes requests one at a time, in order). `answering` is
/// true while some request's answer is not yet written (see [`InFlight`]).
/// `events` requests subscribe to `hub`.
pub fn serve<H>(listener: UnixListener, limits: Limits, answering: Arc<AtomicBool>, hub: Hub, handle: H)
where
    H: Fn(Request) -> Response + Send + Sync + 'static,
{
    let shared = Arc::new(Shared {
        limits,
        handle,
        in_flight: InFlight {
            count: Mutex::new(0),
            flag: answering,
        },
        budget: Budget::new(limits.held_bytes),
        open: AtomicUsize::new(0),
        hub,
    });
    let mut refused = Refused::default();
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                if let Err((stream, busy)) = admit(&shared, stream) {
                    refused.log(&busy);
                    turn_away(stream, &busy);
                }
            }
            Err(e) => {
                // Out of descriptors, most likely: the connection waits in
                // the backlog until a client leaves.
                tracing::warn!(error = %e, "control socket accept failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Give `stream` a slot and a thread, or say why not.
fn admit<H>(shared: &Arc<Shared<H>>, stream: UnixStream) -> Result<(), (UnixStream, Busy)>
where
    H: Fn(Request) -> Response + Send + Sync + 'static,
{
    let cap = shared.limits.clients;
    if shared.open.fetch_add(1, Ordering::SeqCst) >= cap {
        shared.open.fetch_sub(1, Ordering::SeqCst);
        return Err((stream, Busy::Clients(cap)));
    }
    let slot = Slot(shared.clone());
    // The stream goes over a channel once the thread exists, so that it
    // is still here to be answered if the thread cannot be started.
    let (give, take) = std::sync::mpsc::channel::<UnixStream>();
    let started = std::thread::Builder::new()
        .name("control-client".into())
        .stack_size(CLIENT_STACK)
        .spawn(move || {
            if let Ok(stream) = take.recv() {
                serve_client(&slot.0, stream);
            }
            drop(slot);
        });
    match started {
        Ok(_) => {
            let _ = give.send(stream);
            Ok(())
        }
        Err(e) => Err((stream, Busy::Thread(e))),
    }
}

/// Answer "busy" without waiting: a new connection's send buffer is
/// empty, so one short line never blocks (and if it would, the client is
/// closed without it rather than the acceptor held).
fn turn_away(stream: UnixStream, busy: &Busy) {
    let mut line = serde_json::to_vec(&Response::err(busy.to_string())).unwrap_or_default();
    line.push(b'\n');
    let _ = stream.set_nonblocking(true);
    let _ = (&stream).write(&line);
}

/// Refusals, logged at most once every [`Refused::EVERY`] with how many
/// there were, so that a flood of clients does not flood the log.
#[derive(Default)]
struct Refused {
    since_logged: u64,
    logged: Option<Instant>,
}

impl Refused {
    const EVERY: Duration = Duration::from_secs(10);

    fn log(&mut self, busy: &Busy) {
        self.since_logged += 1;
        if self.logged.is_some_and(|t| t.elapsed() < Refused::EVERY) {
            return;
        }
        tracing::warn!(
            refused = self.since_logged,
            "control socket: {} client(s) turned away: {busy}",
            self.since_logged
        );
        self.since_logged = 0;
        self.logged = Some(Instant::now());
    }
}

/// One client: read its request under the limits, have it answered, write
/// the answer before the write deadline. Every line gets an answer line;
/// only a broken connection gets none. A subscriber then gets its events.
fn serve_client<H: Fn(Request) -> Response + Sync>(shared: &Shared<H>, stream: UnixStream) {
    let limits = &shared.limits;
    let mut lines = Lines::default();
    let line = lines.read(&stream, limits.request_bytes, limits.read, &shared.budget);
    // The request's bytes stay counted until the answer is written, so
    // the budget also bounds requests waiting for the engine.
    let (response, answering, subscription) = match line.as_ref().map(|held| parse(held.bytes())) {
        Ok(Ok(request)) if request.follows() => {
            if let Ok(held) = line {
                serve_chunks(shared, &stream, lines, request, held);
            }
            return;
        }
        Ok(Ok(request)) => answer(shared, request),
        Ok(Err(bad)) => (Response::err(format!("bad request: {bad}")), None, None),
        Err(Unreadable::Io(e)) => {
            tracing::debug!(error = %e, "control connection broke before its request");
            return;
        }
        Err(unreadable) => (Response::err(unreadable.to_string()), None, None),
    };
    if !write_answer(&stream, &response, limits) {
        return;
    }
    drop((answering, line));
    if let Some(sub) = subscription.filter(|_| response.ok) {
        super::subscriber::follow(&stream, sub);
    }
}

/// Write `response`'s line before the write deadline: whether it was.
fn write_answer(stream: &UnixStream, response: &Response, limits: &Limits) -> bool {
    let mut out = serde_json::to_vec(response).unwrap_or_default();
    out.push(b'\n');
    match write_before(stream, &out, Instant::now() + limits.write) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "control answer not delivered");
            false
        }
    }
}

/// The requests of one command that follow each other on a connection
/// (`follows`, see [`Request::Unban`]), from `first`: each is carried out
/// on a thread of its own while this one reads and parses the next, and
/// is answered while the next is carried out. So the engine, which still
/// takes them one at a time and in order, does not wait between them for
/// the answer to be written, the client to read it and send the next, and
/// the next to be read and parsed. A refused request ends the connection
/// (the one after it, read already, is not carried out), as does a line
/// after it that is not a `ban` or `unban` (answered with why).
fn serve_chunks<H: Fn(Request) -> Response + Sync>(
    shared: &Shared<H>,
    stream: &UnixStream,
    mut lines: Lines,
    first: Request,
    held: Held<'_>,
) {
    let limits = &shared.limits;
    std::thread::scope(|s| {
        let mut follows = first.follows();
        let mut job = Job::start(s, shared, first, held);
        loop {
            let next = match follows {
                true => Next::read(shared, stream, &mut lines),
                false => Next::End,
            };
            let (response, answering, held) = job.finish();
            let (after, refusal) = match next {
                Next::Request(request, held) if response.ok => {
                    follows = request.follows();
                    (Some(Job::start(s, shared, request, held)), None)
                }
                Next::Bad(why) if response.ok => (None, Some(why)),
                _ => (None, None),
            };
            let written = write_answer(stream, &response, limits);
            drop((answering, held));
            match after {
                Some(next) if written => job = next,
                // Nobody reads the answers: the one started ends on its
                // own (the scope waits for it), unanswered.
                Some(_) => return,
                None => {
                    if let Some(why) = refusal.filter(|_| written) {
                        write_answer(stream, &Response::err(why), limits);
                    }
                    return;
                }
            }
        }
    });
}

/// A request being carried out: on a thread of its own, or (none could be
/// started) done already.
struct Job<'scope, 'a> {
    run: Result<std::thread::ScopedJoinHandle<'scope, Response>, Response>,
    answering: Answering<'a>,
    held: Held<'a>,
}

impl<'scope, 'a: 'scope> Job<'scope, 'a> {
    fn start<H: Fn(Request) -> Response + Sync>(
        s: &'scope std::thread::Scope<'scope, '_>,
        shared: &'a Shared<H>,
        request: Request,
        held: Held<'a>,
    ) -> Job<'scope, 'a> {
        let answering = shared.in_flight.begin();
        // The request goes over a channel once the thread exists, so that
        // it is still here to be carried out if the thread cannot start.
        let (give, take) = std::sync::mpsc::channel::<Request>();
        let started = std::thread::Builder::new()
            .name("control-chunk".into())
            .stack_size(CLIENT_STACK)
            .spawn_scoped(s, move || {
                take.recv()
                    .map_or_else(|_| Response::err("not carried out"), &shared.handle)
            });
        let run = match started {
            Ok(thread) => {
                let _ = give.send(request);
                Ok(thread)
            }
            Err(_) => Err((shared.handle)(request)),
        };
        Job { run, answering, held }
    }

    /// Wait for the answer: with what stays held until it is written.
    fn finish(self) -> (Response, Answering<'a>, Held<'a>) {
        let response = match self.run {
            Ok(thread) => thread
                .join()
                .unwrap_or_else(|_| Response::err("the request's thread failed")),
            Err(done) => done,
        };
        (response, self.answering, self.held)
    }
}

/// What came after a request that said `follows`.
enum Next<'a> {
    /// The next request of the command, and its line.
    Request(Request, Held<'a>),
    /// A line that is not one: why, for its answer.
    Bad(String),
    /// Nothing to answer: the connection broke, or no request was to follow.
    End,
}

impl<'a> Next<'a> {
    fn read<H>(shared: &'a Shared<H>, stream: &UnixStream, lines: &mut Lines) -> Next<'a> {
        let limits = &shared.limits;
        match lines.read(stream, limits.request_bytes, limits.read, &shared.budget) {
            Ok(held) => match parse(held.bytes()) {
                Ok(request @ (Request::Ban { .. } | Request::Unban { .. })) => Next::Request(request, held),
                Ok(_) => {
                    Next::Bad("bad request: only a `ban` or `unban` may follow a request that says `follows`".into())
                }
                Err(bad) => Next::Bad(format!("bad request: {bad}")),
            },
            Err(Unreadable::Io(e)) => {
                tracing::debug!(error = %e, "control connection broke before its next request");
                Next::End
            }
            Err(unreadable) => Next::Bad(unreadable.to_string()),
        }
    }
}

/// Have `request` answered, counted among those [`InFlight`] until its
/// answer is written. `events` subscribes first, so that no event after
/// the answer is missed, and only then asks whether its jail exists.
fn answer<'a, H: Fn(Request) -> Response>(
    shared: &'a Shared<H>,
    request: Request,
) -> (Response, Option<Answering<'a>>, Option<Subscription>) {
    let subscription = match &request {
        Request::Events { jail } => match shared.hub.subscribe(jail.clone()) {
            Ok(sub) => Some(sub),
            Err(busy) => return (Response::err(busy.to_string()), None, None),
        },
        _ => None,
    };
    let answering = shared.in_flight.begin();
    ((shared.handle)(request), Some(answering), subscription)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn binds_0600_replaces_stale_and_refuses_live() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/nftban.sock");
        let first = Server::bind(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let err = Server::bind(&path).err().expect("a live daemon holds the socket");
        assert!(err.to_string().contains("already running"), "{err}");
        // A dead daemon's socket file is replaced.
        std::mem::forget(first);
        let stale = UnixListener::bind(dir.path().join("x.sock")).unwrap();
        drop(stale);
        let _again = Server::bind(&dir.path().join("x.sock")).unwrap();
    }

    /// A server on a fresh socket with `limits` and the flag `answering`,
    /// answering with `handle`; the folder (keep it alive) and the socket.
    fn start_with(
        limits: Limits,
        answering: Arc<AtomicBool>,
        handle: impl Fn(Request) -> Response + Send + Sync + 'static,
    ) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let server = Server::bind(&path).unwrap();
        let listener = server.listener().unwrap();
        std::mem::forget(server);
        std::thread::spawn(move || serve(listener, limits, answering, Hub::default(), handle));
        (dir, path)
    }

    fn start(
        limits: Limits,
        handle: impl Fn(Request) -> Response + Send + Sync + 'static,
    ) -> (tempfile::TempDir, PathBuf) {
        start_with(limits, Default::default(), handle)
    }

    /// Short deadlines, for tests that wait for them.
    const QUICK: Limits = Limits {
        read: Duration::from_secs(1),
        write: Duration::from_millis(300),
        ..Limits::DEFAULT
    };

    /// Send raw bytes, then read the one answer line (a generous deadline:
    /// no answer at all is the failure this catches).
    fn exchange(path: &Path, bytes: &[u8]) -> String {
        let mut c = UnixStream::connect(path).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        // A refused request may be answered and closed before it is all
        // written: the answer is still there to read.
        let _ = c.write_all(bytes);
        let mut answer = String::new();
        let _ = BufReader::new(c).read_line(&mut answer);
        answer
    }

    /// The error of a one-line JSON answer.
    fn error_of(answer: &str) -> String {
        assert!(
            answer.ends_with('\n') && answer.matches('\n').count() == 1,
            "{answer:?}"
        );
        let r: Response = serde_json::from_str(answer).unwrap_or_else(|e| panic!("{e}: {answer:?}"));
        assert!(!r.ok, "{answer}");
        r.error.unwrap()
    }

    fn status() -> &'static [u8] {
        b"{\"cmd\":\"status\"}\n"
    }

    /// Whatever a client sends, it gets one line of JSON that says what
    /// was wrong; the server goes on serving.
    #[test]
    fn every_line_gets_one_json_answer() {
        let limits = Limits {
            request_bytes: 100,
            ..QUICK
        };
        let (_dir, path) = start(limits, |_| Response::ok("served"));
        let cases: [(&[u8], &str); 6] = [
            (b"{\"cmd\":\"status\",\"jail\":\"\xff\"}\n", "bad request: not UTF-8"),
            (b"hello\n", "bad request: not JSON"),
            (b"{\"cmd\":\"stop\"}\n", "bad request: unknown variant `stop`"),
            (b"\n", "bad request: empty"),
            (&[b' '; 5000], "bad request: longer than 100 bytes without a newline"),
            // Connected, and nothing more before the deadline.
            (b"", "bad request: no whole line within 1s of connecting"),
        ];
        for (bytes, want) in cases {
            let got = error_of(&exchange(&path, bytes));
            assert!(got.starts_with(want), "{want}: {got}");
        }
        assert_eq!(exchange(&path, status()), "{\"ok\":true,\"data\":\"served\"}\n");
    }

    /// Clients that say nothing, or a byte now and then, do not keep the
    /// others waiting.
    #[test]
    fn idle_and_trickling_clients_do_not_hold_the_others() {
        let (_dir, path) = start(Limits::DEFAULT, |_| Response::ok("served"));
        let idle: Vec<UnixStream> = (0..50).map(|_| UnixStream::connect(&path).unwrap()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let tricklers: Vec<_> = (0..5)
            .map(|_| {
                let mut c = UnixStream::connect(&path).unwrap();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    for b in b"{\"cmd\":\"status\"".iter().cycle() {
                        if stop.load(Ordering::Relaxed) || c.write_all(&[*b]).is_err() {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                })
            })
            .collect();
        for _ in 0..10 {
            assert_eq!(exchange(&path, status()), "{\"ok\":true,\"data\":\"served\"}\n");
        }
        stop.store(true, Ordering::Relaxed);
        for t in tricklers {
            t.join().unwrap();
        }
        drop(idle);
    }

    /// Past the cap a new client hears "busy" at once; a slot is free again
    /// once a client is done, here when a silent one reaches its deadline.
    #[test]
    fn past_the_cap_a_client_hears_busy_until_a_slot_frees() {
        let limits = Limits {
            clients: 2,
            read: Duration::from_secs(3),
            ..QUICK
        };
        let (_dir, path) = start(limits, |_| Response::ok("served"));
        // Accepted in order: these two hold both slots when the third comes.
        let idle: Vec<UnixStream> = (0..2).map(|_| UnixStream::connect(&path).unwrap()).collect();
        let got = error_of(&exchange(&path, status()));
        assert_eq!(got, "busy: serving the most clients at once (2); try again");
        crate::control::tests::wait_for("a free slot", || {
            (exchange(&path, status()) == "{\"ok\":true,\"data\":\"served\"}\n").then_some(())
        });
        drop(idle);
    }

    /// A client that asks and never reads its (large) answer is let go at
    /// the write deadline, and its slot serves others.
    #[test]
    fn a_client_that_does_not_read_its_answer_is_let_go() {
        let limits = Limits { clients: 1, ..QUICK };
        let big = "x".repeat(32 << 20);
        let (_dir, path) = start(limits, move |_| Response::ok(&big));
        let mut mute = UnixStream::connect(&path).unwrap();
        mute.write_all(status()).unwrap();
        crate::control::tests::wait_for("the slot back", || {
            let mut c = UnixStream::connect(&path).unwrap();
            c.write_all(b"{\"cmd\":\"status\"}\n").ok()?;
            let mut head = [0u8; 15];
            std::io::Read::read_exact(&mut c, &mut head).ok()?;
            (&head == b"{\"ok\":true,\"dat").then_some(())
        });
        drop(mute);
    }

    /// `answering` is up while any request is being answered and down once
    /// every answer is written: a reload waits for it before restarting.
    #[test]
    fn answering_is_up_until_every_answer_is_written() {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = Mutex::new(wait);
        let flag_seen = Arc::new(Mutex::new(Vec::new()));
        let seen = flag_seen.clone();
        let answering = Arc::new(AtomicBool::new(false));
        let flag = answering.clone();
        let (_dir, path) = start_with(Limits::DEFAULT, answering.clone(), move |_| {
            seen.lock().unwrap().push(flag.load(Ordering::SeqCst));
            wait.lock().unwrap().recv().unwrap();
            Response::ok("done")
        });
        assert!(!answering.load(Ordering::SeqCst), "up before any request");
        let clients: Vec<_> = (0..2)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || exchange(&path, status()))
            })
            .collect();
        crate::control::tests::wait_for("both requests in the handler", || {
            (flag_seen.lock().unwrap().len() == 2).then_some(())
        });
        release.send(()).unwrap();
        // One answer is written; the other request is still being answered.
        crate::control::tests::wait_for("the first answer", || {
            clients.iter().any(|c| c.is_finished()).then_some(())
        });
        assert!(answering.load(Ordering::SeqCst), "down with an answer still to write");
        release.send(()).unwrap();
        for c in clients {
            assert_eq!(c.join().unwrap(), "{\"ok\":true,\"data\":\"done\"}\n");
        }
        crate::control::tests::wait_for("the flag down", || (!answering.load(Ordering::SeqCst)).then_some(()));
        assert_eq!(*flag_seen.lock().unwrap(), [true, true]);
    }

    /// The daemon answers a request that is too long before it has all
    /// been sent, and closes: the CLI shows that answer, not the broken
    /// pipe of its unfinished write. Likewise for "busy".
    #[test]
    fn the_cli_shows_the_answer_to_a_request_cut_short() {
        let limits = Limits {
            request_bytes: 1000,
            ..Limits::DEFAULT
        };
        let (_dir, path) = start(limits, |_| Response::ok("served"));
        let ban = Request::Ban {
            addrs: (0..200_000)
                .map(|i| format!("10.{}.{}.1", i / 256 % 256, i % 256))
                .collect(),
            jail: None,
            bantime: None,
            force: false,
            more: false,
            follows: false,
        };
        let r = crate::control::client::call(&path, &ban).unwrap();
        assert_eq!(
            r.error.as_deref(),
            Some("bad request: longer than 1000 bytes without a newline")
        );

        let (_dir, path) = start(
            Limits {
                clients: 1,
                ..Limits::DEFAULT
            },
            |_| Response::ok("served"),
        );
        let _idle = UnixStream::connect(&path).unwrap();
        let r = crate::control::client::call(&path, &ban).unwrap();
        assert_eq!(
            r.error.as_deref(),
            Some("busy: serving the most clients at once (1); try again")
        );
    }

    #[test]
    fn the_cap_leaves_half_the_open_files_to_the_rest() {
        assert_eq!(Limits::DEFAULT.within_open_files(1024).clients, 512);
        assert_eq!(
            Limits::DEFAULT.within_open_files(524_288).clients,
            Limits::DEFAULT.clients
        );
        assert_eq!(Limits::DEFAULT.within_open_files(1).clients, 1);
    }

    /// `socket:` naming a file that is not a socket (a typo for the config
    /// file, a directory, a fifo) is an error naming the path and what it
    /// is; the file stays. Only a dead daemon's socket is ever removed.
    #[test]
    fn bind_refuses_to_remove_what_is_not_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nftban.yaml");
        std::fs::write(&file, "precious").unwrap();
        let err = Server::bind(&file).err().expect("a regular file is not a socket");
        let msg = err.to_string();
        assert!(msg.contains(&file.display().to_string()), "{msg}");
        assert!(msg.contains("a regular file"), "{msg}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious");

        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let err = Server::bind(&sub).err().expect("a directory is not a socket");
        assert!(err.to_string().contains("a directory"), "{err}");
        assert!(sub.is_dir());

        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo on a valid, NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = Server::bind(&fifo).err().expect("a fifo is not a socket");
        assert!(err.to_string().contains("a fifo"), "{err}");

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let err = Server::bind(&link).err().expect("a symbolic link is not a socket");
        assert!(err.to_string().contains("a symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious");
    }

    #[test]
    fn one_request_one_answer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let server = Server::bind(&path).unwrap();
        let listener = server.listener().unwrap();
        std::thread::spawn(move || {
            serve(
                listener,
                Limits::DEFAULT,
                Default::default(),
                Hub::default(),
                |req| match req {
                    Request::Status { jail, .. } => Response::ok(jail),
                    _ => Response::err("no"),
                },
            )
        });
        let r = crate::control::client::call(
            &path,
            &Request::Status {
                jail: Some("sshd".into()),
                brief: false,
            },
        )
        .unwrap();
        assert!(r.ok);
        assert_eq!(r.data.get(), r#""sshd""#);
        let r = crate::control::client::call(
            &path,
            &Request::Unban {
                addrs: vec![],
                jail: None,
                more: false,
                follows: false,
            },
        )
        .unwrap();
        assert_eq!(r.error.as_deref(), Some("no"));
    }

    /// Every answer line of a connection that sends `bytes` at once, until
    /// the daemon ends it.
    fn answers(path: &Path, bytes: &[u8]) -> Vec<String> {
        let mut c = UnixStream::connect(path).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = c.write_all(bytes);
        BufReader::new(c).lines().map(|l| l.unwrap()).collect()
    }

    /// The line of an unban of 192.0.2.`n` that says `more`, and `follows`
    /// if asked.
    fn chunk(n: u32, follows: bool) -> String {
        format!("{{\"cmd\":\"unban\",\"addrs\":[\"192.0.2.{n}\"],\"jail\":null,\"more\":true,\"follows\":{follows}}}\n")
    }

    /// A server whose handle answers an unban with its first address,
    /// refusing 192.0.2.`refuse`, and notes each it is handed (failing
    /// should two be handed at once).
    fn chunked(refuse: u32) -> (tempfile::TempDir, PathBuf, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let busy = Arc::new(AtomicBool::new(false));
        let noted = seen.clone();
        let (dir, path) = start(Limits::DEFAULT, move |req| {
            assert!(!busy.swap(true, Ordering::SeqCst), "two requests handed at once");
            let Request::Unban { addrs, .. } = req else {
                panic!("{req:?}")
            };
            noted.lock().unwrap().push(addrs[0].clone());
            busy.store(false, Ordering::SeqCst);
            match addrs[0] == format!("192.0.2.{refuse}") {
                true => Response::err("refused"),
                false => Response::ok(&addrs[0]),
            }
        });
        (dir, path, seen)
    }

    /// Requests that say `follows`, sent at once on one connection: each
    /// is carried out, one at a time and in order, and answered in order;
    /// the connection ends with the answer to the one that does not say
    /// it (the line after it is not read).
    #[test]
    fn requests_that_follow_are_carried_out_and_answered_in_order() {
        let (_dir, path, seen) = chunked(0);
        let mut bytes: String = (1..=3).map(|n| chunk(n, n < 3)).collect();
        bytes.push_str(std::str::from_utf8(status()).unwrap());
        let got = answers(&path, bytes.as_bytes());
        let want: Vec<String> = (1..=3)
            .map(|n| format!("{{\"ok\":true,\"data\":\"192.0.2.{n}\"}}"))
            .collect();
        assert_eq!(got, want);
        assert_eq!(*seen.lock().unwrap(), ["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
    }

    /// A refused request ends the connection: the one after it, sent
    /// already, is not carried out. A line after one that follows that is
    /// not a `ban` or `unban` is answered with why, and not carried out.
    #[test]
    fn a_refusal_or_another_request_ends_the_requests_that_follow() {
        let (_dir, path, seen) = chunked(2);
        let bytes: String = (1..=3).map(|n| chunk(n, n < 3)).collect();
        let got = answers(&path, bytes.as_bytes());
        assert_eq!(
            got,
            [
                r#"{"ok":true,"data":"192.0.2.1"}"#,
                r#"{"ok":false,"error":"refused","data":null}"#
            ]
        );
        assert_eq!(*seen.lock().unwrap(), ["192.0.2.1", "192.0.2.2"]);

        let (_dir, path, seen) = chunked(0);
        let mut bytes = chunk(1, true);
        bytes.push_str(std::str::from_utf8(status()).unwrap());
        let got = answers(&path, bytes.as_bytes());
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(
            error_of(&format!("{}\n", got[1])),
            "bad request: only a `ban` or `unban` may follow a request that says `follows`"
        );
        assert_eq!(*seen.lock().unwrap(), ["192.0.2.1"]);
    }
}
