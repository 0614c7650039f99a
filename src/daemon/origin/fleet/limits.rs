//! What a peer may make this node ban: only in a jail that accepts the
//! fleet's bans, never what the jail's `ignoreip` or the never-ban list
//! holds, no prefix wider than the limit (the world least of all), none
//! holding this host's own addresses or the fleet's NATS servers (one ban
//! of the server's address would leave the node deaf to the fleet for the
//! ban's time), and no more than a rate per peer. Each refusal has a
//! name, counted in `status` and the metrics.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::address::never_banned;
use crate::config::FleetSpec;
use crate::firewall::sip::{Rate, RateUnit};

/// Why a peer's ban was refused (the keys of `status.fleet.refused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Refusal {
    Jail,
    NeverBanned,
    TooWide,
    Ignoreip,
    /// One of this host's own addresses.
    Own,
    /// The address of a NATS server of `fleet.servers`.
    Server,
    Rate,
    Malformed,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Jail => "jail",
            Refusal::NeverBanned => "never banned",
            Refusal::TooWide => "too wide",
            Refusal::Ignoreip => "ignoreip",
            Refusal::Own => "own address",
            Refusal::Server => "fleet server",
            Refusal::Rate => "rate",
            Refusal::Malformed => "malformed",
        }
    }
}

/// A token bucket per peer, filled by the stream's own time stamps (the
/// server's, which a peer cannot forge): a catch-up replays the bans with
/// their times, so it judges them as they came, not all at once.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    /// Nanoseconds since the epoch of the last message counted.
    last: i128,
}

/// The limits of a node's `fleet:` and the buckets of its peers.
pub struct Limits {
    accept: BTreeMap<String, Vec<IpNet>>,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    per_second: f64,
    burst: f64,
    buckets: HashMap<String, Bucket>,
    /// This host's addresses, and when they were read.
    own: (Vec<IpAddr>, Option<Instant>),
    /// The addresses of `fleet.servers`, as they resolved at start.
    servers: Vec<IpAddr>,
}

/// How long the host's own addresses are taken as read.
const OWN_FOR: Duration = Duration::from_secs(60);

impl Limits {
    pub fn new(spec: &FleetSpec) -> Limits {
        let per_second = match spec.rate {
            Rate {
                count,
                unit: RateUnit::Second,
            } => f64::from(count),
            Rate {
                count,
                unit: RateUnit::Minute,
            } => f64::from(count) / 60.0,
        };
        Limits {
            accept: spec.accept.clone(),
            ipv4_prefix: spec.ipv4_prefix,
            ipv6_prefix: spec.ipv6_prefix,
            per_second,
            burst: f64::from(spec.burst),
            buckets: HashMap::new(),
            own: (Vec::new(), None),
            servers: spec.server_addresses(),
        }
    }

    /// Whether `node`'s ban of `net` in `jail`, stored by the stream at
    /// `published` (nanoseconds since the epoch), may be made here.
    pub fn judge(&mut self, node: &str, jail: &str, net: &IpNet, published: i128) -> Result<(), Refusal> {
        let Some(ignoreip) = self.accept.get(jail) else {
            return Err(Refusal::Jail);
        };
        let widest = match net {
            IpNet::V4(_) => self.ipv4_prefix,
            IpNet::V6(_) => self.ipv6_prefix,
        };
        if net.prefix_len() < widest || net.prefix_len() == 0 {
            return Err(Refusal::TooWide);
        }
        if never_banned(net).is_some() {
            return Err(Refusal::NeverBanned);
        }
        if ignoreip.iter().any(|n| n.contains(net) || net.contains(n)) {
            return Err(Refusal::Ignoreip);
        }
        if self.servers.iter().any(|a| net.contains(a)) {
            return Err(Refusal::Server);
        }
        if self.own().iter().any(|a| net.contains(a)) {
            return Err(Refusal::Own);
        }
        self.take(node, published)
    }

    /// This host's addresses, read again once [`OWN_FOR`] old.
    fn own(&mut self) -> &[IpAddr] {
        if self.own.1.is_none_or(|at| at.elapsed() >= OWN_FOR) {
            self.own = (crate::daemon::origin::own::own_addresses(), Some(Instant::now()));
        }
        &self.own.0
    }

    /// One token of `node`'s bucket, if it has one.
    fn take(&mut self, node: &str, published: i128) -> Result<(), Refusal> {
        let (per_second, burst) = (self.per_second, self.burst);
        // Looked up by `&str`: the node's name is copied once, for its
        // new bucket, not for every ban of a peer's batch.
        let b = match self.buckets.get_mut(node) {
            Some(b) => b,
            None => self.buckets.entry(node.to_string()).or_insert(Bucket {
                tokens: burst,
                last: published,
            }),
        };
        // A clock that steps back (another server of a cluster) adds nothing.
        let elapsed = (published - b.last).max(0) as f64 / 1e9;
        b.tokens = (b.tokens + elapsed * per_second).min(burst);
        b.last = b.last.max(published);
        if b.tokens < 1.0 {
            return Err(Refusal::Rate);
        }
        b.tokens -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Credentials;

    fn spec(rate: &str, burst: u32) -> FleetSpec {
        FleetSpec {
            servers: vec!["nats://127.0.0.1:4222".into()],
            node: "b".into(),
            credentials: Credentials::None,
            tls: None,
            stream: "NFTBAN".into(),
            subject_prefix: "nftban".into(),
            publish: vec!["sshd".into()],
            accept: BTreeMap::from([("sshd".into(), vec!["192.0.2.0/24".parse().unwrap()])]),
            retention: std::time::Duration::from_secs(3600),
            replicas: 1,
            ipv4_prefix: 24,
            ipv6_prefix: 48,
            rate: rate.parse().unwrap(),
            burst,
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn ignoreip_width_the_world_and_jails_are_refused() {
        let mut l = Limits::new(&spec("100/second", 10));
        let judge = |l: &mut Limits, jail, n| l.judge("a", jail, &net(n), 0);
        assert_eq!(judge(&mut l, "sshd", "198.51.100.7/32"), Ok(()));
        assert_eq!(judge(&mut l, "sshd", "198.51.100.0/24"), Ok(()));
        assert_eq!(judge(&mut l, "sshd", "198.51.0.0/16"), Err(Refusal::TooWide));
        assert_eq!(judge(&mut l, "sshd", "0.0.0.0/0"), Err(Refusal::TooWide));
        assert_eq!(judge(&mut l, "sshd", "::/0"), Err(Refusal::TooWide));
        assert_eq!(judge(&mut l, "sshd", "2001:db8::/32"), Err(Refusal::TooWide));
        assert_eq!(judge(&mut l, "sshd", "192.0.2.9/32"), Err(Refusal::Ignoreip));
        assert_eq!(judge(&mut l, "sshd", "127.0.0.1/32"), Err(Refusal::NeverBanned));
        assert_eq!(judge(&mut l, "asterisk", "198.51.100.7/32"), Err(Refusal::Jail));
    }

    /// A peer's ban of the fleet's NATS server, or of one of this host's
    /// own addresses (or a prefix holding one), is refused: either would
    /// cut this node off.
    #[test]
    fn the_fleets_servers_and_this_hosts_addresses_are_refused() {
        let mut s = spec("100/second", 10);
        s.servers = vec!["nats://198.51.100.1:4222".into(), "tls://u:p@[2001:db8::4]:4222".into()];
        let mut l = Limits::new(&s);
        let judge = |l: &mut Limits, n| l.judge("a", "sshd", &net(n), 0);
        assert_eq!(judge(&mut l, "198.51.100.1/32"), Err(Refusal::Server));
        assert_eq!(judge(&mut l, "198.51.100.0/24"), Err(Refusal::Server));
        assert_eq!(judge(&mut l, "2001:db8::4/128"), Err(Refusal::Server));
        assert_eq!(judge(&mut l, "198.51.100.2/32"), Ok(()));
        // The host's own: whatever interface address it has that the
        // checks before refuse for another reason (loopback, link-local,
        // inside the jail's `ignoreip`), if any.
        let ignoreip: IpNet = "192.0.2.0/24".parse().unwrap();
        let own = crate::daemon::origin::own::own_addresses().into_iter().find(|a| {
            !a.is_loopback()
                && !ignoreip.contains(a)
                && !matches!(a, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
        });
        if let Some(a) = own {
            assert_eq!(l.judge("a", "sshd", &IpNet::from(a), 0), Err(Refusal::Own), "{a}");
        }
    }

    #[test]
    fn a_peer_over_its_rate_is_refused_by_the_streams_clock_not_ours() {
        let mut l = Limits::new(&spec("2/second", 3));
        let sec = 1_000_000_000i128;
        let ok = |l: &mut Limits, node, at| l.judge(node, "sshd", &net("198.51.100.7/32"), at).is_ok();
        // The burst, then nothing more in the same instant...
        assert!((0..3).all(|_| ok(&mut l, "a", 0)));
        assert!(!ok(&mut l, "a", 0));
        // ... while another peer has its own bucket.
        assert!(ok(&mut l, "c", 0));
        // Half a second of stream time refills one token.
        assert!(ok(&mut l, "a", sec / 2));
        assert!(!ok(&mut l, "a", sec / 2));
        // A time stamp that steps back adds nothing.
        assert!(!ok(&mut l, "a", 0));
        // Long after, a full burst again, no more.
        assert!((0..3).all(|_| ok(&mut l, "a", 100 * sec)));
        assert!(!ok(&mut l, "a", 100 * sec));
    }
}
