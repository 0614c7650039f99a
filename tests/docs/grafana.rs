//! deploy/grafana/nftban.json, the Grafana dashboard, against the metrics
//! the daemon really exports: the names and labels are read from the
//! metrics endpoint itself (`nftban::control::metrics::serve`, the code
//! `metrics.listen` runs) answering a scrape of a status in which every
//! series has a sample, not from a list kept by hand. Every PromQL
//! expression of the dashboard (panels and template variables) may name
//! only those metrics and labels, PromQL's own words and Grafana's
//! variables.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;

use nftban::control::metrics;
use nftban::control::protocol::Status;
use serde_json::Value;

use super::markdown::read;

/// A status in which every jail figure and every origin is non-zero, so
/// that every series the encoder knows has a sample.
fn busy_status() -> Status {
    serde_json::from_value(serde_json::json!({
        "jails": [{
            "name": "sshd", "ruleset": "sshd", "files": ["/var/log/auth.log"], "journal": [],
            "currently_failed": 1, "total_failed": 9, "currently_banned": 2, "total_banned": 4,
            "bans_by_origin": {"auto": 1, "manual": 1, "escalated": 1, "kernel meter": 1},
            "total_unbanned": 1, "banned": [], "packets": 10, "bytes": 600, "kernel_errors": 1,
            "findtime": 600, "maxretry": 5, "bantime": 3600, "evicted": 1, "sources": []
        }],
        "kernel_errors": 1, "history_errors": 1, "history_waiting": 0, "history_dropped": 0
    }))
    .expect("a status as the control protocol carries it")
}

/// (metric names, label names) of one scrape of the real endpoint.
fn exported() -> (BTreeSet<String>, BTreeSet<String>) {
    let listener = metrics::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let st = busy_status();
    std::thread::spawn(move || metrics::serve(listener, move || Some(st.clone())));
    let mut c = TcpStream::connect(addr).unwrap();
    write!(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 200 OK"), "{answer}");
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    let (mut names, mut labels) = (BTreeSet::new(), BTreeSet::new());
    for line in body.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let end = line.find(['{', ' ']).unwrap();
        names.insert(line[..end].to_string());
        if let Some(set) = line[end..].strip_prefix('{').and_then(|s| s.split_once('}')) {
            for pair in set.0.split("\",") {
                labels.insert(pair.split_once('=').unwrap().0.to_string());
            }
        }
    }
    (names, labels)
}

/// Words PromQL and Grafana's queries may use besides metrics and labels.
const PROMQL: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "topk",
    "bottomk",
    "by",
    "without",
    "rate",
    "irate",
    "increase",
    "delta",
    "deriv",
    "sort",
    "sort_desc",
    "abs",
    "clamp_min",
    "label_values",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "offset",
    "time",
    "vector",
    "changes",
    "resets",
    "absent",
];

/// The identifiers of a PromQL expression: strings, range selectors
/// (`[5m]`), Grafana variables (`$jail`, `$__rate_interval`) and numbers
/// left out.
fn words(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
            }
            '[' => {
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                }
            }
            '$' => {
                while chars.peek().is_some_and(|d| d.is_alphanumeric() || *d == '_') {
                    chars.next();
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut w = c.to_string();
                while let Some(&d) = chars
                    .peek()
                    .filter(|d| d.is_ascii_alphanumeric() || **d == '_' || **d == ':')
                {
                    w.push(d);
                    chars.next();
                }
                out.push(w);
            }
            c if c.is_ascii_digit() => {
                while chars.peek().is_some_and(|d| d.is_ascii_alphanumeric() || *d == '.') {
                    chars.next();
                }
            }
            _ => {}
        }
    }
    out
}

/// Every query of the dashboard: (where, PromQL or Grafana query), and
/// every legend's `{{label}}`s.
fn queries(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            let here = m
                .get("title")
                .or(m.get("name"))
                .and_then(Value::as_str)
                .map_or(at.to_string(), |t| t.to_string());
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr" | "definition", Value::String(q)) => out.push((here.clone(), q.clone())),
                    ("query", Value::String(q)) if m.get("type") == Some(&Value::from("query")) => {
                        out.push((here.clone(), q.clone()))
                    }
                    ("legendFormat", Value::String(l)) => {
                        for label in l.split("{{").skip(1).filter_map(|s| s.split_once("}}")) {
                            out.push((here.clone(), format!("legend {}", label.0.trim())));
                        }
                    }
                    _ => queries(x, &here, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| queries(x, at, out)),
        _ => {}
    }
}

#[test]
fn every_dashboard_query_names_only_exported_metrics_and_labels() {
    let (names, labels) = exported();
    assert!(names.len() >= 14, "the scrape gave {names:?}");
    assert!(labels.contains("jail") && labels.contains("origin"), "{labels:?}");
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/nftban.json")).expect("the dashboard is JSON");
    let mut qs = Vec::new();
    queries(&dashboard, "dashboard", &mut qs);
    assert!(qs.len() >= 15, "{qs:?}");
    let mut wrong = Vec::new();
    let mut used = BTreeSet::new();
    for (at, q) in &qs {
        if let Some(label) = q.strip_prefix("legend ") {
            if !labels.contains(label) {
                wrong.push(format!("{at}: legend label {label} is not exported"));
            }
            continue;
        }
        let ws = words(q);
        if !ws.iter().any(|w| names.contains(w)) {
            wrong.push(format!("{at}: {q}: names no nftban metric"));
        }
        for w in ws {
            if names.contains(&w) {
                used.insert(w);
            } else if !labels.contains(&w) && !PROMQL.contains(&w.as_str()) {
                wrong.push(format!(
                    "{at}: {q}: `{w}` is neither an exported metric, nor a label, nor PromQL"
                ));
            }
        }
    }
    assert_eq!(wrong, Vec::<String>::new());
    // What the dashboard is for: jails, bans by origin, failures, source
    // health, dropped packets, kernel errors.
    for m in [
        "nftban_banned",
        "nftban_bans_by_origin_total",
        "nftban_failures_total",
        "nftban_lines_read_total",
        "nftban_dropped_packets_total",
        "nftban_kernel_errors_total",
    ] {
        assert!(used.contains(m), "the dashboard shows no {m}");
    }
}

/// The checker itself catches a misspelt metric and an unknown label.
#[test]
fn the_query_reader_sees_metrics_labels_and_skips_the_rest() {
    assert_eq!(
        words(r#"sum by (origin) (rate(nftban_bans_by_origin_total{jail=~"$jail"}[$__rate_interval])) > 0.5"#),
        ["sum", "by", "origin", "rate", "nftban_bans_by_origin_total", "jail"]
    );
    assert_eq!(
        words("increase(nftban_kernel_errors_total[1h])"),
        ["increase", "nftban_kernel_errors_total"]
    );
    let (names, _) = exported();
    assert!(!names.contains("nftban_ban_total") && names.contains("nftban_bans_total"));
}
