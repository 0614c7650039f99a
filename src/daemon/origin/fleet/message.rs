//! The fleet's messages, JSON on the subject `<prefix>.<node>.<jail>`,
//! each with a `Nats-Msg-Id` that names what it carries (so a retry, or
//! the same decisions told again after a restart, is stored once):
//!
//! - version 1 ([`Message`]): one ban or unban. A lone decision (a log's
//!   ban, one `nftban unban`) still goes out so: the latency path, and
//!   what every reader understands.
//! - version 2 ([`Batch`]): many decisions of one node in one jail, in
//!   order, as groups of nets sharing their kind, end (or time) and
//!   origin. A `ban -` of 100,000 addresses is a dozen messages, not
//!   100,000 publishes and acks, and a peer applies each as a few engine
//!   requests instead of one per address.
//!
//! A reader takes both. Within a version, fields it does not know are
//! ignored (a later writer may add some); a change an older reader would
//! misread takes a new number, which older readers refuse (counted as
//! `malformed`). docs/fleet.md shows examples.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::address::{parse_net, show as show_net};

/// The version of a message of one decision.
pub const VERSION: u32 = 1;

/// The version of a batch ([`Batch`]).
pub const BATCH_VERSION: u32 = 2;

/// Most decisions in one batch: about 20 bytes an IPv4 address and 50 an
/// IPv6 prefix, so well under NATS's default 1 MiB message limit.
pub const MAX_BATCH: usize = 8192;
// A full batch from a peer is applied with the watcher paused (the kernel
// builds no event per element for it).
const _: () = assert!(crate::firewall::netlink::BIG_BATCH <= MAX_BATCH);

/// One message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub v: u32,
    /// The node that decided it (also the subject's second-to-last token:
    /// a reader refuses a message whose subject says otherwise).
    pub node: String,
    /// The jail whose sets hold it, on every node.
    pub jail: String,
    /// Address (`198.51.100.7`) or prefix (`2001:db8::/64`).
    pub net: String,
    #[serde(flatten)]
    pub what: What,
}

/// A ban or an unban.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum What {
    Ban {
        /// When it ends, Unix seconds: a reader bans for what is left and
        /// skips a ban that has ended (a catch-up).
        expires: u64,
        /// How the node came to it: `auto`, `manual`, `escalated`,
        /// `kernel meter`.
        origin: String,
        /// Why, when the origin does not say it all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Unban {
        /// When it was lifted, Unix milliseconds.
        at: u64,
    },
}

impl What {
    /// A ban ending at `expires` (whole seconds, as the history keeps it).
    pub fn ban(expires: SystemTime, origin: &str, reason: Option<String>) -> What {
        What::Ban {
            expires: unix_secs(expires),
            origin: origin.into(),
            reason,
        }
    }

    /// An unban made at `at` (milliseconds).
    pub fn unban(at: SystemTime) -> What {
        What::Unban {
            at: at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
        }
    }
}

/// The most characters of a peer's `origin` or `reason` kept: they go
/// into every log line, event, `status` and history row of the ban.
pub const SAID_MOST: usize = 200;

impl What {
    /// The ban's words as a peer said them, made harmless: control
    /// characters (a CR/LF that starts a forged log line, an ESC that
    /// repaints a terminal) and the bidirectional overrides written as
    /// escapes (`\u{1b}`), and cut at [`SAID_MOST`] characters.
    fn tamed(self) -> What {
        match self {
            What::Ban {
                expires,
                origin,
                reason,
            } => What::Ban {
                expires,
                origin: tame(&origin),
                reason: reason.as_deref().map(tame),
            },
            unban => unban,
        }
    }
}

fn tame(said: &str) -> String {
    let unsafe_char = |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let mut out = String::with_capacity(said.len().min(SAID_MOST));
    for (n, c) in said.chars().enumerate() {
        if n == SAID_MOST {
            out.push_str("...");
            break;
        }
        match unsafe_char(c) {
            true => out.extend(c.escape_default()),
            false => out.push(c),
        }
    }
    out
}

/// Whole seconds since the epoch (what the history stores).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Back from Unix seconds.
pub fn from_unix(secs: u64) -> SystemTime {
    UNIX_EPOCH.checked_add(Duration::from_secs(secs)).unwrap_or(UNIX_EPOCH)
}

impl Message {
    /// A ban of this node (the publisher builds [`What`]s and [`Out`]s;
    /// tests build single messages).
    #[cfg(test)]
    pub fn ban(
        node: &str,
        jail: &str,
        net: &IpNet,
        expires: SystemTime,
        origin: &str,
        reason: Option<&str>,
    ) -> Message {
        Message {
            v: VERSION,
            node: node.into(),
            jail: jail.into(),
            net: show_net(net),
            what: What::ban(expires, origin, reason.map(str::to_string)),
        }
    }

    /// The version 1 id of `node`'s decision `what` of `net` in `jail`,
    /// whatever message carries it.
    pub fn id_of(node: &str, jail: &str, net: &IpNet, what: &What) -> String {
        let net = show_net(net);
        match what {
            What::Ban { expires, .. } => format!("{node}/{jail}/{net}/b{expires}"),
            What::Unban { at } => format!("{node}/{jail}/{net}/u{at}"),
        }
    }

    /// The subject it goes on.
    pub fn subject(&self, prefix: &str) -> String {
        format!("{prefix}.{}.{}", self.node, self.jail)
    }

    /// Its `Nats-Msg-Id`: the same decision always has the same id (a ban
    /// is its node, jail, net and end; a lengthened ban is a new one).
    pub fn id(&self) -> String {
        match &self.what {
            What::Ban { expires, .. } => format!("{}/{}/{}/b{expires}", self.node, self.jail, self.net),
            What::Unban { at } => format!("{}/{}/{}/u{at}", self.node, self.jail, self.net),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a message serializes")
    }

    /// Read a message from `subject` under `prefix`: JSON of a known
    /// version, a net that parses, a node and jail that the subject
    /// repeats. `Err` says what is wrong, for the log.
    pub fn read(prefix: &str, subject: &str, payload: &[u8]) -> Result<(Message, IpNet), String> {
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let v: Version = serde_json::from_slice(payload).map_err(|e| format!("not a fleet message: {e}"))?;
        if v.v != VERSION {
            return Err(format!("message version {} (this node reads {VERSION})", v.v));
        }
        let m: Message = serde_json::from_slice(payload).map_err(|e| format!("not a fleet message: {e}"))?;
        let want = m.subject(prefix);
        if subject != want {
            return Err(format!("subject {subject} does not match its node and jail ({want})"));
        }
        let net = parse_net(&m.net).map_err(|e| format!("`{}`: {e}", m.net))?;
        Ok((m, net))
    }
}

/// Version 2: decisions of one node in one jail, in the order made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub v: u32,
    pub node: String,
    pub jail: String,
    pub groups: Vec<Group>,
}

/// Consecutive decisions of a batch that differ only by their net.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    #[serde(flatten)]
    pub what: What,
    pub nets: Vec<String>,
}

/// What goes out as one JetStream message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    One(Message),
    Many(Batch),
}

/// A message read: its node and jail (the subject's), and its decisions
/// in order, each a net with what befalls it, or why that one is
/// refused (a net that does not parse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub node: String,
    pub jail: String,
    pub items: Vec<Result<(IpNet, What), String>>,
}

impl Batch {
    /// How many decisions it carries.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.nets.len()).sum()
    }

    /// Its `Nats-Msg-Id`: derived from the decisions it carries (the
    /// version 1 id of each, in order), so the same batch built again, by
    /// a retry or from the history after a restart, has the same id.
    pub fn id(&self) -> String {
        // FNV-1a, 64 bits: stable across builds and platforms (std's
        // hasher is not), and the count and first net keep a collision
        // within a duplicate window out of reach.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut first = None;
        for g in &self.groups {
            for net in &g.nets {
                let one = Message {
                    v: VERSION,
                    node: self.node.clone(),
                    jail: self.jail.clone(),
                    net: net.clone(),
                    what: g.what.clone(),
                };
                let id = one.id();
                for b in id.bytes().chain(std::iter::once(b'\n')) {
                    hash ^= u64::from(b);
                    hash = hash.wrapping_mul(0x0100_0000_01b3);
                }
                first.get_or_insert(net.clone());
            }
        }
        format!(
            "{}/{}/g{}/{}/{hash:016x}",
            self.node,
            self.jail,
            self.len(),
            first.unwrap_or_default()
        )
    }
}

impl Out {
    /// The messages of `node`'s decisions `items` (jail, net, what), in
    /// order: per jail, chunks of at most [`MAX_BATCH`]; a chunk of one
    /// is a version 1 message (what a lone ban always was).
    pub fn of(node: &str, items: Vec<(String, IpNet, What)>) -> Vec<Out> {
        // Per jail in order; the order between jails does not matter
        // (each jail's decisions are applied on their own).
        let mut jails: Vec<(String, Vec<(IpNet, What)>)> = Vec::new();
        for (jail, net, what) in items {
            match jails.iter_mut().find(|(j, _)| *j == jail) {
                Some((_, list)) => list.push((net, what)),
                None => jails.push((jail, vec![(net, what)])),
            }
        }
        let mut out = Vec::new();
        for (jail, list) in jails {
            for chunk in list.chunks(MAX_BATCH) {
                if let [(net, what)] = chunk {
                    out.push(Out::One(Message {
                        v: VERSION,
                        node: node.into(),
                        jail: jail.clone(),
                        net: show_net(net),
                        what: what.clone(),
                    }));
                    continue;
                }
                let mut groups: Vec<Group> = Vec::new();
                for (net, what) in chunk {
                    match groups.last_mut() {
                        Some(g) if g.what == *what => g.nets.push(show_net(net)),
                        _ => groups.push(Group {
                            what: what.clone(),
                            nets: vec![show_net(net)],
                        }),
                    }
                }
                out.push(Out::Many(Batch {
                    v: BATCH_VERSION,
                    node: node.into(),
                    jail: jail.clone(),
                    groups,
                }));
            }
        }
        out
    }

    /// How many decisions it carries.
    pub fn len(&self) -> usize {
        match self {
            Out::One(_) => 1,
            Out::Many(b) => b.len(),
        }
    }

    pub fn subject(&self, prefix: &str) -> String {
        match self {
            Out::One(m) => m.subject(prefix),
            Out::Many(b) => format!("{prefix}.{}.{}", b.node, b.jail),
        }
    }

    pub fn id(&self) -> String {
        match self {
            Out::One(m) => m.id(),
            Out::Many(b) => b.id(),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        match self {
            Out::One(m) => m.to_json(),
            Out::Many(b) => serde_json::to_vec(b).expect("a batch serializes"),
        }
    }
}

/// Read a message of either version from `subject` under `prefix`: JSON
/// of a known version, a node and jail that the subject repeats. `Err`
/// (the whole message refused) says what is wrong, for the log; a net of
/// a batch that does not parse refuses that decision only.
pub fn read(prefix: &str, subject: &str, payload: &[u8]) -> Result<Read, String> {
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let v: Version = serde_json::from_slice(payload).map_err(|e| format!("not a fleet message: {e}"))?;
    if v.v == VERSION {
        let (m, net) = Message::read(prefix, subject, payload)?;
        return Ok(Read {
            node: m.node,
            jail: m.jail,
            items: vec![Ok((net, m.what.tamed()))],
        });
    }
    if v.v != BATCH_VERSION {
        return Err(format!(
            "message version {} (this node reads {VERSION} and {BATCH_VERSION})",
            v.v
        ));
    }
    let b: Batch = serde_json::from_slice(payload).map_err(|e| format!("not a fleet batch: {e}"))?;
    let want = format!("{prefix}.{}.{}", b.node, b.jail);
    if subject != want {
        return Err(format!("subject {subject} does not match its node and jail ({want})"));
    }
    let items = b
        .groups
        .into_iter()
        .flat_map(|g| {
            let what = g.what.tamed();
            g.nets.into_iter().map(move |n| {
                parse_net(&n)
                    .map(|net| (net, what.clone()))
                    .map_err(|e| format!("`{n}`: {e}"))
            })
        })
        .collect();
    Ok(Read {
        node: b.node,
        jail: b.jail,
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ban_goes_out_and_comes_back_as_it_was() {
        let net: IpNet = "198.51.100.7/32".parse().unwrap();
        let m = Message::ban("pbx-a", "sshd", &net, from_unix(1_800_000_000), "auto", None);
        let json = m.to_json();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&json).unwrap(),
            serde_json::json!({"v": 1, "node": "pbx-a", "jail": "sshd", "net": "198.51.100.7",
                "kind": "ban", "expires": 1_800_000_000u64, "origin": "auto"})
        );
        let (back, n) = Message::read("nftban", "nftban.pbx-a.sshd", &json).unwrap();
        assert_eq!((back, n), (m.clone(), net));
        assert_eq!(m.id(), "pbx-a/sshd/198.51.100.7/b1800000000");
    }

    /// A peer's words reach logs, terminals (`status`, `events`) and the
    /// history: control characters come out as escapes, so a CR/LF cannot
    /// start a forged log line nor an ESC repaint a terminal, and a
    /// reason of 900,000 characters is cut, in both versions.
    #[test]
    fn a_peers_words_are_made_harmless() {
        let long = "x".repeat(900_000);
        let evil = "\u{1b}[31mRED\u{1b}[0m\r\nfake line\u{202e}";
        for (origin, reason) in [("auto", evil), ("auto\nforged", long.as_str())] {
            let v1 = serde_json::json!({"v": 1, "node": "a", "jail": "sshd", "net": "192.0.2.1",
                "kind": "ban", "expires": 1, "origin": origin, "reason": reason});
            let v2 = serde_json::json!({"v": 2, "node": "a", "jail": "sshd", "groups": [
                {"kind": "ban", "expires": 1, "origin": origin, "reason": reason, "nets": ["192.0.2.1"]}]});
            for payload in [v1, v2] {
                let r = read("p", "p.a.sshd", &serde_json::to_vec(&payload).unwrap()).unwrap();
                let What::Ban { origin, reason, .. } = r.items[0].clone().unwrap().1 else {
                    panic!("not a ban")
                };
                let reason = reason.unwrap();
                for said in [&origin, &reason] {
                    assert!(!said.chars().any(|c| c.is_control() || c == '\u{202e}'), "{said:?}");
                    assert!(said.chars().count() <= SAID_MOST + 3, "{}", said.len());
                }
                if reason.starts_with('\\') {
                    assert_eq!(reason, r"\u{1b}[31mRED\u{1b}[0m\r\nfake line\u{202e}");
                } else {
                    assert_eq!(origin, r"auto\nforged");
                    assert!(reason.ends_with("x..."));
                }
            }
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_unknown_versions_refused() {
        let text = br#"{"v":1,"node":"a","jail":"sshd","net":"2001:db8::/64","kind":"unban","at":5,"later":true}"#;
        let (m, net) = Message::read("p", "p.a.sshd", text).unwrap();
        assert_eq!(m.what, What::Unban { at: 5 });
        assert_eq!(net, "2001:db8::/64".parse::<IpNet>().unwrap());
        let v3 = br#"{"v":3,"node":"a","jail":"sshd","net":"192.0.2.1","kind":"ban","expires":1,"origin":"auto"}"#;
        assert!(read("p", "p.a.sshd", v3).unwrap_err().contains("version 3"));
    }

    #[test]
    fn a_message_whose_subject_names_another_node_is_refused() {
        let m = Message::ban(
            "a",
            "sshd",
            &"192.0.2.1/32".parse().unwrap(),
            from_unix(9),
            "auto",
            None,
        );
        let err = Message::read("nftban", "nftban.b.sshd", &m.to_json()).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        assert!(Message::read("nftban", "nftban.a.sshd", b"{").is_err());
    }

    fn ban_item(jail: &str, i: u32, expires: u64) -> (String, IpNet, What) {
        let net = IpNet::from(std::net::IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
        (jail.into(), net, What::ban(from_unix(expires), "manual", None))
    }

    /// A `ban -` of 100,000 goes out as a dozen batches, not a message a
    /// ban; a lone ban as the version 1 message it always was.
    #[test]
    fn many_decisions_go_out_as_few_batches_and_a_lone_one_as_version_1() {
        let items: Vec<_> = (0..100_000).map(|i| ban_item("sshd", i, 1_800_000_000)).collect();
        let out = Out::of("a", items);
        assert_eq!(out.len(), 100_000usize.div_ceil(MAX_BATCH));
        assert!(out.iter().all(|m| matches!(m, Out::Many(b) if b.groups.len() == 1)));
        assert_eq!(out.iter().map(Out::len).sum::<usize>(), 100_000);
        let json = out[0].to_json();
        assert!(
            json.len() < 1 << 20,
            "under NATS's default message limit: {}",
            json.len()
        );

        let one = Out::of("a", vec![ban_item("sshd", 7, 1_800_000_000)]);
        let Out::One(m) = &one[0] else { panic!("{one:?}") };
        assert_eq!(m.id(), "a/sshd/10.0.0.7/b1800000000");
        assert_eq!(one[0].id(), m.id());
    }

    /// A batch read back gives every decision in order, with its kind;
    /// groups follow changes of end, kind and origin.
    #[test]
    fn a_batch_goes_out_and_comes_back_in_order() {
        let net = |s: &str| -> IpNet { s.parse().unwrap() };
        let items = vec![
            ban_item("sshd", 1, 100),
            ban_item("sshd", 2, 100),
            ("sshd".into(), net("2001:db8::/64"), What::Unban { at: 5_000 }),
            ban_item("sshd", 1, 200),
            ban_item("asterisk", 3, 100),
        ];
        let out = Out::of("a", items.clone());
        assert_eq!(out.len(), 2, "one per jail: {out:?}");
        let Out::Many(b) = &out[0] else { panic!() };
        assert_eq!(b.groups.len(), 3);
        let json: serde_json::Value = serde_json::from_slice(&out[0].to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"v": 2, "node": "a", "jail": "sshd", "groups": [
                {"kind": "ban", "expires": 100, "origin": "manual", "nets": ["10.0.0.1", "10.0.0.2"]},
                {"kind": "unban", "at": 5000, "nets": ["2001:db8::/64"]},
                {"kind": "ban", "expires": 200, "origin": "manual", "nets": ["10.0.0.1"]}]})
        );
        let back = read("nftban", &out[0].subject("nftban"), &out[0].to_json()).unwrap();
        assert_eq!((back.node.as_str(), back.jail.as_str()), ("a", "sshd"));
        let got: Vec<(String, IpNet, What)> = back
            .items
            .into_iter()
            .map(|r| {
                let (n, w) = r.unwrap();
                ("sshd".to_string(), n, w)
            })
            .collect();
        assert_eq!(got, items[..4]);
        // The other jail's lone ban: version 1.
        assert!(matches!(&out[1], Out::One(m) if m.jail == "asterisk"));
        // A subject naming another node refuses the whole batch; a bad net
        // only its own decision.
        assert!(read("nftban", "nftban.b.sshd", &out[0].to_json()).is_err());
        let bad = br#"{"v":2,"node":"a","jail":"sshd","groups":[{"kind":"unban","at":1,"nets":["x","192.0.2.1"],"later":1}]}"#;
        let r = read("nftban", "nftban.a.sshd", bad).unwrap();
        assert!(r.items[0].is_err() && r.items[1].is_ok(), "{r:?}");
    }

    /// The id names the content: built again (a retry, a restart telling
    /// the same bans again) it is the same; any other content, another.
    #[test]
    fn a_batchs_id_is_its_content() {
        let items: Vec<_> = (0..10).map(|i| ban_item("sshd", i, 100)).collect();
        let id = Out::of("a", items.clone())[0].id();
        assert_eq!(id, Out::of("a", items.clone())[0].id());
        assert!(id.starts_with("a/sshd/g10/10.0.0.0/"), "{id}");
        let mut other = items.clone();
        other[9] = ban_item("sshd", 9, 101);
        assert_ne!(id, Out::of("a", other)[0].id());
        let mut fewer = items;
        fewer.pop();
        assert_ne!(id, Out::of("a", fewer)[0].id());
    }
}
