//! What the engine tells a listener about this node's own decisions: the
//! bans it made (from logs, a kernel meter, by hand) once they are in the
//! kernel, the bans it restored at start, and the unbans by hand. The
//! fleet origin is the listener: it publishes them to its peers.
//!
//! The engine knows only this trait, nothing of NATS; the listener is
//! called on the engine's thread, so it must only hand the news over
//! (a channel), never wait on the network.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use super::held::Chunk;
use super::told::{Kind, Told};
use super::Engine;
use crate::address::show as show_net;
use crate::config::format_duration;
use crate::firewall::Ban;
use crate::status::FleetStatus;
use crate::store::{ActiveBan, Origin};

/// One decision of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    /// A ban in the kernel until `expires`, or restored at start
    /// (`restored`: published before, unless an outage kept it back).
    Ban {
        jail: String,
        net: IpNet,
        expires: SystemTime,
        origin: Origin,
        reason: Option<String>,
        restored: bool,
    },
    /// A ban lifted by hand at `at`, in whole seconds as the history
    /// keeps it: told again after a restart, it is the same message.
    Unban { jail: String, net: IpNet, at: SystemTime },
}

/// The listener of this node's decisions.
pub trait Share: Send {
    /// Decisions in the order they were made. Never bans learnt from the
    /// fleet: those are not this node's to share again.
    fn told(&mut self, news: Vec<Local>);

    /// Its part of `nftban status`.
    fn status(&self) -> FleetStatus;

    /// How far back this node's unbans are told again at start: the time
    /// within which the listener stores a message told twice once (the
    /// stream's duplicate window). Zero: none is told again.
    fn retell(&self) -> Duration {
        Duration::ZERO
    }
}

impl Engine {
    /// Tell `listener` about this node's decisions from now on (before
    /// [`Engine::start`], so the bans it restores are told too).
    pub fn sharing(mut self, listener: Box<dyn Share>) -> Engine {
        self.share = Some(listener);
        self
    }

    /// Bans that went into the kernel (`bans`, less `refused`), decided
    /// with `origin` (`None`: put back, not decided now).
    pub(super) fn share_bans(
        &mut self,
        bans: &[Ban],
        refused: &[(Ban, String)],
        origin: Option<Origin>,
        now: SystemTime,
    ) {
        let Some(listener) = self.share.as_mut() else { return };
        let Some(origin) = origin.filter(|o| !o.is_fleet()) else {
            return;
        };
        let news: Vec<Local> = bans
            .iter()
            .filter(|b| !refused.iter().any(|(r, _)| r.jail == b.jail && r.net == b.net))
            .map(|b| Local::Ban {
                jail: b.jail.clone(),
                net: b.net,
                // As the history writes it, so a restart tells the same.
                expires: now.checked_add(b.timeout).unwrap_or(now),
                origin,
                reason: self
                    .jails
                    .iter()
                    .find(|j| j.name == b.jail)
                    .and_then(|j| j.reasons.get(&b.net).map(|r| r.to_string())),
                restored: false,
            })
            .collect();
        if !news.is_empty() {
            listener.told(news);
        }
    }

    /// At start: this node's own unbans within the listener's window, of
    /// bans that would still run and that nothing banned again, told again
    /// with the time they were made. One an outage kept back (the node was
    /// stopped before it was published) goes out now; one already
    /// published has the same message id, and the stream drops it.
    pub(super) fn retell_unbans(&mut self, now: SystemTime) {
        let Some(window) = self.share.as_ref().map(|l| l.retell()).filter(|w| !w.is_zero()) else {
            return;
        };
        let since = now.checked_sub(window).unwrap_or(UNIX_EPOCH);
        let news: Vec<Local> = self
            .history
            .lifted_since(since, now)
            .into_iter()
            .filter(|l| !l.origin.is_some_and(Origin::is_fleet) && !l.reason.as_deref().is_some_and(learnt))
            .filter(|l| self.jails.iter().any(|j| j.name == l.jail))
            .map(|l| Local::Unban {
                jail: l.jail,
                net: l.net,
                at: l.at,
            })
            .collect();
        if !news.is_empty() {
            tracing::info!("{} unban(s) of this node's told to the fleet again", news.len());
        }
        self.share(news);
    }

    /// Anything else to tell (restored bans, unbans).
    pub(super) fn share(&mut self, news: Vec<Local>) {
        if let Some(listener) = self.share.as_mut().filter(|_| !news.is_empty()) {
            listener.told(news);
        }
    }

    /// Batches the kernel applied since open (tests of the fleet's
    /// receiver: a burst of a peer's bans is one batch).
    #[cfg(test)]
    pub(crate) fn kernel_batches(&self) -> u64 {
        self.firewall.batches()
    }

    /// The listener's part of `status`, if there is one.
    pub(super) fn fleet_status(&self) -> Option<FleetStatus> {
        self.share.as_ref().map(|l| l.status())
    }
}

/// The reason a ban of `origin` is kept with: a ban learnt from the fleet
/// always has one, starting with its origin (`fleet:pbx-a: ...`), which is
/// how the record tells such a ban from this node's own (see [`learnt`]).
pub(super) fn reason_of(origin: Origin, reason: Option<String>) -> Option<String> {
    if !origin.is_fleet() {
        return reason;
    }
    let from = origin.as_str();
    Some(match reason {
        Some(r) if r.starts_with(from) => r,
        Some(r) => format!("{from}: {r}"),
        None => from.to_string(),
    })
}

/// `t` in whole seconds, as the history keeps times: an unban told now
/// and told again after a restart carries the same time.
pub(super) fn whole_secs(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Whether a running ban with reason `why` was learnt from the fleet.
pub(super) fn learnt(why: &str) -> bool {
    why.starts_with("fleet:")
}

impl Engine {
    /// A peer lifted its ban (`origin`: `fleet:<node>`): lifted here in
    /// `jail` only where the running ban is that peer's. A ban of this
    /// node's own, or another peer's, stays (it may run longer), and so
    /// does one this node lengthened since. One the peer's had lengthened
    /// comes back for what is left of it (the history still holds it): a
    /// peer lifts its own bans, never this node's nor another peer's.
    /// Not told to the listener. Returns how many were lifted.
    pub fn lift_learnt(&mut self, jail: &str, nets: &[IpNet], origin: Origin, now: SystemTime) -> usize {
        self.request(now, |e| {
            let Ok(i) = e.jail_index(jail) else { return 0 };
            let from = origin.as_str();
            let theirs: Vec<IpNet> = nets
                .iter()
                .map(|n| n.trunc())
                .filter(|n| {
                    e.jails[i].bans.get(n).is_some_and(|t| t > now)
                        && e.jails[i].reasons.get(n).is_some_and(|r| {
                            r.strip_prefix(from)
                                .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
                        })
                })
                .collect();
            if theirs.is_empty() {
                return 0;
            }
            let under: Vec<ActiveBan> = theirs
                .iter()
                .filter_map(|n| e.history.running_beside(jail, n, origin, now))
                .collect();
            if let Err(err) = e.history.unban(Some(jail), &theirs, now) {
                tracing::warn!(jail, error = %err, "cannot record the fleet's unbans in the history; kept as they are");
                return 0;
            }
            let lifted: Vec<IpNet> = theirs
                .iter()
                .filter(|n| !under.iter().any(|b| b.net == **n))
                .copied()
                .collect();
            let deleted = match lifted.is_empty() {
                true => Ok(()),
                false => e.firewall.delete(jail, &lifted),
            };
            if let Err(err) = deleted {
                e.kernel_errors += 1;
                tracing::warn!(jail, error = %err, "the kernel refused to lift {} ban(s) of {from}", lifted.len());
            }
            let how = format!("{from} lifted it");
            let mut told = Told::new(Kind::Unban, jail, &how);
            for n in &lifted {
                let j = &mut e.jails[i];
                let until = j.bans.remove(n).unwrap_or(now);
                j.reasons.remove(n);
                j.total_unbanned += 1;
                told.add_with(|| {
                    let ip = show_net(n);
                    let line = format!("Unban {ip} ({how})");
                    (ip, line)
                });
                Engine::announce_unban(&e.events, jail, n, until, now, from, "lifted by the peer");
            }
            e.held.tell(told, Chunk::Last, now);
            e.restore_under(i, under, from, now);
            theirs.len()
        })
    }

    /// The bans that ran under a peer's it lifted: back in the history (as
    /// they were: origin, reason, end), the record and the kernel, whose
    /// element the peer's had lengthened (added again with the shorter
    /// timeout, which the kernel takes from 6.10 on, docs/firewall.md).
    fn restore_under(&mut self, i: usize, under: Vec<ActiveBan>, from: &str, now: SystemTime) {
        let name = self.jails[i].name.clone();
        for b in under {
            let Ok(left) = b.expires.duration_since(now) else {
                continue;
            };
            let ban = Ban {
                jail: name.clone(),
                net: b.net,
                timeout: left,
            };
            let origin = b.origin.unwrap_or(Origin::Manual);
            self.history
                .record(std::slice::from_ref(&ban), origin, b.reason.as_deref(), now);
            match self.firewall.add(std::slice::from_ref(&ban)) {
                Ok(refused) if refused.is_empty() => {}
                Ok(refused) => {
                    self.kernel_errors += 1;
                    tracing::warn!(jail = %name, "the kernel refused {}: {}", show_net(&b.net), refused[0].error);
                }
                Err(err) => {
                    self.kernel_errors += 1;
                    tracing::warn!(jail = %name, error = %err, "the kernel refused {}", show_net(&b.net));
                }
            }
            let j = &mut self.jails[i];
            j.bans.insert(b.net, b.expires);
            match &b.reason {
                Some(why) => _ = j.reasons.insert(b.net, why.as_str().into()),
                None => _ = j.reasons.remove(&b.net),
            }
            tracing::info!(
                jail = %name,
                "{} stays banned for {} ({from} lifted its own ban, which had lengthened this one of {})",
                show_net(&b.net),
                format_duration(left),
                origin.as_str()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::config::Config;
    use crate::firewall::memory::Memory;
    use crate::store::Peer;

    const CONFIG: &str = "\
defaults: {findtime: 10m, maxretry: 2, bantime: 1h, ignoreip: [192.0.2.0/24]}
jails:
  sshd:
    ruleset: sshd
    files: [/var/log/auth.log]
";

    /// A listener that keeps what it is told.
    #[derive(Clone, Default)]
    struct Heard(Arc<Mutex<Vec<Local>>>);

    impl Share for Heard {
        fn told(&mut self, news: Vec<Local>) {
            self.0.lock().unwrap().extend(news);
        }
        fn status(&self) -> FleetStatus {
            FleetStatus {
                node: "test".into(),
                ..FleetStatus::default()
            }
        }
        fn retell(&self) -> Duration {
            Duration::from_secs(3600)
        }
    }

    fn engine(db: &Path) -> (Engine, Heard, Config) {
        let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
        let heard = Heard::default();
        let mut e = Engine::new(&config, Box::new(Memory::new()))
            .with_store(crate::store::Store::open(db).unwrap())
            .sharing(Box::new(heard.clone()));
        e.start(&config).unwrap();
        (e, heard, config)
    }

    fn peer_ban(node: &str, net: &str, secs: u64) -> crate::daemon::Decision {
        crate::daemon::Decision {
            jail: "sshd".into(),
            nets: vec![crate::address::parse_net(net).unwrap()],
            bantime: Some(Duration::from_secs(secs)),
            origin: Origin::Fleet(Peer::of(node).unwrap()),
            reason: Some("auto".into()),
        }
    }

    #[test]
    fn own_bans_and_unbans_are_told_and_fleet_bans_never() {
        let dir = tempfile::tempdir().unwrap();
        let (mut e, heard, _) = engine(&dir.path().join("db"));
        let now = SystemTime::now();
        let a: std::net::IpAddr = "198.51.100.7".parse().unwrap();
        e.failure(0, a, now);
        e.failure(0, a, now);
        e.flush(now);
        e.ban(&["203.0.113.5".into()], None, None, now).unwrap();
        e.decided(peer_ban("pbx-a", "198.51.100.99", 600), now).unwrap();
        e.unban(&["203.0.113.5".into()], None, now).unwrap();
        // A peer's ban lifted by hand here is not told either.
        e.unban(&["198.51.100.99".into()], None, now).unwrap();
        let heard = heard.0.lock().unwrap().clone();
        let summary: Vec<(String, String, bool)> = heard
            .iter()
            .map(|n| match n {
                Local::Ban { jail, net, .. } => (jail.clone(), crate::address::show(net), true),
                Local::Unban { jail, net, .. } => (jail.clone(), crate::address::show(net), false),
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("sshd".to_string(), "198.51.100.7".to_string(), true),
                ("manual".into(), "203.0.113.5".into(), true),
                ("manual".into(), "203.0.113.5".into(), false),
            ]
        );
        let Local::Ban { origin, expires, .. } = &heard[0] else {
            panic!()
        };
        assert_eq!(*origin, Origin::Auto);
        let left = expires.duration_since(now).unwrap();
        assert!(
            left > Duration::from_secs(3590) && left <= Duration::from_secs(3600),
            "{left:?}"
        );
    }

    #[test]
    fn a_restart_tells_the_running_own_bans_again_with_the_same_end() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let first = {
            let (mut e, heard, _) = engine(&db);
            let now = SystemTime::now();
            e.ban(&["203.0.113.5".into()], Some("sshd"), None, now).unwrap();
            e.decided(peer_ban("pbx-a", "198.51.100.99", 600), now).unwrap();
            e.finish(now);
            let told = heard.0.lock().unwrap().clone();
            told
        };
        let (_e, heard, _) = engine(&db);
        let again = heard.0.lock().unwrap().clone();
        assert_eq!(again.len(), 1, "{again:?}");
        match (&first[0], &again[0]) {
            (
                Local::Ban {
                    net,
                    expires,
                    restored: false,
                    ..
                },
                Local::Ban {
                    net: n2,
                    expires: e2,
                    restored: true,
                    origin,
                    ..
                },
            ) => {
                let secs = |t: &SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                assert_eq!((net, secs(expires)), (n2, secs(e2)));
                assert_eq!(*origin, Origin::Manual);
            }
            other => panic!("{other:?}"),
        }
    }

    /// An unban the node was stopped before publishing (NATS away) is
    /// told again at start, as it was told first (same time, so the same
    /// message id); one of a peer's ban, or of an address banned again
    /// since, is not.
    #[test]
    fn a_restart_tells_own_unbans_again_as_they_were_told() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let unbans = |heard: &Heard| -> Vec<Local> {
            let told = heard.0.lock().unwrap().clone();
            told.into_iter().filter(|n| matches!(n, Local::Unban { .. })).collect()
        };
        let first = {
            let (mut e, heard, _) = engine(&db);
            let now = SystemTime::now();
            e.ban(&["203.0.113.5".into(), "203.0.113.6".into()], Some("sshd"), None, now)
                .unwrap();
            e.decided(peer_ban("pbx-a", "198.51.100.99", 600), now).unwrap();
            e.unban(&["203.0.113.5".into(), "203.0.113.6".into()], None, now)
                .unwrap();
            e.unban(&["198.51.100.99".into()], None, now).unwrap();
            e.ban(&["203.0.113.6".into()], Some("sshd"), None, now).unwrap();
            e.finish(now);
            unbans(&heard)
        };
        assert_eq!(first.len(), 2, "{first:?}");
        let (_e, heard, _) = engine(&db);
        let again = unbans(&heard);
        assert_eq!(again, first[..1], "only 203.0.113.5's unban, with its first time");
        let Local::Unban { at, .. } = &again[0] else { panic!() };
        assert_eq!(*at, whole_secs(*at));
    }

    /// A history rebuilt from the record (after damage) keeps a peer's
    /// ban as the peer's: it would otherwise be published as this node's.
    #[test]
    fn a_rebuilt_history_keeps_a_fleet_bans_origin() {
        let dir = tempfile::tempdir().unwrap();
        let (mut e, _, _) = engine(&dir.path().join("db"));
        let now = SystemTime::now();
        e.decided(peer_ban("pbx-a", "198.51.100.1", 600), now).unwrap();
        e.ban(&["198.51.100.3".into()], Some("sshd"), None, now).unwrap();
        let mut got: Vec<(String, Origin)> = super::super::history::running_records(&e.jails, now)
            .into_iter()
            .map(|r| (crate::address::show(&r.net), r.origin))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("198.51.100.1".to_string(), Origin::Fleet(Peer::of("pbx-a").unwrap())),
                ("198.51.100.3".to_string(), Origin::Auto),
            ]
        );
    }

    /// An unban here of a ban learnt from a peer lifts it here only, and
    /// says so (it said "unbanned" alone, and the peers kept dropping).
    #[test]
    fn a_local_unban_of_a_peers_ban_says_it_is_local() {
        let dir = tempfile::tempdir().unwrap();
        let (mut e, heard, _) = engine(&dir.path().join("db"));
        let now = SystemTime::now();
        e.decided(peer_ban("pbx-c", "198.51.100.4", 600), now).unwrap();
        let r = e.unban(&["198.51.100.4".into()], None, now).unwrap();
        assert_eq!(r.unbanned.len(), 1);
        assert_eq!(
            r.not_banned,
            ["198.51.100.4 was lifted on this node only: its ban came from fleet:pbx-c, whose other peers keep it (unban it there to lift it everywhere)"]
        );
        assert!(heard
            .0
            .lock()
            .unwrap()
            .iter()
            .all(|l| !matches!(l, Local::Unban { .. })));
    }

    /// This node's ban, lengthened by a peer's, then lifted here: the
    /// unban lifted the peer's running ban (not published), and a restart
    /// does not tell it either. Before, the history's pick among the rows
    /// lifted at once could be this node's own, and the restart published
    /// an unban of a ban that was never this node's to lift.
    #[test]
    fn an_unban_of_a_peers_ban_over_an_own_one_is_not_told_at_restart() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let (mut e, _, _) = engine(&db);
        let now = SystemTime::now() - Duration::from_secs(5);
        e.ban(
            &["198.51.100.8".into()],
            Some("sshd"),
            Some(Duration::from_secs(3600)),
            now,
        )
        .unwrap();
        e.decided(peer_ban("pbx-c", "198.51.100.8", 3 * 3600), now).unwrap();
        e.unban(&["198.51.100.8".into()], None, now).unwrap();
        drop(e);
        let (_, heard, _) = engine(&db);
        let told: Vec<String> = heard
            .0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| match l {
                Local::Unban { net, .. } => Some(crate::address::show(net)),
                _ => None,
            })
            .collect();
        assert!(told.is_empty(), "{told:?}");
    }

    /// A peer's ban lengthened this node's own; the peer lifts it: the
    /// node's own ban runs on for what was left of it, in the kernel, the
    /// record and the history (a restart restores it). Before,
    /// the peer's unban lifted the node's own ban too.
    #[test]
    fn a_peers_unban_leaves_the_ban_its_own_had_lengthened() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let (mut e, _, _) = engine(&db);
        let now = SystemTime::now();
        let hours = |h: u64| Duration::from_secs(h * 3600);
        e.ban(&["198.51.100.7".into()], Some("sshd"), Some(hours(2)), now)
            .unwrap();
        e.decided(peer_ban("pbx-b", "198.51.100.7", 3 * 3600), now).unwrap();
        let shown = |e: &mut Engine| {
            let st = e.jail_status("sshd", now, false).unwrap();
            let b = st.banned.iter().find(|b| b.ip == "198.51.100.7").cloned();
            b.map(|b| (b.expires_in, b.reason))
        };
        assert_eq!(shown(&mut e), Some((3 * 3600, Some("fleet:pbx-b: auto".into()))));
        let net: IpNet = "198.51.100.7/32".parse().unwrap();
        let b = Origin::Fleet(Peer::of("pbx-b").unwrap());
        assert_eq!(e.lift_learnt("sshd", &[net], b, now), 1);
        // The history keeps whole seconds.
        let own = |e: &mut Engine| shown(e).map(|(left, why)| (left <= 2 * 3600 && left > 2 * 3600 - 60, why));
        assert_eq!(own(&mut e), Some((true, None)));
        let kernel = e.firewall.list("sshd").unwrap();
        assert_eq!(kernel.len(), 1);
        assert!(kernel[0]
            .expires_in
            .is_some_and(|t| t <= hours(2) && t > hours(2) - Duration::from_secs(60)));
        drop(e);
        let (mut e, _, _) = engine(&db);
        assert_eq!(own(&mut e), Some((true, None)));
    }

    #[test]
    fn a_peers_unban_lifts_its_own_bans_only() {
        let dir = tempfile::tempdir().unwrap();
        let (mut e, _, _) = engine(&dir.path().join("db"));
        let now = SystemTime::now();
        e.decided(peer_ban("pbx-a", "198.51.100.1", 600), now).unwrap();
        e.decided(peer_ban("pbx-c", "198.51.100.2", 600), now).unwrap();
        e.ban(&["198.51.100.3".into()], Some("sshd"), None, now).unwrap();
        let a = Origin::Fleet(Peer::of("pbx-a").unwrap());
        let nets: Vec<IpNet> = ["198.51.100.1/32", "198.51.100.2/32", "198.51.100.3/32"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(e.lift_learnt("sshd", &nets, a, now), 1);
        let mut left: Vec<String> = e
            .firewall
            .list("sshd")
            .unwrap()
            .iter()
            .map(|el| crate::address::show(&el.net))
            .collect();
        left.sort();
        assert_eq!(left, ["198.51.100.2", "198.51.100.3"]);
        let st = e.jail_status("sshd", now, false).unwrap();
        assert_eq!(st.bans_by_origin.get("fleet:pbx-a"), Some(&1));
        let reason = st
            .banned
            .iter()
            .find(|b| b.ip == "198.51.100.2")
            .unwrap()
            .reason
            .clone();
        assert_eq!(reason.as_deref(), Some("fleet:pbx-c: auto"));
    }
}
