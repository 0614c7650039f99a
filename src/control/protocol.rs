//! Messages between the CLI and the daemon over the control socket: one
//! JSON object per line each way. A [`Response`] carries, as its `data`,
//! one of the report types of [`crate::status`] (re-exported here); they are
//! also what `nftban status --json` prints, so their field names are a
//! stable contract (docs/cli.md).

use serde::{Deserialize, Serialize};

pub use crate::status::{BanResult, Banned, JailStatus, SourceStatus, Status, UnbanResult};

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// All jails, or one.
    Status { jail: Option<String> },
    /// Ban addresses or prefixes; `jail` defaults to `manual`, `bantime`
    /// (seconds) to the jail's. `force` bans what overlaps the jail's
    /// `ignoreip` too (never what is never banned); absent means false,
    /// and it is sent only when true, so older daemons still take the
    /// requests of newer clients that do not force.
    Ban {
        addrs: Vec<String>,
        jail: Option<String>,
        bantime: Option<u64>,
        #[serde(default, skip_serializing_if = "is_false")]
        force: bool,
    },
    /// Unban from one jail or, without `jail`, from all.
    Unban { addrs: Vec<String>, jail: Option<String> },
    /// Re-read the config; refused with its error if it is bad.
    Reload,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The daemon's answer: `ok` with data, or an error message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Response {
    pub fn ok(data: impl Serialize) -> Response {
        Response {
            ok: true,
            error: None,
            data: serde_json::to_value(data).unwrap_or_default(),
        }
    }
    pub fn err(message: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(message.into()),
            data: serde_json::Value::Null,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `force` is additive: a request without it (an older client) is not
    /// forced, and one not forced is sent without it (for older daemons).
    #[test]
    fn ban_force_is_optional_both_ways() {
        let old = r#"{"cmd":"ban","addrs":["192.0.2.1"],"jail":null,"bantime":null}"#;
        let req: Request = serde_json::from_str(old).unwrap();
        assert!(matches!(req, Request::Ban { force: false, .. }));
        assert_eq!(serde_json::to_string(&req).unwrap(), old);
        let forced = Request::Ban {
            addrs: vec!["192.0.2.1".into()],
            jail: None,
            bantime: None,
            force: true,
        };
        let text = serde_json::to_string(&forced).unwrap();
        assert!(text.ends_with(r#","force":true}"#), "{text}");
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), forced);
    }
}
