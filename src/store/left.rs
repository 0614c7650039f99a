//! What a crashed run left in the pending file: how much of it SQLite
//! holds (a record every move keeps), and moving the rest into SQLite at
//! the start, a piece at a time.

use std::path::Path;
use std::time::SystemTime;

use rusqlite::{params, Connection, OptionalExtension};

use super::{pending, row, secs, Failed, Result, Store, INSERT};

/// A ban of the pending file left by an earlier run, unless SQLite holds
/// it already (the run died after its commit but before emptying the
/// file, or after a move by the mover thread, which never empties it).
const INSERT_UNLESS_HELD: &str = "INSERT INTO bans (jail, net, banned_at, expires_at, origin, reason)
     SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE NOT EXISTS (SELECT 1 FROM bans
         WHERE net = ?2 AND jail = ?1 AND banned_at = ?3 AND expires_at = ?4)";

/// An unban of the pending file left by an earlier run: as `LIFT`, but
/// only of bans from before it, since SQLite may hold bans that followed
/// it already (the run died after its commit but before emptying the
/// file). A ban in the same second as the unban that followed it is
/// lifted too: the file's seconds cannot tell the two apart.
const LIFT_LEFT: &str =
    "UPDATE bans SET unbanned_at = ?1 WHERE net = ?2 AND jail = ?3 AND unbanned_at IS NULL AND banned_at <= ?1";

/// [`LIFT_LEFT`] in every jail.
const LIFT_LEFT_ALL: &str =
    "UPDATE bans SET unbanned_at = ?1 WHERE net = ?2 AND unbanned_at IS NULL AND banned_at <= ?1";

/// How far into the pending file SQLite holds its lines, in bytes: a row
/// of `positions` under the pending file's own path (a file nftban reads
/// back, as it reads logs; a table of its own would be a new schema
/// version, which an older nftban refuses). Every move sets it in its own
/// transaction to the end of what it moved; while the file is emptied it
/// says "not known" (-1), and 0 once it is empty ([`Store::empty_pending`]),
/// so it never points into lines written after. A start skips what it
/// says SQLite holds and inserts the rest without a look; not known (or a
/// history older than this row), it checks the lines against the history.
const SET_HELD: &str = "INSERT INTO positions (path, offset, head_len, head_hash, updated_at) VALUES (?1, ?2, 0, 0, ?3)
     ON CONFLICT(path) DO UPDATE SET offset = ?2, updated_at = ?3";

/// Record with `c` that SQLite holds the first `held` bytes of the
/// pending file at `path`, or (`None`) that this is not known (see
/// [`SET_HELD`]).
pub(super) fn set_held(c: &Connection, path: &Path, held: Option<u64>) -> rusqlite::Result<()> {
    let offset = held.map_or(-1, |h| i64::try_from(h).unwrap_or(i64::MAX));
    c.prepare_cached(SET_HELD)?
        .execute(params![path.to_string_lossy(), offset, secs(SystemTime::now())])?;
    Ok(())
}

/// How many bytes of the pending file at `path` SQLite says it holds
/// (see [`SET_HELD`]); `None` if it does not know.
pub(super) fn held(c: &Connection, path: &Path) -> rusqlite::Result<Option<u64>> {
    let offset: Option<i64> = c
        .prepare_cached("SELECT offset FROM positions WHERE path = ?1")?
        .query_row(params![path.to_string_lossy()], |r| r.get(0))
        .optional()?;
    Ok(offset.and_then(|o| u64::try_from(o).ok()))
}

/// Move what an earlier run left in the pending file into SQLite with `c`,
/// in a transaction the caller opened: each ban unless SQLite holds it
/// already, each unban of the bans before it.
///
/// SQLite holds a prefix of the file's lines: moves go in the file's
/// order, each in one transaction, and the file is emptied only once
/// SQLite holds it all. So the check stops at the first ban SQLite does not
/// hold (`checking` turns false; it carries over from one call to the
/// next, for a file moved in pieces), and the bans after it are inserted
/// as they are. Checking them too was wrong, not only slow: a ban made
/// again in the same second as an unbanned one, with the same bantime, is
/// the same row, and was taken for it and lost.
pub(super) fn move_left(c: &Connection, left: &[pending::Entry], checking: &mut bool) -> rusqlite::Result<()> {
    for entry in left {
        match entry {
            pending::Entry::Ban(b) if *checking => {
                let inserted = c.prepare_cached(INSERT_UNLESS_HELD)?.execute(row(b))?;
                *checking = inserted == 0;
                inserted
            }
            pending::Entry::Ban(b) => c.prepare_cached(INSERT)?.execute(row(b))?,
            pending::Entry::Lift(l) => {
                let (at, net) = (secs(l.at), l.net.to_string());
                match &l.jail {
                    Some(jail) => c.prepare_cached(LIFT_LEFT)?.execute(params![at, net, jail])?,
                    None => c.prepare_cached(LIFT_LEFT_ALL)?.execute(params![at, net])?,
                }
            }
        };
    }
    Ok(())
}

impl Store {
    /// Put what a crashed run left in the first `left` bytes of the
    /// pending file into SQLite (see [`move_left`]), read in pieces, in one
    /// transaction; then empty the file. Returns how many bans and unbans
    /// it moved.
    pub(super) fn replay(&mut self, left: u64) -> Result<usize> {
        let (conn, pending) = (&mut self.conn, &self.pending);
        let moved = (|| -> std::result::Result<usize, Failed> {
            let tx = conn.transaction()?;
            // What SQLite says it holds is skipped unread; the rest needs
            // no check. Not known, or not at a line's end (a history from
            // another time beside this file): each line is checked.
            let held = held(&tx, pending.path())?.map(|h| h.min(left));
            let (from, mut checking) = match held {
                Some(h) if pending.ends_line(h)? => (h, false),
                _ => (0, true),
            };
            let mut moved = 0;
            pending.each_left(from, left, |entries| -> std::result::Result<(), Failed> {
                move_left(&tx, &entries, &mut checking)?;
                moved += entries.len();
                Ok(())
            })?;
            set_held(&tx, pending.path(), Some(left))?;
            tx.commit()?;
            Ok(moved)
        })();
        let moved = moved.map_err(|failed| self.move_err(failed))?;
        self.empty_pending().map_err(|e| self.pending_err(e))?;
        Ok(moved)
    }

    /// Empty the pending file, which SQLite holds all of, keeping what
    /// SQLite says it holds of it true (see [`SET_HELD`]): "not known"
    /// first (if even that cannot be written, the file keeps its lines,
    /// none of them waiting, for a later save to empty it), 0 once empty.
    /// A crash between the two leaves "not known": the next start checks
    /// what the file then holds.
    pub(super) fn empty_pending(&mut self) -> std::io::Result<()> {
        let path = self.pending.path().to_path_buf();
        if let Err(e) = set_held(&self.conn, &path, None) {
            tracing::debug!(error = %e, "{} not emptied yet", path.display());
            self.pending.none_waiting();
            return Ok(());
        }
        self.pending.clear()?;
        if let Err(e) = set_held(&self.conn, &path, Some(0)) {
            tracing::debug!(error = %e, "{} emptied; the history does not say so yet", path.display());
        }
        Ok(())
    }
}
