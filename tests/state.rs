//! Durations, state files and the ban history under faults and hostile
//! input: durations past the maximum, files written by others, a full
//! disk, a read-only folder. Daemon tests run in private network (and,
//! where a file system is faked, mount) namespaces.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use crate::support::*;

/// What the daemon answers to one raw line on its control socket.
fn raw_request(s: &Setup, line: &str) -> serde_json::Value {
    let mut sock = UnixStream::connect(s.socket()).unwrap();
    writeln!(sock, "{line}").unwrap();
    let mut answer = String::new();
    BufReader::new(sock).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"))
}

/// `--bantime` past 10 years is refused before anything is sent (no
/// daemon is needed to see it): it used to reach the daemon and overflow.
#[test]
fn the_cli_refuses_a_bantime_past_the_maximum() {
    let s = Setup::asterisk("");
    for t in ["10000000000000000000", "3651d", "315360001"] {
        let o = s.cli(&["ban", "203.0.113.9", "--bantime", t]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_eq!(
            stderr(&o),
            format!("nftban: error: --bantime: `{t}` is longer than the maximum of 10 years (3650d)\n")
        );
    }
}

/// `check` and `reload` refuse a config bantime past the maximum, naming
/// file, line and key; the running daemon keeps its config and answers.
#[test]
fn check_and_reload_refuse_a_bantime_past_the_maximum() {
    kernel_test!();
    let ns = NetNs::create("maxdur").unwrap();
    let s = Setup::asterisk("");
    let mut d = Daemon::start(&ns, &s);
    s.jails(&format!(
        "{}    bantime: 10000000000000000000\n",
        asterisk_jail("asterisk", &[&s.log])
    ));
    let want = format!(
        "{}:8:14: jails.asterisk.bantime: `10000000000000000000` is longer than the maximum of 10 years (3650d)",
        s.config.display()
    );
    let o = s.cli(&["check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    let o = s.cli(&["reload"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("reload refused, the running config stays"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    assert_eq!(s.jail_status("asterisk").bantime, 3600);
    s.failures("198.51.100.7", 3);
    s.wait_jail("asterisk", "the ban of 198.51.100.7", |st| st.currently_banned == 1);
    assert!(d.is_running());
}

/// The control socket carries `bantime` as plain seconds: past the
/// maximum, the daemon answers with an error that names the limit, bans
/// nothing, and keeps running.
#[test]
fn the_daemon_refuses_a_bantime_past_the_maximum_on_its_socket() {
    kernel_test!();
    let ns = NetNs::create("maxsock").unwrap();
    let s = Setup::asterisk("");
    let mut d = Daemon::start(&ns, &s);
    for secs in ["10000000000000000000", "18446744073709551615", "315360001"] {
        let answer = raw_request(
            &s,
            &format!(r#"{{"cmd":"ban","addrs":["203.0.113.9"],"jail":null,"bantime":{secs}}}"#),
        );
        assert_eq!(answer["ok"], false, "{answer}");
        assert_eq!(
            answer["error"],
            format!("bantime {secs}s is longer than the maximum of 10 years (3650d)"),
            "{answer}"
        );
    }
    assert!(d.is_running());
    assert_eq!(s.jail_status("manual").currently_banned, 0);
    assert!(set_addrs(&ns, "manual_v4").is_empty());
    let answer = raw_request(
        &s,
        r#"{"cmd":"ban","addrs":["203.0.113.9"],"jail":null,"bantime":315360000}"#,
    );
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(set_addrs(&ns, "manual_v4"), ["203.0.113.9"]);
}

/// Seconds since the epoch, now.
fn epoch_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A local user who could append to the pending file (0666 under umask
/// 000) banned the whole world at the next start, `ignoreip` included, and
/// an `expires` past the clock made every start panic. Now the daemon
/// starts, the true ban alone is restored, and the rest is said once.
#[test]
fn forged_pending_bans_are_not_restored() {
    kernel_test!();
    let ns = NetNs::create("forged").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    s.cli_ok(&["ban", "203.0.113.7", "--jail", "asterisk"]);
    assert!(d.stop());
    let now = epoch_now();
    let day = now + 86_400;
    let mut lines = Vec::new();
    for (jail, net, expires) in [
        ("asterisk", "0.0.0.0/0", day),
        ("asterisk", "::/0", day),
        ("asterisk", "127.0.0.1/32", day),
        ("asterisk", "192.0.2.99/32", day),
        ("asterisk", "198.51.100.2/32", now + 20 * 365 * 86_400),
        ("asterisk", "198.51.100.3/32", u64::MAX),
        ("nosuchjail", "198.51.100.4/32", day),
    ] {
        lines.push(format!(
            r#"{{"jail":"{jail}","net":"{net}","at":{now},"expires":{expires},"origin":"manual"}}"#
        ));
    }
    append_to(&s.dir.path().join("nftban.db-pending"), &lines);
    let d = Daemon::start(&ns, &s);
    assert_eq!(banned_ips(&s.jail_status("asterisk")), ["203.0.113.7"]);
    assert_eq!(set_addrs(&ns, "asterisk_v4"), ["203.0.113.7"]);
    for set in [
        "asterisk_v4_24",
        "asterisk_v4_net",
        "asterisk_v6",
        "asterisk_v6_64",
        "asterisk_v6_net",
    ] {
        assert!(set_addrs(&ns, set).is_empty(), "{set}: {:?}", set_addrs(&ns, set));
    }
    let log = d.log();
    let said = "the ban history holds 4 record(s) nftban would never make";
    assert_eq!(log.matches(said).count(), 1, "{log}");
    // Inside `ignoreip` and not forced by hand: lifted, but no sign of a
    // forgery (an `ignoreip` widened since is the usual cause).
    let widened = "1 ban(s) lifted at start, in the kernel and the history: now inside their jail's ignoreip (e.g. 192.0.2.99 in jail asterisk)";
    assert_eq!(log.matches(widened).count(), 1, "{log}");
    assert!(log.contains("nftban.db-pending:6: unreadable pending line skipped (expires 18446744073709551615 is past what the clock can hold)"), "{log}");
    assert!(d.stop());
    // Judged once: lifted in the history, so the next start is quiet.
    let d = Daemon::start(&ns, &s);
    assert_eq!(banned_ips(&s.jail_status("asterisk")), ["203.0.113.7"]);
    assert_eq!(d.log().matches("nftban would never make").count(), 1);
}

/// The permission bits of `path`.
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    meta.permissions().mode() & 0o7777
}

/// Started under umask 000 (a careless unit, a shell), the daemon created
/// its history world-readable and its pending file world-writable. Now it
/// runs with umask 077 and creates every state file 0600, each folder
/// 0700, the log file too.
#[test]
fn state_files_are_private_under_umask_000() {
    kernel_test!();
    let ns = NetNs::create("umask").unwrap();
    let s = Setup::asterisk("");
    let state = s.dir.path().join("state/nftban");
    let log = s.dir.path().join("nftban.log");
    s.top(&format!("database: {}/nftban.db", state.display()));
    s.top(&format!("log: {{target: {}}}", log.display()));
    let d = Daemon::spawn(&ns, &s, |cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: umask(2) is async-signal-safe and cannot fail.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0);
                Ok(())
            })
        };
    });
    wait_for("the daemon to answer status", || s.try_status());
    s.cli_ok(&["ban", "203.0.113.7"]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
    assert!(status.contains("\nUmask:\t0077\n"), "{status}");
    assert!(d.stop());
    for folder in [s.dir.path().join("state"), state.clone()] {
        assert_eq!(mode(&folder), 0o700, "{}", folder.display());
    }
    for file in ["nftban.db", "nftban.db-pending"] {
        assert_eq!(mode(&state.join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(&log), 0o600);
    // While it runs, SQLite's own files are there too.
    let d = Daemon::start(&ns, &s);
    s.cli_ok(&["ban", "203.0.113.8"]);
    for file in ["nftban.db-wal", "nftban.db-shm"] {
        assert_eq!(mode(&state.join(file)), 0o600, "{file}");
    }
    drop(d);
}

/// `sh -c SCRIPT` in a private mount namespace (`unshare -m`, mounts
/// private: nothing reaches the host), run inside `ns`.
fn in_mount_ns(ns: &NetNs, script: &str) -> std::process::Output {
    run(ns
        .command("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script]))
}

/// A database whose folder is on a read-only file system passed `check`,
/// and the daemon's error did not say why. Both now say "read-only file
/// system" and name the database and its folder. The folder is made
/// read-only by a bind mount in a private mount namespace.
#[test]
fn a_read_only_database_folder_is_named_by_check_and_run() {
    kernel_test!();
    let ns = NetNs::create("rofs").unwrap();
    let s = Setup::asterisk("");
    let folder = s.dir.path().join("lib");
    s.top(&format!("database: {}/nftban.db", folder.display()));
    let d = Daemon::start(&ns, &s);
    s.cli_ok(&["ban", "203.0.113.7"]);
    assert!(d.stop());
    let read_only = format!(
        "mount --bind {0} {0} && mount -o remount,bind,ro {0} && exec {1}",
        folder.display(),
        env!("CARGO_BIN_EXE_nftban")
    );
    let want = format!(
        "cannot write the ban database {0}/nftban.db in {0}: read-only file system",
        folder.display()
    );
    for args in ["check", "run"] {
        let o = in_mount_ns(&ns, &format!("{read_only} {args} --config {}", s.config.display()));
        assert_eq!(o.status.code(), Some(2), "{args}: {}", stderr(&o));
        assert!(stderr(&o).contains(&want), "{args}: {}", stderr(&o));
    }
    // Writable again: check passes and names the database.
    let o = s.cli_ok(&["check"]);
    assert!(
        stdout(&o).contains(&format!("ban history: {}/nftban.db", folder.display())),
        "{}",
        stdout(&o)
    );
}

/// A folder the daemon's user cannot write to is "permission denied",
/// named, in `check`: run as nobody, which cannot write a root folder.
#[test]
fn check_says_permission_denied_for_a_folder_it_cannot_write() {
    kernel_test!();
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::asterisk("");
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&s.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let folder = s.dir.path().join("lib");
    std::fs::create_dir(&folder).unwrap();
    s.top(&format!("database: {}/nftban.db", folder.display()));
    let o = run(std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_nftban"))
        .args(["check", "--config"])
        .arg(&s.config));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let want = format!(
        "cannot write the ban database {0}/nftban.db in {0}: permission denied",
        folder.display()
    );
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
}

/// A process holding a private mount namespace (inside `ns`) where a small
/// tmpfs is mounted at `dir`: daemons started in it see that tmpfs, and
/// the test reaches it through `/proc/PID/root`. Killed when dropped.
struct SmallDisk {
    holder: std::process::Child,
    dir: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(ns: &NetNs, dir: &std::path::Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let holder = ns
            .command("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs -o size={size},mode=0700 nftban-test {} && exec sleep infinity",
                dir.display()
            ))
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let disk = SmallDisk {
            holder,
            dir: dir.to_path_buf(),
        };
        wait_for("the tmpfs to be mounted", || {
            let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", disk.holder.id())).ok()?;
            mounts.contains("nftban-test").then_some(())
        });
        disk
    }

    /// `path` (inside the tmpfs) as the test reaches it.
    fn path(&self, name: &str) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("/proc/{}/root{}", self.holder.id(), self.dir.display())).join(name)
    }

    /// Run `f` on a thread inside this mount namespace, where paths name
    /// the tmpfs as the daemon sees it. (SQLite resolves `/proc/PID/root`
    /// as a link, and would open the folder beneath the tmpfs instead.)
    fn inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        use std::os::fd::AsRawFd;
        let mnt = std::fs::File::open(format!("/proc/{}/ns/mnt", self.holder.id())).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                // A thread may enter another mount namespace once it no
                // longer shares its filesystem attributes with the others.
                // SAFETY: plain system calls on this thread and on a
                // descriptor that outlives them.
                assert_eq!(unsafe { libc::unshare(libc::CLONE_FS) }, 0);
                assert_eq!(unsafe { libc::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS) }, 0);
                f()
            })
            .join()
            .unwrap()
        })
    }

    /// `nftban run` on `setup`'s config in this mount namespace (and `ns`),
    /// its stderr in the setup's log as [`Daemon::spawn`] does.
    fn daemon(&self, ns: &NetNs, setup: &Setup) -> Daemon {
        let stderr = setup.dir.path().join("daemon.log");
        let child = ns
            .command("nsenter")
            .arg(format!("--mount=/proc/{}/ns/mnt", self.holder.id()))
            .arg(env!("CARGO_BIN_EXE_nftban"))
            .args(["run", "--config"])
            .arg(&setup.config)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&stderr)
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        let d = Daemon { child, stderr };
        wait_for("the daemon to answer status", || setup.try_status());
        d
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Fill the file system of `dir` with `dir/filler` until it is full.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 4096];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    path
}

/// The history on a real disk that fills up (a 4 MiB tmpfs in a private
/// mount namespace) and is freed again. Before, bans made meanwhile were
/// never written: after a restart they were missing from status, `unban`
/// said "not banned in any jail", and an unban meanwhile was refused. Now
/// bans and unbans keep working, what waits is shown in status, the
/// history catches up once space is back, and a restart restores exactly
/// what runs. The failure and the recovery are each logged once.
#[test]
fn a_full_disk_loses_no_ban_and_no_unban() {
    kernel_test!();
    let ns = NetNs::create("fulldisk").unwrap();
    let s = Setup::asterisk("");
    let disk = SmallDisk::mount(&ns, &s.dir.path().join("lib"), "4m");
    s.top(&format!("database: {}/nftban.db", disk.dir.display()));
    let d = disk.daemon(&ns, &s);
    s.cli_ok(&["ban", "203.0.113.1"]);
    // Moved into SQLite (about once a second), which empties the pending
    // file: then its next line needs a page the full disk does not have.
    wait_for("the pending file to be emptied", || {
        let len = std::fs::metadata(disk.path("nftban.db-pending")).ok()?.len();
        (len == 0).then_some(())
    });
    let db = disk.dir.join("nftban.db");
    disk.inside(|| empty_wal(&db));

    let filler = fill(&disk.path(""));
    s.cli_ok(&["ban", "203.0.113.2"]);
    s.cli_ok(&["ban", "203.0.113.3"]);
    assert_eq!(
        set_addrs(&ns, "manual_v4"),
        ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
    );
    let st = s.try_status().unwrap();
    assert!(st.history_errors > 0, "{st:?}");
    assert_eq!((st.history_waiting, st.history_dropped), (2, 0));
    let o = s.cli_ok(&["unban", "203.0.113.1"]);
    assert_eq!(stdout(&o), "unbanned 203.0.113.1 from jail manual\n");
    assert_eq!(set_addrs(&ns, "manual_v4"), ["203.0.113.2", "203.0.113.3"]);
    assert_eq!(s.try_status().unwrap().history_waiting, 3);

    std::fs::remove_file(filler).unwrap();
    wait_for("the history to catch up", || {
        (s.try_status()?.history_waiting == 0).then_some(())
    });
    assert!(d.stop());

    let d = disk.daemon(&ns, &s);
    assert_eq!(banned_ips(&s.jail_status("manual")), ["203.0.113.2", "203.0.113.3"]);
    let o = s.cli_ok(&["unban", "203.0.113.2"]);
    assert_eq!(stdout(&o), "unbanned 203.0.113.2 from jail manual\n");
    let log = d.log();
    assert_eq!(
        log.matches("could not write 1 ban(s) to the history").count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("the ban history is written again").count(), 1, "{log}");
    assert!(d.stop());
}

/// A reload re-executes the daemon, which opens the history anew: if its
/// folder became read-only meanwhile, the reload used to be accepted and
/// the daemon then died at its restart. It is refused instead, saying why,
/// and the running daemon stays.
#[test]
fn reload_is_refused_when_the_history_became_read_only() {
    kernel_test!();
    let ns = NetNs::create("roreload").unwrap();
    let s = Setup::asterisk("");
    let disk = SmallDisk::mount(&ns, &s.dir.path().join("lib"), "4m");
    s.top(&format!("database: {}/nftban.db", disk.dir.display()));
    let mut d = disk.daemon(&ns, &s);
    s.cli_ok(&["ban", "203.0.113.1"]);
    // A read-only bind mount over the folder: the daemon's open files stay
    // writable, anything opened anew there is not.
    let o = run(std::process::Command::new("nsenter")
        .arg(format!("--mount=/proc/{}/ns/mnt", disk.holder.id()))
        .args(["sh", "-c"])
        .arg(format!(
            "mount --bind {0} {0} && mount -o remount,bind,ro {0}",
            disk.dir.display()
        )));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = s.cli(&["reload"]);
    assert!(!o.status.success());
    let want = format!(
        "reload refused, the running config stays: cannot write the ban database {0}/nftban.db in {0}: read-only file system",
        disk.dir.display()
    );
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    assert!(d.is_running());
    assert_eq!(banned_ips(&s.jail_status("manual")), ["203.0.113.1"]);
}
