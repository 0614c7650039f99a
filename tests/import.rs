//! `nftban import-fail2ban` on Debian's own fail2ban package (installed by
//! .ci/run; nothing of fail2ban's is copied into this repository): its
//! stock /etc/fail2ban with the sshd and asterisk jails enabled imports
//! into a config `nftban check` accepts, and fail2ban-server and the
//! imported nftban, run on the same sshd and asterisk logs, ban the same
//! addresses.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// Debian's fail2ban, whose configuration the tests import.
const FAIL2BAN: Need = Need {
    program: "/usr/bin/fail2ban-server",
    package: "fail2ban",
};
const STOCK: &str = "/etc/fail2ban";

/// A copy of the stock tree in `dir/etc` (fail2ban's own files untouched),
/// or `None` (said why) without the package.
fn stock_copy(dir: &Path) -> Option<PathBuf> {
    if !Path::new(STOCK).join("jail.conf").exists() {
        eprintln!("skipped: {STOCK}/jail.conf is missing (apt-get install fail2ban)");
        return None;
    }
    let etc = dir.join("etc");
    let o = run(Command::new("cp").arg("-r").arg(STOCK).arg(&etc));
    assert!(o.status.success(), "cp -r {STOCK}: {}", stderr(&o));
    Some(etc)
}

fn import(etc: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    run(nftban().arg("import-fail2ban").arg(etc).arg("-o").arg(out).args(extra))
}

/// Debian's stock tree with sshd and asterisk enabled in a jail.local, as
/// a user would write it: both jails imported with their filters, the
/// report names what is left out (usedns, the ports), and `nftban check`
/// accepts the result; a second import into the same folder needs
/// `--force`.
#[test]
fn stock_debian_tree_imports_into_a_config_check_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let Some(etc) = stock_copy(dir.path()) else { return };
    std::fs::write(
        etc.join("jail.local"),
        "[sshd]\nenabled = true\n\n[asterisk]\nenabled = true\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = import(&etc, &out, &["--json"]);
    assert!(o.status.success(), "import: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["jails"], serde_json::json!(["asterisk", "sshd"]), "{report}");
    assert_eq!(report["recidive"], false);
    let filters: Vec<&str> = report["filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        filters.contains(&"filter.d/sshd.conf") && filters.contains(&"filter.d/common.conf"),
        "{filters:?}"
    );
    let notes = report["not_carried"].as_array().unwrap();
    let has = |jail: &str, key: &str| notes.iter().any(|n| n["jail"] == jail && n["key"] == key);
    assert!(
        has("DEFAULT", "usedns") && has("sshd", "port") && has("asterisk", "port"),
        "{report}"
    );
    assert!(out.join("filter.d/asterisk.conf").is_file() && out.join("import-report.txt").is_file());

    let config = out.join("nftban.yaml");
    let o = run(nftban().args(["check", "--config"]).arg(&config));
    assert!(o.status.success(), "check: {}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("jail sshd: ruleset sshd[mode=normal] (fail2ban filter)"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("ban after 10 failures within 10m for 10m"),
        "{}",
        stdout(&o)
    );

    let again = import(&etc, &out, &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("not empty; give --force"), "{}", stderr(&again));
    assert!(import(&etc, &out, &["--force"]).status.success());
}

/// Every jail of Debian's tree enabled at once (with bantime increment,
/// sshd on the journal, recidive): the jails nftban cannot run yet are
/// left out and reported, each naming its filter; what is written is a
/// config `nftban check` accepts.
#[test]
fn every_stock_jail_enabled_imports_what_it_can_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let Some(etc) = stock_copy(dir.path()) else { return };
    std::fs::write(
        etc.join("jail.local"),
        "[DEFAULT]\nenabled = true\nbantime.increment = true\nbantime.maxtime = 5w\n[sshd]\nbackend = systemd\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = import(&etc, &out, &["--json"]);
    assert!(o.status.success(), "import: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let jails = report["jails"].as_array().unwrap();
    assert!(jails.len() >= 20, "{report}");
    assert_eq!(report["recidive"], true);
    let notes = report["not_carried"].as_array().unwrap();
    for n in notes
        .iter()
        .filter(|n| n["reason"].as_str().unwrap().starts_with("jail left out"))
    {
        assert!(!jails.contains(&n["jail"]), "{n}");
        if n["key"] == "filter" {
            assert!(n["reason"].as_str().unwrap().contains("/filter.d/"), "{n}");
        }
    }
    let yaml = std::fs::read_to_string(out.join("nftban.yaml")).unwrap();
    assert!(yaml.contains("  bantime_increment: {factor: 2, max: 35d}\n"), "{yaml}");
    assert!(yaml.contains("    journal: ['_COMM=sshd']\n"), "{yaml}");
    let o = run(nftban().args(["check", "--config"]).arg(out.join("nftban.yaml")));
    assert!(o.status.success(), "check: {}{}", stdout(&o), stderr(&o));
}

/// A fail2ban-server in the foreground, stopped on drop.
struct Fail2ban(Child);

impl Drop for Fail2ban {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child, not yet waited for.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// The addresses fail2ban's dummy action wrote for a jail (`+ADDR` a ban,
/// `-ADDR` an unban).
fn dummy_bans(file: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut set = BTreeSet::new();
    for l in text.lines() {
        if let Some(a) = l.strip_prefix('+') {
            set.insert(a.to_string());
        } else if let Some(a) = l.strip_prefix('-') {
            set.remove(a);
        }
    }
    set
}

/// The same bans: Debian's tree with sshd and asterisk enabled (logs and
/// a dummy ban action of the test's own in jail.local, fail2ban's socket,
/// pid and database in fail2ban.local), imported; fail2ban-server and
/// nftban started in one private namespace, then one sshd and one asterisk
/// log written: addresses over maxretry, under it, IPv6, and last a
/// marker address in each log, so that once a tool banned both markers it
/// has read every line before them. Both ban the same addresses per jail.
#[test]
fn fail2ban_and_the_imported_config_ban_the_same_addresses() {
    kernel_test!(FAIL2BAN);
    let dir = tempfile::tempdir().unwrap();
    let Some(etc) = stock_copy(dir.path()) else { return };
    let t = dir.path().to_path_buf();
    let (auth, messages) = (t.join("auth.log"), t.join("messages"));
    std::fs::write(&auth, "").unwrap();
    std::fs::write(&messages, "").unwrap();
    std::fs::write(
        etc.join("jail.local"),
        format!(
            "[DEFAULT]\nbackend = polling\naction = dummy[target=\"{0}/bans-%(__name__)s\"]\n\
             [sshd]\nenabled = true\nlogpath = {1}\n[asterisk]\nenabled = true\nlogpath = {2}\n",
            t.display(),
            auth.display(),
            messages.display()
        ),
    )
    .unwrap();
    std::fs::write(
        etc.join("fail2ban.local"),
        format!(
            "[Definition]\nlogtarget = {0}/fail2ban.log\nsocket = {0}/f2b.sock\npidfile = {0}/f2b.pid\ndbfile = {0}/f2b.sqlite3\n",
            t.display()
        ),
    )
    .unwrap();
    let out = t.join("out");
    let o = import(&etc, &out, &[]);
    assert!(o.status.success(), "import: {}", stderr(&o));
    let setup = Setup {
        config: out.join("nftban.yaml"),
        log: auth.clone(),
        dir,
    };
    setup.top(&format!("socket: {}/nftban.sock", t.display()));
    setup.top(&format!("database: {}/nftban.db", t.display()));

    let ns = NetNs::create("f2bsame").unwrap();
    let f2b_out = std::fs::File::create(t.join("fail2ban-server.out")).unwrap();
    let _f2b = Fail2ban(
        ns.command("/usr/bin/fail2ban-server")
            .args(["-f", "-x", "-c"])
            .arg(&etc)
            .arg("-s")
            .arg(t.join("f2b.sock"))
            .arg("-p")
            .arg(t.join("f2b.pid"))
            .arg("start")
            .stdin(Stdio::null())
            .stdout(f2b_out.try_clone().unwrap())
            .stderr(f2b_out)
            .spawn()
            .unwrap(),
    );
    let _daemon = Daemon::start(&ns, &setup);
    wait_for("fail2ban's sshd and asterisk jails to start", || {
        let log = std::fs::read_to_string(t.join("fail2ban.log")).unwrap_or_default();
        (log.contains("Jail 'sshd' started") && log.contains("Jail 'asterisk' started")).then_some(())
    });

    let syslog_now = Command::new("date").arg("+%b %e %H:%M:%S").output().unwrap();
    let now = String::from_utf8(syslog_now.stdout).unwrap().trim().to_string();
    // One sshd process (pid) per connection, as sshd runs: fail2ban's sshd
    // filter ties lines of one pid together as a session.
    let pid = std::cell::Cell::new(4000);
    let sshd = |addr: &str, n: usize| -> Vec<String> {
        (0..n)
            .map(|i| {
                pid.set(pid.get() + 1);
                format!(
                    "{now} host sshd[{}]: Invalid user u{i} from {addr} port {}",
                    pid.get(),
                    50000 + i
                )
            })
            .collect()
    };
    let mut ssh_lines = Vec::new();
    ssh_lines.extend(sshd("198.51.100.1", 6)); // over maxretry 5
    ssh_lines.extend(sshd("198.51.100.2", 4)); // under
    ssh_lines.push(format!(
        "{now} host sshd[4999]: Accepted password for alice from 198.51.100.3 port 22 ssh2"
    ));
    // "Failed password" lines: the filter's `Failed (?:<F-NOFAIL>publickey</F-NOFAIL>|\S+)`
    // rule, which runs on the fallback engine with `<F-NOFAIL>` per branch.
    for i in 0..5 {
        pid.set(pid.get() + 1);
        ssh_lines.push(format!(
            "{now} host sshd[{}]: Failed password for root from 198.51.100.4 port {} ssh2",
            pid.get(),
            51000 + i
        ));
    }
    ssh_lines.extend(sshd("2001:db8::7", 5));
    ssh_lines.extend(sshd("192.0.2.77", 5)); // the marker, last
    append_to(&auth, &ssh_lines);
    let mut sip_lines = Vec::new();
    sip_lines.extend(vec![failed_registration("203.0.113.5"); 10]); // maxretry 10
    sip_lines.extend(vec![failed_registration("203.0.113.6"); 9]);
    sip_lines.extend(vec![failed_registration("192.0.2.78"); 10]); // the marker
    append_to(&messages, &sip_lines);

    let nftban_bans = |jail: &str| -> BTreeSet<String> {
        setup
            .try_jail_status(jail)
            .map(|st| banned_ips(&st).into_iter().map(String::from).collect())
            .unwrap_or_default()
    };
    // Waits for an event (both markers banned by both), measures nothing.
    let start = Instant::now();
    let both = loop {
        let now = [
            (dummy_bans(&t.join("bans-sshd")), nftban_bans("sshd")),
            (dummy_bans(&t.join("bans-asterisk")), nftban_bans("asterisk")),
        ];
        let done = ["192.0.2.77", "192.0.2.78"]
            .iter()
            .zip(&now)
            .all(|(marker, (f, n))| f.contains(*marker) && n.contains(*marker));
        if done || start.elapsed() > Duration::from_secs(60) {
            break now;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let [(f2b_sshd, nft_sshd), (f2b_sip, nft_sip)] = both;
    let set = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        nft_sshd, f2b_sshd,
        "sshd: nftban (left) and fail2ban (right) ban differently"
    );
    assert_eq!(
        nft_sip, f2b_sip,
        "asterisk: nftban (left) and fail2ban (right) ban differently"
    );
    assert_eq!(
        f2b_sshd,
        set(&["192.0.2.77", "198.51.100.1", "198.51.100.4", "2001:db8::7"])
    );
    assert_eq!(f2b_sip, set(&["192.0.2.78", "203.0.113.5"]));
}
