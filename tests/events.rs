//! `nftban events` against the daemon in a private namespace: a ban from
//! a failing log line, an unban by hand and an expiry, each read as it
//! happens by `nftban events` (child processes on the control socket),
//! and the same events in the `events:` sinks (a JSON lines file, a
//! datagram socket).

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use crate::support::*;

/// `nftban events ARGS` as a child, its stdout and its stderr lines on
/// channels; killed on drop.
struct Follower {
    child: Child,
    lines: Receiver<String>,
    err: Receiver<String>,
}

impl Follower {
    /// Start it and wait until it says it follows (it is subscribed then:
    /// the daemon subscribes before it answers).
    fn start(s: &Setup, args: &[&str]) -> Follower {
        let mut child = nftban()
            .arg("events")
            .args(args)
            .arg("--config")
            .arg(&s.config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nftban events");
        let lines = lines_of(child.stdout.take().unwrap());
        let err = lines_of(child.stderr.take().unwrap());
        let f = Follower { child, lines, err };
        f.said("following");
        f
    }

    /// The next line on its stderr (what it says of its connection)
    /// holds `want`.
    fn said(&self, want: &str) {
        let line = self
            .err
            .recv_timeout(Duration::from_secs(30))
            .expect("a line on stderr");
        assert!(line.contains(want), "nftban events said {line:?}, not {want:?}");
    }

    /// The next line it printed (generous deadline: none is the failure).
    fn next(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("an event line within 30s")
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each line of `out`, on a channel, read by a thread of its own.
fn lines_of(out: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

/// `(event, jail, ip)` of a JSON event.
fn what(e: &serde_json::Value) -> (String, String, String) {
    let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
    (s("event"), s("jail"), s("ip"))
}

#[test]
fn events_follow_a_ban_from_the_log_line_to_unban_and_expiry() {
    kernel_test!();
    let ns = NetNs::create("events").unwrap();
    let s = Setup::asterisk("");
    let file = s.dir.path().join("sink/events.jsonl");
    let siem = UnixDatagram::bind(s.dir.path().join("siem.sock")).unwrap();
    siem.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.top(&format!(
        "events: {{file: {}, socket: {}}}",
        file.display(),
        s.dir.path().join("siem.sock").display()
    ));
    let d = Daemon::start(&ns, &s);
    let all = Follower::start(&s, &["--json"]);
    let manual = Follower::start(&s, &["--jail", "manual"]);

    // A failing line (the third of maxretry 3) in the log: a ban, told
    // with its jail, address, origin and why.
    s.failures("203.0.113.5", 3);
    let ban = json(&all.next());
    assert_eq!(
        what(&ban),
        ("ban".into(), "asterisk".into(), "203.0.113.5".into()),
        "{ban}"
    );
    assert_eq!(ban["origin"], "auto", "{ban}");
    assert_eq!(ban["reason"], "3 failures within 10m", "{ban}");
    assert_eq!(ban["expires_in"], 3600, "{ban}");
    assert_eq!(ban["v"], 1, "{ban}");
    assert!(ban["time"].as_str().unwrap().ends_with('Z'), "{ban}");
    assert_eq!(set_addrs(&ns, "asterisk_v4"), ["203.0.113.5"]);

    // Unbanned by hand.
    s.cli_ok(&["unban", "203.0.113.5"]);
    let unban = json(&all.next());
    assert_eq!(
        what(&unban),
        ("unban".into(), "asterisk".into(), "203.0.113.5".into()),
        "{unban}"
    );
    assert_eq!(unban["origin"], "manual", "{unban}");

    // Banned by hand for 2s: a ban, then its expiry.
    s.cli_ok(&["ban", "198.51.100.7", "--bantime", "2s"]);
    let ban = json(&all.next());
    assert_eq!(
        what(&ban),
        ("ban".into(), "manual".into(), "198.51.100.7".into()),
        "{ban}"
    );
    assert_eq!(
        (&ban["origin"], &ban["expires_in"]),
        (&"manual".into(), &2.into()),
        "{ban}"
    );
    let expire = json(&all.next());
    assert_eq!(
        what(&expire),
        ("expire".into(), "manual".into(), "198.51.100.7".into()),
        "{expire}"
    );
    assert_eq!(s.jail_status("manual").currently_banned, 0);

    // `--jail manual`, for people: the manual jail's two events only.
    let got = [manual.next(), manual.next()];
    assert!(
        got[0].contains(" ban    manual 198.51.100.7 for 2s (manual: by hand)"),
        "{got:?}"
    );
    assert!(got[1].contains(" expire manual 198.51.100.7"), "{got:?}");
    assert!(manual.lines.recv_timeout(Duration::from_millis(300)).is_err());

    // The file sink got the same four events, in order, and is 0600.
    let lines = wait_for("four events in the file", || {
        let text = std::fs::read_to_string(&file).ok()?;
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        (lines.len() >= 4).then_some(lines)
    });
    let kinds: Vec<_> = lines.iter().map(|l| what(&json(l))).collect();
    let want = [
        ("ban", "asterisk", "203.0.113.5"),
        ("unban", "asterisk", "203.0.113.5"),
        ("ban", "manual", "198.51.100.7"),
        ("expire", "manual", "198.51.100.7"),
    ]
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
    assert_eq!(kinds, want);
    // And the datagram socket sink, one event per datagram.
    let mut buf = [0u8; 4096];
    let datagrams: Vec<_> = (0..4)
        .map(|_| {
            let n = siem.recv(&mut buf).expect("an event datagram within 30s");
            what(&json(std::str::from_utf8(&buf[..n]).unwrap()))
        })
        .collect();
    assert_eq!(datagrams, want);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // A ban just before a stop is in the file once the daemon is gone.
    s.cli_ok(&["ban", "192.0.2.50"]);
    assert!(d.stop());
    let text = std::fs::read_to_string(&file).unwrap();
    let last = what(&json(text.lines().last().unwrap()));
    assert_eq!(last, ("ban".into(), "manual".into(), "192.0.2.50".into()), "{text}");
}

/// An unknown jail is refused with the list of jails; a daemon that is not
/// running is the usual client error.
#[test]
fn events_of_an_unknown_jail_or_without_a_daemon_are_errors() {
    kernel_test!();
    let ns = NetNs::create("events-err").unwrap();
    let s = Setup::asterisk("");
    let o = s.cli(&["events"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot reach the nftban daemon"), "{}", stderr(&o));
    let d = Daemon::start(&ns, &s);
    let o = s.cli(&["events", "--jail", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no jail named `nosuch`"), "{}", stderr(&o));
    assert!(d.stop());
}

/// A reload restarts the daemon and closes the connection: `nftban events`
/// says so, connects again, and goes on with the events after it.
#[test]
fn events_go_on_after_a_reload() {
    kernel_test!();
    let ns = NetNs::create("events-reload").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    let events = Follower::start(&s, &["--json"]);
    s.cli_ok(&["reload"]);
    events.said("closed the connection");
    events.said("connected again");
    s.cli_ok(&["ban", "192.0.2.44"]);
    let ban = json(&events.next());
    assert_eq!(
        what(&ban),
        ("ban".into(), "manual".into(), "192.0.2.44".into()),
        "{ban}"
    );
    drop(events);
    assert!(d.stop());
}

/// A reload held up by a sink that takes nothing (a SIEM's socket that
/// never reads: the daemon waits up to 2 s for its sinks at the stop):
/// `nftban events` reconnects in that time, and must find no socket and
/// wait for the reloaded daemon, not reach the stopping one, which
/// answered "the daemon is stopping" and ended the client.
#[test]
fn events_go_on_after_a_reload_held_up_by_a_stuck_sink() {
    kernel_test!();
    let ns = NetNs::create("events-stuck").unwrap();
    let s = Setup::asterisk("");
    let path = s.dir.path().join("stuck.sock");
    // Bound, never read: the sink's datagrams fill its queue, then wait.
    let _stuck = UnixDatagram::bind(&path).unwrap();
    s.top(&format!("events: {{socket: {}}}", path.display()));
    let d = Daemon::start(&ns, &s);
    let events = Follower::start(&s, &["--json"]);
    let list: String = (0..2_000u32)
        .map(|i| format!("100.64.{}.{}\n", i / 256, i % 256))
        .collect();
    let o = s.cli_stdin(&["ban", "-", "--jail", "manual"], &list);
    assert!(o.status.success(), "{}", stderr(&o));
    s.cli_ok(&["reload"]);
    events.said("closed the connection");
    events.said("connected again");
    s.cli_ok(&["ban", "192.0.2.45"]);
    let seen = std::iter::from_fn(|| events.lines.recv_timeout(Duration::from_secs(30)).ok())
        .map(|l| json(&l))
        .find(|e| what(e).2 == "192.0.2.45");
    assert!(seen.is_some(), "the ban after the reload reached `nftban events`");
    drop(events);
    assert!(d.stop());
}

/// `check` says where ban events go; a typo under `events:` is an error
/// at its line and key (no daemon, no root).
#[test]
fn check_says_where_ban_events_go_and_refuses_unknown_keys() {
    let s = Setup::asterisk("");
    s.top("events: {file: /var/log/nftban/events.jsonl, socket: /run/siem/nftban.sock}");
    let o = s.cli(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(
            "ban events: JSON lines to the file /var/log/nftban/events.jsonl and the socket /run/siem/nftban.sock"
        ),
        "{}",
        stdout(&o)
    );
    s.top("events: {files: /tmp/events.jsonl}");
    let o = s.cli(&["check"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{}:1:", s.config.display())) && err.contains("events: unknown field `files`"),
        "{err}"
    );
    s.top("events: {file: events.jsonl}");
    let o = s.cli(&["check"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("events.file: `events.jsonl` must be an absolute path"),
        "{err}"
    );
}
