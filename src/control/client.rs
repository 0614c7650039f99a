//! The CLI's end of the control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::{Request, Response};

/// Why a request got no answer from the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket (or it cannot be opened).
    #[error(
        "cannot reach the nftban daemon at {}: {error}\n(is `nftban run` running? the socket path comes from `socket:` in the config given with --config or $NFTBAN_CONFIG)",
        .socket.display()
    )]
    Unreachable { socket: PathBuf, error: std::io::Error },
    /// The connection broke while asking or reading the answer.
    #[error("talking to the daemon at {}: {error}", .socket.display())]
    Io { socket: PathBuf, error: std::io::Error },
    /// The daemon closed the connection without answering.
    #[error("the daemon at {} closed the connection without an answer", .socket.display())]
    NoAnswer { socket: PathBuf },
    /// The answer is not the protocol's JSON.
    #[error("the daemon at {} answered something that is not its protocol: {error}", .socket.display())]
    BadAnswer { socket: PathBuf, error: serde_json::Error },
}

/// `request` as its line. A request is plain data: it always serializes.
fn line_of(request: &Request) -> Vec<u8> {
    let mut line = serde_json::to_vec(request).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Send one request and wait for the answer. Errors say which socket and
/// what to check. The line is made before connecting, so that the daemon's
/// deadline for it is spent on sending it only.
pub fn call(socket: &Path, request: &Request) -> Result<Response, ClientError> {
    ask(socket, request).map(|(answer, _)| answer)
}

/// `request` sent on a connection of its own, its answer, and the
/// connection (for what follows the answer).
fn ask(socket: &Path, request: &Request) -> Result<(Response, Pipe), ClientError> {
    let line = line_of(request);
    let mut pipe = Pipe::open(socket)?;
    pipe.send_line(&line);
    Ok((pipe.answer()?, pipe))
}

/// Read the next answer line. `sent`: how the write of its request went.
/// The daemon answers some requests before it has read them all ("too
/// long", "busy") and closes: that answer, not the broken pipe of the
/// unfinished write, is what the user needs to see.
fn read_answer(reader: &mut impl BufRead, socket: &Path, sent: std::io::Result<()>) -> Result<Response, ClientError> {
    let io = |error| ClientError::Io {
        socket: socket.to_path_buf(),
        error,
    };
    let mut answer = String::new();
    let read = reader.read_line(&mut answer);
    if answer.is_empty() {
        sent.map_err(io)?;
    }
    read.map_err(io)?;
    if answer.is_empty() {
        return Err(ClientError::NoAnswer {
            socket: socket.to_path_buf(),
        });
    }
    serde_json::from_str(&answer).map_err(|error| ClientError::BadAnswer {
        socket: socket.to_path_buf(),
        error,
    })
}

/// A connection that carries the requests of one command one after the
/// other, each sent before the answer to the one before it is read (the
/// chunks of a `ban -` that say `follows`): the answers come in order.
pub struct Pipe {
    socket: PathBuf,
    stream: UnixStream,
    answers: BufReader<UnixStream>,
    /// A write that failed, for when its answer does not come either.
    unsent: Option<std::io::Error>,
}

impl Pipe {
    pub fn open(socket: &Path) -> Result<Pipe, ClientError> {
        let stream = UnixStream::connect(socket).map_err(|error| ClientError::Unreachable {
            socket: socket.to_path_buf(),
            error,
        })?;
        let answers = stream.try_clone().map_err(|error| ClientError::Io {
            socket: socket.to_path_buf(),
            error,
        })?;
        Ok(Pipe {
            socket: socket.to_path_buf(),
            stream,
            answers: BufReader::with_capacity(1 << 16, answers),
            unsent: None,
        })
    }

    /// Send `request`. A failed write shows when its answer is read: the
    /// daemon may have answered why before it closed.
    pub fn send(&mut self, request: &Request) {
        self.send_line(&line_of(request));
    }

    fn send_line(&mut self, line: &[u8]) {
        if self.unsent.is_none() {
            self.unsent = self.stream.write_all(line).err();
        }
    }

    /// The next answer, to the oldest request sent and not yet answered.
    pub fn answer(&mut self) -> Result<Response, ClientError> {
        let sent = match self.unsent.take() {
            Some(e) => Err(e),
            None => Ok(()),
        };
        read_answer(&mut self.answers, &self.socket, sent)
    }
}

/// Subscribe with `request` (`events`): the daemon's answer, and, if it is
/// `ok`, the connection to read the events from, one JSON line each.
pub fn subscribe(socket: &Path, request: &Request) -> Result<(Response, BufReader<UnixStream>), ClientError> {
    ask(socket, request).map(|(answer, pipe)| (answer, pipe.answers))
}
