//! Bans marked lifted in the history (by hand, replaced by a prefix, a
//! jail that left the config): they are not restored again. Each moves
//! the pending file's bans into SQLite first, so the bans it marks are
//! there.

use super::*;

impl Store {
    /// Mark running bans of `net` as lifted, in one jail or all; they will
    /// not be restored. Returns how many rows changed.
    pub fn record_unban(&mut self, jail: Option<&str>, net: &IpNet, at: SystemTime) -> Result<usize> {
        self.sync()?;
        let n = match jail {
            Some(j) => self.conn.execute(
                "UPDATE bans SET unbanned_at = ?1 WHERE net = ?2 AND jail = ?3 AND unbanned_at IS NULL",
                params![secs(at), net.to_string(), j],
            ),
            None => self.conn.execute(
                "UPDATE bans SET unbanned_at = ?1 WHERE net = ?2 AND unbanned_at IS NULL",
                params![secs(at), net.to_string()],
            ),
        };
        n.map_err(|e| self.sql(e))
    }

    /// [`Store::record_unban`] of many nets in one transaction, one prepared
    /// statement: `nftban unban -` of 100,000 addresses is one commit (one
    /// fsync), not 100,000. All or nothing. Returns how many rows changed.
    pub fn record_unbans(&mut self, jail: Option<&str>, nets: &[IpNet], at: SystemTime) -> Result<usize> {
        self.sync()?;
        let c = &self.conn;
        let sql = match jail {
            Some(_) => "UPDATE bans SET unbanned_at = ?1 WHERE net = ?2 AND jail = ?3 AND unbanned_at IS NULL",
            None => "UPDATE bans SET unbanned_at = ?1 WHERE net = ?2 AND unbanned_at IS NULL",
        };
        let run = || -> rusqlite::Result<usize> {
            c.prepare_cached("BEGIN")?.execute([])?;
            let mut stmt = c.prepare_cached(sql)?;
            let mut n = 0;
            let at = secs(at);
            for net in nets {
                n += match jail {
                    Some(j) => stmt.execute(params![at, net.to_string(), j])?,
                    None => stmt.execute(params![at, net.to_string()])?,
                };
            }
            c.prepare_cached("COMMIT")?.execute([])?;
            Ok(n)
        };
        let done = run();
        if done.is_err() && !c.is_autocommit() {
            let _ = c.execute_batch("ROLLBACK");
        }
        self.checkpoints.nudge();
        done.map_err(|e| self.sql(e))
    }

    /// Mark the running bans of a jail as lifted (the jail left the config).
    pub fn record_jail_removed(&mut self, jail: &str, at: SystemTime) -> Result<usize> {
        self.sync()?;
        self.conn
            .execute(
                "UPDATE bans SET unbanned_at = ?1 WHERE jail = ?2 AND unbanned_at IS NULL",
                params![secs(at), jail],
            )
            .map_err(|e| self.sql(e))
    }
}
