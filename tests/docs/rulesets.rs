//! One page per shipped ruleset, docs/rulesets/NAME.md, generated from
//! rulesets/NAME.yaml: what it reads (the file's own header comment), the
//! log forms (prefix, dates, journal matches), its rules, its modes and
//! every example line with the address it gives. A test fails when a
//! committed page is not what the ruleset gives, or a page is left for a
//! ruleset that is gone; `NFTBAN_WRITE_SCHEMAS=1 cargo test --test
//! integration docs::` rewrites them.

use serde_yaml_ng::Value;

use super::markdown::root;

/// A code span that holds any text: as many backticks around it as it
/// needs, `|` escaped for tables.
fn code(text: &str) -> String {
    let mut ticks = "`".to_string();
    while text.contains(ticks.as_str()) {
        ticks.push('`');
    }
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{}{pad}{ticks}", text.replace('|', "\\|"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .map(|x| {
                    x.as_str().map_or_else(
                        || serde_yaml_ng::to_string(x).unwrap().trim().to_string(),
                        str::to_string,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn rules(out: &mut String, title: &str, list: &[String]) {
    if list.is_empty() {
        return;
    }
    out.push_str(&format!("\n{title}\n\n```\n"));
    for r in list {
        out.push_str(r);
        out.push('\n');
    }
    out.push_str("```\n");
}

/// The page of the ruleset file `text` (rulesets/`file`).
pub fn page(file: &str, text: &str) -> String {
    nftban::matcher::Ruleset::parse(file, text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let y: Value = serde_yaml_ng::from_str(text).unwrap();
    let name = y["name"].as_str().unwrap();
    let header: Vec<&str> = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').strip_prefix(' ').unwrap_or(""))
        .collect();
    let mut out = format!(
        "# The `{name}` ruleset\n\n\
         <!-- Generated from rulesets/{file} by tests/docs/rulesets.rs: do not edit; \
         NFTBAN_WRITE_SCHEMAS=1 cargo test --test integration docs:: rewrites it. -->\n\n\
         {}.\n\n\
         A jail uses it with `ruleset: {name}` ([config.md](../config.md)); try it on a log with \
         `nftban test LOG {name}`. The ruleset format is in [rulesets.md](../rulesets.md); a file \
         `/etc/nftban/rulesets/{file}` replaces this one.\n",
        y["description"].as_str().unwrap_or("").trim_end_matches('.')
    );
    out.push_str("\n## What it reads\n\n");
    if header.iter().all(|l| l.is_empty()) {
        out.push_str(&format!("(rulesets/{file} says nothing more.)\n"));
    } else {
        out.push_str("From the ruleset file's own notes:\n\n```\n");
        for l in &header {
            out.push_str(l);
            out.push('\n');
        }
        out.push_str("```\n");
    }
    out.push_str("\n## Log forms\n\n");
    match y.get("datepattern") {
        None => out.push_str("- Dates: every format nftban knows is tried (asterisk, syslog, ISO 8601, epoch); a line is counted at the time it carries.\n"),
        Some(d) if strings(d).is_empty() => out.push_str("- Dates: none; a line is counted when it is read.\n"),
        Some(d) => out.push_str(&format!(
            "- Dates: {}; a line is counted at the time it carries.\n",
            strings(d).iter().map(|s| code(s)).collect::<Vec<_>>().join(", ")
        )),
    }
    let journal = strings(&y["journalmatch"]);
    if !journal.is_empty() {
        out.push_str(&format!(
            "- Journal matches of the fail2ban filter it came from: {}.\n",
            journal.iter().map(|s| code(s)).collect::<Vec<_>>().join(", ")
        ));
    }
    if let Some(p) = y["prefilter"].as_str() {
        out.push_str(&format!("- Every failure line contains {}.\n", code(p)));
    }
    if let Some(p) = y["prefix"].as_str() {
        out.push_str(&format!("- Each rule follows this prefix (the log's fixed start: date, host, program), anchored at the start of the line:\n\n```\n{p}\n```\n"));
    }
    if let Some(p) = y["prefregex"].as_str() {
        out.push_str(&format!(
            "- The whole line matches this first, and the rules run on its `F-CONTENT` part:\n\n```\n{p}\n```\n"
        ));
    }
    out.push_str("\n## Rules\n");
    rules(
        &mut out,
        "A line matching one of these is a failure of the address in `<HOST>`:",
        &strings(&y["failregex"]),
    );
    rules(
        &mut out,
        "Unless it also matches one of these:",
        &strings(&y["ignoreregex"]),
    );
    out.push_str("\n## Modes\n\n");
    match y["modes"].as_mapping().filter(|m| !m.is_empty()) {
        None => out.push_str("None: a jail's `mode:` may name only `normal`, the rules above.\n"),
        Some(modes) => {
            out.push_str("A jail picks one with `mode: NAME`; its rules are added to those above.\n");
            for (m, v) in modes {
                let m = m.as_str().unwrap();
                out.push_str(&format!("\n### `{m}`\n\n{}\n", v["description"].as_str().unwrap_or("")));
                rules(&mut out, "Failures:", &strings(&v["failregex"]));
                rules(&mut out, "Not failures:", &strings(&v["ignoreregex"]));
            }
        }
    }
    let examples = y["examples"].as_sequence().cloned().unwrap_or_default();
    out.push_str(&format!(
        "\n## Example lines\n\nThe {} examples of rulesets/{file}, each with the address it must give \
         (or none); `cargo test` and `nftban check` run them.\n\n| line | bans |\n|---|---|\n",
        examples.len()
    ));
    for e in &examples {
        let line = e["line"].as_str().unwrap();
        let host = match e["host"].as_str() {
            Some(h) => code(h),
            None => "nobody".into(),
        };
        let mode = e["mode"].as_str().map_or(String::new(), |m| format!(" (mode `{m}`)"));
        out.push_str(&format!("| {} | {host}{mode} |\n", code(line)));
    }
    out
}

/// (file name in docs/rulesets/, page) for every shipped ruleset.
fn generated() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root().join("rulesets")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "yaml") {
            let file = path.file_name().unwrap().to_str().unwrap().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((file.replace(".yaml", ".md"), page(&file, &text)));
        }
    }
    out.sort();
    out
}

/// The index docs/rulesets.md links to: one line per ruleset.
fn index(pages: &[(String, String)]) -> String {
    let mut out = String::from(
        "# Shipped rulesets\n\n<!-- Generated by tests/docs/rulesets.rs: do not edit. -->\n\n\
         One page per ruleset built into nftban, generated from its file in `rulesets/`. The \
         format and the ways rules are made safe are in [rulesets.md](../rulesets.md).\n\n",
    );
    for (file, page) in pages {
        let title = page.lines().next().unwrap().trim_start_matches("# ");
        out.push_str(&format!("- [{title}]({file})\n"));
    }
    out
}

#[test]
fn ruleset_pages_are_the_generated_ones() {
    let dir = root().join("docs/rulesets");
    let mut pages = generated();
    assert!(pages.len() >= 8, "{} rulesets", pages.len());
    pages.push(("README.md".into(), index(&pages)));
    if std::env::var_os("NFTBAN_WRITE_SCHEMAS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).unwrap();
        for (file, text) in &pages {
            std::fs::write(dir.join(file), text).unwrap();
        }
    }
    for (file, text) in &pages {
        let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(
            committed == *text,
            "docs/rulesets/{file} is not what rulesets/ gives; rewrite it with \
             NFTBAN_WRITE_SCHEMAS=1 cargo test --test integration docs::"
        );
    }
    let extra: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| !pages.iter().any(|(p, _)| p == f))
        .collect();
    assert_eq!(
        extra,
        Vec::<String>::new(),
        "pages in docs/rulesets/ for no shipped ruleset"
    );
}

/// Every example line of a ruleset is on its page, with its address.
#[test]
fn each_page_shows_every_example_line() {
    let text = std::fs::read_to_string(root().join("rulesets/asterisk.yaml")).unwrap();
    let page = page("asterisk.yaml", &text);
    let y: Value = serde_yaml_ng::from_str(&text).unwrap();
    for e in y["examples"].as_sequence().unwrap() {
        let line = e["line"].as_str().unwrap();
        assert!(page.contains(&code(line)), "{line}");
    }
    assert!(page.contains("| `[2015-01-28 05:40:16] NOTICE[-1] Ext. 9015448702956577: Incoming SIP connection from unknown peer failed for 31.3.244.234 - Unknown connection from peer` | `31.3.244.234` |"), "the FAQ's line and its host");
    assert_eq!(code("a`b"), "``a`b``");
    assert_eq!(code("x|y"), "`x\\|y`");
}
