//! A client that asked for events (`nftban events`): after its answer, the
//! events its subscription gets, one JSON line each, for as long as it
//! stays.
//!
//! It is the one long-lived kind of client. Its connection has no answer
//! deadline: a reader that is slow (a paused `nftban events | less`) is not
//! cut, it loses events in its own bounded queue (the engine never waits
//! for it) and reads a `lost` event once it catches up. It leaves when it
//! closes the connection: a write fails, or, while no event comes, a check
//! each [`CHECK`] sees it hung up. Its slot among the control socket's
//! clients is held meanwhile, and the hub caps subscribers on its own.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::events::{Next, Subscription};

/// How often a subscriber with nothing to read is checked for a hang-up.
const CHECK: Duration = Duration::from_secs(1);

/// Events written in one go at most, when many wait.
const BATCH: usize = 256;

/// Write what `sub` gets to `stream` until the client leaves or the
/// daemon stops.
pub(super) fn follow(stream: &UnixStream, mut sub: Subscription) {
    // No deadline for a write: a slow reader loses events instead.
    if stream.set_write_timeout(None).is_err() {
        return;
    }
    let mut out = stream;
    loop {
        let first = match sub.next(CHECK) {
            Next::Event(e) => e,
            Next::Idle if hung_up(stream) => return,
            Next::Idle => continue,
            Next::Closed => return,
        };
        let mut lines = first.json_line();
        for _ in 1..BATCH {
            match sub.try_next() {
                Some(e) => lines.extend_from_slice(&e.json_line()),
                None => break,
            }
        }
        if let Err(e) = out.write_all(&lines) {
            tracing::debug!(error = %e, "events subscriber left");
            return;
        }
    }
}

/// Whether the client closed its end (or the connection broke), without
/// reading what it may have sent.
fn hung_up(stream: &UnixStream) -> bool {
    let mut fd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one pollfd that we own, for an open descriptor; no wait.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n > 0 && fd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}
