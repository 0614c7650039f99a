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

#[cfg(test)]
mod tests {
    use super::super::server::{serve, Limits, Server};
    use super::super::{Request, Response};
    use crate::events::{Event, Hub, Kind};
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    use std::time::SystemTime;

    /// A control server whose engine says yes to everything, with `hub`;
    /// the folder (keep it) and a connected subscriber, past its answer.
    fn subscribed(hub: &Hub) -> (tempfile::TempDir, BufReader<UnixStream>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let server = Server::bind(&path).unwrap();
        let listener = server.listener().unwrap();
        std::mem::forget(server);
        let served = hub.clone();
        std::thread::spawn(move || {
            serve(listener, Limits::DEFAULT, Default::default(), served, |_| {
                Response::ok(serde_json::json!({"events": 1}))
            })
        });
        let mut c = UnixStream::connect(&path).unwrap();
        // A hang is the failure these tests would show: an error instead.
        c.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        c.write_all(b"{\"cmd\":\"events\",\"jail\":null}\n").unwrap();
        let mut reader = BufReader::new(c);
        let mut answer = String::new();
        reader.read_line(&mut answer).unwrap();
        assert_eq!(answer, "{\"ok\":true,\"data\":{\"events\":1}}\n");
        (dir, reader)
    }

    fn ban(i: u32) -> Event {
        Event::new(
            Kind::Ban,
            "sshd",
            format!("10.0.{}.{}", i / 256, i % 256),
            SystemTime::now(),
        )
    }

    /// A subscriber that does not read holds neither the publisher nor the
    /// other clients: the events past its socket and its queue are lost,
    /// and once it reads it gets the rest with the count of what it lost.
    #[test]
    fn a_client_that_does_not_read_loses_events_and_is_told() {
        let hub = Hub::new(8, 4);
        let (_dir, mut reader) = subscribed(&hub);
        const N: u32 = 20_000;
        // Far more than the socket's buffer and the queue hold: returns.
        for i in 0..N {
            hub.publish(ban(i));
        }
        // Read until every event is accounted for: the count of those lost
        // last comes once the queue is found empty.
        let (mut seen, mut lost) = (0u64, 0u64);
        while seen + lost < u64::from(N) {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let e: Event = serde_json::from_str(&line).unwrap();
            match e.event {
                Kind::Ban => seen += 1,
                Kind::Lost => lost += e.lost.unwrap(),
                other => panic!("{other:?}"),
            }
        }
        assert!(lost > 0, "nothing lost of {N} events to a client that did not read");
        assert_eq!(seen + lost, u64::from(N));
    }

    /// A subscriber that hangs up while no event comes is noticed and
    /// leaves the hub.
    #[test]
    fn a_client_that_hangs_up_leaves_the_hub() {
        let hub = Hub::default();
        let (_dir, reader) = subscribed(&hub);
        assert!(hub.listened());
        drop(reader);
        crate::control::tests::wait_for("the subscriber to leave", || {
            // The hub forgets a gone subscriber at its next publish.
            hub.publish(ban(1));
            (!hub.listened()).then_some(())
        });
    }

    /// An `events` request past the hub's cap is answered busy.
    #[test]
    fn past_the_cap_a_subscription_is_busy() {
        let hub = Hub::new(8, 1);
        let (dir, _first) = subscribed(&hub);
        let r = crate::control::client::call(&dir.path().join("s.sock"), &Request::Events { jail: None }).unwrap();
        assert_eq!(
            r.error.as_deref(),
            Some("busy: 1 subscribers of events already; try again")
        );
    }
}
