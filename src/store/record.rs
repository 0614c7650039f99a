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
}

impl Origin {
    pub(super) fn parse(s: &str) -> Option<Origin> {
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
        }
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

/// A ban still running, as read back at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveBan {
    pub jail: String,
    pub net: IpNet,
    pub expires: SystemTime,
    /// The reason of the record with the latest expiry, if it had one.
    pub reason: Option<String>,
}
