//! The kernel meter for SIP floods as an origin of bans (`sip:`). The
//! kernel adds a source over its rate to the small caught sets and drops
//! it, and announces nothing (elements added from the packet path raise no
//! netlink event). So this thread reads the caught sets every
//! [`CAUGHT_POLL`] (500 ms; one dump of a set the daemon keeps small),
//! hands each new source to the engine as a [`Decision`] of origin
//! `kernel meter` (banned in the jail's own sets, written to the history,
//! counted, shown by `status`), and at its next reading takes the sources
//! it handed over out of the caught sets, by then banned in the jail's
//! sets, whose rule comes before the meter's. A ban thus reaches `status`
//! at most about 0.5 s plus the engine's turn after the kernel made it.
//!
//! Why a poll, not NFLOG (`log group N` on the meter's rule): NFLOG sends
//! one message per dropped packet of a flood, not one per source, and a
//! lost or unread message loses the ban for good; the caught set holds
//! each source until it is read, whatever happened to the daemon
//! meanwhile (a restart finds them there, still dropped by the kernel).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::{BanOrigin, Decision, Decisions};
use crate::firewall::sip::{SipSpec, CAUGHT_POLL};
use crate::firewall::Catches;
use crate::store::Origin;
use crate::throttle::Throttle;

/// The origin: a reader of the caught sets and the meter's config.
pub struct KernelMeter {
    catches: Box<dyn Catches>,
    spec: SipSpec,
    poll: Duration,
    /// The caught sets cannot be read (the table gone until it is healed,
    /// say): said once, then once a minute, not at every poll.
    unreadable: Throttle,
}

impl KernelMeter {
    pub fn new(catches: Box<dyn Catches>, spec: SipSpec) -> KernelMeter {
        KernelMeter {
            catches,
            spec,
            poll: CAUGHT_POLL,
            unreadable: Throttle::default(),
        }
    }

    /// Why, for `status` and the history.
    fn reason(&self) -> String {
        format!("kernel meter: over {}", self.spec.rate)
    }

    /// One reading of the caught sets: sources handed over at an earlier
    /// reading are taken out; new ones become decisions, grouped by the
    /// time their kernel ban has left (in whole seconds). `sent` holds what
    /// was handed over and is still in the caught sets. False once the
    /// daemon stops.
    fn round(&mut self, sent: &mut HashSet<IpNet>, decisions: &Decisions) -> bool {
        let elements = match self.catches.caught() {
            Ok(e) => e,
            Err(e) => {
                if let Some(times) = self.unreadable.note(Instant::now()) {
                    tracing::warn!(error = %e, times, "cannot read the SIP meter's caught sources; trying again every 0.5 s");
                }
                return true;
            }
        };
        let present: HashSet<IpNet> = elements.iter().map(|e| e.net).collect();
        let handed: Vec<IpNet> = sent.intersection(&present).copied().collect();
        if !handed.is_empty() {
            if let Err(e) = self.catches.release(&handed) {
                tracing::warn!(error = %e, "cannot take banned sources out of the SIP meter's caught sets");
            }
        }
        sent.clear();
        let mut by_left: BTreeMap<u64, Vec<IpNet>> = BTreeMap::new();
        for e in elements.into_iter().filter(|e| !handed.contains(&e.net)) {
            let left = e
                .expires_in
                .map_or(self.spec.bantime.as_secs(), |d| d.as_millis().div_ceil(1000) as u64);
            by_left.entry(left.max(1)).or_default().push(e.net);
        }
        let reason = self.reason();
        for (left, nets) in by_left {
            tracing::debug!("the SIP meter caught {} source(s)", nets.len());
            sent.extend(nets.iter().copied());
            let decision = Decision {
                jail: self.spec.jail.clone(),
                nets,
                bantime: Some(Duration::from_secs(left)),
                origin: Origin::KernelMeter,
                reason: Some(reason.clone()),
            };
            if !decisions.send(decision) {
                return false;
            }
        }
        true
    }
}

impl BanOrigin for KernelMeter {
    fn name(&self) -> String {
        "kernel meter".into()
    }

    fn run(mut self: Box<Self>, decisions: Decisions) {
        let mut sent = HashSet::new();
        while !decisions.stopping() {
            if !self.round(&mut sent, &decisions) {
                return;
            }
            // In short steps, so a stop is not kept waiting.
            let mut slept = Duration::ZERO;
            while slept < self.poll && !decisions.stopping() {
                let step = (self.poll - slept).min(Duration::from_millis(100));
                std::thread::sleep(step);
                slept += step;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::daemon::Event;
    use crate::firewall::memory::Memory;
    use crate::firewall::{Firewall, TableSpec};

    fn spec() -> SipSpec {
        SipSpec {
            jail: "asterisk".into(),
            udp: vec![5060],
            tcp: vec![],
            tls: vec![],
            rate: "20/second".parse().unwrap(),
            burst: 40,
            bantime: Duration::from_secs(3600),
            ipv6_prefix: 64,
            size: 1024,
            trusted: vec![],
        }
    }

    #[test]
    fn caught_sources_become_decisions_then_leave_the_caught_set() {
        let mut fw = Memory::new();
        let table = TableSpec {
            table: "nftban".into(),
            action: crate::firewall::Action::Drop,
            hooks: vec![crate::firewall::Hook::Input],
            jails: vec!["asterisk".into()],
            prefix_sets: crate::firewall::PrefixSets::default(),
            sip: Some(spec()),
        };
        fw.setup(&table).unwrap();
        let catches = fw.catches(&table).unwrap().expect("a meter");
        let v4: IpNet = "198.51.100.7/32".parse().unwrap();
        let v6: IpNet = "2001:db8:1:2::/64".parse().unwrap();
        {
            let mut caught = fw.caught.lock().unwrap();
            caught.insert(v4, Instant::now() + Duration::from_secs(3600));
            caught.insert(v6, Instant::now() + Duration::from_secs(3600));
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        let decisions = Decisions {
            tx,
            stop: Arc::new(AtomicBool::new(false)),
        };
        let mut meter = KernelMeter::new(catches, spec());
        let mut sent = HashSet::new();
        assert!(meter.round(&mut sent, &decisions));
        let Ok(Event::Decided(d)) = rx.try_recv() else {
            panic!("no decision")
        };
        assert_eq!(d.jail, "asterisk");
        assert_eq!(d.origin, Origin::KernelMeter);
        assert_eq!(d.reason.as_deref(), Some("kernel meter: over 20/second"));
        assert_eq!(d.nets.len(), 2, "{:?}", d.nets);
        assert!(d.bantime.unwrap() <= Duration::from_secs(3600));
        assert!(d.bantime.unwrap() >= Duration::from_secs(3598));
        assert!(rx.try_recv().is_err(), "one decision for bans of the same length");
        // Still in the caught set until the next reading...
        assert_eq!(fw.caught.lock().unwrap().len(), 2);
        // ... which takes them out and decides nothing again.
        assert!(meter.round(&mut sent, &decisions));
        assert!(rx.try_recv().is_err());
        assert!(fw.caught.lock().unwrap().is_empty());
        // Caught again later (unbanned, flooding again): a new decision.
        fw.caught
            .lock()
            .unwrap()
            .insert(v4, Instant::now() + Duration::from_secs(60));
        assert!(meter.round(&mut sent, &decisions));
        let Ok(Event::Decided(d)) = rx.try_recv() else {
            panic!("no decision")
        };
        assert_eq!(d.nets, [v4]);
        assert_eq!(d.bantime, Some(Duration::from_secs(60)));
    }

    #[test]
    fn an_unban_clears_the_caught_set_of_the_meters_jail_only() {
        let mut fw = Memory::new();
        let table = TableSpec {
            table: "nftban".into(),
            action: crate::firewall::Action::Drop,
            hooks: vec![crate::firewall::Hook::Input],
            jails: vec!["asterisk".into(), "sshd".into()],
            prefix_sets: crate::firewall::PrefixSets::default(),
            sip: Some(spec()),
        };
        fw.setup(&table).unwrap();
        let v4: IpNet = "198.51.100.7/32".parse().unwrap();
        fw.caught
            .lock()
            .unwrap()
            .insert(v4, Instant::now() + Duration::from_secs(60));
        fw.delete("sshd", &[v4]).unwrap();
        assert_eq!(fw.caught.lock().unwrap().len(), 1);
        fw.delete("asterisk", &[v4]).unwrap();
        assert!(fw.caught.lock().unwrap().is_empty());
    }
}
