//! Whether the history's file is a sound ban history: what [`super::Store::open`]
//! asks before it uses the file, and what `nftban check` reports.
//!
//! A history can be damaged by a disk error, a power cut on a file system
//! that does not keep its promises, a backup restored over half of it, or a
//! `-wal` file paired with a database it does not belong to (SQLite cannot
//! tell: it applies whatever pages the WAL holds). SQLite finds some of
//! this by itself (`file is not a database`, `database disk image is
//! malformed`) the moment it reads the page, which may be hours later and
//! in the middle of a write. So the file is checked whole when it is
//! opened: `PRAGMA quick_check` (every page of every table and index
//! read once; it does not compare an index with its table, as the much
//! slower `integrity_check` does), and the tables are nftban's.
//!
//! What is damaged is never repaired in place: the caller moves it aside
//! (see [`super::files::move_aside`]) and starts an empty history.

use rusqlite::{Connection, ErrorCode};

/// What is wrong with a history file.
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    /// SQLite cannot read it: `file is not a database` (garbage, or
    /// another kind of file) or `database disk image is malformed`.
    #[error("{0}")]
    Unreadable(#[source] rusqlite::Error),
    /// `PRAGMA quick_check` found damage: its first finding, and how many
    /// it found (it stops at 100).
    #[error("quick_check found {count} problem(s), the first: {first}")]
    Check { first: String, count: usize },
    /// An SQLite database with tables, none of them nftban's `bans`: not
    /// a ban history (another program's file, or what the WAL of another
    /// database made of it).
    #[error("not a ban history: it has no `bans` table, only {tables}")]
    Foreign { tables: String },
    /// A table that its schema version says it has is missing.
    #[error("schema version {version} without its table `{table}`")]
    Missing { table: &'static str, version: i64 },
}

/// nftban's tables and the schema version that creates each
/// (`schema::STEPS`).
const TABLES: [(&str, i64); 4] = [("bans", 1), ("positions", 2), ("cursors", 3), ("failures", 5)];

/// How many problems `quick_check` lists at most.
const FINDINGS: usize = 100;

/// Whether `e` is SQLite saying the file is damaged, rather than that it
/// cannot be reached now (locked, I/O, permissions).
pub fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// Check the file `c` is open on. `Ok(None)`: sound. `Ok(Some(_))`:
/// damaged. `Err`: it could not be checked (locked by another process, an
/// I/O error), which says nothing about the file itself.
pub fn diagnose(c: &Connection) -> rusqlite::Result<Option<Damage>> {
    match check(c) {
        Err(e) if is_damage(&e) => Ok(Some(Damage::Unreadable(e))),
        other => other,
    }
}

fn check(c: &Connection) -> rusqlite::Result<Option<Damage>> {
    let mut stmt = c.prepare(&format!("PRAGMA quick_check({FINDINGS})"))?;
    let findings: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    if findings != ["ok"] {
        return Ok(Some(Damage::Check {
            count: findings.len(),
            first: findings.into_iter().next().unwrap_or_default(),
        }));
    }
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let mut stmt =
        c.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?;
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    if !tables.is_empty() && !tables.iter().any(|t| t == "bans") {
        return Ok(Some(Damage::Foreign {
            tables: tables.join(", "),
        }));
    }
    let missing = TABLES
        .iter()
        .find(|(table, since)| version >= *since && !tables.iter().any(|t| t == table));
    Ok(missing.map(|&(table, _)| Damage::Missing { table, version }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(sql: &str) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let c = Connection::open(dir.path().join("h.db")).unwrap();
        c.execute_batch(sql).unwrap();
        (dir, c)
    }

    #[test]
    fn an_empty_file_and_a_whole_history_are_sound() {
        let (_dir, c) = db("");
        assert!(diagnose(&c).unwrap().is_none());
        let (_dir, c) = db(
            "CREATE TABLE bans (x); CREATE TABLE positions (x); CREATE TABLE cursors (x);
             CREATE TABLE failures (x); CREATE TABLE mine (x); PRAGMA user_version = 5;",
        );
        assert!(
            diagnose(&c).unwrap().is_none(),
            "a table of the admin's own is no damage"
        );
    }

    #[test]
    fn another_programs_database_is_not_a_history() {
        let (_dir, c) = db("CREATE TABLE users (x); CREATE TABLE sessions (x);");
        let d = diagnose(&c).unwrap().unwrap();
        assert_eq!(
            d.to_string(),
            "not a ban history: it has no `bans` table, only sessions, users"
        );
    }

    #[test]
    fn a_table_its_version_promises_is_missing() {
        let (_dir, c) = db("CREATE TABLE bans (x); CREATE TABLE cursors (x); PRAGMA user_version = 3;");
        let d = diagnose(&c).unwrap().unwrap();
        assert_eq!(d.to_string(), "schema version 3 without its table `positions`");
    }

    #[test]
    fn garbage_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let c = Connection::open(&path).unwrap();
        let d = diagnose(&c).unwrap().unwrap();
        assert!(matches!(d, Damage::Unreadable(_)), "{d:?}");
        assert_eq!(d.to_string(), "file is not a database");
    }
}
