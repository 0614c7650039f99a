//! Bans marked lifted in the history (by hand, replaced by a prefix, a
//! jail that left the config): they are not restored again. An unban is
//! a line of the pending file, moved into SQLite after the bans before it
//! (see [`super::pending`]); a removed jail moves the pending file's lines
//! into SQLite first, so the bans it marks are there.

use super::*;

impl Store {
    /// Mark running bans of `net` as lifted, in one jail or all; they will
    /// not be restored.
    pub fn record_unban(&mut self, jail: Option<&str>, net: &IpNet, at: SystemTime) -> Result<()> {
        self.record_unbans(jail, std::slice::from_ref(net), at)
    }

    /// [`Store::record_unban`] of many nets: appended to the pending file
    /// in one `write`, like bans, and moved into SQLite with them, so
    /// `nftban unban -` of 100,000 addresses costs the engine a line each,
    /// not an `UPDATE` each. If the file cannot be appended to, one
    /// transaction in SQLite. All or nothing.
    pub fn record_unbans(&mut self, jail: Option<&str>, nets: &[IpNet], at: SystemTime) -> Result<()> {
        if nets.is_empty() || nets.len() <= self.pending_most && self.append(|p| p.append_lifts(jail, nets, at)) {
            return Ok(());
        }
        self.lift_now(jail, nets, at)
    }

    /// Mark the bans lifted in SQLite, in one transaction, after what the
    /// pending file holds.
    fn lift_now(&mut self, jail: Option<&str>, nets: &[IpNet], at: SystemTime) -> Result<()> {
        self.sync()?;
        let c = &self.conn;
        let run = || -> rusqlite::Result<()> {
            c.prepare_cached("BEGIN")?.execute([])?;
            let mut stmt = c.prepare_cached(if jail.is_some() { LIFT } else { LIFT_ALL })?;
            let at = secs(at);
            for net in nets {
                match jail {
                    Some(j) => stmt.execute(params![at, net.to_string(), j])?,
                    None => stmt.execute(params![at, net.to_string()])?,
                };
            }
            c.prepare_cached("COMMIT")?.execute([])?;
            Ok(())
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
