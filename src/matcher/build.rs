//! Building a [`Matcher`] from a [`Ruleset`]: each rule on the fast
//! engine where it can run (with its literals and host split), on the
//! fallback engine where an imported fail2ban filter needs Python's
//! semantics, and the prefregex; errors name the rule's file, line and
//! column.

use super::*;

impl Matcher {
    /// Compile a ruleset; errors name the file, line and column of the rule.
    pub fn new(ruleset: &Ruleset) -> Result<Matcher, RulesetError> {
        let prefix = if ruleset.prefix.is_empty() {
            None
        } else {
            split::Prefix::new(&format!("^(?:{})", ruleset.prefix))
        };
        let pref = Self::prefregex(ruleset)?;
        // Rules may lack an address when prefregex gives one (or a session).
        let pref_gives = match &pref {
            Some(Pref::Fast { host, mlfid, .. }) => host.is_some() || mlfid.is_some(),
            Some(Pref::Python(p)) => p.gives_address(),
            None => false,
        };
        let mut rules = Vec::new();
        let mut held = 0;
        for (i, rule) in ruleset.failregex.iter().enumerate() {
            let fast = if ruleset.fallback && python::has_state_fields(rule) {
                Err("has fail2ban fields whose branch matters".to_string())
            } else {
                Self::fast_rule(ruleset, prefix.as_ref(), rule)
            };
            let rule = match fast {
                Ok(rule) => rule,
                Err(e) if ruleset.fallback && python::needs_fallback(&e) => {
                    let py = python::Rule::new(rule, !pref_gives)
                        .map_err(|p| ruleset.rule_error(i, format!("`{rule}`: {e}; with Python's semantics: {p}")))?;
                    Rule {
                        regex: never(),
                        host: 0,
                        literal: Vec::new(),
                        split: None,
                        cidr: None,
                        python: Some(py),
                        user: None,
                        alt_user: None,
                    }
                }
                Err(e) => return Err(ruleset.rule_error(i, e)),
            };
            held += rule.memory();
            if held > RULESET_BUDGET {
                return Err(ruleset.rule_error(
                    i,
                    format!(
                        "the rules up to this one compile to {} MiB, more than the {} MiB a ruleset may take; {TOO_BIG}",
                        held.div_ceil(1 << 20),
                        RULESET_BUDGET >> 20
                    ),
                ));
            }
            rules.push(rule);
        }
        let ignore = if ruleset.ignoreregex.is_empty() {
            None
        } else {
            let mut expanded = Vec::new();
            for (i, r) in ruleset.ignoreregex.iter().enumerate() {
                let at = |m: String| ruleset.error_at(&["ignoreregex"], Some(i), format!("ignoreregex[{i}]: {m}"));
                let e = host::expand_tags(r, false).map_err(|e| at(e.to_string()))?;
                compile(&e).map_err(|e| at(e.to_string()))?;
                expanded.push(e);
            }
            Some(
                RegexSetBuilder::new(&expanded)
                    .unicode(false)
                    .size_limit(RULE_LIMIT)
                    .build()
                    .map_err(|e| ruleset.error_at(&["ignoreregex"], None, e.to_string()))?,
            )
        };
        Ok(Matcher {
            name: ruleset.name.clone(),
            rules,
            sources: ruleset.failregex.clone(),
            ignore,
            prefilter: ruleset
                .prefilter
                .as_ref()
                .map(|p| memchr::memmem::Finder::new(p.as_bytes()).into_owned()),
            pref,
            strip_date: ruleset.strip_date,
            date_lead: match &ruleset.date_lead {
                Some(lead) => Some((
                    compile(&lead.regex)
                        .map_err(|e| ruleset.error_at(&["datepattern"], None, format!("datepattern: {e}")))?,
                    lead.clone(),
                )),
                None => None,
            },
            dates: ruleset.datepattern.as_deref().map(|l| ruleset::DatePattern::split(l).0),
            custom_dates: ruleset
                .datepattern
                .as_deref()
                .map(|l| ruleset::DatePattern::split(l).1)
                .unwrap_or_default(),
            prefix,
        })
    }

    /// A rule on the fast engine, or why it cannot be (the message).
    fn fast_rule(ruleset: &Ruleset, prefix: Option<&split::Prefix>, rule: &str) -> Result<Rule, String> {
        let expanded = host::expand_tags(rule, true).map_err(|e| format!("`{rule}`: {e}"))?;
        let full = if ruleset.prefix.is_empty() {
            expanded.clone()
        } else {
            format!("^(?:{}){}", ruleset.prefix, expanded.trim_start_matches('^'))
        };
        let regex = compile_rule(&full)?;
        let group = |name| regex.group_info().to_index(regex_automata::PatternID::ZERO, name);
        let host = group(HOST_GROUP).ok_or_else(|| "no <HOST> group".to_string())?;
        let cidr = group(host::CIDR_GROUP);
        let user = group(python::USER);
        let alt_user = regex
            .group_info()
            .pattern_names(regex_automata::PatternID::ZERO)
            .position(|n| n.is_some_and(python::is_alt_user));
        let split = match cidr {
            Some(_) => None,
            None => split::parse(&full).and_then(|h| split::Split::new(&h, prefix.map(|p| &p.hir))),
        };
        Ok(Rule {
            regex,
            host,
            literal: literal::required(&expanded),
            split,
            cidr,
            python: None,
            user,
            alt_user,
        })
    }

    /// The ruleset's prefregex on the fast engine, or (for fail2ban
    /// filters) on the fallback one when the fast one cannot run it.
    fn prefregex(ruleset: &Ruleset) -> Result<Option<Pref>, RulesetError> {
        let Some(p) = &ruleset.prefregex else {
            return Ok(None);
        };
        let at = |m: String| ruleset.error_at(&["prefregex"], None, format!("prefregex: {m}"));
        let fast = host::expand_tags(p, false)
            .map_err(|e| e.to_string())
            .and_then(|e| compile(&e).map_err(|e| e.to_string()));
        match fast {
            Ok(regex) => {
                let group = |name: &str| regex.capture_names().position(|n| n == Some(name));
                let content = group(CONTENT_GROUP).ok_or_else(|| at("no <F-CONTENT>...</F-CONTENT> in it".into()))?;
                Ok(Some(Pref::Fast {
                    content,
                    host: group(HOST_GROUP),
                    mlfid: group("f_mlfid"),
                    regex,
                }))
            }
            Err(e) if ruleset.fallback => python::Pref::new(p)
                .map(|p| Some(Pref::Python(p)))
                .map_err(|p| at(format!("{e}; with Python's semantics: {p}"))),
            Err(e) => Err(at(e)),
        }
    }
}
