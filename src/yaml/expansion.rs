//! What aliases make of a YAML file, counted before it is read.
//!
//! An alias (`*a`) stands for the whole node its anchor (`&a`) names, and
//! the YAML library builds a full copy at every alias: one `ignoreip`
//! list of 1,500 addresses named by 850 jails, 61 KiB of text, becomes
//! 1.3 million strings (some 50 MB), and aliases of aliases grow
//! exponentially. serde_yaml_ng's own repetition limit counts alias uses
//! per event and does not stop that. So the file's events are walked
//! once with the parser [`super::locate`] uses, each alias costing the
//! values of the node it names, and a file that expands to more than
//! [`limit`] values (about what its text could hold written out, plus
//! [`FREE`]) is refused at the alias that takes it over, before anything
//! is built.
//!
//! A text that parser cannot read to its end (where it and the YAML
//! library disagree) is counted again by the YAML library itself, with a
//! reader that builds nothing and stops at the limit; its error then has
//! the library's place, inside the node the alias names.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use saphyr_parser::Event;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::locate::{position, Events};
use super::Position;

/// Values any file may expand to, whatever its size: anchors used as
/// they are meant to be (a block of settings or a list named by a few
/// dozen jails) stay far below it. A value read into the config takes
/// some 55 bytes, so these take about 3 MB.
pub(crate) const FREE: u64 = 50_000;

/// The most values (scalars, lists and mappings, each alias counted as
/// the node it names) a text of `bytes` bytes may expand to: [`FREE`]
/// plus one per byte, about as many as the text could hold written out.
pub(crate) fn limit(bytes: usize) -> u64 {
    FREE.saturating_add(bytes as u64)
}

/// A file whose aliases expand it past [`limit`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "this alias takes the file past {limit} values once aliases are expanded \
     (the most a file of {bytes} bytes may hold: {FREE} plus one per byte); \
     name long lists and mappings through aliases less often"
)]
pub struct TooLarge {
    pub limit: u64,
    pub bytes: usize,
}

/// Where a file goes past the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expansion {
    /// The key of the alias that takes it over, dotted (`jails.j7.ignoreip`;
    /// list items as `[n]`); empty for the top of the document.
    pub key: String,
    /// Line and column of that alias.
    pub at: Option<Position>,
    pub error: TooLarge,
}

/// The alias that takes `text` past [`limit`], if any. `None` too for a
/// text that is not YAML: reading it into its type reports that.
pub(crate) fn expansion(text: &str) -> Option<Expansion> {
    let limit = limit(text.len());
    let mut events = Events::new(text);
    let mut walk = Walk::default();
    while let Some((event, at)) = events.next() {
        if let Some(key) = walk.event(event, limit) {
            return Some(Expansion {
                key,
                at: position(text, at),
                error: TooLarge {
                    limit,
                    bytes: text.len(),
                },
            });
        }
    }
    if events.failed() {
        return counted_by_the_reader(text, limit);
    }
    None
}

/// An open list or mapping.
struct Frame<'a> {
    /// Its anchor's id, 0 for none.
    anchor: usize,
    /// Its values so far, itself included.
    size: u64,
    kind: Kind<'a>,
}

enum Kind<'a> {
    /// The key whose value comes next (`None` while a key is read, `?`
    /// for a key that is not a scalar).
    Map(Option<Cow<'a, str>>),
    /// The index of the item read now.
    Seq(usize),
}

#[derive(Default)]
struct Walk<'a> {
    open: Vec<Frame<'a>>,
    /// Values of each anchor's node, by anchor id.
    sizes: Vec<u64>,
    total: u64,
}

impl<'a> Walk<'a> {
    /// Counts one event; the key of an alias that takes the total past
    /// `limit`.
    fn event(&mut self, event: Event<'a>, limit: u64) -> Option<String> {
        match event {
            Event::Scalar(value, _, anchor, _) => {
                self.total = self.total.saturating_add(1);
                self.anchored(anchor, 1);
                self.done(1, Some(value));
            }
            Event::Alias(id) => {
                // An anchor whose node is still open (`&a [*a]`): the
                // YAML library refuses the recursion.
                let size = self.sizes.get(id).copied().unwrap_or(1);
                self.total = self.total.saturating_add(size);
                if self.total > limit {
                    return Some(self.key());
                }
                self.done(size, None);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.total = self.total.saturating_add(1);
                let kind = match event {
                    Event::SequenceStart(..) => Kind::Seq(0),
                    _ => Kind::Map(None),
                };
                self.open.push(Frame { anchor, size: 1, kind });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(frame) = self.open.pop() {
                    self.anchored(frame.anchor, frame.size);
                    self.done(frame.size, None);
                }
            }
            _ => {}
        }
        None
    }

    fn anchored(&mut self, anchor: usize, size: u64) {
        if anchor > 0 {
            if self.sizes.len() <= anchor {
                self.sizes.resize(anchor + 1, 1);
            }
            self.sizes[anchor] = size;
        }
    }

    /// A node of `size` values read whole: counted in its parent, which
    /// moves on to its next key, value or item.
    fn done(&mut self, size: u64, scalar: Option<Cow<'a, str>>) {
        let Some(parent) = self.open.last_mut() else {
            return;
        };
        parent.size = parent.size.saturating_add(size);
        match &mut parent.kind {
            Kind::Map(key @ None) => *key = Some(scalar.unwrap_or(Cow::Borrowed("?"))),
            Kind::Map(key) => *key = None,
            Kind::Seq(index) => *index += 1,
        }
    }

    /// The dotted key of the node read now.
    fn key(&self) -> String {
        let mut key = String::new();
        for frame in &self.open {
            match &frame.kind {
                Kind::Map(Some(k)) => {
                    if !key.is_empty() {
                        key.push('.');
                    }
                    key.push_str(k);
                }
                Kind::Map(None) => break,
                Kind::Seq(index) => key.push_str(&format!("[{index}]")),
            }
        }
        key
    }
}

/// What the counting reader's error says, to tell it from the library's
/// own errors.
const MARK: &str = "past the limit of values";

/// The same count through the YAML library, which replays each alias as
/// it would for the config's types but builds nothing: memory as deep as
/// the document, time up to `limit` values.
fn counted_by_the_reader(text: &str, limit: u64) -> Option<Expansion> {
    let count = Cell::new(0);
    let e = Count { count: &count, limit }
        .deserialize(serde_yaml_ng::Deserializer::from_str(text))
        .err()?;
    let (message, at) = super::parse_error(text, &e);
    let key = match message.find(MARK)? {
        0 => String::new(),
        i => message[..i].trim_end_matches([' ', ':']).to_string(),
    };
    Some(Expansion {
        key,
        at,
        error: TooLarge {
            limit,
            bytes: text.len(),
        },
    })
}

/// Any YAML value, counted.
#[derive(Clone, Copy)]
struct Count<'c> {
    count: &'c Cell<u64>,
    limit: u64,
}

impl Count<'_> {
    fn one<E: de::Error>(self) -> Result<(), E> {
        self.count.set(self.count.get() + 1);
        if self.count.get() > self.limit {
            return Err(E::custom(MARK));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.one()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.one()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.one()
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.one()
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.one()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.one()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.one()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.one()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.one()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.one()?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.one()?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    /// A tagged value (`!tag value`).
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        use de::VariantAccess;
        let (_, value) = data.variant::<de::IgnoredAny>()?;
        value.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list of `n` addresses anchored as `&a`, named by `jails` jails.
    fn bomb(n: usize, jails: usize) -> String {
        let list: Vec<String> = (0..n).map(|i| format!("10.0.{}.{}", i / 250, i % 250)).collect();
        let mut text = format!("defaults: {{ignoreip: &a [{}]}}\njails:\n", list.join(", "));
        for i in 0..jails {
            text.push_str(&format!("  j{i}:\n    ignoreip: *a\n"));
        }
        text
    }

    #[test]
    fn an_alias_costs_the_node_it_names() {
        let mut walk = Walk::default();
        let text = "a: &x [1, [2, 3]]\nb: *x\nc: &y {k: *x}\nd: [*y, *y]\n";
        let mut events = Events::new(text);
        while let Some((event, _)) = events.next() {
            assert_eq!(walk.event(event, u64::MAX), None);
        }
        // Top mapping 1, keys 4; a: 5; b: 5; c: 1 + key + 5 = 7; d: 1 + 7 + 7.
        assert_eq!(walk.total, 1 + 4 + 5 + 5 + 7 + 15);
    }

    #[test]
    fn anchors_used_as_meant_pass() {
        // A block of settings named by a dozen jails, a list of trusted
        // addresses named by all of them.
        let mut text = "defaults:\n  ignoreip: &trusted [127.0.0.0/8, \"::1\", 192.0.2.0/24, 2001:db8::/32]\n\
                        base: &base {ruleset: sshd, maxretry: 3, bantime: 1h, findtime: 10m, files: [/var/log/auth.log]}\njails:\n"
            .to_string();
        for i in 0..12 {
            text.push_str(&format!("  j{i}: *base\n  k{i}: {{ruleset: x, ignoreip: *trusted}}\n"));
        }
        assert_eq!(expansion(&text), None);
        assert_eq!(expansion(&bomb(500, 90)), None, "45,000 values of a 9 KiB text");
        assert_eq!(expansion("a: [1\n"), None, "not YAML: left to the reader");
        assert_eq!(expansion(""), None);
    }

    #[test]
    fn the_alias_that_takes_a_file_over_is_named() {
        let text = bomb(1500, 850);
        let e = expansion(&text).expect("refused");
        // Each alias adds 1,500 values: the file goes over at some jail
        // `i`, and the place is that jail's `ignoreip: *a` line.
        let i: usize = e
            .key
            .strip_prefix("jails.j")
            .and_then(|k| k.strip_suffix(".ignoreip"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(e.at, Some((4 + 2 * i, 15)));
        let written = 1 + 2 + 1 + 1500 + 1 + 1 + 2 * i as u64; // at the alias of jail i
        assert!(written + 1500 * (i as u64 + 1) > limit(text.len()));
        assert!(written + 1500 * i as u64 <= limit(text.len()));
        assert_eq!(e.error.limit, limit(text.len()));
        assert!(e.error.to_string().contains("aliases less often"));
    }

    #[test]
    fn aliases_of_aliases_are_counted_without_building_them() {
        // Ten levels of ten: 10^10 values.
        let mut text = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n".to_string();
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "l{i}: &l{i} [*l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}]\n"
            ));
        }
        let e = expansion(&text).expect("refused");
        assert_eq!(e.key, "l4[3]", "50,000 + 570 bytes: at the fourth 11,111 of l4");
        assert_eq!(e.at, Some((5, 25)));
    }

    #[test]
    fn what_the_parser_cannot_read_is_counted_by_the_reader() {
        // Whatever text the two parsers disagree on, the reader's count
        // stops it.
        let text = bomb(1500, 850);
        let e = counted_by_the_reader(&text, limit(text.len())).expect("refused");
        assert!(e.key.starts_with("jails.j"), "{e:?}");
        assert!(e.at.is_some());
        assert_eq!(counted_by_the_reader(&bomb(10, 10), 1_000), None);
        assert_eq!(counted_by_the_reader("a: [1\n", 10), None);
    }
}
