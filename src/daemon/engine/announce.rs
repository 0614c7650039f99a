//! Ban events for `nftban events` and the sinks: the engine tells the
//! [`Hub`](crate::events::Hub) what changed, where it changed, and the
//! hub's bounded queues carry it away without ever waiting (the engine
//! has no socket and no file to write).
//!
//! A ban is told once the kernel took it (a refused one is not a ban);
//! an unban once the kernel lifted it; an expiry once the engine forgets
//! the ban, at most a second or so after the kernel dropped it, dated
//! when it ended. Bans restored at start or put back after another tool
//! deleted them are not events: they were told when they were made.
//! Nothing is built while nobody listens.

use std::collections::HashSet;
use std::time::SystemTime;

use ipnet::IpNet;

use super::Engine;
use crate::address::show as show_net;
use crate::config::format_duration;
use crate::events::{Event, Hub, Kind};
use crate::firewall::Ban;
use crate::store::Origin;

impl Engine {
    /// Why the rules of jail number `jail` ban: `5 failures within 10m`,
    /// or for recidive `banned 3 times within 1d`.
    pub(super) fn rule_why(&self, jail: usize) -> String {
        let policy = &self.jails[jail].tracker.policy;
        let (what, window) = (policy.maxretry, format_duration(policy.findtime));
        if Some(jail) == self.recidive {
            format!("banned {what} times within {window}")
        } else {
            format!("{what} failures within {window}")
        }
    }

    /// `bans` of `origin` went to the kernel, which refused `refused`:
    /// the others are told. `how` is why they were made; `None` for the
    /// jails' rules, which each say it their way ([`Engine::rule_why`]).
    pub(super) fn announce_bans(
        &self,
        bans: &[Ban],
        refused: &[(Ban, String)],
        origin: Origin,
        how: Option<&str>,
        now: SystemTime,
    ) {
        if !self.events.listened() {
            return;
        }
        // A set, so that a batch the kernel refused whole stays linear.
        let refused: HashSet<(&str, IpNet)> = refused.iter().map(|(r, _)| (r.jail.as_str(), r.net)).collect();
        let mut rule: Option<(String, String)> = None;
        for ban in bans {
            if refused.contains(&(ban.jail.as_str(), ban.net)) {
                continue;
            }
            let why = match how {
                // A peer's reason is kept as `fleet:<node>: <theirs>`; the
                // event gives the origin on its own.
                Some(how) => match how.strip_prefix(origin.as_str()).and_then(|r| r.strip_prefix(": ")) {
                    Some(theirs) if origin.is_fleet() => theirs.to_string(),
                    _ => how.to_string(),
                },
                None => match &rule {
                    Some((jail, why)) if *jail == ban.jail => why.clone(),
                    _ => {
                        let why = match self.jails.iter().position(|j| j.name == ban.jail) {
                            Some(i) => self.rule_why(i),
                            None => origin.as_str().to_string(),
                        };
                        rule = Some((ban.jail.clone(), why.clone()));
                        why
                    }
                },
            };
            let event = Event::new(Kind::Ban, &ban.jail, show_net(&ban.net), now)
                .origin(origin.as_str())
                .reason(&why)
                .expires_in(ban.timeout.as_secs());
            self.events.publish(event);
        }
    }

    /// `net`'s ban in `jail`, which ran until `until`, lifted by `origin`
    /// (by hand, or a fleet peer) for `reason` (a function of the hub
    /// alone: the jail is borrowed meanwhile).
    pub(super) fn announce_unban(
        events: &Hub,
        jail: &str,
        net: &IpNet,
        until: SystemTime,
        now: SystemTime,
        origin: &str,
        reason: &str,
    ) {
        if !events.listened() {
            return;
        }
        let left = until.duration_since(now).unwrap_or_default().as_secs();
        let event = Event::new(Kind::Unban, jail, show_net(net), now)
            .origin(origin)
            .reason(reason)
            .expires_in(left);
        events.publish(event);
    }

    /// The bans of jail number `jail` that ended by `now`, as events dated
    /// when each ended (none built while nobody listens).
    pub(super) fn expired(&self, jail: usize, now: SystemTime) -> Vec<Event> {
        if !self.events.listened() {
            return Vec::new();
        }
        let j = &self.jails[jail];
        j.bans
            .sorted(|until| until <= now)
            .into_iter()
            .map(|(net, until)| Event::new(Kind::Expire, &j.name, show_net(&net), until))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::daemon::engine::Decision;
    use crate::events::{Hub, Next, Subscription};
    use crate::firewall::memory::Memory;
    use std::path::Path;
    use std::time::Duration;

    const CONFIG: &str = "\
defaults: {findtime: 10m, maxretry: 2, bantime: 1h}
jails:
  sshd:
    ruleset: sshd
    files: [/var/log/auth.log]
";

    /// A started engine on `fw`, and a subscriber to its events.
    fn engine(fw: Memory) -> (Engine, Subscription) {
        let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
        let hub = Hub::default();
        let sub = hub.subscribe(None).unwrap();
        let mut e = Engine::new(&config, Box::new(fw)).with_events(hub);
        e.start(&config).unwrap();
        (e, sub)
    }

    /// Every event waiting, without the time: `kind jail ip origin
    /// (reason) expires_in`.
    fn told(sub: &mut Subscription) -> Vec<String> {
        let mut out = Vec::new();
        while let Next::Event(e) = sub.next(Duration::ZERO) {
            out.push(format!(
                "{:?} {} {} {} ({}) {}",
                e.event,
                e.jail.as_deref().unwrap_or("-"),
                e.ip.as_deref().unwrap_or("-"),
                e.origin.as_deref().unwrap_or("-"),
                e.reason.as_deref().unwrap_or("-"),
                e.expires_in.map_or("-".to_string(), |s| s.to_string()),
            ));
        }
        out
    }

    /// Bans of every origin, an unban and expiries, each told once with
    /// who and why; an expiry dated when the ban ended.
    #[test]
    fn every_origin_unbans_and_expiries_are_told() {
        let (mut e, mut sub) = engine(Memory::new());
        let now = SystemTime::now();
        let a = "198.51.100.7".parse().unwrap();
        e.failure(0, a, now);
        e.flush(now);
        assert_eq!(told(&mut sub), Vec::<String>::new(), "one failure bans nothing");
        e.failure(0, a, now);
        e.flush(now);
        e.ban(&["203.0.113.0/24".into()], None, Some(Duration::from_secs(60)), now)
            .unwrap();
        let meter = Decision {
            jail: "sshd".into(),
            nets: vec!["192.0.2.5/32".parse().unwrap()],
            bantime: Some(Duration::from_secs(600)),
            origin: Origin::KernelMeter,
            reason: Some("over 20/s".into()),
        };
        e.decided(meter, now).unwrap();
        e.unban(&["198.51.100.7".into()], None, now).unwrap();
        // A fleet peer's ban, lifted by that peer: told too (it was not).
        let peer = Origin::Fleet(crate::store::Peer::of("pbx-b").unwrap());
        let learnt = Decision {
            jail: "sshd".into(),
            nets: vec!["198.51.100.9/32".parse().unwrap()],
            bantime: Some(Duration::from_secs(900)),
            origin: peer,
            reason: Some("auto".into()),
        };
        e.decided(learnt, now).unwrap();
        assert_eq!(
            e.lift_learnt("sshd", &["198.51.100.9/32".parse().unwrap()], peer, now),
            1
        );
        assert_eq!(
            told(&mut sub),
            [
                "Ban sshd 198.51.100.7 auto (2 failures within 10m) 3600",
                "Ban manual 203.0.113.0/24 manual (by hand) 60",
                "Ban sshd 192.0.2.5 kernel meter (over 20/s) 600",
                "Unban sshd 198.51.100.7 manual (by hand) 3600",
                "Ban sshd 198.51.100.9 fleet:pbx-b (auto) 900",
                "Unban sshd 198.51.100.9 fleet:pbx-b (lifted by the peer) 900",
            ]
        );
        e.expire(now + Duration::from_secs(601));
        let mut expired = Vec::new();
        while let Next::Event(ev) = sub.next(Duration::ZERO) {
            expired.push((ev.event, ev.ip.clone().unwrap(), ev.time.clone()));
        }
        expired.sort();
        assert_eq!(
            expired,
            [
                (
                    Kind::Expire,
                    "192.0.2.5".into(),
                    crate::events::rfc3339(now + Duration::from_secs(600))
                ),
                (
                    Kind::Expire,
                    "203.0.113.0/24".into(),
                    crate::events::rfc3339(now + Duration::from_secs(60))
                ),
            ]
        );
        e.expire(now + Duration::from_secs(7200));
        assert_eq!(told(&mut sub), Vec::<String>::new(), "each expiry once");
    }

    /// A ban the kernel refuses is not a ban: not told.
    #[test]
    fn a_refused_ban_is_not_told() {
        let mut fw = Memory::new();
        fw.capacity = Some(1);
        let (mut e, mut sub) = engine(fw);
        let now = SystemTime::now();
        let r = e
            .ban(&["198.51.100.1".into(), "198.51.100.2".into()], Some("sshd"), None, now)
            .unwrap();
        assert_eq!(r.failed.len(), 1, "{r:?}");
        for _ in 0..2 {
            e.failure(0, "198.51.100.3".parse().unwrap(), now);
        }
        e.flush(now);
        assert_eq!(told(&mut sub), ["Ban sshd 198.51.100.1 manual (by hand) 3600"]);
    }
}
