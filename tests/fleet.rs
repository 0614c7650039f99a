//! The fleet (issue 15, docs/fleet.md): nftban nodes in private network
//! namespaces sharing bans over a real nats-server with JetStream (Debian's
//! package), reachable only from their namespaces ([`NatsBed`]): a log's
//! ban on one node in its peers' kernel sets, dropping the attacker there
//! too; its unban lifted everywhere; a node started later catching up; an
//! outage of NATS (bans and unbans go on locally, published once when it
//! is back, across a restart too); peers' bans the limits refuse; one server of a
//! three-server cluster killed without losing a ban.

use std::net::SocketAddr;

use futures_util::StreamExt;
use nftban::netns::udp_echo;

use crate::support::*;

/// One nftban node: its namespace (joined to the NATS hub) and its config
/// and log; the daemon runs while `daemon` holds it.
struct Node {
    ns: NetNs,
    s: Setup,
    daemon: Option<Daemon>,
}

impl Node {
    /// Node `name` of the fleet on `stream` (subjects `<stream lower>.>`),
    /// not started; `fleet_extra` is added to its `fleet:` keys, `jail_extra`
    /// to its asterisk jail's.
    fn new(bed: &NatsBed, name: &str, stream: &str, fleet_extra: &str, jail_extra: &str) -> Node {
        let ns = NetNs::create(&format!("fl-{name}")).unwrap();
        let servers = bed.link(&ns);
        let s = Setup::asterisk(jail_extra);
        s.top(&format!(
            "fleet: {{node: {name}, servers: [{}], stream: {stream}, subject_prefix: {}{fleet_extra}}}",
            servers.join(", "),
            stream.to_lowercase()
        ));
        Node { ns, s, daemon: None }
    }

    fn start(&mut self) {
        self.daemon = Some(Daemon::start(&self.ns, &self.s));
    }

    fn stop(&mut self) {
        if let Some(d) = self.daemon.take() {
            assert!(d.stop(), "the daemon stops cleanly");
        }
    }

    /// The addresses in the asterisk jail's IPv4 set, in the kernel.
    fn kernel(&self) -> Vec<String> {
        set_addrs(&self.ns, "asterisk_v4")
    }

    /// Wait until the kernel set has `addr` (or, with `present` false, not).
    /// On a timeout the panic shows the node's log.
    fn wait_kernel(&self, addr: &str, present: bool) {
        self.wait_kernel_within(addr, present, 30);
    }

    /// [`Node::wait_kernel`] with a bound of `secs` (a cluster electing a
    /// new leader takes longer).
    fn wait_kernel_within(&self, addr: &str, present: bool, secs: u64) {
        let start = std::time::Instant::now();
        while self.kernel().iter().any(|a| a == addr) != present {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(secs),
                "timed out waiting for {addr} {} the kernel set of {}; its log:\n{}",
                if present { "in" } else { "out of" },
                self.ns.name,
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // Seen with --nocapture: how long a recovery took (not asserted).
        eprintln!(
            "{addr} {} {} after {:.1?}",
            if present { "in" } else { "out of" },
            self.ns.name,
            start.elapsed()
        );
    }

    fn fleet(&self) -> nftban::control::protocol::FleetStatus {
        self.s
            .try_status()
            .and_then(|st| st.fleet)
            .expect("status with a fleet")
    }

    fn log(&self) -> String {
        self.daemon.as_ref().map(Daemon::log).unwrap_or_default()
    }

    /// (origin, reason) of every ban of `addr` the history holds.
    fn history(&self, addr: &str) -> Vec<(String, Option<String>)> {
        let db = rusqlite::Connection::open(self.s.dir.path().join("nftban.db")).unwrap();
        let mut q = db
            .prepare("SELECT origin, reason FROM bans WHERE net = ?1 ORDER BY id")
            .unwrap();
        q.query_map([format!("{addr}/32")], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

impl Node {
    /// [`Node::history`] once it holds `addr`: small ban writes reach
    /// SQLite about a second after the kernel (src/store/pending.rs).
    fn settled_history(&self, addr: &str) -> Vec<(String, Option<String>)> {
        wait_for(&format!("{addr} in the history of {}", self.ns.name), || {
            Some(self.history(addr)).filter(|h| !h.is_empty())
        })
    }
}

/// The decisions of `stream` naming `addr`, as JSON of version 1, read
/// with the test's own client: a batch (version 2) counts once for each
/// of its decisions, as that decision's own message would.
fn stream_messages(bed: &NatsBed, stream: &str, addr: &str) -> Vec<serde_json::Value> {
    let (stream, addr) = (stream.to_string(), addr.to_string());
    bed.with_client(async move |client| {
        let js = async_nats::jetstream::new(client);
        let mut s = js.get_stream(&stream).await.expect("the fleet's stream");
        let count = s.info().await.unwrap().state.messages;
        let consumer = s
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
            .await
            .unwrap();
        let mut messages = consumer.messages().await.unwrap();
        let mut out = Vec::new();
        for _ in 0..count {
            let m = messages.next().await.unwrap().unwrap();
            let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            out.extend(decisions(v).into_iter().filter(|d| d["net"] == addr.as_str()));
        }
        out
    })
}

/// The decisions of one message, each as a version 1 message.
fn decisions(v: serde_json::Value) -> Vec<serde_json::Value> {
    if v["v"] == 1 {
        return vec![v];
    }
    assert_eq!(v["v"], 2, "a fleet message: {v}");
    let mut out = Vec::new();
    for group in v["groups"].as_array().unwrap() {
        for net in group["nets"].as_array().unwrap() {
            let mut one = group.clone();
            let fields = one.as_object_mut().unwrap();
            fields.remove("nets");
            fields.insert("v".into(), 1.into());
            fields.insert("node".into(), v["node"].clone());
            fields.insert("jail".into(), v["jail"].clone());
            fields.insert("net".into(), net.clone());
            out.push(one);
        }
    }
    out
}

/// Publish `payloads` on `subject` as a forged peer would (no limits but
/// the receivers').
fn forge(bed: &NatsBed, subject: &str, payloads: Vec<serde_json::Value>) {
    let subject = subject.to_string();
    bed.with_client(async move |client| {
        let js = async_nats::jetstream::new(client);
        for p in payloads {
            js.publish(subject.clone(), serde_json::to_vec(&p).unwrap().into())
                .await
                .unwrap()
                .await
                .expect("stored");
        }
    })
}

/// The attacker's address on its link to node B: A's log names it.
const ATTACKER: &str = "203.0.113.66";

#[test]
fn a_log_ban_on_one_node_drops_the_attacker_on_its_peers_and_its_unban_lifts_it() {
    kernel_test!(NATS_SERVER);
    let bed = shared_nats();
    let mut a = Node::new(bed, "a", "PROPAGATE", "", "");
    let mut b = Node::new(bed, "b", "PROPAGATE", "", "");
    let mut c = Node::new(bed, "c", "PROPAGATE", "", "");
    // The attacker reaches B over a veth pair.
    let attacker = NetNs::create("fl-atk").unwrap();
    NetNs::link(&b.ns, "203.0.113.1/24", &attacker, &format!("{ATTACKER}/24")).unwrap();
    let sip: SocketAddr = "203.0.113.1:5060".parse().unwrap();
    udp_echo(&b.ns, sip).unwrap();
    wait_passes(&attacker, sip);
    for n in [&mut a, &mut b, &mut c] {
        n.start();
    }

    a.s.failures(ATTACKER, 3);
    a.wait_kernel(ATTACKER, true);
    b.wait_kernel(ATTACKER, true);
    c.wait_kernel(ATTACKER, true);
    assert!(!passes(&attacker, sip), "B drops the packets of the address A banned");
    // Shown with its origin, the peer that decided it.
    let st = b.s.jail_status("asterisk");
    let ban = st.banned.iter().find(|x| x.ip == ATTACKER).expect("in B's status");
    assert_eq!(ban.reason.as_deref(), Some("fleet:a: auto"));
    assert!((3590..=3600).contains(&ban.expires_in), "{ban:?}");
    assert_eq!(st.bans_by_origin.get("fleet:a"), Some(&1));
    assert_eq!(
        b.settled_history(ATTACKER),
        [("fleet:a".to_string(), Some("fleet:a: auto".to_string()))]
    );
    assert_eq!(a.settled_history(ATTACKER), [("auto".to_string(), None)]);
    // Published once by A; B and C publish nothing of it (no echo).
    wait_for("A's publish to be acknowledged", || {
        (a.fleet().published == 1).then_some(())
    });
    assert_eq!((b.fleet().published, c.fleet().published), (0, 0));
    assert_eq!(stream_messages(bed, "PROPAGATE", ATTACKER).len(), 1);
    let fa = a.fleet();
    assert_eq!((fa.state.as_str(), fa.node.as_str(), fa.waiting), ("connected", "a", 0));

    a.s.cli_ok(&["unban", ATTACKER]);
    b.wait_kernel(ATTACKER, false);
    c.wait_kernel(ATTACKER, false);
    wait_passes(&attacker, sip);
    assert!(!banned_ips(&b.s.jail_status("asterisk")).contains(&ATTACKER));
    assert_eq!(b.fleet().lifted, 1);
    let kinds: Vec<String> = stream_messages(bed, "PROPAGATE", ATTACKER)
        .iter()
        .map(|m| m["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["ban", "unban"]);
}

#[test]
fn a_node_started_later_catches_up_on_running_bans_only() {
    kernel_test!(NATS_SERVER);
    let bed = shared_nats();
    let mut a = Node::new(bed, "a", "CATCHUP", "", "");
    let mut d = Node::new(bed, "d", "CATCHUP", "", "");
    a.start();
    a.s.failures("198.51.100.10", 3);
    a.s.cli_ok(&["ban", "--jail", "asterisk", "198.51.100.11"]);
    a.s.cli_ok(&["ban", "--jail", "asterisk", "198.51.100.12"]);
    a.s.cli_ok(&["unban", "198.51.100.12"]);
    wait_for("A's four messages to be stored", || {
        (a.fleet().published == 4).then_some(())
    });
    // A ban of a peer that has ended already: not replayed.
    forge(
        bed,
        "catchup.e.asterisk",
        vec![
            serde_json::json!({"v": 1, "node": "e", "jail": "asterisk", "net": "198.51.100.13",
            "kind": "ban", "expires": 1_000_000_000u64, "origin": "auto"}),
        ],
    );

    d.start();
    wait_for("D to catch up", || d.fleet().caught_up.then_some(()));
    d.wait_kernel("198.51.100.10", true);
    d.wait_kernel("198.51.100.11", true);
    let mut kernel = d.kernel();
    kernel.sort();
    assert_eq!(
        kernel,
        ["198.51.100.10", "198.51.100.11"],
        "lifted and ended bans are not replayed"
    );
    let f = d.fleet();
    assert_eq!((f.applied, f.expired), (2, 1), "{f:?}");
    assert!(
        d.history("198.51.100.12").is_empty(),
        "a ban lifted since was never made"
    );
}

/// A `ban -` of 20,000 addresses on A goes out as a few batches, not a
/// message a ban, and is applied whole on B (docs/fleet.md, version 2).
#[test]
fn a_bulk_ban_goes_out_as_few_batches_and_is_applied_whole_on_a_peer() {
    kernel_test!(NATS_SERVER);
    let bed = shared_nats();
    // The default rate limit (a burst of 10,000) would refuse half.
    let limits = ", limits: {rate: 1000000/second, burst: 1000000}";
    let mut a = Node::new(bed, "a", "BULK", limits, "");
    let mut b = Node::new(bed, "b", "BULK", limits, "");
    a.start();
    b.start();
    wait_for("B on the stream", || b.fleet().caught_up.then_some(()));
    let n = 20_000u32;
    let addrs: String = (0..n)
        .map(|i| format!("10.{}.{}.{}\n", (i >> 16) & 255, (i >> 8) & 255, i & 255))
        .collect();
    let o = a.s.cli_stdin(&["ban", "-", "--jail", "asterisk"], &addrs);
    assert!(o.status.success(), "{}", stderr(&o));
    wait_for("B to apply them all", || (b.kernel().len() == n as usize).then_some(()));
    assert_eq!(b.fleet().applied, u64::from(n));
    assert_eq!(a.fleet().published, u64::from(n));
    let stored = bed.with_client(async move |client| {
        let js = async_nats::jetstream::new(client);
        let mut s = js.get_stream("BULK").await.expect("the fleet's stream");
        s.info().await.unwrap().state.messages
    });
    // 8,192 decisions a batch at most; the CLI's requests may split them
    // further, never into anything like a message a ban.
    assert!((3..=10).contains(&stored), "{stored} messages for {n} bans");
    assert_eq!(stream_messages(bed, "BULK", "10.0.78.31").len(), 1);
    assert_eq!(b.settled_history("10.0.78.31").len(), 1);
}

#[test]
fn a_peers_ban_of_ignoreip_or_the_world_is_refused() {
    kernel_test!(NATS_SERVER);
    let bed = shared_nats();
    let mut a = Node::new(bed, "a", "REFUSE", "", "");
    let mut b = Node::new(
        bed,
        "b",
        "REFUSE",
        ", limits: {ipv4_prefix: 24}",
        "    ignoreip: [127.0.0.0/8, 198.51.100.50]\n",
    );
    a.start();
    b.start();
    // A may ban what B never bans: it is A's ignoreip that binds A.
    a.s.cli_ok(&["ban", "--jail", "asterisk", "198.51.100.50"]);
    a.wait_kernel("198.51.100.50", true);
    // Stored: the stream exists for the forger too.
    wait_for("A's ban to be stored", || (a.fleet().published == 1).then_some(()));
    // A broken or compromised peer asks for the world and a /16.
    let ban = |net: &str| {
        serde_json::json!({"v": 1, "node": "x", "jail": "asterisk", "net": net,
            "kind": "ban", "expires": 4_000_000_000u64, "origin": "manual"})
    };
    forge(bed, "refuse.x.asterisk", vec![ban("0.0.0.0/0"), ban("10.9.0.0/16")]);
    // Then a ban B takes, after those in the stream's order.
    a.s.cli_ok(&["ban", "--jail", "asterisk", "198.51.100.51"]);
    b.wait_kernel("198.51.100.51", true);
    assert_eq!(
        b.kernel(),
        ["198.51.100.51"],
        "nothing of the refused bans in B's kernel"
    );
    let f = b.fleet();
    assert_eq!(f.refused.get("ignoreip"), Some(&1), "{f:?}");
    assert_eq!(f.refused.get("too wide"), Some(&2), "{f:?}");
    assert_eq!(f.limits.ipv4_prefix, 24);
    assert!(b.history("198.51.100.50").is_empty());
    // And so does status for people.
    let text = b.s.cli_ok(&["status"]);
    let text = stdout(&text);
    assert!(text.contains("too wide 2") && text.contains("ignoreip 1"), "{text}");
}

#[test]
fn with_nats_down_bans_go_on_locally_and_are_published_once_when_it_is_back() {
    kernel_test!(NATS_SERVER);
    let bed = NatsBed::single();
    let mut a = Node::new(&bed, "a", "OUTAGE", "", "");
    let mut b = Node::new(&bed, "b", "OUTAGE", "", "");
    a.start();
    b.start();
    wait_for("A and B on the stream", || {
        (a.fleet().state == "connected" && b.fleet().caught_up).then_some(())
    });
    // A ban both hold before the outage, to be lifted during it.
    a.s.failures("198.51.100.22", 3);
    b.wait_kernel("198.51.100.22", true);

    bed.stop_server(0, false);
    wait_for("A to see NATS gone", || {
        (a.fleet().state == "disconnected").then_some(())
    });
    // Banned locally while NATS is away...
    a.s.failures("198.51.100.20", 3);
    a.wait_kernel("198.51.100.20", true);
    wait_for("A's ban to wait", || (a.fleet().waiting >= 1).then_some(()));
    // An unban too, never published before A stops ...
    a.s.cli_ok(&["unban", "198.51.100.22"]);
    a.wait_kernel("198.51.100.22", false);
    // ... across a restart of A too (the history keeps them) ...
    a.stop();
    a.start();
    a.s.failures("198.51.100.21", 3);
    a.wait_kernel("198.51.100.21", true);
    a.wait_kernel("198.51.100.20", true);
    assert_eq!(b.kernel(), ["198.51.100.22"]);

    // ... and published when NATS is back.
    bed.start_server(0);
    b.wait_kernel("198.51.100.20", true);
    b.wait_kernel("198.51.100.21", true);
    b.wait_kernel("198.51.100.22", false);
    wait_for("A's queue to empty", || (a.fleet().waiting == 0).then_some(()));
    for addr in ["198.51.100.20", "198.51.100.21"] {
        assert_eq!(stream_messages(&bed, "OUTAGE", addr).len(), 1, "{addr} stored once");
        let history = b.settled_history(addr);
        assert_eq!(history.len(), 1, "{addr} banned once on B: {history:?}");
    }
    let kinds: Vec<serde_json::Value> = stream_messages(&bed, "OUTAGE", "198.51.100.22")
        .into_iter()
        .map(|m| m["kind"].clone())
        .collect();
    assert_eq!(kinds, ["ban", "unban"], "the unban stored once");
    assert!(a.log().contains("disconnected from NATS"), "{}", a.log());
}

#[test]
fn killing_one_server_of_a_three_server_cluster_loses_no_ban() {
    kernel_test!(NATS_SERVER);
    let bed = NatsBed::cluster();
    let mut a = Node::new(&bed, "a", "CLUSTER", ", replicas: 3", "");
    let mut b = Node::new(&bed, "b", "CLUSTER", ", replicas: 3", "");
    a.start();
    b.start();
    a.s.failures("198.51.100.30", 3);
    b.wait_kernel("198.51.100.30", true);

    bed.stop_server(0, true);
    a.s.failures("198.51.100.31", 3);
    // A new stream leader is elected (about 6 s here), consumers on the
    // lost server are made again: a generous bound, not a measure.
    b.wait_kernel_within("198.51.100.31", true, 120);
    // A node that starts now finds both in what is left of the cluster.
    let mut c = Node::new(&bed, "c", "CLUSTER", ", replicas: 3", "");
    c.start();
    c.wait_kernel_within("198.51.100.30", true, 120);
    c.wait_kernel_within("198.51.100.31", true, 120);
    wait_for("A's queue to empty", || (a.fleet().waiting == 0).then_some(()));
}

#[test]
fn a_peer_over_its_rate_is_refused_past_its_burst() {
    kernel_test!(NATS_SERVER);
    let bed = shared_nats();
    let mut b = Node::new(bed, "b", "RATE", ", limits: {rate: 1/minute, burst: 2}", "");
    b.start();
    wait_for("B on the stream", || b.fleet().caught_up.then_some(()));
    // A broken peer publishes five bans at once: its burst goes in.
    let bans = (1..=5)
        .map(|i| {
            serde_json::json!({"v": 1, "node": "x", "jail": "asterisk", "net": format!("198.51.100.{i}"),
                "kind": "ban", "expires": 4_000_000_000u64, "origin": "auto"})
        })
        .collect();
    forge(bed, "rate.x.asterisk", bans);
    wait_for("B to read all five", || (b.fleet().received == 5).then_some(()));
    b.wait_kernel("198.51.100.2", true);
    let mut kernel = b.kernel();
    kernel.sort();
    assert_eq!(kernel, ["198.51.100.1", "198.51.100.2"]);
    let f = b.fleet();
    assert_eq!(f.refused.get("rate"), Some(&3), "{f:?}");
    assert_eq!((f.limits.rate.as_str(), f.limits.burst), ("1/minute", 2));
}

/// No root needed: `nftban check` says what the fleet section does.
#[test]
fn check_says_what_the_fleet_does() {
    let s = Setup::asterisk("");
    s.top("fleet: {node: pbx-a, servers: [nats://10.0.0.1:4222], accept: [asterisk], limits: {rate: 5/minute}}");
    let out = stdout(&s.cli_ok(&["check"]));
    let line = out
        .lines()
        .find(|l| l.starts_with("fleet:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        line,
        "fleet: node pbx-a on nats://10.0.0.1:4222 (stream NFTBAN, subjects nftban.>); publishes asterisk, manual; accepts asterisk; peers' prefixes up to /24 (IPv4), /48 (IPv6), at most 5/minute bans each (burst 10000)"
    );
    s.top("fleet: {node: pbx.a, servers: [nats://10.0.0.1:4222]}");
    let o = s.cli(&["check"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("fleet.node: `pbx.a` is not a node name"),
        "{}",
        stderr(&o)
    );
}
