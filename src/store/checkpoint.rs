//! The WAL's checkpoints, on a thread of their own.
//!
//! In WAL mode a commit appends the pages it changed to the WAL, and by
//! default the connection that commits also copies them back into the
//! database file (a checkpoint) once the WAL passes 1,000 pages, inside
//! that commit. For a bulk ban that copy is most of the `bans_net` index,
//! on the engine's thread, whose next job is the kernel (its share of the
//! daemon's time during a `ban -` of a million is in docs/performance.md).
//! So the engine's connection leaves checkpoints
//! to a thread with a connection of its own: each commit nudges it, and it
//! checkpoints in passive mode (it never waits for, nor blocks, the
//! engine's reads and writes). Nudges while it works are folded into one.
//!
//! The engine's connection still checkpoints by itself past
//! [`BACKSTOP_PAGES`] (the thread could not open the file, or falls far
//! behind), so the WAL never grows without bound.

use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

/// WAL pages past which a commit checkpoints by itself (64 MiB of 4 KiB
/// pages; SQLite's default is 1,000).
pub(super) const BACKSTOP_PAGES: i64 = 16_384;

/// The checkpoint thread, or nothing if it could not start.
pub(super) struct Checkpoints {
    nudge: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// A connection to the history at `path` for a thread beside the
/// engine's (`what`: its name in the log), set up further by `setup`.
/// The engine's connection checkpoints when it closes; such a one never
/// does, so a database found damaged and closed as it is
/// (`Store::replace_damaged`) is not written to by it. `None` (said at
/// debug level) if it cannot be opened: the engine's connection then does
/// that thread's work itself.
pub(super) fn open_beside(
    path: &Path,
    what: &str,
    setup: impl FnOnce(&Connection) -> rusqlite::Result<()>,
) -> Option<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let opened = Connection::open_with_flags(path, flags).and_then(|conn| {
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        setup(&conn)?;
        Ok(conn)
    });
    opened
        .map_err(|e| tracing::debug!(error = %e, "no {what} thread for {}", path.display()))
        .ok()
}

impl Checkpoints {
    /// Start checkpointing the database at `path` (it exists: the engine's
    /// connection made it). If that fails, the engine's connection
    /// checkpoints by itself past [`BACKSTOP_PAGES`].
    pub(super) fn start(path: &Path) -> Checkpoints {
        let Some(conn) = open_beside(path, "checkpoint", |_| Ok(())) else {
            return Checkpoints::none();
        };
        let (nudge, nudged) = sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("nftban-checkpoint".into())
            .spawn(move || {
                // A nudge left when the store stops is still served: what
                // the last commit wrote is copied before the thread ends.
                while nudged.recv().is_ok() {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::debug!(error = %e, "checkpoint of the ban history failed; tried again after the next commit");
                    }
                }
            });
        match thread {
            Ok(thread) => Checkpoints {
                nudge: Some(nudge),
                thread: Some(thread),
            },
            Err(e) => {
                tracing::debug!(error = %e, "no checkpoint thread for {}", path.display());
                Checkpoints::none()
            }
        }
    }

    /// No thread: the engine's connection checkpoints by itself.
    pub(super) fn none() -> Checkpoints {
        Checkpoints {
            nudge: None,
            thread: None,
        }
    }

    /// A commit happened: checkpoint soon.
    pub(super) fn nudge(&self) {
        if let Some(nudge) = &self.nudge {
            // Full: a checkpoint is due already and will see this commit
            // too. Gone: the thread ended, and the backstop remains.
            let _ = nudge.try_send(());
        }
    }

    /// Serve the nudge left, then end the thread and close its connection.
    pub(super) fn stop(&mut self) {
        self.nudge = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.stop();
    }
}
