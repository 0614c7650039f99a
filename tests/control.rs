//! The control socket, the metrics endpoint and the shipped unit, as users
//! meet them: a `socket:` path that names another file, many clients at
//! once, requests that are not the protocol, the families the unit allows.

use crate::support::*;

/// `socket:` naming the config file itself (a typo) stops the daemon with
/// an error naming the path and what it is; the file is not deleted.
#[test]
fn run_refuses_a_socket_path_that_is_not_a_socket() {
    kernel_test!();
    let ns = NetNs::create("ctl-sockpath").unwrap();
    let s = Setup::asterisk("");
    let config = s.config.display().to_string();
    s.top(&format!("socket: {config}"));
    let before = std::fs::read_to_string(&s.config).unwrap();
    let mut d = Daemon::spawn(&ns, &s, |_| {});
    let status = wait_for("the daemon to exit", || d.child.try_wait().unwrap());
    assert_eq!(status.code(), Some(2), "{}", d.log());
    let log = d.log();
    assert!(
        log.contains(&format!("{config} is a regular file, not a socket")),
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(&s.config).unwrap(),
        before,
        "the config was touched"
    );
}

/// Raise this process's soft limit on open files to the hard one: the
/// crowds below hold a thousand connections.
fn raise_own_open_files() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit on a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

/// A daemon whose soft limit on open files starts at `soft` and hard limit
/// at `hard` (`None`: as this process has it).
fn daemon_with_open_files(ns: &NetNs, s: &Setup, soft: u64, hard: Option<u64>) -> Daemon {
    use std::os::unix::process::CommandExt;
    let d = Daemon::spawn(ns, s, |cmd| {
        // SAFETY: getrlimit and setrlimit only, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let mut lim = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
                lim.rlim_max = hard.unwrap_or(lim.rlim_max);
                lim.rlim_cur = soft.min(lim.rlim_max);
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    wait_for("the daemon to answer status", || s.try_status());
    d
}

/// The soft and hard limits on open files of process `pid`.
fn open_files_of(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let nums: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    (nums[0], nums[1])
}

/// `nftban ARGS`, which must finish within a generous deadline (killed
/// and a panic otherwise: a daemon that never answers must fail the test,
/// not hang it).
fn cli_within(s: &Setup, args: &[&str]) -> std::process::Output {
    let mut child = nftban()
        .args(args)
        .arg("--config")
        .arg(&s.config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("nftban {} got no answer within a minute", args.join(" "));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Clients that connect and say nothing, or a space every half second,
/// each replaced as soon as the daemon answers or closes it (as an
/// attacker would reconnect), so that as many stay connected as were
/// asked for. On one thread, with poll(2).
struct Crowd {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connected: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: std::thread::JoinHandle<Vec<String>>,
}

impl Crowd {
    fn start(socket: std::path::PathBuf, idle: usize, trickling: usize) -> Crowd {
        use std::io::{Read, Write};
        use std::os::fd::AsRawFd;
        use std::os::unix::net::UnixStream;
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let connected = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (stop2, connected2) = (stop.clone(), connected.clone());
        let thread = std::thread::spawn(move || {
            let connect = || UnixStream::connect(&socket).ok();
            let mut conns: Vec<UnixStream> = Vec::new();
            for _ in 0..idle + trickling {
                let Some(c) = connect() else { return Vec::new() };
                conns.push(c);
                connected2.fetch_add(1, Ordering::SeqCst);
            }
            let mut answers = Vec::new();
            let mut trickled = std::time::Instant::now();
            while !stop2.load(Ordering::Relaxed) {
                let mut fds: Vec<libc::pollfd> = conns
                    .iter()
                    .map(|c| libc::pollfd {
                        fd: c.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    })
                    .collect();
                // SAFETY: poll over descriptors this thread owns, for 100 ms.
                unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
                for (i, fd) in fds.iter().enumerate() {
                    if fd.revents == 0 {
                        continue;
                    }
                    let mut answer = Vec::new();
                    let _ = conns[i].set_nonblocking(true);
                    let _ = conns[i].read_to_end(&mut answer);
                    if !answer.is_empty() {
                        answers.push(String::from_utf8_lossy(&answer).into_owned());
                    }
                    match connect() {
                        Some(c) => conns[i] = c,
                        None => return answers,
                    }
                }
                if trickled.elapsed() >= std::time::Duration::from_millis(500) {
                    for c in &mut conns[idle..] {
                        let _ = c.write_all(b" ");
                    }
                    trickled = std::time::Instant::now();
                }
            }
            answers
        });
        Crowd {
            stop,
            connected,
            thread,
        }
    }

    /// Wait until every client has connected once.
    fn wait_connected(&self, n: usize) {
        wait_for("the crowd to connect", || {
            (self.connected.load(std::sync::atomic::Ordering::SeqCst) == n).then_some(())
        });
    }

    /// Stop; the answers the daemon gave the crowd.
    fn stop(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// With a thousand clients connected and saying nothing, and more sending
/// a byte every half second, `status`, `ban` and `reload` are still
/// answered: each client is served on its own. The daemon starts with a soft limit of 512
/// open files, too few for them: it raises it to the hard limit.
#[test]
fn status_is_answered_while_a_thousand_clients_idle_or_trickle() {
    kernel_test!();
    raise_own_open_files();
    let ns = NetNs::create("ctl-crowd").unwrap();
    let s = Setup::asterisk("");
    let d = daemon_with_open_files(&ns, &s, 512, None);
    let (soft, hard) = open_files_of(d.child.id());
    assert_eq!(soft, hard, "the daemon did not raise its soft limit on open files");
    assert!(soft > 1100, "the hard limit here is too low for this test: {hard}");

    let crowd = Crowd::start(s.socket(), 1000, 20);
    crowd.wait_connected(1020);
    for _ in 0..10 {
        let o = cli_within(&s, &["status", "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let st: Status = parse("nftban status --json", &stdout(&o));
        assert_eq!(st.jails.len(), 2, "{st:?}");
    }
    let o = cli_within(&s, &["ban", "203.0.113.9"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(banned_ips(&s.jail_status("manual")), ["203.0.113.9"]);
    // A reload's "ok" still reaches its client before the restart, and
    // the restarted daemon serves with the crowd back.
    let pid = d.child.id();
    let o = cli_within(&s, &["reload"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("reloading"), "{}", stdout(&o));
    wait_for("status after the reload", || s.try_status());
    assert_eq!(d.child.id(), pid);
    assert_eq!(banned_ips(&s.jail_status("manual")), ["203.0.113.9"]);
    // What the daemon told the crowd, if the test lasted long enough for
    // it to: that their time was up.
    for answer in crowd.stop() {
        assert!(
            answer.starts_with("{\"ok\":false,\"error\":\"bad request: no whole line within 5s of connecting"),
            "{answer}"
        );
    }
    assert!(d.stop());
}

/// Send raw bytes to the daemon's socket, then read its one answer line
/// (within a generous deadline: no answer is the failure this catches).
fn exchange(s: &Setup, bytes: &[u8]) -> String {
    use std::io::{BufRead, Write};
    let mut c = std::os::unix::net::UnixStream::connect(s.socket()).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    // A line that is too long is answered before it is all sent.
    let _ = c.write_all(bytes);
    let mut answer = String::new();
    let _ = std::io::BufReader::new(c).read_line(&mut answer);
    answer
}

/// Whatever a client sends, the daemon answers with one line of JSON that
/// says what is wrong, and goes on; a `ban -` chunk of 10,000 addresses,
/// each in the longest form the CLI passes on as typed, fits in one
/// request.
#[test]
fn the_daemon_answers_every_line_and_takes_a_chunk_of_the_longest_addresses() {
    kernel_test!();
    let ns = NetNs::create("ctl-lines").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    let too_long = vec![b' '; (1 << 20) + 1];
    let cases: [(&[u8], &str); 4] = [
        (
            b"{\"cmd\":\"status\",\"jail\":\"\xff\xfe\"}\n",
            "bad request: not UTF-8",
        ),
        (b"status\n", "bad request: not JSON"),
        (
            b"{\"cmd\":\"status\",\"jails\":null}\n",
            "bad request: unknown field `jails`",
        ),
        (&too_long, "bad request: longer than 1048576 bytes without a newline"),
    ];
    for (bytes, want) in cases {
        let answer = exchange(&s, bytes);
        let r: nftban::control::Response = parse("the daemon's answer", &answer);
        assert!(
            !r.ok && r.error.as_deref().unwrap_or("").starts_with(want),
            "{want}: {answer}"
        );
    }

    let list: String = (0..10_000)
        .map(|i| format!("[2001:0db8:0000:0000:0000:{i:04x}:255.255.255.255]/128\n"))
        .collect();
    let o = s.cli_stdin(&["ban", "-"], &list);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s.jail_status("manual").currently_banned, 10_000);
    assert!(d.stop());
}

/// With few open files allowed (hard limit 64), the daemon serves at most
/// half as many clients at once; past that, a new one hears "busy" at once
/// (not silence), the CLI says so, and the log says clients were turned
/// away. Once the crowd leaves, status is answered again.
#[test]
fn past_its_cap_the_daemon_answers_busy() {
    kernel_test!();
    let ns = NetNs::create("ctl-busy").unwrap();
    let s = Setup::asterisk("");
    let d = daemon_with_open_files(&ns, &s, 64, Some(64));
    assert!(
        d.log().contains("control socket serves up to 32 clients at once"),
        "{}",
        d.log()
    );
    let crowd = Crowd::start(s.socket(), 32, 0);
    crowd.wait_connected(32);
    // The crowd holds every slot, save for the moments a client of it is
    // replaced: wait for an answer while it does.
    let busy = "{\"ok\":false,\"error\":\"busy: serving the most clients at once (32); try again\",\"data\":null}\n";
    wait_for("a busy answer", || {
        (exchange(&s, b"{\"cmd\":\"status\"}\n") == busy).then_some(())
    });
    wait_for("the CLI to say busy", || {
        let o = cli_within(&s, &["status"]);
        (!o.status.success())
            .then(|| stderr(&o))
            .filter(|e| e.contains("nftban: error: busy: serving the most clients at once (32); try again"))
    });
    wait_for("the log to say so", || {
        d.log()
            .contains("control socket: ")
            .then_some(())
            .filter(|_| d.log().contains("turned away"))
    });
    crowd.stop();
    wait_for("status once the crowd is gone", || s.try_status());
    assert!(d.stop());
}

/// What `RestrictAddressFamilies=` lines allow, by systemd's rules
/// (systemd.exec(5)): an empty assignment lifts the restriction, `none`
/// allows nothing, a list is an allow list and `~list` a deny list; a later
/// assignment of the same kind adds to the first, of the other kind takes
/// from it.
fn unit_allows(unit: &str, family: &str) -> bool {
    enum Rule {
        Any,
        Allow(Vec<String>),
        Deny(Vec<String>),
    }
    let mut rule = Rule::Any;
    for value in unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("RestrictAddressFamilies="))
        .map(str::trim)
    {
        let (deny, list) = match value.strip_prefix('~') {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        let names: Vec<String> = list.split_whitespace().map(String::from).collect();
        rule = match (rule, deny) {
            (_, false) if value.is_empty() => Rule::Any,
            (_, false) if value == "none" => Rule::Allow(Vec::new()),
            (Rule::Any, false) => Rule::Allow(names),
            (Rule::Any, true) => Rule::Deny(names),
            (Rule::Allow(mut a), false) | (Rule::Deny(mut a), true) => {
                a.extend(names);
                if deny {
                    Rule::Deny(a)
                } else {
                    Rule::Allow(a)
                }
            }
            (Rule::Allow(a), true) => Rule::Allow(a.into_iter().filter(|f| !names.contains(f)).collect()),
            (Rule::Deny(d), false) => Rule::Deny(d.into_iter().filter(|f| !names.contains(f)).collect()),
        };
    }
    match rule {
        Rule::Any => true,
        Rule::Allow(a) => a.iter().any(|f| f == family),
        Rule::Deny(d) => !d.iter().any(|f| f == family),
    }
}

#[test]
fn unit_allows_reads_systemd_rules() {
    let unit = "RestrictAddressFamilies=AF_UNIX\nRestrictAddressFamilies=AF_INET AF_INET6\n";
    assert!(unit_allows(unit, "AF_UNIX") && unit_allows(unit, "AF_INET6"));
    assert!(!unit_allows(unit, "AF_NETLINK"));
    assert!(!unit_allows("RestrictAddressFamilies=~AF_INET AF_NETLINK\n", "AF_INET"));
    assert!(unit_allows("RestrictAddressFamilies=~AF_INET\n", "AF_UNIX"));
    assert!(!unit_allows(
        "RestrictAddressFamilies=AF_INET AF_UNIX\nRestrictAddressFamilies=~AF_INET\n",
        "AF_INET"
    ));
    assert!(unit_allows(
        "RestrictAddressFamilies=none\nRestrictAddressFamilies=\n",
        "AF_INET"
    ));
    assert!(!unit_allows("RestrictAddressFamilies=none\n", "AF_UNIX"));
    assert!(unit_allows("[Service]\nType=notify\n", "AF_PACKET"));
}

/// The address families `nftban run` opens sockets of, and where.
const FAMILIES: [(&str, &str); 4] = [
    ("AF_NETLINK", "nf_tables, conntrack and the nf_tables event watcher"),
    ("AF_UNIX", "the control socket, sd_notify, journald and syslog logging"),
    ("AF_INET", "the metrics endpoint (metrics.listen: 127.0.0.1:9477)"),
    ("AF_INET6", "the metrics endpoint (metrics.listen: \"[::1]:9477\")"),
];

/// The shipped unit's `RestrictAddressFamilies=` allows every family the
/// daemon uses: a refused one makes `nftban run` exit at start (the
/// metrics endpoint did, and `Restart=on-failure` looped).
#[test]
fn the_shipped_unit_allows_every_address_family_the_daemon_uses() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nftban.service")).unwrap();
    for (family, what) in FAMILIES {
        assert!(
            unit_allows(&unit, family),
            "deploy/nftban.service refuses {family}, which nftban uses for {what}"
        );
    }
}

/// The only inet sockets the daemon's code creates are the metrics
/// endpoint's (src/netns.rs sends the demo's and the tests' probes;
/// `tests.rs` files are not looked at): a new one must be added to
/// [`FAMILIES`] and to the unit's comment. What is looked for are the calls
/// that create one, so a type named in passing does not count.
#[test]
fn the_daemon_opens_inet_sockets_only_for_metrics() {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("tests.rs") {
                out.push(p);
            }
        }
    }
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let creates = [
        "TcpListener::bind",
        "TcpStream::connect",
        "UdpSocket::bind",
        "libc::socket(",
        "socket2::",
    ];
    let mut found: Vec<String> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let rel = f.strip_prefix(&src).unwrap().display().to_string();
        for call in creates.iter().filter(|c| text.contains(*c)) {
            found.push(format!("{rel}: {call}"));
        }
    }
    found.sort();
    assert_eq!(
        found,
        [
            "control/metrics.rs: TcpListener::bind",
            // Its tests' scrapes.
            "control/metrics.rs: TcpStream::connect",
            "netns.rs: UdpSocket::bind",
        ]
    );
}

/// `nftban check` says where metrics are served, in one line, when they
/// are configured, and nothing about them otherwise.
#[test]
fn check_says_where_metrics_listen() {
    let s = Setup::asterisk("");
    let o = s.cli_ok(&["check"]);
    assert!(!stdout(&o).contains("metrics"), "{}", stdout(&o));
    s.top("metrics: {listen: \"[::1]:9477\"}");
    let out = stdout(&s.cli_ok(&["check"]));
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("metrics")).collect();
    assert_eq!(lines, ["metrics: http://[::1]:9477/metrics (Prometheus)"], "{out}");
}
