use super::*;
use left::held;
use pending::path_of as pending_path;

fn t(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
}

fn ban(jail: &str, net: &str, at: u64, len: u64) -> BanRecord {
    BanRecord {
        jail: jail.into(),
        net: net.parse().unwrap(),
        at: t(at),
        expires: t(at + len),
        origin: Origin::Auto,
        reason: None,
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("sub/nftban.db")).unwrap();
    (dir, s)
}

#[test]
fn active_bans_survive_reopen_with_latest_expiry() {
    let (dir, mut s) = open();
    assert!(s.is_empty().unwrap());
    s.record_bans(&[
        ban("sshd", "198.51.100.1/32", 0, 100),
        ban("sshd", "198.51.100.1/32", 50, 100),
    ])
    .unwrap();
    s.record_bans(&[
        ban("asterisk", "2001:db8::/64", 0, 1000),
        ban("sshd", "198.51.100.2/32", 0, 10),
    ])
    .unwrap();
    drop(s);
    let mut s = Store::open(&dir.path().join("sub/nftban.db")).unwrap();
    assert!(!s.is_empty().unwrap());
    let mut active = s.active(t(20)).unwrap();
    active.sort_by(|a, b| a.jail.cmp(&b.jail));
    assert_eq!(
        active,
        vec![
            ActiveBan {
                jail: "asterisk".into(),
                net: "2001:db8::/64".parse().unwrap(),
                expires: t(1000),
                reason: None,
                origin: Some(Origin::Auto),
            },
            ActiveBan {
                jail: "sshd".into(),
                net: "198.51.100.1/32".parse().unwrap(),
                expires: t(150),
                reason: None,
                origin: Some(Origin::Auto),
            },
        ]
    );
    assert_eq!(s.ban_count("sshd", &"198.51.100.1/32".parse().unwrap()).unwrap(), 2);
}

#[test]
fn unbanned_addresses_are_not_restored() {
    let (_dir, mut s) = open();
    s.record_bans(&[
        ban("sshd", "198.51.100.1/32", 0, 100),
        ban("asterisk", "198.51.100.1/32", 0, 100),
    ])
    .unwrap();
    s.record_unban(Some("sshd"), &"198.51.100.1/32".parse().unwrap(), t(5))
        .unwrap();
    assert_eq!(s.active(t(10)).unwrap().len(), 1);
    s.record_unban(None, &"198.51.100.1/32".parse().unwrap(), t(6)).unwrap();
    assert!(s.active(t(10)).unwrap().is_empty());
    // A new ban after the unban is restored again.
    s.record_bans(&[ban("sshd", "198.51.100.1/32", 7, 100)]).unwrap();
    assert_eq!(s.active(t(10)).unwrap().len(), 1);
}

#[test]
fn removed_jail_bans_are_lifted() {
    let (_dir, mut s) = open();
    s.record_bans(&[
        ban("old", "198.51.100.1/32", 0, 100),
        ban("sshd", "198.51.100.2/32", 0, 100),
    ])
    .unwrap();
    assert_eq!(s.record_jail_removed("old", t(1)).unwrap(), 1);
    let active = s.active(t(2)).unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].jail, "sshd");
}

#[test]
fn purge_keeps_recent_history() {
    let (_dir, mut s) = open();
    s.record_bans(&[
        ban("sshd", "198.51.100.1/32", 0, 10),
        ban("sshd", "198.51.100.2/32", 0, 10_000),
    ])
    .unwrap();
    assert_eq!(s.purge(t(1000), Duration::from_secs(100)).unwrap(), 1);
    assert_eq!(s.ban_count("sshd", &"198.51.100.1/32".parse().unwrap()).unwrap(), 0);
    assert_eq!(s.ban_count("sshd", &"198.51.100.2/32".parse().unwrap()).unwrap(), 1);
}

#[test]
fn a_newer_schema_is_refused_and_a_bad_path_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    drop(Store::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = Store::open(&path).err().unwrap().to_string();
    assert!(err.contains("schema version 99"), "{err}");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let err = Store::open(&file.join("nftban.db")).err().unwrap().to_string();
    assert!(err.contains("a-file/nftban.db"), "{err}");
}

#[test]
fn a_hundred_thousand_bans_in_one_transaction() {
    let (_dir, mut s) = open();
    let bans: Vec<BanRecord> = (0..100_000u32)
        .map(|i| BanRecord {
            jail: "sshd".into(),
            net: IpNet::from(std::net::IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i))),
            at: t(0),
            expires: t(3600),
            origin: Origin::Auto,
            reason: None,
        })
        .collect();
    s.record_bans(&bans).unwrap();
    assert_eq!(s.active(t(1)).unwrap().len(), 100_000);
}

#[test]
fn positions_are_saved_and_a_version_1_file_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // A file as the first version wrote it.
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE bans (id INTEGER PRIMARY KEY, jail TEXT NOT NULL, net TEXT NOT NULL, banned_at INTEGER NOT NULL,
             expires_at INTEGER NOT NULL, origin TEXT NOT NULL, unbanned_at INTEGER);
             INSERT INTO bans (jail, net, banned_at, expires_at, origin) VALUES ('sshd', '198.51.100.1/32', 1, 4102444800, 'auto');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let mut s = Store::open(&path).unwrap();
    assert_eq!(s.active(t(0)).unwrap().len(), 1, "old bans kept");
    let p = Position {
        offset: 123,
        head_len: 1024,
        head_hash: u64::MAX - 5,
    };
    s.save(&[], &[("/var/log/auth.log".into(), p)], &[], &[]).unwrap();
    s.save(
        &[],
        &[("/var/log/auth.log".into(), Position { offset: 456, ..p })],
        &[("journal:A=b".into(), "s=1;i=2".into())],
        &[],
    )
    .unwrap();
    drop(s);
    let s = Store::open(&path).unwrap();
    let got = s.positions().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got["/var/log/auth.log"], Position { offset: 456, ..p });
    let v: i64 = s.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, 5);
    assert_eq!(s.cursors().unwrap()["journal:A=b"], "s=1;i=2");
}

#[test]
fn an_escalated_prefix_keeps_its_reason() {
    let (_dir, mut s) = open();
    let why = "escalated: 3 addresses in 2001:db8:1:2::/64";
    s.record_bans(&[BanRecord {
        origin: Origin::Escalated,
        reason: Some(why.into()),
        ..ban("asterisk", "2001:db8:1:2::/64", 0, 100)
    }])
    .unwrap();
    let active = s.active(t(1)).unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].reason.as_deref(), Some(why));
    let origin: String = s.conn.query_row("SELECT origin FROM bans", [], |r| r.get(0)).unwrap();
    assert_eq!(origin, "escalated");
}

#[test]
fn small_writes_wait_in_the_pending_file_and_survive_a_crash() {
    let (_dir, db, mut s) = one_ban_recorded();
    assert!(s.has_pending());
    assert!(!s.is_empty().unwrap());
    assert_eq!(s.ban_count("sshd", &"198.51.100.1/32".parse().unwrap()).unwrap(), 1);
    // SQLite itself does not hold it yet: a second connection sees nothing.
    let raw = Connection::open(&db).unwrap();
    let rows: i64 = raw.query_row("SELECT COUNT(*) FROM bans", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 0);
    crash(s, &db);
    let mut s = Store::open(&db).unwrap();
    assert!(!s.has_pending());
    let active = s.active(t(1)).unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].net, "198.51.100.1/32".parse::<IpNet>().unwrap());
    let rows: i64 = raw.query_row("SELECT COUNT(*) FROM bans", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 1);
    assert_eq!(std::fs::metadata(pending_path(&db)).unwrap().len(), 0);
}

/// A bulk ban waits in the pending file like a single one, and all that
/// waits goes into SQLite in one transaction once the bound is reached:
/// here by the engine's thread itself, as when no mover thread runs.
#[test]
fn bulk_writes_wait_too_until_the_bound_moves_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nftban.db");
    let mut s = Store::open(&db).unwrap();
    s.mover = mover::Mover::none();
    s.pending_most = 5;
    let rows = || rows_in(&db);
    s.record_bans(&bulk(1, 4)).unwrap();
    assert!(s.has_pending());
    assert_eq!(rows(), 0, "4 bans, under the bound: pending");
    s.record_bans(&bulk(5, 2)).unwrap();
    assert!(!s.has_pending(), "6 waiting, past the bound of 5: moved");
    assert_eq!(rows(), 6);
    assert_eq!(std::fs::metadata(pending_path(&db)).unwrap().len(), 0);
    // More than the bound at once: straight into SQLite, after what waits.
    s.record_bans(&bulk(20, 1)).unwrap();
    s.record_bans(&bulk(30, 6)).unwrap();
    assert!(!s.has_pending());
    assert_eq!(rows(), 13);
    assert_eq!(s.active(t(1)).unwrap().len(), 13);
}

/// The engine's connection leaves checkpoints to their thread: a commit
/// far below the backstop reaches the database file itself once the
/// thread has served its nudge.
#[test]
fn commits_reach_the_database_file_through_the_checkpoint_thread() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nftban.db");
    let mut s = Store::open(&db).unwrap();
    let backstop: i64 = s.conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0)).unwrap();
    assert_eq!(backstop, checkpoint::BACKSTOP_PAGES);
    let before = std::fs::metadata(&db).unwrap().len();
    let bans: Vec<BanRecord> = (0..2000)
        .map(|i| ban("manual", &format!("10.{}.{}.1/32", i / 256, i % 256), 0, 600))
        .collect();
    s.record_bans(&bans).unwrap();
    s.sync().unwrap();
    s.checkpoints.stop();
    let after = std::fs::metadata(&db).unwrap().len();
    assert!(
        after > before + 50_000,
        "the file grew from {before} to {after} bytes only"
    );
    // The store goes on without the thread.
    s.record_bans(&bans[..1]).unwrap();
    s.sync().unwrap();
    assert_eq!(s.active(t(1)).unwrap().len(), 2000);
}

/// What the history says it holds of the pending file of `db`, written
/// by hand (see `SET_HELD`): `None`, not known.
fn say_held(db: &std::path::Path, held: Option<u64>) {
    let raw = Connection::open(db).unwrap();
    set_held(&raw, &pending_path(db), held).unwrap();
}

#[test]
fn a_pending_line_already_in_sqlite_is_not_counted_twice() {
    // A crash between a move's commit and the emptying of the file leaves
    // its lines, and the history saying it holds them all (the commit said
    // so) or not knowing (the file was being emptied).
    for said_all in [true, false] {
        let (_dir, db, mut s) = one_ban_recorded();
        let line = std::fs::read(pending_path(&db)).unwrap();
        assert!(!line.is_empty());
        s.sync().unwrap();
        assert!(!s.has_pending());
        assert_eq!(std::fs::metadata(pending_path(&db)).unwrap().len(), 0);
        crash(s, &db);
        std::fs::write(pending_path(&db), &line).unwrap();
        say_held(&db, said_all.then_some(line.len() as u64));
        let mut s = Store::open(&db).unwrap();
        let count = s.ban_count("sshd", &"198.51.100.1/32".parse().unwrap()).unwrap();
        assert_eq!(count, 1, "said all held: {said_all}");
    }
}

#[test]
fn positions_are_saved_with_the_pending_bans() {
    let (_dir, db, mut s) = one_ban_recorded();
    let pos = Position {
        offset: 42,
        head_len: 1,
        head_hash: 7,
    };
    s.save(&[], &[("/var/log/x".into(), pos)], &[], &[]).unwrap();
    assert!(!s.has_pending());
    let raw = Connection::open(&db).unwrap();
    let rows: i64 = raw.query_row("SELECT COUNT(*) FROM bans", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 1);
    assert_eq!(s.positions().unwrap()["/var/log/x"], pos);
}

/// A store in a new folder's `nftban.db`, with one ban recorded.
fn one_ban_recorded() -> (tempfile::TempDir, std::path::PathBuf, Store) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nftban.db");
    let mut s = Store::open(&db).unwrap();
    s.record_bans(&[ban("sshd", "198.51.100.1/32", 0, 100)]).unwrap();
    (dir, db, s)
}

/// What `kill -9` does to a store: no Drop, no sync; the kernel closes
/// its descriptors, which releases the pending file's lock.
fn crash(s: Store, db: &std::path::Path) {
    std::mem::forget(s);
    unlock_pending(db);
}

/// Drop the `flock` of a store that was leaked with `mem::forget` (what the
/// kernel does when a killed process's descriptors close).
fn unlock_pending(db: &std::path::Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(pending_path(db)).unwrap();
    // flock locks belong to the open file description, so a new
    // description cannot unlock the leaked one: find the leaked descriptor.
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if target == pending_path(db) {
            let fd: i32 = entry.file_name().to_str().unwrap().parse().unwrap();
            if fd != f.as_raw_fd() {
                // SAFETY: closing a descriptor leaked on purpose by the test.
                unsafe { libc::close(fd) };
            }
        }
    }
}

#[test]
fn failure_windows_are_saved_replaced_and_deleted() {
    let (_dir, mut s) = open();
    let w = |net: &str, times: Option<Vec<u64>>| FailureWindow {
        jail: "sshd".into(),
        net: net.parse().unwrap(),
        times: times.map(|v| v.into_iter().map(t).collect()),
    };
    s.save(
        &[],
        &[],
        &[],
        &[w("198.51.100.1/32", Some(vec![1, 2])), w("192.0.2.0/24", Some(vec![3]))],
    )
    .unwrap();
    s.save(
        &[],
        &[],
        &[],
        &[w("198.51.100.1/32", Some(vec![1, 2, 4])), w("192.0.2.0/24", None)],
    )
    .unwrap();
    assert_eq!(
        s.failure_windows().unwrap(),
        vec![(
            "sshd".to_string(),
            "198.51.100.1/32".parse().unwrap(),
            vec![t(1), t(2), t(4)]
        )]
    );
}

/// Keeping history "forever" keeps it: a `keep` past what seconds since
/// the epoch can count used to wrap and purge everything ended a second
/// ago.
#[test]
fn purge_with_an_endless_keep_removes_nothing() {
    let (_dir, mut s) = open();
    s.record_bans(&[ban("sshd", "198.51.100.1/32", 0, 10)]).unwrap();
    assert_eq!(s.purge(t(1000), Duration::MAX).unwrap(), 0);
    assert_eq!(s.purge(t(1000), Duration::from_secs(u64::MAX / 2 + 1)).unwrap(), 0);
    assert_eq!(s.ban_count("sshd", &"198.51.100.1/32".parse().unwrap()).unwrap(), 1);
}

/// Rows with times no clock can hold (a forged or damaged file) are read
/// without a panic.
#[test]
fn absurd_times_in_rows_do_not_panic() {
    let (_dir, mut s) = open();
    s.conn
        .execute_batch(&format!(
            "INSERT INTO bans (jail, net, banned_at, expires_at, origin) VALUES
                 ('sshd', '198.51.100.1/32', {min}, {max}, 'auto'),
                 ('sshd', '198.51.100.2/32', {max}, {min}, 'auto');
             INSERT INTO failures (jail, net, times) VALUES ('sshd', '198.51.100.3/32', '{min},{max}');",
            min = i64::MIN,
            max = i64::MAX
        ))
        .unwrap();
    let active = s.active(t(0)).unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].net, "198.51.100.1/32".parse::<IpNet>().unwrap());
    assert_eq!(s.bans_since(t(0)).unwrap().len(), 1);
    assert_eq!(s.failure_windows().unwrap().len(), 1);
    s.purge(t(0), Duration::from_secs(1)).unwrap();
}

/// The process umask, set for a test and put back when dropped (even when
/// the test fails). It is process-wide: files other tests create meanwhile
/// get looser modes, which they do not check.
struct Umask(libc::mode_t);

impl Umask {
    fn set(mask: libc::mode_t) -> Umask {
        // SAFETY: umask(2) only swaps the process's mask; it cannot fail.
        Umask(unsafe { libc::umask(mask) })
    }
}

impl Drop for Umask {
    fn drop(&mut self) {
        // SAFETY: as in `set`.
        unsafe { libc::umask(self.0) };
    }
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The database, its `-wal` and `-shm`, its pending file and the folders
/// created for them are private whatever the umask: under umask 000 the
/// pending file was 0666 (anyone could append a ban to restore) and the
/// folder 0777; under 022 the history was world-readable.
#[test]
fn state_files_are_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sub/deeper/nftban.db");
    let mask = Umask::set(0);
    let mut s = Store::open(&db).unwrap();
    s.record_bans(&[ban("sshd", "198.51.100.1/32", 0, 100)]).unwrap();
    s.sync().unwrap();
    drop(mask);
    for folder in ["sub", "sub/deeper"] {
        assert_eq!(mode(&dir.path().join(folder)), 0o700, "{folder}");
    }
    for file in ["nftban.db", "nftban.db-wal", "nftban.db-shm", "nftban.db-pending"] {
        assert_eq!(mode(&dir.path().join("sub/deeper").join(file)), 0o600, "{file}");
    }
}

/// Files an older nftban left readable or writable by others are made
/// private when the store opens; a folder others may write to loses that
/// right (not when sticky, as /tmp: there only a warning says so).
#[test]
fn loose_state_files_are_tightened_at_open() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("nftban");
    let db = folder.join("nftban.db");
    let mut s = Store::open(&db).unwrap();
    s.record_bans(&[ban("sshd", "198.51.100.1/32", 0, 100)]).unwrap();
    s.sync().unwrap();
    let names = ["nftban.db", "nftban.db-wal", "nftban.db-shm", "nftban.db-pending"];
    crash(s, &db);
    let chmod = |p: &std::path::Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    for name in names {
        chmod(&folder.join(name), 0o666);
    }
    chmod(&folder, 0o777);
    drop(Store::open(&db).unwrap());
    assert_eq!(mode(&folder), 0o755);
    for name in names.iter().filter(|n| folder.join(n).exists()) {
        assert_eq!(mode(&folder.join(name)), 0o600, "{name}");
    }
    assert_eq!(mode(&folder.join("nftban.db")), 0o600);
    // Sticky and world-writable (as /tmp): left as it is.
    chmod(&folder, 0o1777);
    drop(Store::open(&db).unwrap());
    assert_eq!(mode(&folder), 0o1777);
}

/// A history of `n` bans (`10.0.x.y`, jail sshd, running at t(0)) in
/// `dir/nftban.db`, closed cleanly (its WAL checkpointed into the file).
fn history_of(dir: &std::path::Path, n: u32) -> std::path::PathBuf {
    let db = dir.join("nftban.db");
    let mut s = Store::open(&db).unwrap();
    let bans: Vec<BanRecord> = (0..n)
        .map(|i| ban("sshd", &format!("10.0.{}.{}/32", i / 256, i % 256), 0, 1_000_000))
        .collect();
    s.record_bans(&bans).unwrap();
    drop(s);
    db
}

/// The databases named `nftban.db.corrupt-*` in `dir` (not their `-wal`
/// and `-shm`), sorted.
fn set_aside(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("nftban.db.corrupt-") && !["-wal", "-shm"].iter().any(|s| n.ends_with(s)))
        .collect();
    v.sort();
    v
}

/// Opening a damaged history used to fail, and the daemon did not start:
/// no protection until someone deleted the file. Now the file (with its
/// WAL) is moved aside untouched, `check_intact` (what `nftban check`
/// runs) names the damage without moving anything, and the store opens
/// empty and works; bans of the last run still in the pending file go into
/// the new history.
fn opens_fresh_after(damage: impl FnOnce(&std::path::Path), want: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = history_of(dir.path(), 2000);
    damage(&db);
    let before = std::fs::read(&db).unwrap();
    let wal = |db: &std::path::Path| {
        let mut p = db.as_os_str().to_owned();
        p.push("-wal");
        std::fs::read(p).unwrap_or_default()
    };
    let wal_before = wal(&db);
    let err = check_intact(&db).unwrap_err();
    assert!(err.is_damage(), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("the ban database {} is damaged: {want}", db.display())),
        "{text}"
    );
    assert!(set_aside(dir.path()).is_empty(), "check moves nothing");
    assert!(std::fs::read(&db).unwrap() == before, "check changes nothing");

    // A ban of the last run, only in the pending file (kill -9).
    let mut p = pending::Pending::open(&db).unwrap().0;
    p.append(&[ban("sshd", "192.0.2.7/32", 0, 1_000_000)]).unwrap();
    drop(p);
    let mut s = Store::open(&db).unwrap();
    let aside = set_aside(dir.path());
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        std::fs::read(dir.path().join(&aside[0])).unwrap() == before,
        "moved untouched"
    );
    assert!(wal(&dir.path().join(&aside[0])) == wal_before, "its WAL with it");
    assert_eq!(mode(&dir.path().join(&aside[0])), 0o600);
    let active: Vec<String> = s.active(t(1)).unwrap().iter().map(|b| b.net.to_string()).collect();
    assert_eq!(active, ["192.0.2.7/32"]);
    s.record_bans(&[ban("sshd", "192.0.2.8/32", 1, 100)]).unwrap();
    s.sync().unwrap();
    drop(s);
    check_intact(&db).unwrap();
}

#[test]
fn a_database_of_garbage_is_moved_aside() {
    opens_fresh_after(
        |db| std::fs::write(db, vec![0x5a; 64 * 1024]).unwrap(),
        "file is not a database",
    );
}

#[test]
fn a_truncated_database_is_moved_aside() {
    opens_fresh_after(
        |db| {
            let f = std::fs::OpenOptions::new().write(true).open(db).unwrap();
            let len = f.metadata().unwrap().len();
            f.set_len(len / 2).unwrap();
        },
        "database disk image is malformed",
    );
}

#[test]
fn a_database_with_a_damaged_page_is_moved_aside() {
    opens_fresh_after(
        |db| {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new().write(true).open(db).unwrap();
            f.write_all_at(&[0xa5; 4096], 3 * 4096).unwrap();
        },
        "",
    );
}

/// A `-wal` file of another database beside the history: SQLite applies
/// its pages without being able to tell, and what it makes is not a ban
/// history. Moved aside with the database, so the WAL is not applied to
/// the new one either.
#[test]
fn a_wal_of_another_database_is_moved_aside_with_the_database() {
    opens_fresh_after(
        |db| {
            let other = db.with_file_name("other.db");
            let c = rusqlite::Connection::open(&other).unwrap();
            c.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE accounts (name TEXT); INSERT INTO accounts VALUES ('x');",
            )
            .unwrap();
            let mut wal = other.into_os_string();
            wal.push("-wal");
            let mut ours = db.as_os_str().to_owned();
            ours.push("-wal");
            std::fs::copy(&wal, &ours).unwrap();
            drop(c);
        },
        "not a ban history: it has no `bans` table, only accounts",
    );
}

/// A zero-length file is what SQLite calls an empty database (and what
/// the store itself creates before SQLite first opens it): nothing is
/// moved.
#[test]
fn a_zero_length_database_is_an_empty_history() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nftban.db");
    std::fs::write(&db, b"").unwrap();
    check_intact(&db).unwrap();
    let mut s = Store::open(&db).unwrap();
    assert!(set_aside(dir.path()).is_empty());
    assert!(s.active(t(0)).unwrap().is_empty());
}

/// Another process's exclusive transaction on `db`, until dropped.
fn locked(db: &std::path::Path) -> Connection {
    let c = Connection::open(db).unwrap();
    c.execute_batch("BEGIN EXCLUSIVE").unwrap();
    c
}

/// A store opened while another process holds the lock, with bans an
/// earlier run left in the pending file: it opens (it used to fail, and
/// the daemon with it), its reads count those bans, and the next save
/// once the lock is gone moves them in, once. A line SQLite already holds
/// (the earlier run died between its commit and emptying the file), here
/// unbanned since, is not taken for a running ban.
#[test]
fn bans_left_in_the_pending_file_wait_for_a_locked_database() {
    let (_dir, db, mut s) = one_ban_recorded();
    let held = std::fs::read(pending_path(&db)).unwrap();
    s.sync().unwrap();
    s.record_unban(Some("sshd"), &"198.51.100.1/32".parse().unwrap(), t(5))
        .unwrap();
    s.record_bans(&[ban("sshd", "198.51.100.2/32", 10, 100)]).unwrap();
    crash(s, &db);
    let mut pending = held;
    pending.extend(std::fs::read(pending_path(&db)).unwrap());
    std::fs::write(pending_path(&db), &pending).unwrap();

    let lock = locked(&db);
    let mut s = Store::open(&db).unwrap();
    assert!(s.has_pending());
    let active: Vec<String> = s.active(t(20)).unwrap().iter().map(|b| b.net.to_string()).collect();
    assert_eq!(active, ["198.51.100.2/32"]);
    let net = |n: &str| n.parse::<IpNet>().unwrap();
    assert_eq!(s.ban_count("sshd", &net("198.51.100.2/32")).unwrap(), 1);
    let since: Vec<String> = s.bans_since(t(0)).unwrap().iter().map(|b| b.1.to_string()).collect();
    assert_eq!(since, ["198.51.100.1/32", "198.51.100.2/32"]);
    assert!(s.sync().is_err(), "still locked");
    // A ban of this run, after the left ones in the file: read back on
    // its own (the left ones are not read twice).
    s.record_bans(&[ban("sshd", "198.51.100.3/32", 12, 100)]).unwrap();
    let mut active: Vec<String> = s.active(t(20)).unwrap().iter().map(|b| b.net.to_string()).collect();
    active.sort();
    assert_eq!(active, ["198.51.100.2/32", "198.51.100.3/32"]);

    drop(lock);
    s.sync().unwrap();
    assert!(!s.has_pending());
    assert_eq!(std::fs::metadata(pending_path(&db)).unwrap().len(), 0);
    let raw = Connection::open(&db).unwrap();
    let rows: i64 = raw.query_row("SELECT COUNT(*) FROM bans", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 3, "each ban once");
    let active: Vec<String> = s.active(t(20)).unwrap().iter().map(|b| b.net.to_string()).collect();
    assert_eq!(active, ["198.51.100.2/32", "198.51.100.3/32"]);
}

/// Past the bound while another process holds SQLite's lock: the move
/// fails once, and the bans that follow are appended without trying it
/// again (each try waits for the lock) until a save works; nothing is
/// lost, and the bound works again after that save.
#[test]
fn a_locked_database_stalls_the_bound_until_a_save_works() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nftban.db");
    let mut s = Store::open(&db).unwrap();
    s.mover = mover::Mover::none();
    s.pending_most = 3;
    let rows = || rows_in(&db);
    let lock = locked(&db);
    s.record_bans(&bulk(1, 3)).unwrap();
    assert!(s.has_pending(), "the move failed: still pending");
    drop(lock);
    s.record_bans(&bulk(4, 3)).unwrap();
    assert_eq!(rows(), 0, "no new try at the bound before a save works");
    assert!(s.has_pending());
    s.sync().unwrap();
    assert_eq!(rows(), 6);
    s.record_bans(&bulk(7, 3)).unwrap();
    assert_eq!(rows(), 9, "the save lifted the stall: the bound moves them again");
    assert!(!s.has_pending());
}

/// The CLI prints an error with its causes (`{:#}`): SQLite's message was
/// said three times ("ban database X: database is locked: database is
/// locked: Error code 5: database is locked"), the field holding it being
/// also the error's source. It is said once.
#[test]
fn an_sqlite_error_is_said_once() {
    let c = Connection::open_in_memory().unwrap();
    let error = c.execute_batch("SELEC 1").unwrap_err();
    let said = error.to_string();
    let e = Error::Sql {
        path: "/x/nftban.db".into(),
        error,
    };
    let text = format!("{:#}", anyhow::Error::from(e));
    assert_eq!(text, format!("ban database /x/nftban.db: {said}"));
}

/// Noise in the `-wal` or `-shm` beside a sound database is no damage:
/// SQLite ignores a WAL whose header does not check and rebuilds the
/// index of `-shm`. Nothing is moved and every ban is still there.
#[test]
fn noise_in_the_wal_or_shm_file_loses_nothing() {
    for suffix in ["-wal", "-shm"] {
        let dir = tempfile::tempdir().unwrap();
        let db = history_of(dir.path(), 500);
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        std::fs::write(&p, vec![0x5a; 64 * 1024]).unwrap();
        check_intact(&db).unwrap();
        let mut s = Store::open(&db).unwrap();
        assert!(set_aside(dir.path()).is_empty(), "{suffix}");
        assert_eq!(s.active(t(1)).unwrap().len(), 500, "{suffix}");
        s.record_bans(&[ban("sshd", "192.0.2.8/32", 1, 100)]).unwrap();
        s.sync().unwrap();
        assert_eq!(s.active(t(1)).unwrap().len(), 501, "{suffix}");
    }
}

/// `n` bans in jail `manual` from 10.0.`from`.0 on.
fn bulk(from: u32, n: u32) -> Vec<BanRecord> {
    (from..from + n)
        .map(|i| ban("manual", &format!("10.0.{}.{}/32", i / 256, i % 256), 0, 600))
        .collect()
}

fn rows_in(db: &std::path::Path) -> i64 {
    let raw = Connection::open(db).unwrap();
    raw.query_row("SELECT COUNT(*) FROM bans", [], |r| r.get(0)).unwrap()
}

/// Past the bound, the move goes to the mover thread and the engine's
/// writes go on meanwhile (appended after the range in flight); a read
/// waits for the move, and a save moves the rest and empties the file.
#[test]
fn a_bulk_past_the_bound_is_moved_by_the_mover_thread() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nftban.db");
    let mut s = Store::open(&db).unwrap();
    s.pending_most = 6;
    s.record_bans(&bulk(0, 6)).unwrap();
    assert!(s.mover.busy(), "handed to the mover");
    assert_eq!(s.pending.len(), 0);
    s.record_bans(&bulk(6, 2)).unwrap();
    assert_eq!(s.pending.len(), 2, "appended after the range in flight");
    assert_eq!(
        s.ban_count("manual", &"10.0.0.1/32".parse().unwrap()).unwrap(),
        1,
        "counted once, in flight or moved"
    );
    assert_eq!(rows_in(&db), 6, "the count waited for the move");
    assert!(s.has_pending());
    assert!(std::fs::metadata(pending_path(&db)).unwrap().len() > 0);
    assert_eq!(s.active(t(1)).unwrap().len(), 8);
    assert!(!s.has_pending());
    assert_eq!(rows_in(&db), 8, "each once");
    assert_eq!(std::fs::metadata(pending_path(&db)).unwrap().len(), 0);
}

/// A move the mover could not make (another process holds SQLite's lock)
/// is rolled back and its bans wait again; the bound then waits for a save
/// that works, which moves them all, once.
#[test]
fn a_failed_move_of_the_mover_waits_for_the_next_save() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nftban.db");
    let mut s = Store::open(&db).unwrap();
    s.pending_most = 6;
    let lock = locked(&db);
    s.record_bans(&bulk(0, 6)).unwrap();
    assert!(s.mover.busy());
    s.settle();
    assert!(s.stalled, "the move failed on the lock");
    assert_eq!(s.pending.len(), 6, "its bans wait again");
    drop(lock);
    s.record_bans(&bulk(6, 3)).unwrap();
    assert!(!s.mover.busy(), "nothing handed over before a save works");
    assert_eq!(rows_in(&db), 0);
    s.sync().unwrap();
    assert_eq!(rows_in(&db), 9);
    assert!(!s.stalled);
    s.record_bans(&bulk(9, 6)).unwrap();
    assert!(s.mover.busy(), "the bound hands over again");
    s.settle();
    assert_eq!(rows_in(&db), 15);
    assert!(!s.has_pending());
    assert_eq!(
        std::fs::metadata(pending_path(&db)).unwrap().len(),
        0,
        "nothing came after the move: the file is emptied"
    );
}

/// The mover commits but never empties the file: a crash then leaves
/// lines SQLite holds, and the next start moves each of them once.
#[test]
fn a_crash_after_the_movers_commit_moves_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nftban.db");
    let mut s = Store::open(&db).unwrap();
    s.pending_most = 6;
    s.record_bans(&bulk(0, 6)).unwrap();
    s.record_bans(&bulk(6, 1)).unwrap();
    s.settle();
    assert_eq!(rows_in(&db), 6);
    assert!(std::fs::metadata(pending_path(&db)).unwrap().len() > 0);
    crash(s, &db);
    let mut s = Store::open(&db).unwrap();
    assert_eq!(rows_in(&db), 7, "each once");
    assert_eq!(s.active(t(1)).unwrap().len(), 7);
    assert_eq!(std::fs::metadata(pending_path(&db)).unwrap().len(), 0);
}

/// The engine's save of every second hands many pending bans to the
/// mover after saving the positions, and saves nothing while a move is in
/// flight (the positions wait for a later save, never lost).
#[test]
fn the_save_of_every_second_hands_a_bulk_to_the_mover() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nftban.db");
    let mut s = Store::open(&db).unwrap();
    s.hand_off_least = 4;
    let p = |offset| {
        vec![(
            "/var/log/auth.log".to_string(),
            Position {
                offset,
                head_len: 10,
                head_hash: 7,
            },
        )]
    };
    s.record_bans(&bulk(0, 3)).unwrap();
    assert!(s.save_soon(&p(1), &[], &[]).unwrap(), "few: saved by the engine");
    assert_eq!(rows_in(&db), 3);
    assert_eq!(std::fs::metadata(pending_path(&db)).unwrap().len(), 0);
    s.record_bans(&bulk(3, 4)).unwrap();
    assert!(s.save_soon(&p(2), &[], &[]).unwrap());
    assert!(s.mover.busy(), "many: handed to the mover");
    assert_eq!(s.positions().unwrap()["/var/log/auth.log"].offset, 2);
    let again = s.save_soon(&p(3), &[], &[]).unwrap();
    s.settle();
    if !again {
        assert_eq!(
            s.positions().unwrap()["/var/log/auth.log"].offset,
            2,
            "not saved in flight"
        );
    }
    assert_eq!(rows_in(&db), 7);
}

/// The rows of the history: jail, banned_at, unbanned_at, in order.
fn lifts_in(db: &std::path::Path) -> Vec<(String, i64, Option<i64>)> {
    let raw = Connection::open(db).unwrap();
    let mut stmt = raw
        .prepare("SELECT jail, banned_at, unbanned_at FROM bans ORDER BY id")
        .unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
    let base = secs(t(0));
    rows.map(|r| r.unwrap())
        .map(|(j, at, lifted): (String, i64, Option<i64>)| (j, at - base, lifted.map(|l| l - base)))
        .collect()
}

/// An unban is a line of the pending file, like a ban, and reaches SQLite
/// with the bans around it, in their order, whether the engine's thread
/// or the mover moves them: it lifts the ban before it in its jail, not
/// the other jail's, and not the ban that followed it (in the same second).
#[test]
fn unbans_wait_in_the_pending_file_and_lift_only_the_bans_before_them() {
    for mover in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nftban.db");
        let mut s = Store::open(&db).unwrap();
        if !mover {
            s.mover = mover::Mover::none();
        }
        s.pending_most = 4;
        let net: IpNet = "198.51.100.1/32".parse().unwrap();
        s.record_bans(&[
            ban("sshd", "198.51.100.1/32", 0, 100),
            ban("asterisk", "198.51.100.1/32", 0, 100),
        ])
        .unwrap();
        s.record_unbans(Some("sshd"), &[net], t(5)).unwrap();
        assert_eq!(rows_in(&db), 0, "the unban waits with the bans");
        assert!(s.has_pending());
        // The fourth line: past the bound, moved.
        s.record_bans(&[ban("sshd", "198.51.100.1/32", 5, 50)]).unwrap();
        assert_eq!(s.mover.busy(), mover);
        s.settle();
        assert_eq!(
            lifts_in(&db),
            [
                ("sshd".to_string(), 0, Some(5)),
                ("asterisk".to_string(), 0, None),
                ("sshd".to_string(), 5, None)
            ],
            "mover: {mover}"
        );
        // In every jail, left by a crash: lifted at the next start.
        s.record_unbans(None, &[net], t(6)).unwrap();
        crash(s, &db);
        let mut s = Store::open(&db).unwrap();
        assert!(s.active(t(10)).unwrap().is_empty(), "mover: {mover}");
        assert_eq!(std::fs::metadata(pending_path(&db)).unwrap().len(), 0);
    }
}

/// A run that died after its move but before emptying the file leaves
/// lines SQLite holds already: at the next start, an unban among them
/// lifts only the bans before it, not the ban SQLite took after it.
#[test]
fn an_unban_left_in_the_pending_file_does_not_lift_a_later_ban() {
    // As in `a_pending_line_already_in_sqlite_is_not_counted_twice`.
    for said_all in [true, false] {
        let (_dir, db, mut s) = one_ban_recorded();
        let net: IpNet = "198.51.100.1/32".parse().unwrap();
        s.record_unban(Some("sshd"), &net, t(5)).unwrap();
        s.record_bans(&[ban("sshd", "198.51.100.1/32", 7, 100)]).unwrap();
        let lines = std::fs::read(pending_path(&db)).unwrap();
        s.sync().unwrap();
        crash(s, &db);
        std::fs::write(pending_path(&db), &lines).unwrap();
        say_held(&db, said_all.then_some(lines.len() as u64));
        let mut s = Store::open(&db).unwrap();
        assert_eq!(
            lifts_in(&db),
            [("sshd".to_string(), 0, Some(5)), ("sshd".to_string(), 7, None)],
            "said all held: {said_all}"
        );
        let active = s.active(t(10)).unwrap();
        assert_eq!((active.len(), active[0].expires), (1, t(107)));
    }
}

/// While another process holds SQLite's lock, a read (a restore) leaves
/// out what this run's unbans in the pending file lifted, in SQLite and
/// in the file, and keeps the ban that came after.
#[test]
fn a_locked_database_reads_the_pending_unbans_too() {
    let (_dir, db, mut s) = one_ban_recorded();
    s.record_bans(&[ban("asterisk", "198.51.100.1/32", 0, 100)]).unwrap();
    s.sync().unwrap();
    let net = |n: &str| n.parse::<IpNet>().unwrap();
    s.record_bans(&[ban("sshd", "198.51.100.2/32", 1, 100)]).unwrap();
    let lock = locked(&db);
    s.record_unbans(Some("sshd"), &[net("198.51.100.1/32"), net("198.51.100.2/32")], t(5))
        .unwrap();
    s.record_bans(&[ban("sshd", "198.51.100.2/32", 6, 100)]).unwrap();
    let mut running = Vec::new();
    s.each_running(t(10), 100, |bans| {
        running.extend(
            bans.into_iter()
                .map(|b| (b.jail.to_string(), b.net.to_string(), b.expires)),
        );
        true
    })
    .unwrap();
    assert_eq!(
        running,
        [
            ("asterisk".to_string(), "198.51.100.1/32".to_string(), t(100)),
            ("sshd".to_string(), "198.51.100.2/32".to_string(), t(106))
        ]
    );
    drop(lock);
    s.sync().unwrap();
    let mut active: Vec<(String, String)> = s
        .active(t(10))
        .unwrap()
        .into_iter()
        .map(|b| (b.jail, b.net.to_string()))
        .collect();
    active.sort();
    assert_eq!(
        active,
        [
            ("asterisk".to_string(), "198.51.100.1/32".to_string()),
            ("sshd".to_string(), "198.51.100.2/32".to_string())
        ]
    );
}

/// The engine's own move of what waits (no mover, or the file past
/// `FILE_MOST`) reads the file in pieces, not whole: every line of a file
/// of several pieces reaches SQLite once, in order (an unban in the middle
/// lifts the bans before it, not those after), and the file is emptied.
/// A store without a mover whose pending file holds several pieces of
/// 1 MiB: 20,000 bans, an unban of the first ten, 20,000 more.
fn many_pieces_pending(db: &std::path::Path) -> (Store, Vec<BanRecord>) {
    let mut s = Store::open(db).unwrap();
    s.mover = mover::Mover::none();
    let first = bulk(0, 20_000);
    s.record_bans(&first).unwrap();
    let lifted: Vec<IpNet> = first[..10].iter().map(|b| b.net).collect();
    s.record_unbans(Some("manual"), &lifted, t(5)).unwrap();
    s.record_bans(&bulk(20_000, 20_000)).unwrap();
    let size = std::fs::metadata(pending_path(db)).unwrap().len();
    assert!(size > 3 << 20, "several pieces of 1 MiB: {size} bytes");
    assert_eq!(rows_in(db), 0);
    (s, first)
}

#[test]
fn a_save_moves_a_pending_file_of_many_pieces_line_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nftban.db");
    let (mut s, first) = many_pieces_pending(&db);
    // Banned again after the unban: not lifted by it.
    s.record_bans(&bulk(0, 5)).unwrap();
    // Counted from the file, in pieces too.
    let count = |s: &mut Store, b: &BanRecord| s.ban_count("manual", &b.net).unwrap();
    assert_eq!(count(&mut s, &first[3]), 2, "banned, and banned again");
    assert_eq!(count(&mut s, &first[7]), 1);
    assert_eq!(count(&mut s, &bulk(39_999, 1)[0]), 1, "the last line");
    s.sync().unwrap();
    assert!(!s.has_pending());
    assert_eq!(std::fs::metadata(pending_path(&db)).unwrap().len(), 0);
    let rows = lifts_in(&db);
    assert_eq!(rows.len(), 40_005, "each line once");
    assert!(
        rows[..10].iter().all(|r| r.2 == Some(5)),
        "the unban lifted the bans before it"
    );
    assert!(rows[10..].iter().all(|r| r.2.is_none()), "and no other");
    let active = s.active(t(1)).unwrap();
    assert_eq!(active.len(), 40_000 - 10 + 5);
}

/// What a crashed run left is moved at the next start in pieces too,
/// whatever its size: every line once, in order, a line whose time no
/// clock can hold skipped, and the file emptied.
#[test]
fn a_crash_leaving_a_pending_file_of_many_pieces_loses_nothing_at_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nftban.db");
    let (s, _) = many_pieces_pending(&db);
    crash(s, &db);
    // A line whose time no clock can hold, at the end: skipped as before.
    let mut f = std::fs::File::options().append(true).open(pending_path(&db)).unwrap();
    std::io::Write::write_all(
        &mut f,
        br#"{"jail":"manual","net":"198.51.100.9/32","at":1800000000,"expires":18446744073709551615,"origin":"auto"}
"#,
    )
    .unwrap();
    drop(f);
    let mut s = Store::open(&db).unwrap();
    assert!(!s.has_pending());
    assert_eq!(std::fs::metadata(pending_path(&db)).unwrap().len(), 0);
    let rows = lifts_in(&db);
    assert_eq!(rows.len(), 40_000, "each line once");
    assert!(
        rows[..10].iter().all(|r| r.2 == Some(5)),
        "the unban lifted the bans before it"
    );
    assert!(rows[10..].iter().all(|r| r.2.is_none()));
    assert_eq!(s.active(t(1)).unwrap().len(), 40_000 - 10);
}

/// Banned, unbanned and banned again within one second, with the same
/// bantime: the second ban's line is the first's twin (same jail, net and
/// times in seconds). Left by a crash, the second was taken for a ban
/// SQLite held already (the first, moved a line before) and skipped: not
/// restored. SQLite holds a prefix of the file's lines, so the check
/// stops at the first line it does not hold.
#[test]
fn a_ban_again_in_the_same_second_left_by_a_crash_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nftban.db");
    let mut s = Store::open(&db).unwrap();
    let net: IpNet = "198.51.100.1/32".parse().unwrap();
    s.record_bans(&[ban("sshd", "198.51.100.1/32", 0, 600)]).unwrap();
    s.record_unbans(Some("sshd"), &[net], t(0)).unwrap();
    s.record_bans(&[ban("sshd", "198.51.100.1/32", 0, 600)]).unwrap();
    assert_eq!(rows_in(&db), 0, "all three lines wait");
    crash(s, &db);
    let mut s = Store::open(&db).unwrap();
    assert_eq!(
        lifts_in(&db),
        [("sshd".to_string(), 0, Some(0)), ("sshd".to_string(), 0, None)]
    );
    let active = s.active(t(1)).unwrap();
    assert_eq!(active.len(), 1, "the second ban runs");
    assert_eq!(active[0].net, net);
}

/// The history says how far into the pending file it holds the lines (a
/// move says so in its transaction; 0 once the file is emptied): a start
/// skips those unread and inserts the rest without a check. A ban made
/// again in the same second as one unbanned, with the same bantime, is
/// the same row as the first; checked, it was taken for it and lost,
/// after a file emptied by a save as after a move of the mover thread
/// with lines behind it.
#[test]
fn the_history_says_how_much_of_the_pending_file_it_holds() {
    let a: IpNet = "10.0.0.0/32".parse().unwrap();
    let twin = || ban("manual", "10.0.0.0/32", 0, 600);
    for mover in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nftban.db");
        let raw = Connection::open(&db).unwrap();
        let said = || held(&raw, &pending_path(&db)).unwrap();
        let mut s = Store::open(&db).unwrap();
        s.pending_most = 6;
        s.record_bans(&bulk(0, 6)).unwrap();
        if mover {
            // Handed to the mover; the unban and the ban again come
            // behind the range in flight.
            assert!(s.mover.busy());
        } else {
            s.settle();
            s.sync().unwrap();
            assert_eq!(said(), Some(0), "emptied");
        }
        s.record_unbans(Some("manual"), &[a], t(0)).unwrap();
        s.record_bans(&[twin()]).unwrap();
        s.settle();
        let size = std::fs::metadata(pending_path(&db)).unwrap().len();
        match mover {
            true => assert!(said().is_some_and(|h| h > 0 && h < size), "{:?} of {size}", said()),
            false => assert_eq!(said(), Some(0)),
        }
        crash(s, &db);
        let mut s = Store::open(&db).unwrap();
        let rows = lifts_in(&db);
        assert_eq!(rows.len(), 7, "mover: {mover}: {rows:?}");
        assert_eq!(rows[0].2, Some(0), "the first ban of 10.0.0.0 lifted");
        assert_eq!(rows[6], ("manual".to_string(), 0, None), "its ban again kept");
        let active = s.active(t(1)).unwrap();
        assert_eq!(active.len(), 6, "mover: {mover}");
        assert!(active.iter().any(|b| b.net == a), "mover: {mover}");
        assert_eq!(said(), Some(0), "emptied at the start");
    }
}
