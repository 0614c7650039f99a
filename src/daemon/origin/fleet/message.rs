//! The fleet's messages: one JSON object per ban or unban, on the subject
//! `<prefix>.<node>.<jail>`, with a `Nats-Msg-Id` that names the decision
//! (so a retry, or the same ban told again after a restart, is stored
//! once).
//!
//! Versioned: `"v": 1`. A reader of version 1 ignores fields it does not
//! know (a later version 1 may add some); a change an older reader would
//! misread takes a new number, which older readers refuse (counted as
//! `malformed`). docs/fleet.md shows examples.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::address::{parse_net, show as show_net};

/// The version this node writes and reads.
pub const VERSION: u32 = 1;

/// One message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub v: u32,
    /// The node that decided it (also the subject's second-to-last token:
    /// a reader refuses a message whose subject says otherwise).
    pub node: String,
    /// The jail whose sets hold it, on every node.
    pub jail: String,
    /// Address (`198.51.100.7`) or prefix (`2001:db8::/64`).
    pub net: String,
    #[serde(flatten)]
    pub what: What,
}

/// A ban or an unban.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum What {
    Ban {
        /// When it ends, Unix seconds: a reader bans for what is left and
        /// skips a ban that has ended (a catch-up).
        expires: u64,
        /// How the node came to it: `auto`, `manual`, `escalated`,
        /// `kernel meter`.
        origin: String,
        /// Why, when the origin does not say it all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Unban {
        /// When it was lifted, Unix milliseconds.
        at: u64,
    },
}

/// Whole seconds since the epoch (what the history stores).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Back from Unix seconds.
pub fn from_unix(secs: u64) -> SystemTime {
    UNIX_EPOCH.checked_add(Duration::from_secs(secs)).unwrap_or(UNIX_EPOCH)
}

impl Message {
    /// A ban of this node.
    pub fn ban(
        node: &str,
        jail: &str,
        net: &IpNet,
        expires: SystemTime,
        origin: &str,
        reason: Option<&str>,
    ) -> Message {
        Message {
            v: VERSION,
            node: node.into(),
            jail: jail.into(),
            net: show_net(net),
            what: What::Ban {
                expires: unix_secs(expires),
                origin: origin.into(),
                reason: reason.map(str::to_string),
            },
        }
    }

    /// An unban of this node.
    pub fn unban(node: &str, jail: &str, net: &IpNet, at: SystemTime) -> Message {
        let at = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Message {
            v: VERSION,
            node: node.into(),
            jail: jail.into(),
            net: show_net(net),
            what: What::Unban { at },
        }
    }

    /// The subject it goes on.
    pub fn subject(&self, prefix: &str) -> String {
        format!("{prefix}.{}.{}", self.node, self.jail)
    }

    /// Its `Nats-Msg-Id`: the same decision always has the same id (a ban
    /// is its node, jail, net and end; a lengthened ban is a new one).
    pub fn id(&self) -> String {
        match &self.what {
            What::Ban { expires, .. } => format!("{}/{}/{}/b{expires}", self.node, self.jail, self.net),
            What::Unban { at } => format!("{}/{}/{}/u{at}", self.node, self.jail, self.net),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a message serializes")
    }

    /// Read a message from `subject` under `prefix`: JSON of a known
    /// version, a net that parses, a node and jail that the subject
    /// repeats. `Err` says what is wrong, for the log.
    pub fn read(prefix: &str, subject: &str, payload: &[u8]) -> Result<(Message, IpNet), String> {
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let v: Version = serde_json::from_slice(payload).map_err(|e| format!("not a fleet message: {e}"))?;
        if v.v != VERSION {
            return Err(format!("message version {} (this node reads {VERSION})", v.v));
        }
        let m: Message = serde_json::from_slice(payload).map_err(|e| format!("not a fleet message: {e}"))?;
        let want = m.subject(prefix);
        if subject != want {
            return Err(format!("subject {subject} does not match its node and jail ({want})"));
        }
        let net = parse_net(&m.net).map_err(|e| format!("`{}`: {e}", m.net))?;
        Ok((m, net))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ban_goes_out_and_comes_back_as_it_was() {
        let net: IpNet = "198.51.100.7/32".parse().unwrap();
        let m = Message::ban("pbx-a", "sshd", &net, from_unix(1_800_000_000), "auto", None);
        let json = m.to_json();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&json).unwrap(),
            serde_json::json!({"v": 1, "node": "pbx-a", "jail": "sshd", "net": "198.51.100.7",
                "kind": "ban", "expires": 1_800_000_000u64, "origin": "auto"})
        );
        let (back, n) = Message::read("nftban", "nftban.pbx-a.sshd", &json).unwrap();
        assert_eq!((back, n), (m.clone(), net));
        assert_eq!(m.id(), "pbx-a/sshd/198.51.100.7/b1800000000");
    }

    #[test]
    fn unknown_fields_are_ignored_and_unknown_versions_refused() {
        let text = br#"{"v":1,"node":"a","jail":"sshd","net":"2001:db8::/64","kind":"unban","at":5,"later":true}"#;
        let (m, net) = Message::read("p", "p.a.sshd", text).unwrap();
        assert_eq!(m.what, What::Unban { at: 5 });
        assert_eq!(net, "2001:db8::/64".parse::<IpNet>().unwrap());
        let v2 = br#"{"v":2,"node":"a","jail":"sshd","net":"192.0.2.1","kind":"ban","expires":1,"origin":"auto"}"#;
        assert!(Message::read("p", "p.a.sshd", v2).unwrap_err().contains("version 2"));
    }

    #[test]
    fn a_message_whose_subject_names_another_node_is_refused() {
        let m = Message::ban(
            "a",
            "sshd",
            &"192.0.2.1/32".parse().unwrap(),
            from_unix(9),
            "auto",
            None,
        );
        let err = Message::read("nftban", "nftban.b.sshd", &m.to_json()).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        assert!(Message::read("nftban", "nftban.a.sshd", b"{").is_err());
    }
}
