//! The matcher stage: decides, for one log line, whether it is a failure
//! and of which address.
//!
//! All failregexes of a ruleset are tried in one pass with a `RegexSet`;
//! captures run only for a line the set says matches, so ordinary traffic
//! costs one scan. `ignoreregex` is checked only on candidate lines.

mod host;
pub mod ruleset;

use std::net::IpAddr;

use regex::{Regex, RegexSet};

pub use host::{parse_addr, parse_net, HOST_GROUP};
pub use ruleset::{Example, Ruleset};

/// A compiled ruleset.
#[derive(Debug)]
pub struct Matcher {
    pub name: String,
    set: RegexSet,
    rules: Vec<Regex>,
    /// The failregexes as written, for reports.
    pub sources: Vec<String>,
    ignore: Option<RegexSet>,
}

/// What a line is to a ruleset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineMatch {
    /// No failregex matches.
    Missed,
    /// A failregex matches but an ignoreregex too.
    Ignored,
    /// A failure: rule index and the address.
    Failure { rule: usize, addr: IpAddr },
    /// A failregex matches but what it captured is no address (a hostname);
    /// nftban never resolves names, so nobody is banned.
    NotAnAddress { rule: usize, host: String },
}

impl Matcher {
    /// Compile a ruleset; errors name the rule.
    pub fn new(ruleset: &Ruleset) -> Result<Matcher, String> {
        let mut expanded = Vec::new();
        for (i, rule) in ruleset.failregex.iter().enumerate() {
            let full = if ruleset.prefix.is_empty() {
                rule.clone()
            } else {
                format!("^(?:{}){}", ruleset.prefix, rule.trim_start_matches('^'))
            };
            let re =
                host::expand_tags(&full).map_err(|e| format!("{}: failregex[{i}] `{rule}`: {e}", ruleset.origin))?;
            expanded.push(re);
        }
        let rules = expanded
            .iter()
            .enumerate()
            .map(|(i, re)| Regex::new(re).map_err(|e| format!("{}: failregex[{i}]: {e}", ruleset.origin)))
            .collect::<Result<Vec<_>, _>>()?;
        let set = RegexSet::new(&expanded).map_err(|e| format!("{}: failregex: {e}", ruleset.origin))?;
        let ignore = if ruleset.ignoreregex.is_empty() {
            None
        } else {
            for (i, r) in ruleset.ignoreregex.iter().enumerate() {
                Regex::new(r).map_err(|e| format!("{}: ignoreregex[{i}]: {e}", ruleset.origin))?;
            }
            Some(RegexSet::new(&ruleset.ignoreregex).map_err(|e| format!("{}: ignoreregex: {e}", ruleset.origin))?)
        };
        Ok(Matcher {
            name: ruleset.name.clone(),
            set,
            rules,
            sources: ruleset.failregex.clone(),
            ignore,
        })
    }

    /// Index of the first failregex that matches, if any.
    pub fn match_rule(&self, line: &str) -> Option<usize> {
        self.set.matches(line).iter().next()
    }

    /// Classify one line.
    pub fn match_line(&self, line: &str) -> LineMatch {
        let Some(rule) = self.match_rule(line) else {
            return LineMatch::Missed;
        };
        if self.ignore.as_ref().is_some_and(|ig| ig.is_match(line)) {
            return LineMatch::Ignored;
        }
        let Some(caps) = self.rules[rule].captures(line) else {
            return LineMatch::Missed;
        };
        let host = caps.name(HOST_GROUP).map(|m| m.as_str()).unwrap_or("");
        match parse_addr(host) {
            Some(addr) => LineMatch::Failure { rule, addr },
            None => LineMatch::NotAnAddress {
                rule,
                host: host.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests;
