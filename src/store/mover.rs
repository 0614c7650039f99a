//! Big moves of pending bans into SQLite, on a thread of their own.
//!
//! A bulk ban (`ban -` of a million, a fleet's catch-up, a feed) appends
//! its bans to the pending file at the engine's pace; moving them into
//! SQLite costs about as much again (an insert into two indexes per ban),
//! and on the engine's thread that cost stopped the engine while it ran.
//! So a move of many is handed here: this thread, with a connection of its
//! own, reads the range of the pending file it was given (written whole
//! before it is handed over: the file is only appended to) and moves it
//! in one transaction (bans inserted, unbans applied, in order), while the
//! engine goes on.
//!
//! The store keeps its own writes out of the way meanwhile: anything that
//! writes or reads SQLite on the engine's connection waits for the move in
//! flight first ([`Mover::wait`]), so the two connections never compete
//! for SQLite's write lock and no read misses bans in flight. A move that
//! fails (another process holds the lock, a full disk) is rolled back and
//! its range stays pending, to be moved by the engine's next save.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::{move_lines, pending, set_held, BUSY_WAIT};

/// How long the mover waits without a move before it gives its page
/// cache back (`schema::give_back`): once a bulk is moved, a daemon that
/// took a million bans holds the bans, not the pages it wrote them with.
const IDLE: Duration = Duration::from_secs(1);

/// How a move ended: done, or why not.
pub(super) type Outcome = Result<(), String>;

/// A range of the pending file, `from..to` in bytes, to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Range {
    pub(super) from: u64,
    pub(super) to: u64,
}

/// The mover thread, or nothing (it could not start: the engine moves
/// everything itself, as it did before).
pub(super) struct Mover {
    jobs: Option<Sender<Range>>,
    done: Option<Receiver<Outcome>>,
    thread: Option<JoinHandle<()>>,
    /// The range handed over and not yet reported.
    in_flight: Option<Range>,
}

impl Mover {
    /// Start a mover for database `db`, reading pending lines from `file`
    /// (a clone of the pending file's descriptor: reads at an offset, so
    /// it shares nothing with the appends but the file). `None` if it
    /// cannot start.
    pub(super) fn start(db: &Path, file: File, pending_path: PathBuf) -> Mover {
        let setup = |conn: &Connection| {
            conn.busy_timeout(BUSY_WAIT)?;
            super::schema::settle_in(conn)
        };
        let Some(conn) = super::checkpoint::open_beside(db, "mover", setup) else {
            return Mover::none();
        };
        let (jobs, job) = channel::<Range>();
        let (report, done) = channel();
        let thread = std::thread::Builder::new()
            .name("nftban-history".into())
            .spawn(move || {
                // Whether the cache holds a move's pages: then wait at most
                // IDLE for the next move; else sleep until one comes.
                let mut holding = false;
                loop {
                    let next = if holding {
                        job.recv_timeout(IDLE)
                    } else {
                        job.recv().map_err(|_| RecvTimeoutError::Disconnected)
                    };
                    let range = match next {
                        Ok(range) => range,
                        Err(RecvTimeoutError::Timeout) => {
                            super::schema::give_back(&conn);
                            holding = false;
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    };
                    let moved = carry(&conn, &file, &pending_path, range).map_err(|e| e.to_string());
                    holding = true;
                    if report.send(moved).is_err() {
                        break;
                    }
                }
            });
        match thread {
            Ok(thread) => Mover {
                jobs: Some(jobs),
                done: Some(done),
                thread: Some(thread),
                in_flight: None,
            },
            Err(e) => {
                tracing::debug!(error = %e, "no mover thread for {}", db.display());
                Mover::none()
            }
        }
    }

    /// No thread: every move is the engine's.
    pub(super) fn none() -> Mover {
        Mover {
            jobs: None,
            done: None,
            thread: None,
            in_flight: None,
        }
    }

    /// Whether a move can be handed over now: a thread runs, and no move
    /// is in flight (a finished one is collected first: `Some` is its
    /// outcome, for the store to settle).
    pub(super) fn free(&mut self) -> (bool, Option<Outcome>) {
        let finished = match (&self.done, self.in_flight) {
            (Some(done), Some(_)) => done.try_recv().ok(),
            _ => None,
        };
        if finished.is_some() {
            self.in_flight = None;
        }
        (self.jobs.is_some() && self.in_flight.is_none(), finished)
    }

    /// Whether a thread runs to take moves.
    pub(super) fn runs(&self) -> bool {
        self.jobs.is_some()
    }

    /// Whether a move is in flight (as last collected by [`Mover::free`]).
    pub(super) fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Hand `range` over. False if the thread is gone (the caller keeps
    /// the range pending).
    pub(super) fn hand(&mut self, range: Range) -> bool {
        let sent = self.jobs.as_ref().is_some_and(|jobs| jobs.send(range).is_ok());
        if sent {
            self.in_flight = Some(range);
        } else {
            self.jobs = None;
        }
        sent
    }

    /// Wait for the move in flight, if any: its outcome.
    pub(super) fn wait(&mut self) -> Option<Outcome> {
        self.in_flight.take()?;
        let outcome = match self.done.as_ref().map(Receiver::recv) {
            Some(Ok(outcome)) => outcome,
            // The thread died (a panic): its transaction was not committed.
            _ => {
                self.jobs = None;
                Err("the history's mover thread ended".into())
            }
        };
        Some(outcome)
    }

    /// End the thread (after the move in flight) and close its connection.
    pub(super) fn stop(&mut self) -> Option<Outcome> {
        let finished = self.wait();
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.done = None;
        finished
    }
}

impl Drop for Mover {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Move the pending lines of `range` in one transaction, or none.
fn carry(conn: &Connection, file: &File, path: &Path, range: Range) -> Result<(), Box<dyn std::error::Error>> {
    conn.execute_batch("BEGIN")?;
    let written = pending::each_piece(
        file,
        range.from,
        range.to,
        |text, before| -> Result<(), Box<dyn std::error::Error>> { Ok(move_lines(conn, text, path, before)?) },
    )
    .and_then(|()| Ok(set_held(conn, path, Some(range.to))?));
    let end = if written.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.execute_batch(end);
    if ended.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    written?;
    ended?;
    Ok(())
}
