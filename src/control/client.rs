//! The CLI's end of the control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::{Request, Response};

/// Send one request and wait for the answer. Errors say which socket and
/// what to check.
pub fn call(socket: &Path, request: &Request) -> anyhow::Result<Response> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the nftban daemon at {}: {e}\n(is `nftban run` running? the socket path comes from `socket:` in the config given with --config or $NFTBAN_CONFIG)",
            socket.display()
        )
    })?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    if answer.is_empty() {
        anyhow::bail!(
            "the daemon at {} closed the connection without an answer",
            socket.display()
        );
    }
    Ok(serde_json::from_str(&answer)?)
}
