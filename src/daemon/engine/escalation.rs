//! IPv6 escalation (`ipv6_escalation`): an attacker with a /64 has 2^64
//! addresses, so banning them one by one never ends. Once a jail's running
//! bans hold `threshold` distinct addresses inside one `/prefix`, the jail
//! bans the prefix too.
//!
//! The prefix is a ban like any other, planned by [`Engine::impose`]: it
//! never shortens a running ban (the address bans inside it stay and go
//! on after it ends, so an unban of the prefix lifts the prefix only;
//! narrower prefixes are replaced by it for at least as long), and it is
//! never made over what the jail's `ignoreip` or the never-ban list
//! protect: with `prefix: 1`, three addresses of `2001:db8::/32` would
//! otherwise ban `::/1`, loopback included.

use std::net::IpAddr;
use std::time::SystemTime;

use ipnet::{IpNet, Ipv6Net};

use super::held::Chunk;
use super::manual::Grounds;
use super::Engine;
use crate::address::{is_host, never_banned, show as show_net};
use crate::store::Origin;

impl Engine {
    /// Escalate around `addr`, just banned in jail `jail`: once the jail's
    /// running bans hold `threshold` addresses of its prefix, ban the
    /// prefix with the jail's bantime (incremented for a repeat prefix),
    /// recorded as escalated with the count as its reason. Counting is a
    /// range walk over the jail's bans inside the prefix, not over all
    /// bans.
    pub(super) fn escalate(&mut self, jail: usize, addr: IpAddr, now: SystemTime) {
        let (IpAddr::V6(v6), Some(esc)) = (addr, self.jails[jail].escalation) else {
            return;
        };
        let Ok(prefix) = Ipv6Net::new(v6, esc.prefix).map(|p| p.trunc()) else {
            return;
        };
        let net = IpNet::V6(prefix);
        let j = &self.jails[jail];
        if j.bans.covering(&net, now).is_some() {
            return;
        }
        let hosts = j.bans.inside(&net, now).iter().filter(|(n, _)| is_host(n)).count();
        if hosts < esc.threshold as usize {
            return;
        }
        let refusal = match never_banned(&net) {
            Some(why) => Some(format!("never banned: {why}")),
            None => j.tracker.is_ignored(&net).then(|| "it overlaps ignoreip".to_string()),
        };
        if let Some(why) = refusal {
            tracing::debug!(jail = %j.name, "{hosts} addresses of {prefix} banned; not escalated: {why}");
            return;
        }
        // The address bans decided so far go in first, in their batch.
        self.flush(now);
        let base = self.jails[jail].tracker.policy.bantime;
        let bantime = self.incremented(jail, net, base);
        let reason = format!("escalated: {hosts} addresses in {prefix}");
        let grounds = Grounds {
            origin: Origin::Escalated,
            reason: Some(&reason),
            how: &reason,
            chunk: Chunk::Last,
        };
        // (A refusal is counted where it happens.)
        if let Err(e) = self.impose(jail, vec![net], bantime, grounds, now) {
            tracing::warn!(jail = %self.jails[jail].name, error = %e, "could not escalate to {}", show_net(&net));
        }
    }
}
