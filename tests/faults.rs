//! Faults of the ban history and the kernel against the real daemon, in
//! private network namespaces: the database locked by another process,
//! damaged on disk, the table deleted in the middle of a big ban, and
//! `kill -9` at many points of a burst. In each, bans keep reaching the
//! kernel, and afterwards kernel, status and history agree.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::*;

fn db_of(s: &Setup) -> PathBuf {
    s.dir.path().join("nftban.db")
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// `n` addresses `10.A.B.C` from `first` on, one a line (for `ban -`).
fn addresses(first: u32, n: u32) -> Vec<String> {
    (first..first + n)
        .map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))
        .collect()
}

/// The permission bits of `path`.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Files of the setup's folder named `nftban.db.corrupt-*` (the moved
/// databases, not their `-wal` and `-shm`).
fn moved_aside(s: &Setup) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("nftban.db.corrupt-") && !name.ends_with("-wal") && !name.ends_with("-shm")
        })
        .collect();
    v.sort();
    v
}

/// Damage done to a stopped daemon's history, and what SQLite says of it
/// (`None`: not damage).
struct Damage {
    name: &'static str,
    /// What `check` and the daemon name, `None` for a file that is sound.
    says: Option<&'static str>,
    apply: fn(&Path),
}

fn garbage(db: &Path) {
    let bytes: Vec<u8> = (0..256 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(db, bytes).unwrap();
}

fn truncated(db: &Path) {
    let f = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    let len = f.metadata().unwrap().len();
    assert!(len > 64 * 1024, "a history of some size: {len}");
    f.set_len(len / 2).unwrap();
}

fn zero_length(db: &Path) {
    std::fs::write(db, b"").unwrap();
}

/// The WAL of another program's database, left beside the history.
fn foreign_wal(db: &Path) {
    let other = db.with_file_name("other.db");
    let c = rusqlite::Connection::open(&other).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE accounts (name TEXT); INSERT INTO accounts VALUES ('x');",
    )
    .unwrap();
    std::fs::copy(other.with_file_name("other.db-wal"), db.with_file_name("nftban.db-wal")).unwrap();
}

const DAMAGES: [Damage; 4] = [
    Damage {
        name: "garbage",
        says: Some("file is not a database"),
        apply: garbage,
    },
    Damage {
        name: "truncated",
        says: Some("database disk image is malformed"),
        apply: truncated,
    },
    Damage {
        name: "zero-length",
        says: None,
        apply: zero_length,
    },
    Damage {
        name: "WAL of another database",
        says: Some("not a ban history: it has no `bans` table, only accounts"),
        apply: foreign_wal,
    },
];

/// A damaged history used to stop the daemon from starting at all (exit
/// 2, `database disk image is malformed`): no new ban until someone
/// deleted the file. Now `nftban check` names the file and the damage
/// (exit 2) and moves nothing; the daemon moves the file aside (0600),
/// says loudly what that loses, starts with an empty history, and bans.
/// A zero-length file is an empty history, not damage.
#[test]
fn a_damaged_history_is_moved_aside_and_the_daemon_protects() {
    kernel_test!();
    let ns = NetNs::create("dbdamage").unwrap();
    for damage in &DAMAGES {
        let s = Setup::asterisk("");
        let db = db_of(&s);
        let d = Daemon::start(&ns, &s);
        let list = addresses(1, 3000).join("\n");
        assert!(s.cli_stdin(&["ban", "-"], &list).status.success());
        assert!(d.stop());
        nft(&ns, &["delete", "table", "inet", "nftban"]);

        (damage.apply)(&db);
        let before = std::fs::read(&db).unwrap();
        let o = s.cli(&["check"]);
        match damage.says {
            Some(says) => {
                assert_eq!(o.status.code(), Some(2), "{}: {}", damage.name, stderr(&o));
                let want = format!("the ban database {} is damaged: {says}", db.display());
                assert!(stderr(&o).contains(&want), "{}: {}", damage.name, stderr(&o));
            }
            None => assert!(o.status.success(), "{}: {}", damage.name, stderr(&o)),
        }
        assert!(
            std::fs::read(&db).unwrap() == before,
            "{}: check changed the file",
            damage.name
        );
        assert_eq!(
            moved_aside(&s),
            Vec::<PathBuf>::new(),
            "{}: check moves nothing",
            damage.name
        );

        let d = Daemon::start(&ns, &s);
        s.cli_ok(&["ban", "203.0.113.9"]);
        assert_eq!(set_addrs(&ns, "manual_v4"), ["203.0.113.9"], "{}", damage.name);
        assert_eq!(banned_ips(&s.jail_status("manual")), ["203.0.113.9"], "{}", damage.name);
        let log = d.log();
        let aside = moved_aside(&s);
        match damage.says {
            Some(says) => {
                assert_eq!(aside.len(), 1, "{}: {aside:?}", damage.name);
                assert!(
                    std::fs::read(&aside[0]).unwrap() == before,
                    "{}: moved as it was",
                    damage.name
                );
                assert_eq!(mode(&aside[0]), 0o600, "{}", damage.name);
                let want = format!(
                    "the ban database {} is damaged ({says}): moved aside to {} and started an empty history",
                    db.display(),
                    aside[0].display()
                );
                assert_eq!(log.matches(&want).count(), 1, "{}: {log}", damage.name);
                assert!(log.contains("the running bans it held are not restored"), "{log}");
            }
            None => {
                assert_eq!(aside, Vec::<PathBuf>::new(), "{}", damage.name);
                assert!(!log.contains("damaged"), "{}: {log}", damage.name);
            }
        }
        // The new history works: a restart on an emptied kernel restores.
        assert!(d.stop());
        nft(&ns, &["delete", "table", "inet", "nftban"]);
        let d = Daemon::start(&ns, &s);
        assert_eq!(set_addrs(&ns, "manual_v4"), ["203.0.113.9"], "{}", damage.name);
        assert!(s.cli_ok(&["check"]).status.success());
        assert!(d.stop());
        nft(&ns, &["delete", "table", "inet", "nftban"]);
    }
}

/// Another process's hold on the history: a connection of this test
/// process (not the daemon's) in an exclusive transaction, until dropped.
struct Lock {
    conn: rusqlite::Connection,
}

impl Lock {
    fn hold(db: &Path) -> Lock {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
        Lock { conn }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }
}

/// The pending file beside the database is emptied: its bans are in SQLite.
fn wait_pending_moved(s: &Setup) {
    let pending = s.dir.path().join("nftban.db-pending");
    wait_for("the pending file to be emptied", || {
        let len = std::fs::metadata(&pending).ok()?.len();
        (len == 0).then_some(())
    });
}

/// Ban addresses one after the other through the log (3 failures each),
/// each waited for in the kernel; returns the longest wait, for the test's
/// output (not asserted: a measure of how long the engine stalls).
fn ban_through_the_log(ns: &NetNs, s: &Setup, addrs: &[String], want: &mut Vec<String>) -> Duration {
    let mut slowest = Duration::ZERO;
    for addr in addrs {
        let t = Instant::now();
        s.failures(addr, 3);
        want.push(addr.clone());
        let now = sorted(want.clone());
        wait_for(&format!("{addr} in the kernel"), || {
            (sorted(set_addrs(ns, "asterisk_v4")) == now).then_some(())
        });
        slowest = slowest.max(t.elapsed());
        // Apart enough that a save (about once a second) falls between.
        std::thread::sleep(Duration::from_millis(400));
    }
    slowest
}

/// The history locked by another process (an exclusive transaction held
/// open, as `sqlite3 nftban.db` with `BEGIN EXCLUSIVE;` typed in does).
/// Bans keep reaching the kernel, `unban` lifts and says so (its record
/// waits in the pending file with the bans, so nothing waits in memory),
/// the error is logged once, and once the lock is gone the
/// history catches up: a restart on an emptied kernel restores exactly
/// the bans that run. Before, each save waited SQLite's busy timeout of 5
/// s on the engine's thread: bans waited up to 5 s to reach the kernel, an
/// unban up to 10 s.
#[test]
fn a_locked_history_delays_no_ban_and_catches_up() {
    kernel_test!();
    let ns = NetNs::create("dblock").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    s.cli_ok(&["ban", "203.0.113.1"]);
    wait_pending_moved(&s);

    let lock = Lock::hold(&db_of(&s));
    let addrs = |r: std::ops::Range<u32>| r.map(|i| format!("198.51.100.{i}")).collect::<Vec<_>>();
    let mut banned = Vec::new();
    let slowest = ban_through_the_log(&ns, &s, &addrs(1..5), &mut banned);
    let t = Instant::now();
    let o = s.cli_ok(&["unban", "203.0.113.1"]);
    let unban = t.elapsed();
    assert_eq!(stdout(&o), "unbanned 203.0.113.1 from jail manual\n");
    assert_eq!(set_addrs(&ns, "manual_v4"), Vec::<String>::new());
    let after = ban_through_the_log(&ns, &s, &addrs(5..7), &mut banned);
    eprintln!(
        "while the history was locked: the slowest ban took {:?} to reach the kernel, unban {unban:?}",
        slowest.max(after)
    );
    let st = s.try_status().unwrap();
    assert_eq!(
        st.history_waiting, 0,
        "the unban waits in the pending file with the bans, nothing in memory: {st:?}"
    );
    assert!(st.history_errors > 0, "{st:?}");

    drop(lock);
    wait_for("the history to catch up", || {
        (s.try_status()?.history_waiting == 0).then_some(())
    });
    let log = d.log();
    assert!(d.stop());
    assert_eq!(log.matches("database is locked").count(), 1, "{log}");
    assert_eq!(log.matches("the ban history is written again").count(), 1, "{log}");

    nft(&ns, &["delete", "table", "inet", "nftban"]);
    let d = Daemon::start(&ns, &s);
    assert_eq!(sorted(set_addrs(&ns, "asterisk_v4")), sorted(banned.clone()));
    assert_eq!(set_addrs(&ns, "manual_v4"), Vec::<String>::new());
    assert_eq!(
        sorted(
            banned_ips(&s.jail_status("asterisk"))
                .iter()
                .map(|a| a.to_string())
                .collect()
        ),
        sorted(banned)
    );
    assert_eq!(banned_ips(&s.jail_status("manual")), Vec::<&str>::new());
    assert!(d.stop());
}

/// Damage the history under a running daemon: another connection moves
/// every page into the file (emptying the WAL, which also tells the
/// daemon's connection to read the file again), then every page after the
/// first is overwritten with garbage, as a failing disk or a stray write
/// would.
fn damage_under_the_daemon(db: &Path) {
    use std::os::unix::fs::FileExt;
    empty_wal(db);
    let f = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    let len = f.metadata().unwrap().len();
    let junk: Vec<u8> = (0..len - 4096)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
        .collect();
    f.write_all_at(&junk, 4096).unwrap();
}

/// The history damaged while the daemon runs: every read and write then
/// fails with `database disk image is malformed`, and would until a
/// restart. Bans by the log and by hand keep reaching the kernel and unban
/// works; the damage is logged once, and at the next save the file is
/// moved aside and a new history written with every running ban from the
/// engine's record. Before, the history stayed broken: a restart then
/// moved it aside and restored only the bans of the pending file (3 of the
/// 2,103 running), the others being lost with the process.
#[test]
fn a_history_damaged_while_running_is_replaced_with_the_running_bans() {
    kernel_test!();
    let ns = NetNs::create("dbrot").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    let list = addresses(1, 2000).join("\n");
    assert!(s.cli_stdin(&["ban", "-"], &list).status.success());
    wait_pending_moved(&s);

    damage_under_the_daemon(&db_of(&s));
    let mut banned = Vec::new();
    let addrs: Vec<String> = (1..4).map(|i| format!("198.51.100.{i}")).collect();
    ban_through_the_log(&ns, &s, &addrs, &mut banned);
    wait_for("a save to find the damage", || {
        (s.try_status()?.history_errors > 0).then_some(())
    });
    let more = addresses(5000, 100);
    let o = s.cli_stdin(&["ban", "-"], &more.join("\n"));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = s.cli_ok(&["unban", "10.0.0.1"]);
    assert_eq!(stdout(&o), "unbanned 10.0.0.1 from jail manual\n");
    ban_through_the_log(&ns, &s, &["198.51.100.4".to_string()], &mut banned);
    let manual = sorted(set_addrs(&ns, "manual_v4"));
    assert_eq!(manual.len(), 2099);

    let replaced = "was moved aside to";
    wait_for("the damaged history to be replaced", || {
        (d.log().contains(replaced) && s.try_status()?.history_waiting == 0).then_some(())
    });
    let log = d.log();
    assert_eq!(log.matches("database disk image is malformed").count(), 1, "{log}");
    assert_eq!(log.matches(replaced).count(), 1, "{log}");
    assert_eq!(moved_aside(&s).len(), 1);
    // The new history takes what comes after.
    ban_through_the_log(&ns, &s, &["198.51.100.5".to_string()], &mut banned);
    assert!(d.stop());

    nft(&ns, &["delete", "table", "inet", "nftban"]);
    let d = Daemon::start(&ns, &s);
    assert!(
        sorted(set_addrs(&ns, "manual_v4")) == manual,
        "the manual bans restored"
    );
    assert_eq!(sorted(set_addrs(&ns, "asterisk_v4")), sorted(banned));
    assert_eq!(moved_aside(&s).len(), 1, "the new history is sound");
    assert!(d.stop());
}

/// What `ban -` answered: the addresses it banned, and those it said it
/// did not ban (`nftban: not banned: ADDR: why` on stderr).
fn ban_answer(o: &std::process::Output) -> (Vec<String>, Vec<String>) {
    let banned = stdout(o)
        .lines()
        .filter_map(|l| l.strip_prefix("banned ")?.split(' ').next().map(str::to_string))
        .collect();
    let refused = stderr(o)
        .lines()
        .filter_map(|l| {
            l.strip_prefix("nftban: not banned: ")?
                .split(':')
                .next()
                .map(str::to_string)
        })
        .collect();
    (banned, refused)
}

/// A big `ban -` (50,000 addresses, five requests) while another process
/// deletes nftban's table (`nft delete table`, then `nft flush ruleset`)
/// in the middle of it. Afterwards the table is back, and kernel, status
/// and history agree: every address is banned in all three, or was said
/// not banned in the ban's answer and is in none.
#[test]
fn the_table_deleted_in_the_middle_of_a_big_ban() {
    kernel_test!();
    let ns = NetNs::create("midbatch").unwrap();
    for (round, deletion) in [["delete", "table", "inet", "nftban"], ["flush", "ruleset", "", ""]]
        .iter()
        .enumerate()
    {
        let s = Setup::asterisk("");
        let d = Daemon::start(&ns, &s);
        let list = addresses(round as u32 * 100_000, 50_000);
        let o = std::thread::scope(|sc| {
            let ban = sc.spawn(|| s.cli_stdin(&["ban", "-"], &list.join("\n")));
            // Once the daemon has logged bans of the first request, while
            // the rest are still coming.
            wait_for("the first bans", || d.log().contains("(by hand)").then_some(()));
            let args: Vec<&str> = deletion.iter().copied().filter(|a| !a.is_empty()).collect();
            nft(&ns, &args);
            ban.join().unwrap()
        });
        let (answered, refused) = ban_answer(&o);
        eprintln!(
            "{}: {} banned, {} refused",
            deletion.join(" "),
            answered.len(),
            refused.len()
        );
        assert_eq!(answered.len() + refused.len(), 50_000, "{}", stderr(&o));
        let want = sorted(answered);
        let kernel = wait_for("the table and the bans to be back", || {
            let o = run(ns
                .command("nft")
                .args(["-j", "list", "set", "inet", "nftban", "manual_v4"]));
            if !o.status.success() {
                return None;
            }
            // The whole list, not its length: a listing taken while the
            // set still fills (and its hash table grows) can show an
            // element twice and miss another, at the right count.
            let got = sorted(set_addrs(&ns, "manual_v4"));
            (got == want).then_some(got)
        });
        assert!(
            kernel == want,
            "kernel: {} addresses, answered {}",
            kernel.len(),
            want.len()
        );
        let st = s.jail_status("manual");
        let status = sorted(banned_ips(&st).iter().map(|a| a.to_string()).collect());
        assert!(
            status == want,
            "status: {} addresses, answered {}",
            status.len(),
            want.len()
        );
        assert!(d.stop());

        nft(&ns, &["delete", "table", "inet", "nftban"]);
        let d = Daemon::start(&ns, &s);
        let history = sorted(set_addrs(&ns, "manual_v4"));
        assert!(
            history == want,
            "history restores {} addresses, answered {}",
            history.len(),
            want.len()
        );
        assert!(d.stop());
        nft(&ns, &["delete", "table", "inet", "nftban"]);
    }
}

/// The reading position of the log saved in the history, read by another
/// connection (the daemon saves it about once a second).
fn saved_position(s: &Setup) -> Option<u64> {
    let c = rusqlite::Connection::open_with_flags(db_of(s), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    c.query_row(
        "SELECT offset FROM positions WHERE path = ?1",
        [path_str(&s.log)],
        |r| r.get::<_, i64>(0),
    )
    .ok()
    .map(|o| o as u64)
}

/// One round of attackers for [`kill_9_at_many_points_of_a_burst`]: `full`
/// send `maxretry` (3) failures each and must be banned; `short` send 2
/// and must not be (a failure counted twice would ban them).
struct Round {
    full: Vec<String>,
    short: Vec<String>,
}

impl Round {
    fn new(round: u32, each: u32) -> Round {
        let addr = |i: u32| format!("10.{}.{}.{}", 100 + round, i / 250, i % 250 + 1);
        Round {
            full: (0..each).map(addr).collect(),
            short: (each..2 * each).map(addr).collect(),
        }
    }

    /// The burst's lines, a staircase: step `t` writes the first failure
    /// of attacker `t`, the second of attacker `t - GAP` and the third of
    /// attacker `t - 2 GAP` (full and short attackers alternate), so that
    /// each attacker's failures lie far apart and bans are made all along
    /// the burst after its start: a kill anywhere splits some attackers'
    /// failures between two runs, and falls among bans being made.
    fn lines(&self) -> Vec<String> {
        const GAP: usize = 25;
        let all: Vec<(&String, bool)> = self
            .full
            .iter()
            .zip(&self.short)
            .flat_map(|(f, s)| [(f, true), (s, false)])
            .collect();
        let mut lines = Vec::new();
        for t in 0..all.len() + 2 * GAP {
            let nth = |back: usize| t.checked_sub(back).and_then(|i| all.get(i));
            if let Some((a, _)) = nth(0) {
                lines.push(failed_registration(a));
            }
            if let Some((a, _)) = nth(GAP) {
                lines.push(failed_registration(a));
            }
            if let Some((a, true)) = nth(2 * GAP) {
                lines.push(failed_registration(a));
            }
        }
        lines
    }
}

/// `kill -9` at nine points of a burst of failures, each followed by a
/// restart that reads the rest of the log from the saved position: right
/// after each eighth of the burst is written (while the daemon reads it,
/// and once the history holds a position inside the burst, so that the
/// restart resumes from saved failure counts), and after it was all read. After each restart the kernel and status
/// hold exactly the attackers that sent three failures (every ban in the
/// kernel is known, none is missing), and no attacker that sent two is
/// banned: no failure was counted twice (a line read again although its
/// failure was saved) nor lost (a position saved past a failure that was
/// not). At the end the history alone restores exactly those bans into an
/// emptied kernel.
#[test]
fn kill_9_at_many_points_of_a_burst() {
    kernel_test!();
    let ns = NetNs::create("kill9many").unwrap();
    let s = Setup::asterisk("");
    let mut want: Vec<String> = Vec::new();
    const SLICES: usize = 8;
    const PAUSE: Duration = Duration::from_millis(50);
    for round in 0..=SLICES {
        let r = Round::new(round as u32, 150);
        let lines = r.lines();
        let of_round = |ns: &NetNs| {
            set_addrs(ns, "asterisk_v4")
                .iter()
                .filter(|a| r.full.contains(a) || r.short.contains(a))
                .count()
        };
        let mut d = Some(Daemon::start(&ns, &s));
        let mut at_kill = 0;
        for (k, part) in lines.chunks(lines.len().div_ceil(SLICES)).enumerate() {
            if k + 1 == round {
                // Once the history holds a position inside the burst (with
                // the failure counts up to it), kill while the daemon reads
                // the next slice.
                let read = std::fs::metadata(&s.log).unwrap().len();
                wait_for("a position saved inside the burst", || {
                    (saved_position(&s)? >= read).then_some(())
                });
                s.append(part);
                d.take().unwrap().kill();
                at_kill = of_round(&ns);
            } else {
                s.append(part);
                std::thread::sleep(PAUSE);
            }
        }
        if let Some(d) = d.take() {
            // Round 0: killed once the whole burst was read (a third
            // failure is the burst's last line).
            let last = r.full.last().unwrap().clone();
            wait_for("the burst to be read", || {
                set_addrs(&ns, "asterisk_v4").contains(&last).then_some(())
            });
            d.kill();
            at_kill = of_round(&ns);
        }
        eprintln!(
            "round {round}: killed after {} of {SLICES} eighths of the burst, {at_kill} of its {} bans in the kernel",
            if round == 0 { SLICES } else { round },
            r.full.len()
        );

        let d = Daemon::start(&ns, &s);
        // A last attacker after the burst: once it is banned, every line
        // before it has been read.
        let sentinel = format!("10.99.0.{}", round + 1);
        s.failures(&sentinel, 3);
        want.extend(r.full.iter().cloned());
        want.push(sentinel.clone());
        let st = s.wait_jail("asterisk", &format!("round {round}: the sentinel banned"), |st| {
            st.banned.iter().any(|b| b.ip == sentinel)
        });
        let status = sorted(banned_ips(&st).iter().map(|a| a.to_string()).collect());
        let kernel = sorted(set_addrs(&ns, "asterisk_v4"));
        let short: Vec<&String> = r.short.iter().filter(|a| status.contains(a)).collect();
        assert_eq!(short, Vec::<&String>::new(), "round {round}: banned with two failures");
        let missing: Vec<&String> = want.iter().filter(|a| !status.contains(a)).collect();
        assert_eq!(missing, Vec::<&String>::new(), "round {round}: a failure was lost");
        assert!(status == sorted(want.clone()), "round {round}: status");
        assert!(kernel == status, "round {round}: kernel and status differ");
        if round % 2 == 1 {
            assert!(d.stop());
        } else {
            d.kill();
        }
    }
    nft(&ns, &["delete", "table", "inet", "nftban"]);
    let d = Daemon::start(&ns, &s);
    assert!(
        sorted(set_addrs(&ns, "asterisk_v4")) == sorted(want.clone()),
        "the history restores"
    );
    assert!(d.stop());
}

/// The history locked by another process while the daemon restarts: by a
/// reload (which re-executes it), then by a start after `kill -9` with
/// bans still in the pending file. Before, the restart could not move
/// those bans into SQLite within the busy timeout and stopped (`nftban:
/// error: ban database ...: database is locked`): no daemon until someone
/// started it again after the lock was gone. Now it starts, restores what
/// SQLite holds and what the pending file holds, bans, and moves the
/// pending bans into SQLite once the lock is gone.
#[test]
fn a_locked_history_does_not_stop_a_restart() {
    kernel_test!();
    let ns = NetNs::create("dblockre").unwrap();
    let s = Setup::asterisk("");
    let mut d = Daemon::start(&ns, &s);
    let pid = d.child.id();
    s.cli_ok(&["ban", "203.0.113.1"]);
    wait_pending_moved(&s);
    let lock = Lock::hold(&db_of(&s));
    s.cli_ok(&["ban", "203.0.113.2"]);
    s.cli_ok(&["reload"]);
    wait_for("the reloaded daemon to restore both bans", || {
        let st = s.try_jail_status("manual")?;
        (banned_ips(&st) == ["203.0.113.1", "203.0.113.2"]).then_some(())
    });
    assert!(d.is_running(), "{}", d.log());
    assert_eq!(d.child.id(), pid);

    s.cli_ok(&["ban", "203.0.113.3"]);
    d.kill();
    nft(&ns, &["delete", "table", "inet", "nftban"]);
    let d = Daemon::start(&ns, &s);
    let want = ["203.0.113.1", "203.0.113.2", "203.0.113.3"];
    assert_eq!(banned_ips(&s.jail_status("manual")), want);
    assert_eq!(sorted(set_addrs(&ns, "manual_v4")), want);
    let log = d.log();
    assert!(
        log.contains("cannot move the 2 ban(s) and unban(s) left in") && log.contains("database is locked"),
        "{log}"
    );
    drop(lock);
    wait_pending_moved(&s);
    assert!(d.stop());

    nft(&ns, &["delete", "table", "inet", "nftban"]);
    std::fs::write(s.dir.path().join("nftban.db-pending"), "").unwrap();
    let d = Daemon::start(&ns, &s);
    assert_eq!(sorted(set_addrs(&ns, "manual_v4")), want, "all in SQLite now");
    assert!(d.stop());
}
