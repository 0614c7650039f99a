//! The records the history keeps: a ban and how it came to be, a running
//! ban read back, a failure window saved across restarts.

use super::*;

/// How a ban came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// `maxretry` failures within `findtime`.
    Auto,
    /// `nftban ban`.
    Manual,
    /// Found in the kernel when the history was empty (first start).
    /// Written by earlier versions only: nftban no longer lists the
    /// kernel's sets at start.
    Adopted,
    /// An IPv6 prefix banned because enough of its addresses were
    /// (`ipv6_escalation`); the record's reason says how many.
    Escalated,
    /// Caught by the kernel meter for SIP floods (`sip:`): the kernel
    /// itself banned the source, the daemon learned of it.
    KernelMeter,
    /// Learnt from a peer of the fleet (`fleet:<node>`, `fleet:`): shared
    /// over NATS JetStream, never published again.
    Fleet(Peer),
}

/// A fleet peer, by the number of its name (`fleet:pbx-a`) in a table
/// kept for the whole run, so [`Origin`] stays `Copy`, small, and its
/// text `'static`. Names are checked before they get here (the fleet
/// origin refuses malformed ones, the history's reader anything but a
/// short name) and a run meets a bounded number of them: at most
/// [`MAX_PEERS`], the rest share one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Peer(u16);

/// The names of the peers met so far, by number.
static PEERS: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

/// Most distinct fleet peers one run keeps names for.
pub const MAX_PEERS: usize = 4096;

impl Peer {
    /// The peer of node `node` (a name of 1 to 64 letters, digits, `_`
    /// and `-`; `None` for anything else).
    pub fn of(node: &str) -> Option<Peer> {
        if !valid_node(node) {
            return None;
        }
        let mut names = PEERS.lock().unwrap_or_else(|e| e.into_inner());
        let text = format!("fleet:{node}");
        if let Some(i) = names.iter().position(|n| *n == text) {
            return Some(Peer(i as u16));
        }
        if names.is_empty() {
            names.push("fleet:(too many peers)");
        }
        if names.len() >= MAX_PEERS {
            return Some(Peer(0));
        }
        names.push(Box::leak(text.into_boxed_str()));
        Some(Peer((names.len() - 1) as u16))
    }

    /// `fleet:<node>`.
    pub fn as_str(self) -> &'static str {
        PEERS.lock().unwrap_or_else(|e| e.into_inner())[usize::from(self.0)]
    }

    /// The node's name, without `fleet:`.
    pub fn node(self) -> &'static str {
        &self.as_str()["fleet:".len()..]
    }
}

/// A fleet node name: it is a NATS subject token and a message id part.
pub fn valid_node(node: &str) -> bool {
    (1..=64).contains(&node.len())
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Origin {
    pub(super) fn parse(s: &str) -> Option<Origin> {
        if let Some(node) = s.strip_prefix("fleet:") {
            return Peer::of(node).map(Origin::Fleet);
        }
        [
            Origin::Auto,
            Origin::Manual,
            Origin::Adopted,
            Origin::Escalated,
            Origin::KernelMeter,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }

    /// The origin as the history stores it and logs name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Auto => "auto",
            Origin::Manual => "manual",
            Origin::Adopted => "adopted",
            Origin::Escalated => "escalated",
            Origin::KernelMeter => "kernel meter",
            Origin::Fleet(peer) => peer.as_str(),
        }
    }

    /// Whether the ban was learnt from the fleet (and so is never
    /// published again).
    pub fn is_fleet(self) -> bool {
        matches!(self, Origin::Fleet(_))
    }
}

/// A ban to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRecord {
    pub jail: String,
    pub net: IpNet,
    pub at: SystemTime,
    pub expires: SystemTime,
    pub origin: Origin,
    /// Why, in words, when the origin alone does not say it
    /// (`escalated: 3 addresses in 2001:db8:1:2::/64`).
    pub reason: Option<String>,
}

/// A jail's failures of one address or prefix that have not led to a ban
/// yet, saved with the file positions (see `Tracker::take_changes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureWindow {
    pub jail: String,
    pub net: IpNet,
    /// The failure times; `None` deletes the saved window.
    pub times: Option<Vec<SystemTime>>,
}

/// A ban lifted, as read back at start (for the fleet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiftedBan {
    pub jail: String,
    pub net: IpNet,
    /// When it was lifted (whole seconds, as the history keeps it).
    pub at: SystemTime,
    /// The origin and reason of the ban it lifted.
    pub origin: Option<Origin>,
    pub reason: Option<String>,
}

/// A ban still running, as read back at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveBan {
    pub jail: String,
    pub net: IpNet,
    pub expires: SystemTime,
    /// The reason of the record with the latest expiry, if it had one.
    pub reason: Option<String>,
    /// The origin of that record (`None`: one this version does not know).
    pub origin: Option<Origin>,
}
