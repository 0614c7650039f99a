//! A feed's text into addresses and prefixes, per format. A line that is
//! neither (after its comment is cut) rejects the whole list, named by
//! its number and text: a half-read list would lift every entry after the
//! bad line, so the previous list stays instead.

use ipnet::IpNet;
use serde::Deserialize;

use crate::address::{parse_net, AddressError};
use crate::config::FeedFormat;

/// Why a list was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A line that is no address or prefix.
    #[error("line {line}: `{text}` is not an address or prefix ({why})")]
    Line { line: usize, text: String, why: String },
    /// APIBAN's answer is not the JSON it documents.
    #[error("not APIBAN's JSON ({0})")]
    Json(String),
}

/// Most characters of a bad line quoted in an error.
const QUOTED: usize = 80;

/// Every entry of a `plain`, `netset` or `drop` list, in order (duplicates
/// left for the filter to merge).
pub fn parse_list(format: FeedFormat, text: &str) -> Result<Vec<IpNet>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start_matches('\u{feff}').trim();
        if line.is_empty() {
            continue;
        }
        // Spamhaus' JSON lines (drop_v4.json): one object per line, the
        // last one its metadata.
        if format == FeedFormat::Drop && line.starts_with('{') {
            if let Some(net) = drop_json(line).map_err(|why| bad(i, raw, why))? {
                out.push(net);
            }
            continue;
        }
        let body = match format {
            FeedFormat::Netset => line.split('#').next().unwrap_or(""),
            _ => line.split(['#', ';']).next().unwrap_or(""),
        };
        let mut words = body.split_whitespace();
        let Some(word) = words.next() else { continue };
        if words.next().is_some() {
            return Err(bad(i, raw, "more than one word before the comment".into()));
        }
        out.push(net_of(word).map_err(|e| bad(i, raw, e.to_string()))?);
    }
    Ok(out)
}

/// An address or prefix; host bits set (`192.0.2.1/24`) are cleared, as
/// lists published by others sometimes carry them.
fn net_of(word: &str) -> Result<IpNet, AddressError> {
    match parse_net(word) {
        Err(AddressError::HostBitsSet { meant, .. }) => Ok(meant),
        other => other,
    }
}

fn bad(i: usize, raw: &str, why: String) -> ParseError {
    let text: String = raw.trim().chars().take(QUOTED).collect();
    ParseError::Line { line: i + 1, text, why }
}

/// One line of Spamhaus' JSON form: its `cidr`, or `None` for the
/// metadata line.
fn drop_json(line: &str) -> Result<Option<IpNet>, String> {
    #[derive(Deserialize)]
    struct Line {
        cidr: Option<String>,
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    let l: Line = serde_json::from_str(line).map_err(|e| e.to_string())?;
    match (l.cidr, l.kind) {
        (Some(c), _) => net_of(&c).map(Some).map_err(|e| e.to_string()),
        (None, Some(_)) => Ok(None),
        (None, None) => Err("a JSON line without `cidr`".into()),
    }
}

/// One answer of APIBAN's `banned` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApibanPage {
    /// Addresses banned since the cursor asked with.
    pub addrs: Vec<IpNet>,
    /// The cursor to ask with next; `None` when APIBAN said `"ID":"none"`
    /// (nothing new since the cursor).
    pub next: Option<String>,
}

/// APIBAN's JSON: `{"ipaddress":["192.0.2.1",...],"ID":"1234567"}`, or,
/// when nothing is new, `{"ipaddress":["no new bans"],"ID":"none"}` (or
/// just `{"ID":"none"}`).
pub fn parse_apiban(body: &str) -> Result<ApibanPage, ParseError> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        ipaddress: Vec<String>,
        #[serde(rename = "ID")]
        id: Option<serde_json::Value>,
    }
    let a: Answer = serde_json::from_str(body.trim()).map_err(|e| ParseError::Json(e.to_string()))?;
    let id = match a.id {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => return Err(ParseError::Json("no `ID`".into())),
    };
    if id == "none" {
        return Ok(ApibanPage {
            addrs: Vec::new(),
            next: None,
        });
    }
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ParseError::Json(format!("`ID` {id:?} is no cursor")));
    }
    let mut addrs = Vec::with_capacity(a.ipaddress.len());
    for (i, text) in a.ipaddress.iter().enumerate() {
        let net = net_of(text).map_err(|e| ParseError::Line {
            line: i + 1,
            text: text.chars().take(QUOTED).collect(),
            why: format!("entry {} of `ipaddress`: {e}", i + 1),
        })?;
        addrs.push(net);
    }
    Ok(ApibanPage { addrs, next: Some(id) })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn plain_lists_with_both_comment_kinds() {
        let text = "# my list\n198.51.100.7\n\n203.0.113.0/24 ; a network\n2001:db8::/32 # v6\n  192.0.2.9  \n";
        assert_eq!(
            parse_list(FeedFormat::Plain, text).unwrap(),
            nets(&["198.51.100.7/32", "203.0.113.0/24", "2001:db8::/32", "192.0.2.9/32"])
        );
    }

    #[test]
    fn firehol_netset() {
        let text = "#\n# firehol_level1\n#\n# Maintainer      : FireHOL\n0.0.0.0/8\n1.10.16.0/20\n10.0.0.0/8\n223.254.0.0/16\n";
        assert_eq!(
            parse_list(FeedFormat::Netset, text).unwrap(),
            nets(&["0.0.0.0/8", "1.10.16.0/20", "10.0.0.0/8", "223.254.0.0/16"])
        );
    }

    #[test]
    fn spamhaus_drop_text_and_json() {
        let text = "; Spamhaus DROP List 2024/01/01 - (c) 2024 The Spamhaus Project\n; Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT\n1.10.16.0/20 ; SBL256894\n1.19.0.0/16 ; SBL434604\n";
        assert_eq!(
            parse_list(FeedFormat::Drop, text).unwrap(),
            nets(&["1.10.16.0/20", "1.19.0.0/16"])
        );
        let json = "{\"cidr\":\"1.10.16.0/20\",\"sblid\":\"SBL256894\",\"rir\":\"apnic\"}\n{\"type\":\"metadata\",\"timestamp\":1704067200,\"size\":1,\"records\":1,\"copyright\":\"(c) 2024 The Spamhaus Project SLU\"}\n";
        assert_eq!(parse_list(FeedFormat::Drop, json).unwrap(), nets(&["1.10.16.0/20"]));
    }

    #[test]
    fn a_bad_line_is_named_by_number_and_text() {
        let text = "198.51.100.7\n# fine\nhello world\n203.0.113.0/24\n";
        match parse_list(FeedFormat::Plain, text) {
            Err(ParseError::Line { line, text, .. }) => {
                assert_eq!(line, 3);
                assert_eq!(text, "hello world");
            }
            other => panic!("{other:?}"),
        }
        let e = parse_list(FeedFormat::Plain, "198.51.100.300\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("line 1: `198.51.100.300` is not an address or prefix"),
            "{e}"
        );
    }

    #[test]
    fn host_bits_are_cleared() {
        assert_eq!(
            parse_list(FeedFormat::Plain, "192.0.2.77/24\n").unwrap(),
            nets(&["192.0.2.0/24"])
        );
    }

    #[test]
    fn apiban_pages_and_no_new_bans() {
        let sample = include_str!("../../../../tests/data/apiban-banned.json");
        let page = parse_apiban(sample).unwrap();
        assert_eq!(page.next.as_deref(), Some("1701890000"));
        assert_eq!(page.addrs.len(), 4);
        assert!(page.addrs.contains(&"203.0.113.45/32".parse().unwrap()));
        assert!(page.addrs.contains(&"2001:db8:5::9/128".parse().unwrap()));
        let none = include_str!("../../../../tests/data/apiban-none.json");
        assert_eq!(
            parse_apiban(none).unwrap(),
            ApibanPage {
                addrs: vec![],
                next: None
            }
        );
        assert_eq!(parse_apiban("{\"ID\":\"none\"}").unwrap().next, None);
        assert!(matches!(parse_apiban("<html>busy</html>"), Err(ParseError::Json(_))));
        assert!(matches!(
            parse_apiban("{\"ipaddress\":[\"nope\"],\"ID\":\"12\"}"),
            Err(ParseError::Line { line: 1, .. })
        ));
    }

    proptest! {
        /// Any list of addresses and prefixes, written with comments and
        /// blank lines, reads back as the same entries in order.
        #[test]
        fn written_lists_read_back(entries in proptest::collection::vec((any::<u32>(), 8u8..=32, any::<bool>()), 0..50)) {
            let want: Vec<IpNet> = entries
                .iter()
                .map(|&(a, len, _)| IpNet::new(std::net::Ipv4Addr::from(a).into(), len).unwrap().trunc())
                .collect();
            let mut text = String::from("# header\n");
            for (net, (_, _, comment)) in want.iter().zip(&entries) {
                let shown = crate::address::show(net);
                if *comment {
                    text.push_str(&format!("{shown} ; SBL1\n\n"));
                } else {
                    text.push_str(&format!("{shown}\n"));
                }
            }
            prop_assert_eq!(parse_list(FeedFormat::Drop, &text).unwrap(), want.clone());
            prop_assert_eq!(parse_list(FeedFormat::Plain, &text).unwrap(), want);
        }

        /// No input makes the parsers panic.
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = parse_list(FeedFormat::Plain, &text);
            let _ = parse_list(FeedFormat::Drop, &text);
            let _ = parse_apiban(&text);
        }
    }
}
