//! The pending file's lines: written by hand for speed (the text serde
//! would make), read back with serde, as bans and unbans in the file's
//! order.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use serde::Deserialize;
#[cfg(test)]
use serde::Serialize;

use crate::store::{BanRecord, Origin};

/// A line of the file read back: a ban, or an unban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Ban(BanRecord),
    Lift(Lift),
}

/// An unban as the pending file holds it: the running bans of `net` in
/// `jail` (`None`: in every jail) lifted at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lift {
    pub jail: Option<String>,
    pub net: IpNet,
    pub at: SystemTime,
}

/// Writes the lines of the file: the text serde_json makes of a [`Line`]
/// (a test holds the two equal), written field by field rather than
/// through serde and the formatter, with the JSON text of the jail,
/// origin and reason kept from the line before (a bulk ban's lines share
/// them). A bulk ban writes hundreds of thousands of lines a second, on
/// the engine's thread.
#[derive(Default)]
pub(super) struct LineWriter {
    jail: Quoted,
    origin: Quoted,
    reason: Quoted,
    numbers: itoa::Buffer,
}

/// A string and its JSON text (quoted and escaped).
#[derive(Default)]
struct Quoted {
    text: String,
    json: Vec<u8>,
}

impl Quoted {
    fn of(&mut self, s: &str) -> &[u8] {
        if self.json.is_empty() || self.text != s {
            self.text.clear();
            self.text.push_str(s);
            self.json.clear();
            // A `str` always serializes.
            let _ = serde_json::to_writer(&mut self.json, s);
        }
        &self.json
    }
}

impl LineWriter {
    /// Append `b`'s line, with its newline, to `buf`.
    pub(super) fn line(&mut self, buf: &mut Vec<u8>, b: &BanRecord) {
        buf.extend_from_slice(b"{\"jail\":");
        buf.extend_from_slice(self.jail.of(&b.jail));
        self.net_at(buf, &b.net, b.at);
        buf.extend_from_slice(b",\"expires\":");
        buf.extend_from_slice(self.numbers.format(secs(b.expires)).as_bytes());
        buf.extend_from_slice(b",\"origin\":");
        buf.extend_from_slice(self.origin.of(b.origin.as_str()));
        if let Some(reason) = &b.reason {
            buf.extend_from_slice(b",\"reason\":");
            buf.extend_from_slice(self.reason.of(reason));
        }
        buf.extend_from_slice(b"}\n");
    }

    /// Append the line of an unban of `net` in `jail` (`None`: every
    /// jail) at `at`, with its newline, to `buf`.
    pub(super) fn lift(&mut self, buf: &mut Vec<u8>, jail: Option<&str>, net: &IpNet, at: SystemTime) {
        buf.extend_from_slice(b"{\"unban\":true");
        if let Some(jail) = jail {
            buf.extend_from_slice(b",\"jail\":");
            buf.extend_from_slice(self.jail.of(jail));
        }
        self.net_at(buf, net, at);
        buf.extend_from_slice(b"}\n");
    }

    /// `,"net":"…","at":…`
    fn net_at(&mut self, buf: &mut Vec<u8>, net: &IpNet, at: SystemTime) {
        buf.extend_from_slice(b",\"net\":\"");
        match *net {
            IpNet::V4(net) => {
                for (k, octet) in net.addr().octets().into_iter().enumerate() {
                    if k > 0 {
                        buf.push(b'.');
                    }
                    buf.extend_from_slice(self.numbers.format(octet).as_bytes());
                }
                buf.push(b'/');
                buf.extend_from_slice(self.numbers.format(net.prefix_len()).as_bytes());
            }
            // Rarer, and its shortest form is not worth writing again.
            IpNet::V6(net) => {
                let _ = write!(buf, "{net}");
            }
        }
        buf.extend_from_slice(b"\",\"at\":");
        buf.extend_from_slice(self.numbers.format(secs(at)).as_bytes());
    }
}

/// A line as it is moved into SQLite: borrowed from the
/// file's text, the address or prefix as written (the text SQLite holds,
/// as `IpNet`'s `Display` makes both).
pub enum Row<'a> {
    Ban {
        jail: Cow<'a, str>,
        net: Cow<'a, str>,
        at: u64,
        expires: u64,
        origin: Cow<'a, str>,
        reason: Option<Cow<'a, str>>,
    },
    /// An unban: `jail` `None` is every jail.
    Lift {
        jail: Option<Cow<'a, str>>,
        net: Cow<'a, str>,
        at: u64,
    },
}

/// One line of the file as serde reads it, borrowed from the text: a ban,
/// or an unban (`unban`, with no expiry or origin, and no jail for every
/// jail). Written by [`LineWriter`], which makes the same text serde would
/// make of it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct Line<'a> {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    unban: bool,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    jail: Option<Cow<'a, str>>,
    #[serde(borrow)]
    net: Cow<'a, str>,
    at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<u64>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    origin: Option<Cow<'a, str>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    reason: Option<Cow<'a, str>>,
}

impl<'a> Line<'a> {
    /// The line of `text`, checked: a ban has its jail, expiry and origin.
    fn read(text: &'a [u8]) -> Result<Row<'a>, String> {
        serde_json::from_slice::<Line>(text)
            .map_err(|e| e.to_string())
            .and_then(|line| line.row().map_err(String::from))
    }

    fn row(self) -> Result<Row<'a>, &'static str> {
        if self.unban {
            return Ok(Row::Lift {
                jail: self.jail,
                net: self.net,
                at: self.at,
            });
        }
        match (self.jail, self.expires, self.origin) {
            (Some(jail), Some(expires), Some(origin)) => Ok(Row::Ban {
                jail,
                net: self.net,
                at: self.at,
                expires,
                origin,
                reason: self.reason,
            }),
            _ => Err("a ban without its jail, expiry or origin"),
        }
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The address or prefix of a line, or why not.
fn net_of(text: &str) -> Result<IpNet, String> {
    text.parse().map_err(|_| format!("not an address or prefix: {text:?}"))
}

/// `secs` after the epoch, or why not: a number past what the clock can
/// hold must not panic (that was a crash loop at every start).
fn time(secs: u64, field: &str) -> Result<SystemTime, String> {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .ok_or_else(|| format!("{field} {secs} is past what the clock can hold"))
}

/// The lines of [`super::Pending::read_back`]'s text, borrowed from it. A line
/// that cannot be read (only a bug, or someone else, could have written
/// it: a write cut short is cut back off) is skipped with a warning that
/// names the file and its line within this run's part.
pub fn rows<'t>(text: &'t [u8], path: &'t Path, before: usize) -> impl Iterator<Item = Row<'t>> + 't {
    lines(text).filter_map(move |(n, line)| match Line::read(line) {
        Ok(row) => Some(row),
        Err(e) => {
            tracing::warn!(
                "{}: unreadable pending line skipped (line {} of this run's): {e}",
                path.display(),
                before + n + 1
            );
            None
        }
    })
}

/// The lines of a pending file's text that are not blank, numbered.
fn lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    text.split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(|b| b.is_ascii_whitespace() || *b == 0))
}

/// The bans and unbans in a pending file's text, in order. A line that
/// cannot be read (a power cut can leave a torn or zeroed tail) is skipped
/// with a warning that names the file and line (`before`: the lines read
/// before `text`).
pub(super) fn parse(text: &[u8], path: &Path, before: usize) -> Vec<Entry> {
    let mut out = Vec::new();
    for (n, line) in lines(text) {
        let parsed = Line::read(line).and_then(|row| match row {
            Row::Lift { jail, net, at } => Ok(Entry::Lift(Lift {
                jail: jail.map(Cow::into_owned),
                net: net_of(&net)?,
                at: time(at, "at")?,
            })),
            Row::Ban {
                jail,
                net,
                at,
                expires,
                origin,
                reason,
            } => Ok(Entry::Ban(BanRecord {
                jail: jail.into_owned(),
                net: net_of(&net)?,
                at: time(at, "at")?,
                expires: time(expires, "expires")?,
                origin: Origin::parse(&origin).ok_or_else(|| format!("unknown origin {origin:?}"))?,
                reason: reason.map(Cow::into_owned),
            })),
        });
        match parsed {
            Ok(e) => out.push(e),
            Err(e) => tracing::warn!(
                "{}:{}: unreadable pending line skipped ({e})",
                path.display(),
                before + n + 1
            ),
        }
    }
    out
}

/// The bans among `entries`.
pub(super) fn bans_of(entries: &[Entry]) -> impl Iterator<Item = &BanRecord> {
    entries.iter().filter_map(|e| match e {
        Entry::Ban(b) => Some(b),
        Entry::Lift(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written lines are the text serde makes of a [`Line`],
    /// whatever the addresses, strings (quotes, control characters,
    /// non-ASCII) and times, and however the jail, origin and reason
    /// change from line to line.
    #[test]
    fn lines_are_written_as_serde_writes_them() {
        let nets = [
            "198.51.100.7/32",
            "0.0.0.0/0",
            "255.255.255.255/32",
            "10.1.20.0/24",
            "2001:db8::1/128",
            "2001:db8:1:2::/64",
            "::/0",
            "::ffff:192.0.2.1/128",
        ];
        let strings = ["sshd", "a \"quoted\"\tjail\n", "é\u{1}\u{7f}\\ü", ""];
        let origins = [Origin::Auto, Origin::Manual, Origin::Escalated];
        let times = [0, 1, 1_800_000_000, u64::from(u32::MAX) + 7];
        let mut w = LineWriter::default();
        let mut n = 0usize;
        for (i, net) in nets.iter().enumerate() {
            for (k, s) in strings.iter().enumerate() {
                n += 1;
                let at = UNIX_EPOCH + Duration::from_secs(times[(i + k) % times.len()]);
                let b = BanRecord {
                    jail: strings[(i * 3 + k) % strings.len()].to_string(),
                    net: net.parse().unwrap(),
                    at,
                    expires: at + Duration::from_secs(600 * (k as u64)),
                    origin: origins[n % origins.len()],
                    reason: (n % 3 != 0).then(|| s.to_string()),
                };
                let mut ours = Vec::new();
                w.line(&mut ours, &b);
                let line = Line {
                    unban: false,
                    jail: Some(Cow::Borrowed(&b.jail)),
                    net: Cow::Owned(b.net.to_string()),
                    at: secs(b.at),
                    expires: Some(secs(b.expires)),
                    origin: Some(Cow::Borrowed(b.origin.as_str())),
                    reason: b.reason.as_deref().map(Cow::Borrowed),
                };
                let mut theirs = serde_json::to_vec(&line).unwrap();
                theirs.push(b'\n');
                assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
                assert_eq!(parse(&ours, Path::new("x"), 0), [Entry::Ban(b.clone())]);

                // The unban of the same net, in its jail and in every jail.
                let jail = (n % 2 == 0).then_some(b.jail.as_str());
                let mut ours = Vec::new();
                w.lift(&mut ours, jail, &b.net, b.at);
                let line = Line {
                    unban: true,
                    jail: jail.map(Cow::Borrowed),
                    net: Cow::Owned(b.net.to_string()),
                    at: secs(b.at),
                    expires: None,
                    origin: None,
                    reason: None,
                };
                let mut theirs = serde_json::to_vec(&line).unwrap();
                theirs.push(b'\n');
                assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
                let lift = Lift {
                    jail: jail.map(String::from),
                    net: b.net,
                    at: b.at,
                };
                assert_eq!(parse(&ours, Path::new("x"), 0), [Entry::Lift(lift)]);
            }
        }
    }
}
