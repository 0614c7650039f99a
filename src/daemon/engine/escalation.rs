//! IPv6 escalation (`ipv6_escalation`): an attacker with a /64 has 2^64
//! addresses, so banning them one by one never ends. Once a jail's running
//! bans hold `threshold` distinct addresses inside one `/prefix`, the jail
//! bans the prefix instead.

use std::net::IpAddr;
use std::time::SystemTime;

use ipnet::{IpNet, Ipv6Net};

use super::decide::expiry;
use super::Engine;
use crate::config::format_duration;
use crate::firewall::Ban;
use crate::store::Origin;

impl Engine {
    /// Escalate around `addr`, just banned in jail `jail`: ban its prefix
    /// with the jail's bantime (incremented for a repeat prefix, and at
    /// least as long as the longest ban it replaces), record it as
    /// escalated, then lift the bans it holds: the prefix covers them, and
    /// an unban of one of them then says that the prefix holds it. If the
    /// kernel refuses the prefix, the address bans stay as they were.
    /// Counting is a range walk over the jail's bans inside the prefix, not
    /// over all bans.
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
        // Every ban inside the prefix sorts between its first address with
        // length 0 and its last address with length 128.
        let (Ok(lo), Ok(hi)) = (Ipv6Net::new(prefix.network(), 0), Ipv6Net::new(prefix.broadcast(), 128)) else {
            return;
        };
        let inside: Vec<(IpNet, SystemTime)> = j
            .bans
            .range(IpNet::V6(lo)..=IpNet::V6(hi))
            .filter(|(n, &t)| t > now && net.contains(*n))
            .map(|(n, t)| (*n, *t))
            .collect();
        let hosts = inside.iter().filter(|(n, _)| n.prefix_len() == 128).count();
        if hosts < esc.threshold as usize {
            return;
        }
        // The address bans decided so far go in first, so the kernel and
        // the record agree before some of them are lifted below.
        self.flush(now);
        let base = self.jails[jail].tracker.policy.bantime;
        let longest = inside
            .iter()
            .map(|(_, t)| t.duration_since(now).unwrap_or_default())
            .max()
            .unwrap_or_default();
        let bantime = self.incremented(jail, net, base).max(longest);
        let reason = format!("escalated: {hosts} addresses in {prefix}");
        let j = &mut self.jails[jail];
        tracing::info!(jail = %j.name, "Ban {prefix} for {} ({reason})", format_duration(bantime));
        j.bans.insert(net, expiry(now, bantime));
        j.reasons.insert(net, reason.clone());
        j.count_ban(net);
        let name = j.name.clone();
        let ban = Ban {
            jail: name.clone(),
            net,
            timeout: bantime,
        };
        self.history
            .record(std::slice::from_ref(&ban), Origin::Escalated, Some(&reason), now);
        if !self.push(std::slice::from_ref(&ban), now).is_empty() {
            return;
        }
        let inner: Vec<IpNet> = inside.iter().map(|(n, _)| *n).collect();
        if let Err(e) = self.firewall.delete(&name, &inner) {
            // They stay in the kernel, covered by the prefix, and in the record.
            self.kernel_errors += 1;
            tracing::warn!(jail = %name, error = %e, "could not remove the bans inside escalated {prefix}");
            return;
        }
        let j = &mut self.jails[jail];
        for n in &inner {
            j.bans.remove(n);
            j.reasons.remove(n);
        }
        self.history.forget(&name, &inner, now);
    }
}
