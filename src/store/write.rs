//! Writes of bans into the history: appended to the pending file, and
//! moved into SQLite (with the file positions, cursors and failure
//! windows) by the engine's thread, or for a big move by the mover thread
//! (see [`super::mover`]), which the engine's own reads and writes wait
//! for.

use super::*;

impl Store {
    /// Record bans: appended to the pending file, moved into SQLite with
    /// the next save, or at once when [`PENDING_MOST`] wait. Either way
    /// they survive `kill -9` once this returns.
    pub fn record_bans(&mut self, bans: &[BanRecord]) -> Result<()> {
        if bans.len() <= self.pending_most && self.append(|p| p.append(bans)) {
            return Ok(());
        }
        self.save(bans, &[], &[], &[])
    }

    /// Append lines to the pending file with `write`, and move what waits
    /// once [`PENDING_MOST`] lines do. False if the file cannot be
    /// appended to: the caller writes to SQLite instead.
    pub(super) fn append(&mut self, write: impl FnOnce(&mut pending::Pending) -> std::io::Result<()>) -> bool {
        match write(&mut self.pending) {
            Ok(()) => {
                if std::mem::take(&mut self.pending_failing) {
                    tracing::info!("{} can be appended to again", self.pending.path().display());
                }
                if self.pending.len() >= self.pending_most && !self.stalled && !self.hand_off() {
                    // No mover free: moved here, unless one is in
                    // flight (then the next write past the bound
                    // hands them over). In SQLite or not, they are
                    // recorded: a failure keeps them pending, and the
                    // engine's next save (which retries, and reports
                    // what fails) moves them. Until a save succeeds, no
                    // further ban waits here for SQLite's lock.
                    if !self.mover.busy() {
                        if let Err(e) = self.sync() {
                            self.stalled = true;
                            tracing::debug!(error = %e, "pending bans not moved into the history yet");
                        }
                    }
                }
                true
            }
            // Once when it starts, not per ban (a full disk fails them
            // all); SQLite is tried instead.
            Err(e) => {
                if !std::mem::replace(&mut self.pending_failing, true) {
                    tracing::warn!(
                        "cannot append to {}: {e}; writing bans to SQLite directly until it works again",
                        self.pending.path().display()
                    );
                }
                false
            }
        }
    }

    /// Record bans, file positions, journal cursors and failure windows in
    /// one transaction, with the pending bans: after a crash the history
    /// never holds a position past lines whose bans or failures it lacks.
    pub fn save(
        &mut self,
        bans: &[BanRecord],
        positions: &[(String, Position)],
        cursors: &[(String, String)],
        windows: &[FailureWindow],
    ) -> Result<()> {
        self.settle();
        self.commit(bans, positions, cursors, windows, true)
    }

    /// The engine's save of every second: as [`Store::save`], but it never
    /// waits for the mover. `Ok(false)`: a move is in flight, nothing was
    /// saved; try again later. Many pending bans are handed to the mover
    /// after the positions are saved (the pending file keeps them until
    /// then, and a start moves what it holds first, so no saved position
    /// is ever ahead of bans the history lacks).
    pub fn save_soon(
        &mut self,
        positions: &[(String, Position)],
        cursors: &[(String, String)],
        windows: &[FailureWindow],
    ) -> Result<bool> {
        self.mover_free();
        if self.mover.busy() {
            return Ok(false);
        }
        if self.may_hand_off() && self.mover.runs() && self.pending.len() >= self.hand_off_least {
            self.commit(&[], positions, cursors, windows, false)?;
            self.hand_off();
            return Ok(true);
        }
        self.save(&[], positions, cursors, windows).map(|()| true)
    }

    /// One transaction of `bans`, the positions, cursors and windows, and
    /// (with `with_pending`, and no move in flight) what the pending file
    /// holds, which is then emptied.
    fn commit(
        &mut self,
        bans: &[BanRecord],
        positions: &[(String, Position)],
        cursors: &[(String, String)],
        windows: &[FailureWindow],
        with_pending: bool,
    ) -> Result<()> {
        let pending = with_pending && self.has_pending();
        // A move of this many is the engine's own only when the mover
        // could not take it (the file past `FILE_MOST`, no mover): what it
        // filled the page cache with goes back after it, as the mover's.
        let big = pending && self.pending.len() >= PENDING_MOST;
        if bans.is_empty() && positions.is_empty() && cursors.is_empty() && windows.is_empty() && !pending {
            return Ok(());
        }
        let path = self.path.clone();
        let sql = |error| Error::Sql {
            path: path.clone(),
            error,
        };
        let left: &[pending::Entry] = if pending { &self.left } else { &[] };
        // BEGIN and COMMIT as cached statements: `Connection::transaction`
        // parses both again each time, which showed at hundreds of bans a
        // second (one transaction per burst of bans).
        let c = &self.conn;
        c.prepare_cached("BEGIN").and_then(|mut s| s.execute([])).map_err(sql)?;
        let written = (|| -> std::result::Result<(), Failed> {
            move_left(c, left, &mut true)?;
            if pending {
                // In pieces, not read back whole: past `FILE_MOST` this
                // move is of hundreds of MB.
                let path = self.pending.path();
                self.pending
                    .each_waiting(|text, before| -> std::result::Result<(), Failed> {
                        Ok(move_lines(c, text, path, before)?)
                    })?;
                set_held(c, path, Some(self.pending.size()))?;
            }
            let mut stmt = c.prepare_cached(INSERT)?;
            for b in bans {
                stmt.execute(row(b))?;
            }
            let mut stmt = c.prepare_cached(
                "INSERT INTO positions (path, offset, head_len, head_hash, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(path) DO UPDATE SET offset = ?2, head_len = ?3, head_hash = ?4, updated_at = ?5",
            )?;
            let now = secs(SystemTime::now());
            for (path, p) in positions {
                stmt.execute(params![
                    path,
                    p.offset as i64,
                    p.head_len as i64,
                    p.head_hash as i64,
                    now
                ])?;
            }
            let mut stmt = c.prepare_cached(
                "INSERT INTO cursors (source, cursor, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(source) DO UPDATE SET cursor = ?2, updated_at = ?3",
            )?;
            for (source, cursor) in cursors {
                stmt.execute(params![source, cursor, now])?;
            }
            for w in windows {
                let net = w.net.to_string();
                match &w.times {
                    Some(times) => {
                        let times: Vec<String> = times.iter().map(|t| secs(*t).to_string()).collect();
                        c.prepare_cached(
                            "INSERT INTO failures (jail, net, times) VALUES (?1, ?2, ?3)
                                 ON CONFLICT(jail, net) DO UPDATE SET times = ?3",
                        )?
                        .execute(params![w.jail, net, times.join(",")])?;
                    }
                    None => {
                        c.prepare_cached("DELETE FROM failures WHERE jail = ?1 AND net = ?2")?
                            .execute(params![w.jail, net])?;
                    }
                }
            }
            Ok(())
        })();
        let end = if written.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = c.prepare_cached(end).and_then(|mut s| s.execute([]));
        if ended.is_err() && !c.is_autocommit() {
            // A failed COMMIT (busy, disk full) leaves the transaction open:
            // end it, so the next BEGIN does not fail too.
            let _ = c.execute_batch("ROLLBACK");
        }
        written.map_err(|failed| self.move_err(failed))?;
        ended.map_err(sql)?;
        self.checkpoints.nudge();
        if big {
            self.give_back();
        }
        if !pending {
            return Ok(());
        }
        self.stalled = false;
        let replayed = !std::mem::take(&mut self.left).is_empty();
        if replayed || self.has_pending() {
            // If the file cannot be emptied, a crash replays its lines and
            // skips them there as already held.
            if let Err(e) = self.empty_pending() {
                tracing::warn!("cannot empty {}: {e}", self.pending.path().display());
            }
        }
        Ok(())
    }

    /// A mover thread for this store, reading its pending file; none if
    /// the file cannot be opened again for it.
    pub(super) fn start_mover(&self) -> mover::Mover {
        match self.pending.reader() {
            Ok(file) => mover::Mover::start(&self.path, file, self.pending.path().to_path_buf()),
            Err(e) => {
                tracing::debug!(error = %e, "no mover thread for {}", self.path.display());
                mover::Mover::none()
            }
        }
    }

    /// Take in the outcome of the move in flight, waiting for it: before
    /// the engine's connection reads or writes SQLite.
    pub(super) fn settle(&mut self) {
        if let Some(outcome) = self.mover.wait() {
            self.moved(outcome);
        }
    }

    /// A move by the mover ended: done, or its bans wait again, and the
    /// bound waits for a save that works (which tries the move itself).
    fn moved(&mut self, outcome: mover::Outcome) {
        match outcome {
            Ok(()) => {
                self.pending.handed_back(true);
                self.checkpoints.nudge();
                // Nothing came after the range: SQLite holds every line,
                // and a crash from here on has none to check again (what
                // SQLite says it holds is kept true, see `empty_pending`).
                if self.pending.len() == 0 && self.left.is_empty() {
                    if let Err(e) = self.empty_pending() {
                        tracing::warn!("cannot empty {}: {e}", self.pending.path().display());
                    }
                }
            }
            Err(e) => {
                self.pending.handed_back(false);
                self.stalled = true;
                tracing::debug!(error = %e, "pending bans not moved into the history yet");
            }
        }
    }

    /// Whether the mover can take a move now (a finished one taken in).
    fn mover_free(&mut self) -> bool {
        let (free, finished) = self.mover.free();
        if let Some(outcome) = finished {
            self.moved(outcome);
        }
        free
    }

    /// Whether what waits may go to the mover, as far as the store is
    /// concerned: no earlier run's bans to move first, no failed move
    /// waiting for a save that works, and the file under [`FILE_MOST`]
    /// (past it, the engine moves what waits itself: only that empties
    /// the file).
    fn may_hand_off(&self) -> bool {
        self.left.is_empty() && !self.stalled && self.pending.size() < FILE_MOST
    }

    /// Hand what waits to the mover: true if it took it.
    fn hand_off(&mut self) -> bool {
        if !self.may_hand_off() || !self.mover_free() {
            return false;
        }
        let range = self.pending.hand_off();
        if !self.mover.hand(range) {
            self.pending.handed_back(false);
            return false;
        }
        true
    }
}
