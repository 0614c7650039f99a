//! What the pending file holds, for a read of the history while SQLite
//! cannot take it (another process holds its lock): the reads go on with
//! SQLite's rows and this, so that a restart in that moment still
//! restores the bans waiting in the file, and not those its unbans lifted.

use std::collections::HashMap;
use std::time::SystemTime;

use ipnet::IpNet;

use super::pending::{Entry, Lift};
use super::BanRecord;

/// The pending file's bans and unbans, folded.
#[derive(Default)]
pub(super) struct Waiting {
    /// Every ban the file holds, lifted since or not, in its order.
    bans: Vec<BanRecord>,
    /// Whether each of `bans` still runs: no unban after it in the file.
    running: Vec<bool>,
    /// The file's unbans by address or prefix: the jail (`None`: every
    /// jail) and when.
    lifts: HashMap<IpNet, Vec<(Option<String>, SystemTime)>>,
}

impl Waiting {
    /// Fold `entries`, in the file's order.
    pub(super) fn of(entries: Vec<Entry>) -> Waiting {
        let mut w = Waiting::default();
        // Walked back, so that `lifts` holds the unbans after each ban.
        for e in entries.into_iter().rev() {
            match e {
                Entry::Lift(Lift { jail, net, at }) => w.lifts.entry(net).or_default().push((jail, at)),
                Entry::Ban(b) => {
                    let lifted = w
                        .lifts
                        .get(&b.net)
                        .is_some_and(|lifts| lifts.iter().any(|(j, _)| j.as_deref().is_none_or(|j| j == b.jail)));
                    w.running.push(!lifted);
                    w.bans.push(b);
                }
            }
        }
        w.bans.reverse();
        w.running.reverse();
        w
    }

    /// Whether an unban in the file lifted SQLite's ban of `net` in `jail`
    /// recorded at `banned_at` (every row in SQLite came before the file's
    /// lines; an earlier run's unban lifts only bans from before it, as
    /// when it is moved).
    pub(super) fn lifted(&self, jail: &str, net: &IpNet, banned_at: SystemTime) -> bool {
        self.lifts.get(net).is_some_and(|lifts| {
            lifts
                .iter()
                .any(|(j, at)| j.as_deref().is_none_or(|j| j == jail) && banned_at <= *at)
        })
    }

    /// Whether the file holds any unban.
    pub(super) fn lifts_any(&self) -> bool {
        !self.lifts.is_empty()
    }

    /// Every ban the file holds (lifted since or not).
    pub(super) fn bans(&self) -> &[BanRecord] {
        &self.bans
    }

    /// The file's bans that no later unban in it lifted.
    pub(super) fn running(&self) -> impl Iterator<Item = &BanRecord> {
        self.bans
            .iter()
            .zip(&self.running)
            .filter_map(|(b, running)| running.then_some(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Origin;
    use std::time::{Duration, UNIX_EPOCH};

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    fn ban(jail: &str, net: &str, at: u64) -> Entry {
        Entry::Ban(BanRecord {
            jail: jail.into(),
            net: net.parse().unwrap(),
            at: t(at),
            expires: t(at + 100),
            origin: Origin::Manual,
            reason: None,
        })
    }

    fn lift(jail: Option<&str>, net: &str, at: u64) -> Entry {
        Entry::Lift(Lift {
            jail: jail.map(String::from),
            net: net.parse().unwrap(),
            at: t(at),
        })
    }

    /// An unban lifts the bans before it in its jail (or every jail), not
    /// those after it nor another address's; SQLite's rows, all older
    /// than the file's, are lifted if they began by the unban's time.
    #[test]
    fn unbans_lift_the_bans_before_them() {
        let w = Waiting::of(vec![
            ban("sshd", "192.0.2.1/32", 0),
            ban("asterisk", "192.0.2.1/32", 0),
            ban("sshd", "192.0.2.2/32", 0),
            lift(Some("sshd"), "192.0.2.1/32", 5),
            ban("sshd", "192.0.2.1/32", 6),
            ban("sshd", "192.0.2.3/32", 6),
            lift(None, "192.0.2.3/32", 7),
        ]);
        let running: Vec<(&str, String, u64)> = w
            .running()
            .map(|b| {
                (
                    &*b.jail,
                    b.net.to_string(),
                    b.at.duration_since(t(0)).unwrap().as_secs(),
                )
            })
            .collect();
        assert_eq!(
            running,
            [
                ("asterisk", "192.0.2.1/32".to_string(), 0),
                ("sshd", "192.0.2.2/32".to_string(), 0),
                ("sshd", "192.0.2.1/32".to_string(), 6)
            ]
        );
        assert_eq!(w.bans().len(), 5);
        let net = |n: &str| n.parse::<IpNet>().unwrap();
        assert!(w.lifted("sshd", &net("192.0.2.1/32"), t(5)));
        assert!(!w.lifted("sshd", &net("192.0.2.1/32"), t(6)), "began after the unban");
        assert!(!w.lifted("asterisk", &net("192.0.2.1/32"), t(0)), "another jail");
        assert!(w.lifted("asterisk", &net("192.0.2.3/32"), t(0)), "every jail");
        assert!(!w.lifted("sshd", &net("192.0.2.2/32"), t(0)));
        assert!(w.lifts_any());
        assert!(!Waiting::default().lifts_any());
    }
}
