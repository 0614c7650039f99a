//! The history's tables, and how an older file is brought forward: one
//! step per schema version, applied in order, each in its own transaction
//! with the version it reaches (`PRAGMA user_version`). A file written by a
//! newer nftban is refused rather than guessed at.

use std::time::Duration;

use rusqlite::Connection;

/// Step N brings a file from version N to N + 1.
const STEPS: &[&str] = &[
    // 1: bans.
    "CREATE TABLE IF NOT EXISTS bans (
         id INTEGER PRIMARY KEY,
         jail TEXT NOT NULL,
         net TEXT NOT NULL,
         banned_at INTEGER NOT NULL,
         expires_at INTEGER NOT NULL,
         origin TEXT NOT NULL,
         unbanned_at INTEGER
     );
     CREATE INDEX IF NOT EXISTS bans_live ON bans (expires_at) WHERE unbanned_at IS NULL;
     CREATE INDEX IF NOT EXISTS bans_net ON bans (net, jail);",
    // 2: file positions.
    "CREATE TABLE IF NOT EXISTS positions (
         path TEXT PRIMARY KEY,
         offset INTEGER NOT NULL,
         head_len INTEGER NOT NULL,
         head_hash INTEGER NOT NULL,
         updated_at INTEGER NOT NULL
     );",
    // 3: journal cursors.
    "CREATE TABLE IF NOT EXISTS cursors (
         source TEXT PRIMARY KEY,
         cursor TEXT NOT NULL,
         updated_at INTEGER NOT NULL
     );",
    // 4: a ban's reason (IPv6 escalation).
    "ALTER TABLE bans ADD COLUMN reason TEXT;",
    // 5: failure windows not yet at `maxretry`.
    "CREATE TABLE IF NOT EXISTS failures (
         jail TEXT NOT NULL,
         net TEXT NOT NULL,
         times TEXT NOT NULL,
         PRIMARY KEY (jail, net)
     ) WITHOUT ROWID;",
];

/// SQLite's page cache, in KiB (a negative `cache_size`), per connection
/// that writes (the engine's and the mover's): room for the hot pages of a
/// bulk ban's random inserts into `bans_net`, so fewer spill to the WAL in
/// the middle of its transaction (SQLite's default is 2 MiB; the cache
/// grows only as pages are used). Not room for the whole index of a
/// million bans: that was the largest part of the daemon's memory after a
/// `ban -` of a million, for a history that catches up a little sooner
/// (docs/performance.md).
const CACHE_KIB: i64 = -16_384;

/// The schema version this build writes.
pub(super) const VERSION: i64 = STEPS.len() as i64;

/// Why a file cannot be brought to [`VERSION`].
pub(super) enum Failure {
    /// Written by a newer nftban: its version.
    TooNew(i64),
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Failure {
        Failure::Sql(e)
    }
}

/// What each connection that writes the history sets for itself (the
/// engine's and the mover's): `synchronous=NORMAL` (WAL's own durability:
/// a commit survives a crash of the process), the page cache, and
/// checkpoints left to their thread up to the backstop.
pub(super) fn settle_in(c: &Connection) -> rusqlite::Result<()> {
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.pragma_update(None, "cache_size", CACHE_KIB)?;
    c.pragma_update(None, "wal_autocheckpoint", super::checkpoint::BACKSTOP_PAGES)
}

/// Set the connection up (WAL, `synchronous=NORMAL`, a busy timeout) and
/// bring its file to [`VERSION`].
pub(super) fn migrate(c: &Connection) -> Result<(), Failure> {
    c.busy_timeout(Duration::from_secs(5))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    settle_in(c)?;
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > VERSION {
        return Err(Failure::TooNew(version));
    }
    for (from, step) in STEPS.iter().enumerate().skip(version.max(0) as usize) {
        c.execute_batch(&format!("BEGIN; {step} PRAGMA user_version = {}; COMMIT;", from + 1))?;
    }
    Ok(())
}
