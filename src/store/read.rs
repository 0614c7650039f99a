//! What the history holds, read back: the running bans to restore, the
//! saved file positions, journal cursors and failure windows, how often an
//! address was banned, recent bans for recidive, and the purge of what is
//! past keeping. Every read moves the pending file's bans in first.

use std::sync::Arc;

use super::*;

impl Store {
    /// Bans that are neither expired at `now` nor lifted: one per (jail,
    /// net), with the latest expiry.
    pub fn active(&mut self, now: SystemTime) -> Result<Vec<ActiveBan>> {
        let waiting = self.sync_for_read()?;
        // Grouped here rather than by `GROUP BY`: a row an unban in the
        // pending file lifted is left out before its group is made.
        let mut stmt = self
            .conn
            .prepare(
                "SELECT jail, net, expires_at, reason, origin, banned_at FROM bans
                 WHERE unbanned_at IS NULL AND expires_at > ?1 ORDER BY jail, net",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![secs(now)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut out: Vec<ActiveBan> = Vec::new();
        for row in rows {
            let (jail, net, expires, reason, origin, banned_at) = row.map_err(|e| self.sql(e))?;
            let Ok(net) = net.parse::<IpNet>() else {
                tracing::warn!(%net, "ban database holds an unreadable address; skipped");
                continue;
            };
            if waiting.lifted(&jail, &net, time(banned_at)) {
                continue;
            }
            let ban = ActiveBan {
                jail,
                net,
                expires: time(expires),
                reason,
                origin: origin.as_deref().and_then(Origin::parse),
            };
            match out.last_mut() {
                Some(a) if a.jail == ban.jail && a.net == ban.net => {
                    if ban.expires > a.expires {
                        *a = ban;
                    }
                }
                _ => out.push(ban),
            }
        }
        drop(stmt);
        // Bans not in SQLite yet are newer than every row there: each
        // runs, at least until its end, unless an unban after it lifted it.
        for b in waiting.running().filter(|b| b.expires > now).cloned() {
            match out.iter_mut().find(|a| a.jail == b.jail && a.net == b.net) {
                Some(a) if a.expires >= b.expires => {}
                Some(a) => {
                    a.expires = b.expires;
                    a.reason = b.reason;
                    a.origin = Some(b.origin);
                }
                None => out.push(ActiveBan {
                    jail: b.jail,
                    net: b.net,
                    expires: b.expires,
                    reason: b.reason,
                    origin: Some(b.origin),
                }),
            }
        }
        Ok(out)
    }

    /// Whether the history has any row at all.
    #[cfg(test)]
    pub fn is_empty(&self) -> Result<bool> {
        use rusqlite::OptionalExtension;
        let row: Option<i64> = self
            .conn
            .query_row("SELECT id FROM bans LIMIT 1", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.sql(e))?;
        Ok(row.is_none() && !self.has_pending())
    }

    /// The running ban of `net` in `jail` that ends last among those not
    /// of origin `except`: what still holds the address once a fleet peer
    /// lifts the ban of its own that had lengthened it.
    pub fn running_beside(
        &mut self,
        jail: &str,
        net: &IpNet,
        except: Origin,
        now: SystemTime,
    ) -> Result<Option<ActiveBan>> {
        let waiting = self.sync_for_read()?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT expires_at, reason, origin, banned_at FROM bans
                 WHERE net = ?1 AND jail = ?2 AND unbanned_at IS NULL AND expires_at > ?3
                 AND (origin IS NULL OR origin != ?4) ORDER BY expires_at DESC",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![net.to_string(), jail, secs(now), except.as_str()], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        for row in rows {
            let (expires, reason, origin, banned_at) = row.map_err(|e| self.sql(e))?;
            if waiting.lifted(jail, net, time(banned_at)) {
                continue;
            }
            return Ok(Some(ActiveBan {
                jail: jail.to_string(),
                net: *net,
                expires: time(expires),
                reason,
                origin: origin.as_deref().and_then(Origin::parse),
            }));
        }
        Ok(None)
    }

    /// How many times `net` was banned in `jail` before (for the bantime
    /// increment of repeat offenders).
    pub fn ban_count(&mut self, jail: &str, net: &IpNet) -> Result<u64> {
        // The bans in flight are counted either in SQLite or here.
        self.settle();
        let pending = self.pending.count(jail, net)
            + self
                .left
                .iter()
                .filter(|e| matches!(e, pending::Entry::Ban(b) if b.jail == jail && b.net == *net))
                .count() as u64;
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM bans WHERE jail = ?1 AND net = ?2",
                params![jail, net.to_string()],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64 + pending)
            .map_err(|e| self.sql(e))
    }

    /// The saved reading position of every file.
    pub fn positions(&self) -> Result<std::collections::HashMap<String, Position>> {
        let mut stmt = self
            .conn
            .prepare("SELECT path, offset, head_len, head_hash FROM positions")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Position {
                        offset: r.get::<_, i64>(1)? as u64,
                        head_len: r.get::<_, i64>(2)? as u64,
                        head_hash: r.get::<_, i64>(3)? as u64,
                    },
                ))
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<std::result::Result<_, _>>().map_err(|e| self.sql(e))
    }

    /// The saved failure windows: jail, address or prefix, failure times.
    /// A row that cannot be read is skipped with a warning.
    pub fn failure_windows(&self) -> Result<Vec<(String, IpNet, Vec<SystemTime>)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT jail, net, times FROM failures")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (jail, net, times) = row.map_err(|e| self.sql(e))?;
            let times: std::result::Result<Vec<SystemTime>, _> =
                times.split(',').map(|t| t.parse::<i64>().map(time)).collect();
            match (net.parse::<IpNet>(), times) {
                (Ok(net), Ok(times)) => out.push((jail, net, times)),
                _ => tracing::warn!(%jail, %net, "ban database holds an unreadable failure window; skipped"),
            }
        }
        Ok(out)
    }

    /// The saved journal cursor of every journal source.
    pub fn cursors(&self) -> Result<std::collections::HashMap<String, String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT source, cursor FROM cursors")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.sql(e))?;
        rows.collect::<std::result::Result<_, _>>().map_err(|e| self.sql(e))
    }

    /// Bans lifted at or after `since` that would still run at `now`, and
    /// on whose jail and address no ban runs again: the latest lift of
    /// each, oldest first. At start the fleet is told this node's own
    /// again (engine::share), so an unban an outage kept back is published.
    /// While SQLite cannot be written (another process holds its lock),
    /// the unbans still in the pending file are not listed: they are at
    /// the next start.
    pub fn lifted_since(&mut self, since: SystemTime, now: SystemTime) -> Result<Vec<LiftedBan>> {
        let waiting = self.sync_for_read()?;
        // Every lifted row, not one per (jail, net) picked by SQLite: an
        // unban lifts all the rows of its address at once (this node's own
        // ban and a peer's that lengthened it), and the one that ran then,
        // the latest to end, says whose ban the unban lifted.
        let mut stmt = self
            .conn
            .prepare(
                "SELECT jail, net, unbanned_at, origin, reason, expires_at FROM bans AS b
                 WHERE unbanned_at >= ?1 AND expires_at > ?2
                 AND NOT EXISTS (SELECT 1 FROM bans AS r WHERE r.jail = b.jail AND r.net = b.net
                                 AND r.unbanned_at IS NULL AND r.expires_at > ?2)",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![secs(since), secs(now)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        type Row = (i64, i64, Option<String>, Option<String>);
        let mut last: std::collections::HashMap<(String, String), Row> = std::collections::HashMap::new();
        for row in rows {
            let (jail, net, at, origin, reason, expires) = row.map_err(|e| self.sql(e))?;
            let this = (at, expires, origin, reason);
            match last.entry((jail, net)) {
                std::collections::hash_map::Entry::Occupied(mut seen) => {
                    if (this.0, this.1) > (seen.get().0, seen.get().1) {
                        seen.insert(this);
                    }
                }
                std::collections::hash_map::Entry::Vacant(new) => {
                    new.insert(this);
                }
            }
        }
        let mut out = Vec::new();
        for ((jail, net), (at, _, origin, reason)) in last {
            let Ok(net) = net.parse::<IpNet>() else { continue };
            // A ban not in SQLite yet is newer than every unban there.
            if waiting
                .running()
                .any(|b| b.jail == jail && b.net == net && b.expires > now)
            {
                continue;
            }
            out.push(LiftedBan {
                jail,
                net,
                at: time(at),
                origin: origin.as_deref().and_then(Origin::parse),
                reason,
            });
        }
        out.sort_by(|a, b| (a.at, &a.jail, a.net).cmp(&(b.at, &b.jail, b.net)));
        Ok(out)
    }

    /// Every ban (jail, address or prefix, time) recorded since `since`,
    /// oldest first; escalated prefixes left out (their addresses' bans
    /// are there).
    pub fn bans_since(&mut self, since: SystemTime) -> Result<Vec<(String, IpNet, SystemTime)>> {
        let waiting = self.sync_for_read()?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT jail, net, banned_at FROM bans WHERE banned_at >= ?1 AND origin != 'escalated' ORDER BY banned_at",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![secs(since)], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
            })
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (jail, net, at) = row.map_err(|e| self.sql(e))?;
            if let Ok(net) = net.parse() {
                out.push((jail, net, time(at)));
            }
        }
        let since = secs(since);
        out.extend(
            waiting
                .bans()
                .iter()
                .filter(|b| b.origin != Origin::Escalated && secs(b.at) >= since)
                .map(|b| (b.jail.clone(), b.net, time(secs(b.at)))),
        );
        out.sort_by_key(|(_, _, at)| *at);
        Ok(out)
    }

    /// Delete history that ended more than `keep` before `now`. Returns the
    /// number of rows removed.
    pub fn purge(&mut self, now: SystemTime, keep: Duration) -> Result<usize> {
        self.sync()?;
        let cutoff = secs(now).saturating_sub(i64::try_from(keep.as_secs()).unwrap_or(i64::MAX));
        self.conn
            .execute(
                "DELETE FROM bans WHERE expires_at < ?1 OR (unbanned_at IS NOT NULL AND unbanned_at < ?1)",
                params![cutoff],
            )
            .map_err(|e| self.sql(e))
    }
}

/// A running ban as [`Store::each_running`] streams it. The jail's name is
/// shared by all of its bans: one allocation per jail, not one per ban (a
/// restore reads a million of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningBan {
    pub jail: Arc<str>,
    pub net: IpNet,
    pub expires: SystemTime,
    /// The record's reason, if it has one.
    pub reason: Option<String>,
    /// The record's origin (`None`: one this version does not know).
    pub origin: Option<Origin>,
}

impl Store {
    /// Every record of a ban neither expired at `now` nor lifted, handed to
    /// `each` at most `chunk` at a time; `each` says whether to go on.
    /// Returns how many records were handed over.
    ///
    /// What a restore reads, in bounded memory: rows are streamed from one
    /// statement instead of collected, and not grouped in SQL (`GROUP BY
    /// jail, net` walks the `(net, jail)` index and looks each row up in
    /// the table, in address order, not file order: slow at a million,
    /// docs/performance.md).
    /// So a (jail, net) banned again while running comes once per record:
    /// the caller keeps the latest expiry, whatever the order. Bans still
    /// in the pending file (SQLite's lock held by another process) come
    /// after all of SQLite's, and rows its unbans lifted are left out (see
    /// [`Store::active`]).
    pub fn each_running(
        &mut self,
        now: SystemTime,
        chunk: usize,
        mut each: impl FnMut(Vec<RunningBan>) -> bool,
    ) -> Result<usize> {
        let chunk = chunk.max(1);
        let waiting = self.sync_for_read()?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT jail, net, expires_at, reason, origin, banned_at FROM bans
                 WHERE unbanned_at IS NULL AND expires_at > ?1",
            )
            .map_err(|e| self.sql(e))?;
        let mut rows = stmt.query(params![secs(now)]).map_err(|e| self.sql(e))?;
        let lifts = waiting.lifts_any();
        let mut names = Names::default();
        let mut out = Vec::with_capacity(chunk);
        let (mut handed, mut unreadable) = (0, Unreadable::default());
        loop {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => return Err(self.sql(e)),
            };
            let read = (|| -> rusqlite::Result<Option<RunningBan>> {
                let net = row.get_ref(1)?.as_str()?;
                let Ok(net) = net.parse::<IpNet>() else {
                    unreadable.note(net);
                    return Ok(None);
                };
                let jail = row.get_ref(0)?.as_str()?;
                if lifts && waiting.lifted(jail, &net, time(row.get(5)?)) {
                    return Ok(None);
                }
                Ok(Some(RunningBan {
                    jail: names.jail(jail),
                    net,
                    expires: time(row.get(2)?),
                    reason: row.get(3)?,
                    origin: names.origin(row.get_ref(4)?.as_str_or_null()?),
                }))
            })();
            match read {
                Ok(Some(ban)) => out.push(ban),
                Ok(None) => {}
                Err(e) => return Err(self.sql(e)),
            }
            if out.len() == chunk {
                handed += out.len();
                if !each(std::mem::replace(&mut out, Vec::with_capacity(chunk))) {
                    return Ok(handed);
                }
            }
        }
        unreadable.log();
        // Bans not in SQLite yet are newer than every row there: each
        // runs, at least until its end, unless an unban after it lifted it.
        for b in waiting.running().filter(|b| b.expires > now) {
            out.push(RunningBan {
                jail: names.jail(&b.jail),
                net: b.net,
                expires: b.expires,
                reason: b.reason.clone(),
                origin: Some(b.origin),
            });
            if out.len() == chunk {
                handed += out.len();
                if !each(std::mem::replace(&mut out, Vec::with_capacity(chunk))) {
                    return Ok(handed);
                }
            }
        }
        handed += out.len();
        if !out.is_empty() {
            each(out);
        }
        Ok(handed)
    }
}

/// Jail names and origins read so far: each row's are compared with the
/// last ones instead of allocated (a history holds a few of each).
#[derive(Default)]
struct Names {
    jails: Vec<Arc<str>>,
    origin: Option<(String, Option<Origin>)>,
}

impl Names {
    fn jail(&mut self, name: &str) -> Arc<str> {
        if let Some(j) = self.jails.iter().find(|j| ***j == *name) {
            return j.clone();
        }
        let j: Arc<str> = Arc::from(name);
        self.jails.push(j.clone());
        j
    }

    fn origin(&mut self, text: Option<&str>) -> Option<Origin> {
        let text = text?;
        match &self.origin {
            Some((last, origin)) if last == text => *origin,
            _ => {
                let origin = Origin::parse(text);
                self.origin = Some((text.to_string(), origin));
                origin
            }
        }
    }
}

/// Rows whose address cannot be read: skipped, and said once with a count
/// and the first (a damaged or forged file may hold millions).
#[derive(Default)]
struct Unreadable(usize, String);

impl Unreadable {
    fn note(&mut self, net: &str) {
        if self.0 == 0 {
            self.1 = net.to_string();
        }
        self.0 += 1;
    }

    fn log(&self) {
        if self.0 > 0 {
            tracing::warn!(
                first = %self.1,
                "ban database holds {} unreadable address(es); skipped",
                self.0
            );
        }
    }
}
