//! Ban events as they happen: every ban, unban and expiry, for
//! `nftban events`, and as JSON lines for a file or a Unix socket
//! (`events:` in the config), so that SIEMs and chat-ops learn of bans
//! without reading the log.
//!
//! The engine makes an [`Event`] where the ban state changes and hands it
//! to a [`Hub`] ([`fanout`]), which gives each subscriber (a client of the
//! control socket, the sinks' thread) a bounded queue of its own: the
//! engine never waits for a subscriber; one that falls behind loses events
//! and is told how many by a `lost` event. The JSON field names are a
//! stable contract (docs/cli.md, "nftban events"): fields are added, never
//! renamed or removed, and a change of meaning would bump [`VERSION`].

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

mod fanout;
pub mod sink;

pub use fanout::{Hub, Next, Subscription};

/// The version of the event format, in every event as `v`.
pub const VERSION: u32 = 1;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An address or prefix went into the kernel's sets.
    Ban,
    /// A ban was lifted by hand (`nftban unban`).
    Unban,
    /// A ban ran its time: the kernel dropped it, the daemon noticed.
    Expire,
    /// This subscriber fell behind and `lost` events were dropped for it
    /// (here, in the order of events).
    Lost,
}

/// One event: one JSON object per line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The format's version, [`VERSION`].
    pub v: u32,
    pub event: Kind,
    /// When it happened, RFC 3339 in UTC (`2026-12-06T13:54:36Z`).
    pub time: String,
    /// The jail whose sets hold (or held) the ban; absent for `lost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jail: Option<String>,
    /// Address, or prefix in CIDR form, as `status` shows them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Who made the ban (`ban`: the history's names, `auto`, `manual`,
    /// `escalated`, `kernel meter`) or lifted it (`unban`: `manual`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Why, in words: `5 failures within 10m`, `by hand`, the reason an
    /// origin gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Seconds the ban runs (`ban`), or had left when lifted (`unban`);
    /// absent for `expire` and `lost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// Events dropped before this point (`lost` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
}

impl Event {
    /// An event of `kind` about `ip` in `jail` at `at`, without origin,
    /// reason or time left (see the builders).
    pub fn new(kind: Kind, jail: &str, ip: String, at: SystemTime) -> Event {
        Event {
            v: VERSION,
            event: kind,
            time: rfc3339(at),
            jail: Some(jail.to_string()),
            ip: Some(ip),
            origin: None,
            reason: None,
            expires_in: None,
            lost: None,
        }
    }

    /// `n` events dropped for a subscriber that fell behind.
    pub fn lost(n: u64, at: SystemTime) -> Event {
        Event {
            v: VERSION,
            event: Kind::Lost,
            time: rfc3339(at),
            jail: None,
            ip: None,
            origin: None,
            reason: None,
            expires_in: None,
            lost: Some(n),
        }
    }

    pub fn origin(mut self, origin: &str) -> Event {
        self.origin = Some(origin.to_string());
        self
    }

    pub fn reason(mut self, reason: &str) -> Event {
        self.reason = Some(reason.to_string());
        self
    }

    pub fn expires_in(mut self, secs: u64) -> Event {
        self.expires_in = Some(secs);
        self
    }

    /// The event as one JSON line, newline included.
    pub fn json_line(&self) -> Vec<u8> {
        // Plain strings and numbers: it always serializes.
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }

    /// The event for people, one line without its newline:
    /// `2026-12-06T13:54:36Z ban    sshd 192.0.2.7 for 1h (auto: 5 failures within 10m)`.
    pub fn human(&self) -> String {
        let what = match self.event {
            Kind::Ban => "ban   ",
            Kind::Unban => "unban ",
            Kind::Expire => "expire",
            Kind::Lost => {
                let n = self.lost.unwrap_or(0);
                return format!("{} lost   {n} event(s) not shown: this reader fell behind", self.time);
            }
        };
        let mut line = format!(
            "{} {what} {} {}",
            self.time,
            self.jail.as_deref().unwrap_or("-"),
            self.ip.as_deref().unwrap_or("-")
        );
        let left = self
            .expires_in
            .map(|s| crate::config::format_duration(std::time::Duration::from_secs(s)));
        match (self.event, left) {
            (Kind::Ban, Some(left)) => line.push_str(&format!(" for {left}")),
            (Kind::Unban, Some(left)) => line.push_str(&format!(" ({left} were left)")),
            _ => {}
        }
        match (self.origin.as_deref(), self.reason.as_deref()) {
            (Some(o), Some(r)) if o != r => line.push_str(&format!(" ({o}: {r})")),
            (Some(x), _) | (None, Some(x)) => line.push_str(&format!(" ({x})")),
            (None, None) => {}
        }
        line
    }
}

/// The first answer to an `events` request, before the events: which
/// format they come in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribed {
    /// [`VERSION`].
    pub events: u32,
}

/// `at` as RFC 3339 in UTC, to the second.
pub fn rfc3339(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    let (y, m, d) = crate::matcher::date::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(1_796_564_076)), "2026-12-06T13:34:36Z");
        // A leap day.
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
    }

    /// The JSON line: the documented field names, absent fields left out,
    /// one line; and it reads back as it was.
    #[test]
    fn json_lines_have_the_documented_fields() {
        let ban = Event::new(Kind::Ban, "sshd", "192.0.2.7".into(), at(1_796_564_076))
            .origin("auto")
            .reason("5 failures within 10m")
            .expires_in(3600);
        let line = String::from_utf8(ban.json_line()).unwrap();
        assert_eq!(
            line,
            "{\"v\":1,\"event\":\"ban\",\"time\":\"2026-12-06T13:34:36Z\",\"jail\":\"sshd\",\"ip\":\"192.0.2.7\",\"origin\":\"auto\",\"reason\":\"5 failures within 10m\",\"expires_in\":3600}\n"
        );
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), ban);
        let expire = Event::new(Kind::Expire, "sshd", "2001:db8::/64".into(), at(0));
        assert_eq!(
            String::from_utf8(expire.json_line()).unwrap(),
            "{\"v\":1,\"event\":\"expire\",\"time\":\"1970-01-01T00:00:00Z\",\"jail\":\"sshd\",\"ip\":\"2001:db8::/64\"}\n"
        );
        assert_eq!(
            String::from_utf8(Event::lost(12, at(0)).json_line()).unwrap(),
            "{\"v\":1,\"event\":\"lost\",\"time\":\"1970-01-01T00:00:00Z\",\"lost\":12}\n"
        );
    }

    /// A newer daemon may add fields: they are not an error.
    #[test]
    fn unknown_fields_are_read_past() {
        let line = r#"{"v":1,"event":"unban","time":"t","jail":"manual","ip":"192.0.2.1","by":"someone"}"#;
        let e: Event = serde_json::from_str(line).unwrap();
        assert_eq!(e.event, Kind::Unban);
    }

    #[test]
    fn lines_for_people() {
        let t = at(1_796_564_076);
        let ban = Event::new(Kind::Ban, "sshd", "192.0.2.7".into(), t)
            .origin("auto")
            .reason("5 failures within 10m")
            .expires_in(5400);
        assert_eq!(
            ban.human(),
            "2026-12-06T13:34:36Z ban    sshd 192.0.2.7 for 1h30m (auto: 5 failures within 10m)"
        );
        let unban = Event::new(Kind::Unban, "manual", "192.0.2.1".into(), t)
            .origin("manual")
            .reason("by hand")
            .expires_in(59);
        assert_eq!(
            unban.human(),
            "2026-12-06T13:34:36Z unban  manual 192.0.2.1 (59s were left) (manual: by hand)"
        );
        let meter = Event::new(Kind::Ban, "sip", "198.51.100.9".into(), t)
            .origin("kernel meter")
            .reason("kernel meter")
            .expires_in(60);
        assert_eq!(
            meter.human(),
            "2026-12-06T13:34:36Z ban    sip 198.51.100.9 for 1m (kernel meter)"
        );
        let expire = Event::new(Kind::Expire, "sshd", "192.0.2.7".into(), t);
        assert_eq!(expire.human(), "2026-12-06T13:34:36Z expire sshd 192.0.2.7");
        assert_eq!(
            Event::lost(3, t).human(),
            "2026-12-06T13:34:36Z lost   3 event(s) not shown: this reader fell behind"
        );
    }
}
