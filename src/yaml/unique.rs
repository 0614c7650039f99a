//! Keys given twice in one YAML mapping. The YAML library lets the last
//! of them win silently when it fills a map (`jails: {sshd: ..., sshd:
//! ...}` keeps the second jail and drops the first without a word); only
//! its own `Value` type and serde's structs notice. So the text is walked
//! once before it is read into the config's types, and a key given twice
//! anywhere is an error at the line and column of its second occurrence.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::Position;

/// A key given twice in one mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Duplicate {
    /// The key with the path of its mapping, dotted (`jails.sshd`,
    /// `jails.sshd.maxretry`; list items as `[n]`).
    pub key: String,
    /// Line and column of its second occurrence.
    pub at: Option<Position>,
    /// Line and column of its first, when it can be found (not in a
    /// mapping inside a list, `l[1].a`: the path has no list indexes).
    pub first: Option<Position>,
}

/// The first key given twice in one mapping of `text`. `None` when there
/// is none, and when the text is not YAML at all: reading it into its
/// type reports that.
pub(crate) fn duplicate_key(text: &str) -> Option<Duplicate> {
    let e = serde_yaml_ng::from_str::<Unique>(text).err()?;
    let (message, at) = super::parse_error(text, &e);
    // The library puts the mapping's path in front: `jails.x: key ...`.
    let (parent, rest) = match message.find(": key `") {
        Some(i) => (&message[..i], &message[i + 2..]),
        None => ("", message.as_str()),
    };
    let name = rest
        .strip_prefix("key `")?
        .strip_suffix(&format!("` {MARK} in this mapping"))?;
    let key = if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    };
    let path: Vec<&str> = key.split('.').collect();
    let first = super::locate(text, &path).filter(|first| Some(*first) != at);
    Some(Duplicate { key, at, first })
}

/// What the error message of a duplicate key says, to tell it from the
/// library's own errors.
const MARK: &str = "is given twice";

/// Any YAML value, whose mappings have each key once.
struct Unique;

impl<'de> de::Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Unique, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i128<E>(self, _: i128) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u128<E>(self, _: u128) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_none<E>(self) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Unique, D::Error> {
        de::Deserialize::deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Unique, D::Error> {
        de::Deserialize::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut seen = HashSet::new();
        while map.next_key_seed(Key(&mut seen))?.is_some() {
            map.next_value::<Unique>()?;
        }
        Ok(Unique)
    }

    /// A tagged value (`!tag value`).
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Unique, A::Error> {
        use de::VariantAccess;
        let (_, value) = data.variant::<de::IgnoredAny>()?;
        value.newtype_variant::<Unique>()
    }
}

/// A mapping key, checked against the keys seen before in its mapping.
/// The error is raised while the key itself is read, so the library gives
/// it the key's own line and column.
struct Key<'a>(&'a mut HashSet<String>);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Key<'_> {
    /// Keys compare as the text serde reads them as (`1` and `"1"` fill
    /// the same `String` key of a map).
    fn seen<E: de::Error>(self, key: String) -> Result<(), E> {
        if self.0.contains(&key) {
            return Err(E::custom(format!("key `{key}` {MARK} in this mapping")));
        }
        self.0.insert(key);
        Ok(())
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.seen(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.seen(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.seen(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.seen(v.to_string())
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<(), E> {
        self.seen(v.to_string())
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<(), E> {
        self.seen(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.seen(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.seen("null".to_string())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.seen("null".to_string())
    }
    /// A mapping or a list as a key (YAML allows them; nftban's files have
    /// none): its own insides are checked, the key is not compared.
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        UniqueVisitor.visit_seq(seq).map(|_| ())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        UniqueVisitor.visit_map(map).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dup(key: &str, at: Position, first: Option<Position>) -> Option<Duplicate> {
        Some(Duplicate {
            key: key.into(),
            at: Some(at),
            first,
        })
    }

    #[test]
    fn a_key_given_twice_is_found_at_its_second_place() {
        let jails = "jails:\n  sshd:\n    ruleset: sshd\n  asterisk: {}\n  sshd:\n    ruleset: x\n";
        assert_eq!(duplicate_key(jails), dup("jails.sshd", (5, 3), Some((2, 3))));
        assert_eq!(duplicate_key("a: 1\nb: 2\na: 3\n"), dup("a", (3, 1), Some((1, 1))));
        // Flow style: both places are known; in a list, the second only.
        assert_eq!(
            duplicate_key("jails: {x: {maxretry: 1, maxretry: 2}}\n"),
            dup("jails.x.maxretry", (1, 26), Some((1, 13)))
        );
        assert_eq!(
            duplicate_key("l:\n  - {a: 1}\n  - {a: 1, a: 2}\n"),
            dup("l[1].a", (3, 12), None)
        );
        // `1` and "1" are one key once read as text; a nested mapping of
        // the same name in another mapping is no duplicate.
        assert_eq!(
            duplicate_key("m: {1: a, \"1\": b}\n").map(|d| d.key),
            Some("m.1".into())
        );
        assert_eq!(duplicate_key("a: {x: 1}\nb: {x: 1}\n"), None);
        assert_eq!(duplicate_key("a: [{x: 1}, {x: 2}]\nt: !tag {y: 1}\n"), None);
    }

    #[test]
    fn what_is_not_yaml_is_left_to_the_reader() {
        assert_eq!(duplicate_key("a: [1\n"), None);
        assert_eq!(duplicate_key(""), None);
    }
}
