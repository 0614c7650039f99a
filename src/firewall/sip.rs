//! The kernel meter for SIP floods (`sip:` in the config): what it puts in
//! nftban's table, independent of the backend.
//!
//! One base chain, `sip`, in the prerouting hook at raw priority (-300,
//! before conntrack), and six sets, two per kind and family:
//! - `sip_trusted_v4`/`_v6` (interval, no timeout): the jail's `ignoreip`,
//!   accepted before any metering;
//! - `sip_meter_v4`/`_v6` (dynamic, timeout, an explicit `size`): one
//!   token bucket per source (per IPv6 /`ipv6_prefix`), `limit rate over
//!   RATE burst BURST packets`;
//! - `sip_caught_v4`/`_v6` (dynamic, timeout, the same `size`): the sources
//!   the meter caught, each with the bantime as its timeout, dropped by the
//!   kernel itself. The daemon reads this small set every
//!   [`CAUGHT_POLL`] (the kernel announces nothing it adds from the packet
//!   path), bans each source in the jail's own sets through the engine, and
//!   then removes it from here.
//!
//! The rules, per family: trusted sources accepted; sources in the jail's
//! ban sets and in the caught set dropped; then, for each UDP port and each
//! TCP (and TLS) port (TCP: segments with SYN or PSH, i.e. new connections
//! and the requests written on them, not pure ACKs), the meter and, over
//! the rate, the source added to the caught set and dropped.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use ipnet::{IpNet, Ipv6Net};

use super::Family;

/// The chain of the SIP meter.
pub const SIP_CHAIN: &str = "sip";

/// How often the daemon reads the caught sets: a kernel ban shows in
/// `status` within this, plus the engine's turn (well under 2 s).
pub const CAUGHT_POLL: Duration = Duration::from_millis(500);

/// Set names the meter uses, without the family suffix: a jail of one of
/// these names would collide with them.
pub const SIP_SET_STEMS: [&str; 3] = ["sip_trusted", "sip_meter", "sip_caught"];

/// What a rate is counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateUnit {
    Second,
    Minute,
}

impl RateUnit {
    /// Seconds per unit (what the kernel's limit takes).
    pub fn secs(self) -> u64 {
        match self {
            RateUnit::Second => 1,
            RateUnit::Minute => 60,
        }
    }
}

/// New SIP requests per source over which it is banned: `20/second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub unit: RateUnit,
}

impl std::str::FromStr for Rate {
    type Err = ();

    /// `N/second` or `N/minute`, N at least 1.
    fn from_str(s: &str) -> Result<Rate, ()> {
        let (n, unit) = s.trim().split_once('/').ok_or(())?;
        let count: u32 = n.trim().parse().map_err(|_| ())?;
        let unit = match unit.trim() {
            "second" => RateUnit::Second,
            "minute" => RateUnit::Minute,
            _ => return Err(()),
        };
        if count == 0 {
            return Err(());
        }
        Ok(Rate { count, unit })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.unit {
            RateUnit::Second => "second",
            RateUnit::Minute => "minute",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Everything the kernel meter needs, validated (config `sip:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipSpec {
    /// The jail whose sets hold the bans, and whose bans the chain drops.
    pub jail: String,
    pub udp: Vec<u16>,
    pub tcp: Vec<u16>,
    pub tls: Vec<u16>,
    pub rate: Rate,
    /// Packets a source may send at once before the rate applies.
    pub burst: u32,
    /// The caught sets' element timeout: the ban's length.
    pub bantime: Duration,
    /// IPv6 sources are metered and banned per prefix of this length
    /// (128: per address).
    pub ipv6_prefix: u8,
    /// Slots of each meter and caught set.
    pub size: u32,
    /// Sources never metered (the jail's `ignoreip`).
    pub trusted: Vec<IpNet>,
}

/// The transport a meter rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    /// TCP segments that open a connection (SYN) or end a write (PSH):
    /// every new connection and, on a connection, each request a client's
    /// stack writes. Not SYNs alone: a flood over one connection would
    /// never be metered (SIPp `-t t1`: 500 of 500 reached Kamailio). Pure
    /// ACKs are not counted.
    Tcp,
}

/// Which of the meter's sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SipSetKind {
    Trusted,
    Meter,
    Caught,
}

/// One of the meter's sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SipSet {
    pub name: String,
    pub family: Family,
    pub kind: SipSetKind,
}

/// The name of one of the meter's sets.
pub(crate) fn sip_set_name(kind: SipSetKind, family: Family) -> String {
    let stem = match kind {
        SipSetKind::Trusted => SIP_SET_STEMS[0],
        SipSetKind::Meter => SIP_SET_STEMS[1],
        SipSetKind::Caught => SIP_SET_STEMS[2],
    };
    format!("{stem}_{}", family.suffix())
}

impl SipSpec {
    /// The six sets, in the order setup creates and `nft` lists them.
    pub(crate) fn sets(&self) -> Vec<SipSet> {
        let mut out = Vec::with_capacity(6);
        for kind in [SipSetKind::Trusted, SipSetKind::Meter, SipSetKind::Caught] {
            for family in [Family::V4, Family::V6] {
                out.push(SipSet {
                    name: sip_set_name(kind, family),
                    family,
                    kind,
                });
            }
        }
        out
    }

    /// The trusted prefixes of one family, merged (an interval set refuses
    /// overlapping elements) and in address order.
    pub(crate) fn trusted_of(&self, family: Family) -> Vec<IpNet> {
        let of: Vec<IpNet> = self
            .trusted
            .iter()
            .map(IpNet::trunc)
            .filter(|n| Family::of(n) == family)
            .collect();
        let mut merged = IpNet::aggregate(&of);
        merged.sort();
        merged
    }

    /// The metered (transport, port) pairs, UDP first, then TCP and TLS
    /// (both [`Transport::Tcp`]), each port once.
    pub fn ports(&self) -> Vec<(Transport, u16)> {
        let mut out: Vec<(Transport, u16)> = Vec::new();
        for &p in &self.udp {
            if !out.contains(&(Transport::Udp, p)) {
                out.push((Transport::Udp, p));
            }
        }
        for &p in self.tcp.iter().chain(&self.tls) {
            if !out.contains(&(Transport::Tcp, p)) {
                out.push((Transport::Tcp, p));
            }
        }
        out
    }

    /// How long an idle source's bucket stays in the meter: at least a
    /// minute, and at least the time the bucket takes to fill up again
    /// (so a slow source is not forgiven by its bucket expiring).
    pub fn meter_timeout(&self) -> Duration {
        let refill = u64::from(self.burst) * self.rate.unit.secs() / u64::from(self.rate.count);
        Duration::from_secs((refill + 1).max(60))
    }

    /// The mask applied to an IPv6 source before metering, `None` when
    /// sources are metered per address.
    pub fn v6_mask(&self) -> Option<[u8; 16]> {
        (self.ipv6_prefix < 128).then(|| {
            let bits = u128::MAX.checked_shl(128 - u32::from(self.ipv6_prefix)).unwrap_or(0);
            bits.to_be_bytes()
        })
    }

    /// The ban a caught set's key stands for: an IPv4 address, or the
    /// IPv6 prefix (or address) it is the network address of.
    pub fn caught_net(&self, addr: IpAddr) -> IpNet {
        match addr {
            IpAddr::V4(a) => IpNet::from(IpAddr::V4(a)),
            IpAddr::V6(a) => IpNet::V6(
                Ipv6Net::new(a, self.ipv6_prefix.min(128))
                    .unwrap_or_else(|_| Ipv6Net::from(a))
                    .trunc(),
            ),
        }
    }

    /// The key of `net` in the caught set of its family: the address, for
    /// IPv6 masked to `ipv6_prefix`. `None` for a prefix wider than what
    /// the caught set holds (it holds no such key).
    pub fn caught_key(&self, net: &IpNet) -> Option<IpAddr> {
        match net {
            IpNet::V4(n) if n.prefix_len() == 32 => Some(IpAddr::V4(n.addr())),
            IpNet::V6(n) if n.prefix_len() >= self.ipv6_prefix => {
                let bits = u128::from(n.addr()) & u128::MAX.checked_shl(128 - u32::from(self.ipv6_prefix)).unwrap_or(0);
                Some(IpAddr::V6(Ipv6Addr::from(bits)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn spec() -> SipSpec {
        SipSpec {
            jail: "asterisk".into(),
            udp: vec![5060],
            tcp: vec![5060],
            tls: vec![5061],
            rate: "20/second".parse().unwrap(),
            burst: 40,
            bantime: Duration::from_secs(3600),
            ipv6_prefix: 64,
            size: 65536,
            trusted: vec!["127.0.0.0/8".parse().unwrap()],
        }
    }

    #[test]
    fn rates_parse_and_print() {
        let r: Rate = "20/second".parse().unwrap();
        assert_eq!((r.count, r.unit), (20, RateUnit::Second));
        assert_eq!(r.to_string(), "20/second");
        assert_eq!(" 600/minute ".parse::<Rate>().unwrap().unit, RateUnit::Minute);
        for bad in ["0/second", "20", "20/hour", "x/second", "-1/second", "20/seconds"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sets_ports_and_timeouts() {
        let s = spec();
        let names: Vec<String> = s.sets().into_iter().map(|d| d.name).collect();
        assert_eq!(
            names,
            [
                "sip_trusted_v4",
                "sip_trusted_v6",
                "sip_meter_v4",
                "sip_meter_v6",
                "sip_caught_v4",
                "sip_caught_v6"
            ]
        );
        assert_eq!(
            s.ports(),
            [(Transport::Udp, 5060), (Transport::Tcp, 5060), (Transport::Tcp, 5061)]
        );
        assert_eq!(s.meter_timeout(), Duration::from_secs(60));
        let slow = SipSpec {
            rate: "1/minute".parse().unwrap(),
            burst: 10,
            ..spec()
        };
        assert_eq!(slow.meter_timeout(), Duration::from_secs(601));
    }

    #[test]
    fn ipv6_is_metered_and_banned_per_prefix() {
        let s = spec();
        let mask = s.v6_mask().unwrap();
        assert_eq!(mask, [255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            s.caught_net("2001:db8:1:2::".parse().unwrap()).to_string(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(s.caught_net("192.0.2.7".parse().unwrap()).to_string(), "192.0.2.7/32");
        assert_eq!(
            s.caught_key(&"2001:db8:1:2::9/128".parse().unwrap()),
            Some("2001:db8:1:2::".parse().unwrap())
        );
        assert_eq!(s.caught_key(&"2001:db8::/32".parse().unwrap()), None);
        assert_eq!(s.caught_key(&"192.0.2.0/24".parse().unwrap()), None);
        let per_address = SipSpec {
            ipv6_prefix: 128,
            ..spec()
        };
        assert_eq!(per_address.v6_mask(), None);
        assert_eq!(
            per_address.caught_net("2001:db8::9".parse().unwrap()).to_string(),
            "2001:db8::9/128"
        );
        let odd = SipSpec {
            ipv6_prefix: 60,
            ..spec()
        };
        assert_eq!(odd.v6_mask().unwrap()[7], 0xf0);
    }
}
