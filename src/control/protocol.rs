//! Messages between the CLI and the daemon over the control socket: one
//! JSON object per line each way. A [`Response`] carries, as its `data`,
//! one of the report types of [`crate::status`] (re-exported here); they are
//! also what `nftban status --json` prints, so their field names are a
//! stable contract (docs/cli.md).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use crate::status::{
    BanResult, Banned, FeedStatus, FleetLimits, FleetStatus, JailStatus, SourceStatus, Status, UnbanResult,
};

/// The most addresses `nftban ban` sends in one request: a longer list
/// goes as several, so neither side ever holds more than a few chunks.
pub const BAN_CHUNK: usize = 10_000;

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// All jails, or one. `brief`: without the lists of bans (each
    /// jail's `banned` empty; `currently_banned` still counts them), for
    /// the overview `nftban status` prints and for the metrics: with many
    /// bans, a long list built and read for nothing. Absent
    /// means false and it is sent only when true, as `force`.
    Status {
        jail: Option<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        brief: bool,
    },
    /// Ban addresses or prefixes; `jail` defaults to `manual`, `bantime`
    /// (seconds) to the jail's. `force` bans what overlaps the jail's
    /// `ignoreip` too (never what is never banned); absent means false,
    /// and it is sent only when true, so older daemons still take the
    /// requests of newer clients that do not force. `more` and
    /// `follows`: see [`Request::Unban`].
    Ban {
        addrs: Vec<String>,
        jail: Option<String>,
        bantime: Option<u64>,
        #[serde(default, skip_serializing_if = "is_false")]
        force: bool,
        #[serde(default, skip_serializing_if = "is_false")]
        more: bool,
        #[serde(default, skip_serializing_if = "is_false")]
        follows: bool,
    },
    /// Unban from one jail or, without `jail`, from all.
    ///
    /// `more` (of a ban too): more requests of the same command follow
    /// (`nftban ban -` sends [`BAN_CHUNK`] addresses a request), so the
    /// daemon logs this one's summary with the last one's, as one command.
    /// Absent means false and it is sent only when true, as `force`: an
    /// older client's requests are each logged as they come, and a daemon
    /// that does not know it refuses it as an unknown field (see
    /// [`Response::refuses_field`]).
    ///
    /// `follows` (of a ban too, with `more`): the command's next request
    /// comes on the same connection right after this one, without
    /// waiting for this answer, so the daemon reads and parses it while
    /// the engine carries this one out, and starts it as soon as this one
    /// is done (the engine still takes them one at a time, in order). The
    /// answers come in the requests' order. After a refused request the
    /// connection ends: the request after it is not carried out. Absent
    /// means false, and the connection then ends with this answer, as
    /// every connection did before; a daemon that does not know it
    /// refuses it as an unknown field, with nothing carried out.
    Unban {
        addrs: Vec<String>,
        jail: Option<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        more: bool,
        #[serde(default, skip_serializing_if = "is_false")]
        follows: bool,
    },
    /// Re-read the config; refused with its error if it is bad.
    Reload,
    /// Follow bans, unbans and expiries (of one jail, or all): the answer
    /// (`data`: `{"events": 1}`, the format's version, or an error such as
    /// an unknown jail) is followed by one event per line for as long as
    /// the client stays (docs/cli.md, "nftban events"). The connection is
    /// not cut by the answer deadline; a client that reads too slowly
    /// loses events and reads a `lost` event saying how many.
    Events { jail: Option<String> },
}

impl Request {
    /// Whether the next request of the same command follows on this
    /// connection (see [`Request::Unban`]).
    pub fn follows(&self) -> bool {
        match self {
            Request::Ban { follows, .. } | Request::Unban { follows, .. } => *follows,
            _ => false,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The daemon's answer: `ok` with data, or an error message.
///
/// `data` is kept as the JSON text it is sent as, written straight from
/// the report: going through a `serde_json::Value` first held every field
/// of every ban as a map of its own, many times the text's size for the
/// `status` of a daemon holding a million bans (docs/performance.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default = "null")]
    pub data: Box<RawValue>,
}

/// JSON's `null`: the data of an error, and of an answer without any.
fn null() -> Box<RawValue> {
    RawValue::from_string("null".into()).expect("null is JSON")
}

impl Response {
    pub fn ok(data: impl Serialize) -> Response {
        Response {
            ok: true,
            error: None,
            data: serde_json::value::to_raw_value(&data).unwrap_or_else(|_| null()),
        }
    }
    pub fn err(message: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(message.into()),
            data: null(),
        }
    }

    /// The answer to a request the daemon carried out: its report, or its
    /// error's message.
    pub fn from_result<T: Serialize, E: std::fmt::Display>(result: Result<T, E>) -> Response {
        match result {
            Ok(data) => Response::ok(data),
            Err(e) => Response::err(e.to_string()),
        }
    }

    /// Whether this is a daemon's refusal of a request for a field `name`
    /// it does not know (it is older than the field): serde's words, after
    /// `bad request: `.
    pub fn refuses_field(&self, name: &str) -> bool {
        !self.ok
            && self
                .error
                .as_deref()
                .is_some_and(|e| e.contains(&format!("unknown field `{name}`")))
    }

    /// The data read as the report it holds.
    pub fn data<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.data.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data goes out as the report's own JSON text and reads back as
    /// the report; an error (or an older daemon's answer without data)
    /// reads as `null`.
    #[test]
    fn answers_carry_their_report_as_json_text() {
        let report = BanResult {
            jail: "sshd".into(),
            banned: vec![Banned {
                ip: "192.0.2.7".into(),
                expires_in: 60,
                reason: None,
            }],
            ..Default::default()
        };
        let line = serde_json::to_string(&Response::ok(&report)).unwrap();
        assert!(
            line.starts_with(r#"{"ok":true,"data":{"jail":"sshd","banned":[{"ip":"192.0.2.7","expires_in":60"#),
            "{line}"
        );
        let back: Response = serde_json::from_str(&line).unwrap();
        let again: BanResult = back.data().unwrap();
        assert_eq!(again.banned[0].ip, "192.0.2.7");
        let err: Response = serde_json::from_str(r#"{"ok":false,"error":"no such jail"}"#).unwrap();
        assert_eq!(err.data.get(), "null");
        assert_eq!(
            serde_json::to_string(&Response::err("x")).unwrap(),
            r#"{"ok":false,"error":"x","data":null}"#
        );
    }

    /// `force`, `more`, `follows` and `brief` are additive: a request
    /// without them (an older client) is not forced, is the last of its
    /// command, ends its connection and asks for the whole status, and
    /// each is sent only when true (for older daemons).
    #[test]
    fn ban_force_more_follows_and_brief_are_optional_both_ways() {
        let olds = [
            r#"{"cmd":"ban","addrs":["192.0.2.1"],"jail":null,"bantime":null}"#,
            r#"{"cmd":"unban","addrs":["192.0.2.1"],"jail":null}"#,
            r#"{"cmd":"status","jail":null}"#,
        ];
        for old in olds {
            let req: Request = serde_json::from_str(old).unwrap();
            assert!(matches!(
                req,
                Request::Ban {
                    force: false,
                    more: false,
                    follows: false,
                    ..
                } | Request::Unban {
                    more: false,
                    follows: false,
                    ..
                } | Request::Status { brief: false, .. }
            ));
            assert_eq!(serde_json::to_string(&req).unwrap(), old);
        }
        let ban = |force, more, follows| Request::Ban {
            addrs: vec!["192.0.2.1".into()],
            jail: None,
            bantime: None,
            force,
            more,
            follows,
        };
        for (req, end) in [
            (ban(true, false, false), r#""bantime":null,"force":true}"#),
            (ban(false, true, false), r#""bantime":null,"more":true}"#),
            (ban(false, true, true), r#""bantime":null,"more":true,"follows":true}"#),
            (
                Request::Status {
                    jail: None,
                    brief: true,
                },
                r#""jail":null,"brief":true}"#,
            ),
        ] {
            let text = serde_json::to_string(&req).unwrap();
            assert!(text.ends_with(end), "{text}");
            assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), req);
        }
    }

    /// What an older daemon answers to a field it does not know, as the
    /// control socket words it, is told apart from other refusals.
    #[test]
    fn a_refused_field_is_recognised() {
        let bad = crate::control::line::parse(br#"{"cmd":"status","more":true}"#).unwrap_err();
        let answer = Response::err(format!("bad request: {bad}"));
        assert!(answer.refuses_field("more"), "{:?}", answer.error);
        assert!(!answer.refuses_field("force"));
        assert!(!Response::err("`more`: invalid IP address syntax").refuses_field("more"));
        assert!(!Response::ok("unknown field `more`").refuses_field("more"));
    }

    /// A `nftban ban -` chunk of [`BAN_CHUNK`] addresses, each in the
    /// longest form the CLI sends as typed (bracketed IPv6 with every
    /// group at four digits and a dotted IPv4 tail, and `/128`), fits in
    /// the daemon's request bound with room to spare.
    #[test]
    fn a_ban_chunk_of_the_longest_addresses_fits_the_request_bound() {
        let addrs: Vec<String> = (0..BAN_CHUNK)
            .map(|i| format!("[2001:0db8:0000:0000:0000:{i:04x}:255.255.255.255]/128"))
            .collect();
        assert_eq!(addrs[0].len(), 51);
        assert!(addrs.iter().all(|a| crate::address::parse_net(a).is_ok()));
        let line = serde_json::to_vec(&Request::Ban {
            addrs,
            jail: Some("a-jail-name-of-some-length".into()),
            bantime: Some(u64::MAX),
            force: true,
            more: true,
            follows: true,
        })
        .unwrap();
        let limit = crate::control::server::Limits::DEFAULT.request_bytes;
        assert!(line.len() < limit / 2 + limit / 20, "{} of {limit}", line.len());
        assert_eq!(line.len(), 540_130);
    }

    /// The subscription as it goes over the socket.
    #[test]
    fn events_request_on_the_wire() {
        let req = Request::Events {
            jail: Some("sshd".into()),
        };
        let text = serde_json::to_string(&req).unwrap();
        assert_eq!(text, r#"{"cmd":"events","jail":"sshd"}"#);
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), req);
        let all: Request = serde_json::from_str(r#"{"cmd":"events"}"#).unwrap();
        assert_eq!(all, Request::Events { jail: None });
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"events","follow":true}"#).is_err());
    }
}
