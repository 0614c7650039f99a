//! `usedns:` — whether a jail resolves a host name its rule found where an
//! address should be. fail2ban resolves by default (`usedns = warn`), so a
//! log line can make it ban whatever address an attacker's name points to
//! (docs/faq.md row 1); nftban resolves only where a jail says `yes`.
//!
//! Written `yes` or `no` as in fail2ban's jail.conf (YAML reads those as
//! text); `true` and `false` are taken too, since a YAML habit writes them.

use std::borrow::Cow;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};

/// What a jail does with a host name in `<HOST>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UseDns {
    /// Never resolved (the default): the line bans nobody; `status`
    /// counts it under `names`.
    #[default]
    No,
    /// Resolved through the system resolver (getaddrinfo: /etc/hosts,
    /// DNS) on a thread of its own, with a cache and a timeout; each
    /// address it gives gets the line's failure.
    Yes,
}

impl UseDns {
    pub fn resolves(self) -> bool {
        self == UseDns::Yes
    }
}

impl fmt::Display for UseDns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UseDns::No => "no",
            UseDns::Yes => "yes",
        })
    }
}

impl<'de> Deserialize<'de> for UseDns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<UseDns, D::Error> {
        d.deserialize_any(UseDnsVisitor)
    }
}

struct UseDnsVisitor;

impl serde::de::Visitor<'_> for UseDnsVisitor {
    type Value = UseDns;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`yes` or `no`")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<UseDns, E> {
        Ok(if v { UseDns::Yes } else { UseDns::No })
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<UseDns, E> {
        match v {
            "yes" | "true" => Ok(UseDns::Yes),
            "no" | "false" => Ok(UseDns::No),
            "warn" | "raw" => Err(E::custom(format!(
                "`{v}` is fail2ban's; nftban takes `yes` (resolve, each name logged) or `no` (never resolve)"
            ))),
            _ => Err(E::custom(format!("`{v}` is neither `yes` nor `no`"))),
        }
    }
}

impl JsonSchema for UseDns {
    fn schema_name() -> Cow<'static, str> {
        "usedns".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "`no` (the default): a host name in `<HOST>` is never resolved, the line bans nobody. `yes`: resolved through the system resolver on a thread of its own (cached, with a timeout); each address it gives gets the failure.",
            "enum": ["yes", "no", true, false]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yes_no_and_booleans_are_read_fail2bans_other_values_refused() {
        let read = |t: &str| serde_yaml_ng::from_str::<UseDns>(t).map_err(|e| e.to_string());
        assert_eq!(read("yes"), Ok(UseDns::Yes));
        assert_eq!(read("true"), Ok(UseDns::Yes));
        assert_eq!(read("no"), Ok(UseDns::No));
        assert_eq!(read("false"), Ok(UseDns::No));
        assert!(read("warn").unwrap_err().contains("fail2ban's"));
        assert!(read("maybe").unwrap_err().contains("neither"));
        assert!(read("1").is_err());
    }
}
