//! Blocklist feeds in the kernel. A feed's thread fetches, parses and
//! filters its list; the engine, which owns the firewall, turns each list
//! into the difference from what the feed's sets hold and applies it as
//! one transaction ([`crate::firewall::Firewall::apply_diff`]).
//!
//! Feed entries are not bans: they live in sets of their own
//! (`feed_NAME_v4`, ...), have no timeout (they last while the feed lists
//! them), and stay out of the ban history. A list of 100,000 entries
//! refreshed every hour would be 100,000 history rows an hour for no
//! gain: the feed keeps its own last good list on disk instead, and the
//! kernel keeps the entries across restarts. So a jail's own bans,
//! expiries and unbans never touch a feed's entries, nor the other way
//! round.
//!
//! At a feed's first list after start the engine reads what its sets
//! hold (one dump of the feed's own sets, the only listing the daemon
//! does): entries of an earlier run that the list no longer has are lifted,
//! those it still has are left alone.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use ipnet::IpNet;

use super::Engine;
use crate::firewall::Counter;
use crate::status::FeedStatus;

/// A feed's figures, written by its thread, read by `status`.
pub type FeedStats = Arc<Mutex<FeedStatus>>;

/// What one refresh changed in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub added: usize,
    pub removed: usize,
    /// Entries in the sets now.
    pub entries: usize,
}

/// The feeds the engine knows.
#[derive(Default)]
pub(super) struct Feeds {
    /// Entries in the kernel, by the stem of the feed's sets.
    held: BTreeMap<String, HashSet<IpNet>>,
    /// Figures of each feed, by the stem of its sets.
    stats: BTreeMap<String, FeedStats>,
}

impl Engine {
    /// The name of a feed whose entries hold `net` (an address, or a
    /// prefix inside an entry), if one does: an unban lifts no feed entry,
    /// and says so.
    pub(super) fn feed_holding(&self, net: &IpNet) -> Option<String> {
        let longest = net.prefix_len();
        let (sets, _) = self.feeds.held.iter().find(|(_, held)| {
            !held.is_empty()
                && (0..=longest).any(|len| IpNet::new(net.addr(), len).is_ok_and(|n| held.contains(&n.trunc())))
        })?;
        let name = self
            .feeds
            .stats
            .get(sets)
            .map(|st| st.lock().unwrap_or_else(|e| e.into_inner()).name.clone());
        Some(name.unwrap_or_else(|| sets.trim_start_matches("feed_").to_string()))
    }

    /// Whether any feed holds entries (most daemons have none: an unban
    /// then looks for none).
    pub(super) fn feeds_held(&self) -> bool {
        self.feeds.held.values().any(|h| !h.is_empty())
    }

    /// Show the feed whose sets are `sets` in `status`.
    pub fn attach_feed(&mut self, sets: &str, stats: FeedStats) {
        self.feeds.stats.insert(sets.to_string(), stats);
    }

    /// Make the sets `sets` hold exactly `list` (a feed's filtered list:
    /// each entry once, none inside another), in one kernel transaction.
    /// On an error the sets are as they were and the previous list stands.
    pub fn apply_feed(&mut self, sets: &str, list: Vec<IpNet>) -> Result<Applied, String> {
        if !self.feeds.held.contains_key(sets) {
            let found = match self.firewall.list(sets) {
                Ok(elements) => elements.into_iter().map(|e| e.net).collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the sets of {sets}: entries of an earlier run that the list dropped stay until a restart");
                    HashSet::new()
                }
            };
            self.feeds.held.insert(sets.to_string(), found);
        }
        let held = &self.feeds.held[sets];
        let new: HashSet<IpNet> = list.into_iter().collect();
        let add: Vec<IpNet> = new.difference(held).copied().collect();
        let remove: Vec<IpNet> = held.difference(&new).copied().collect();
        if let Err(e) = self.firewall.apply_diff(sets, &add, &remove) {
            self.kernel_errors += 1;
            return Err(format!("the kernel refused the refresh: {e}"));
        }
        let entries = new.len();
        self.feeds.held.insert(sets.to_string(), new);
        Ok(Applied {
            added: add.len(),
            removed: remove.len(),
            entries,
        })
    }

    /// Every feed's entries, to put back after the table was restored.
    pub(super) fn feed_entries(&self) -> impl Iterator<Item = (&str, Vec<IpNet>)> {
        self.feeds
            .held
            .iter()
            .map(|(sets, nets)| (sets.as_str(), nets.iter().copied().collect()))
    }

    /// How many entries the feeds hold, all together.
    pub(super) fn feed_entry_count(&self) -> usize {
        self.feeds.held.values().map(|h| h.len()).sum()
    }

    /// One entry per feed to look up when checking the table.
    pub(super) fn feed_probes(&self) -> impl Iterator<Item = (String, IpNet)> + '_ {
        self.feeds
            .held
            .iter()
            .filter_map(|(sets, nets)| Some((sets.clone(), *nets.iter().next()?)))
    }

    /// The feeds for `status`, with their sets' counters.
    pub(super) fn feed_status(&self, counters: &BTreeMap<String, Counter>) -> Vec<FeedStatus> {
        self.feeds
            .stats
            .iter()
            .map(|(sets, stats)| {
                let mut st = stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
                for d in self.spec.prefix_sets.jail_sets(sets) {
                    if let Some(c) = counters.get(&d.name) {
                        st.packets += c.packets;
                        st.bytes += c.bytes;
                    }
                }
                st
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::config::Config;
    use crate::firewall::memory::Memory;
    use crate::firewall::{Firewall, TableSpec};

    const CONFIG: &str = "\
jails:
  sshd: {ruleset: sshd, files: [/var/log/auth.log]}
feeds:
  mine: {file: /etc/nftban/mine.txt, format: plain}
";

    /// The in-memory kernel, counting deletions of each element.
    #[derive(Default)]
    struct Watched {
        mem: Memory,
        deleted: Arc<Mutex<Vec<IpNet>>>,
        batches: Arc<AtomicUsize>,
    }

    impl Firewall for Watched {
        fn setup(&mut self, spec: &TableSpec) -> crate::firewall::Result<()> {
            self.mem.setup(spec)
        }
        fn add(&mut self, bans: &[crate::firewall::Ban]) -> crate::firewall::Result<Vec<crate::firewall::Refused>> {
            self.mem.add(bans)
        }
        fn delete(&mut self, jail: &str, nets: &[IpNet]) -> crate::firewall::Result<()> {
            self.mem.delete(jail, nets)
        }
        fn apply_diff(&mut self, jail: &str, add: &[IpNet], remove: &[IpNet]) -> crate::firewall::Result<()> {
            self.deleted.lock().unwrap().extend_from_slice(remove);
            self.batches.fetch_add(1, Ordering::Relaxed);
            self.mem.apply_diff(jail, add, remove)
        }
        fn list(&mut self, jail: &str) -> crate::firewall::Result<Vec<crate::firewall::Element>> {
            self.mem.list(jail)
        }
        fn forget_connections(&mut self, nets: &[IpNet]) -> crate::firewall::Result<usize> {
            self.mem.forget_connections(nets)
        }
        fn counters(&mut self) -> crate::firewall::Result<BTreeMap<String, Counter>> {
            self.mem.counters()
        }
        fn missing(&mut self, spec: &TableSpec, probes: &[(String, IpNet)]) -> crate::firewall::Result<Vec<String>> {
            self.mem.missing(spec, probes)
        }
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn held(e: &mut Engine) -> Vec<IpNet> {
        let mut v: Vec<IpNet> = e
            .firewall
            .list("feed_mine")
            .unwrap()
            .into_iter()
            .map(|el| el.net)
            .collect();
        v.sort();
        v
    }

    /// An unban of an address a feed blocks lifts the jail's ban and says
    /// that the feed still blocks it (it did not: the address kept being
    /// dropped, and a second unban said only "not banned in any jail").
    #[test]
    fn an_unban_says_which_feed_still_blocks_the_address() {
        let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
        let mut e = Engine::new(&config, Box::new(Watched::default()));
        e.start(&config).unwrap();
        e.apply_feed("feed_mine", nets(&["203.0.113.0/24"])).unwrap();
        let now = SystemTime::now();
        e.ban(&["203.0.113.7".into()], None, None, now).unwrap();
        let r = e.unban(&["203.0.113.7".into()], None, now).unwrap();
        assert_eq!(r.unbanned, [("203.0.113.7".to_string(), "manual".to_string())]);
        assert_eq!(r.not_banned.len(), 1, "{r:?}");
        assert!(
            r.not_banned[0].starts_with("203.0.113.7 is still blocked by feed mine, which an unban does not lift"),
            "{r:?}"
        );
        let r = e
            .unban(&["203.0.113.7".into(), "198.51.100.1".into()], None, now)
            .unwrap();
        assert!(
            r.not_banned[0].starts_with("203.0.113.7 is not banned in any jail; it is blocked by feed mine"),
            "{r:?}"
        );
        assert_eq!(r.not_banned[1], "198.51.100.1 is not banned in any jail");
    }

    #[test]
    fn a_refresh_is_one_diff_that_never_touches_kept_entries() {
        let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
        assert!(config.table_spec().jails.contains(&"feed_mine".to_string()));
        let fw = Watched::default();
        let (deleted, batches) = (fw.deleted.clone(), fw.batches.clone());
        let mut e = Engine::new(&config, Box::new(fw));
        e.start(&config).unwrap();
        let first = nets(&["192.0.2.1/32", "198.51.100.0/24", "2001:db8::/32"]);
        let a = e.apply_feed("feed_mine", first.clone()).unwrap();
        assert_eq!((a.added, a.removed, a.entries), (3, 0, 3));
        assert_eq!(held(&mut e), first);
        // Entries have no timeout: a century in the in-memory kernel.
        let el = e.firewall.list("feed_mine").unwrap();
        assert!(el
            .iter()
            .all(|el| el.expires_in.unwrap() > Duration::from_secs(50 * 365 * 86_400)));
        let second = nets(&["192.0.2.1/32", "203.0.113.0/24", "2001:db8::/32"]);
        let a = e.apply_feed("feed_mine", second.clone()).unwrap();
        assert_eq!((a.added, a.removed, a.entries), (1, 1, 3));
        let mut want = second.clone();
        want.sort();
        assert_eq!(held(&mut e), want);
        // One batch per refresh; only the dropped entry was ever deleted.
        assert_eq!(batches.load(Ordering::Relaxed), 2);
        assert_eq!(*deleted.lock().unwrap(), nets(&["198.51.100.0/24"]));
        // The same list again: an empty diff.
        let a = e.apply_feed("feed_mine", second).unwrap();
        assert_eq!((a.added, a.removed), (0, 0));
        // A jail's bans never touch the feed's sets.
        e.ban(&["192.0.2.1".into()], Some("sshd"), None, SystemTime::now())
            .unwrap();
        e.unban(&["192.0.2.1".into()], None, SystemTime::now()).unwrap();
        assert_eq!(held(&mut e), want);
    }

    #[test]
    fn entries_of_an_earlier_run_are_found_and_dropped_ones_lifted() {
        let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
        let mut fw = Watched::default();
        fw.mem.setup(&config.table_spec()).unwrap();
        // What an earlier run left in the kernel.
        fw.mem
            .apply_diff("feed_mine", &nets(&["192.0.2.1/32", "192.0.2.2/32"]), &[])
            .unwrap();
        let deleted = fw.deleted.clone();
        let mut e = Engine::new(&config, Box::new(fw));
        e.start(&config).unwrap();
        let a = e
            .apply_feed("feed_mine", nets(&["192.0.2.1/32", "192.0.2.3/32"]))
            .unwrap();
        assert_eq!((a.added, a.removed), (1, 1));
        assert_eq!(held(&mut e), nets(&["192.0.2.1/32", "192.0.2.3/32"]));
        assert_eq!(*deleted.lock().unwrap(), nets(&["192.0.2.2/32"]));
    }

    #[test]
    fn healing_puts_the_feeds_back() {
        let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
        let mut e = Engine::new(&config, Box::new(Watched::default()));
        e.start(&config).unwrap();
        e.apply_feed("feed_mine", nets(&["192.0.2.1/32", "198.51.100.0/24"]))
            .unwrap();
        // Another tool empties the feed's sets.
        e.firewall
            .apply_diff("feed_mine", &[], &nets(&["192.0.2.1/32", "198.51.100.0/24"]))
            .unwrap();
        e.heal(
            crate::firewall::Notice::Changed {
                what: vec!["2 elements deleted".into()],
                pid: 1,
                process: "nft".into(),
            },
            SystemTime::now(),
        );
        assert_eq!(held(&mut e), nets(&["192.0.2.1/32", "198.51.100.0/24"]));
        // The healing line says the feeds' entries it put back too.
        assert_eq!(e.feeds_restored(), " and 2 feed entries");
    }
}
