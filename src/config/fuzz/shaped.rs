//! Configs of the right shape with values good and bad: each key of the
//! config's sections with a value drawn from its good and bad spellings,
//! each mapping in block or flow style at random (`flow` is the chance of
//! flow style), so that the checks after parsing meet every kind of value.

use proptest::prelude::*;

/// A YAML value to render in block or flow style.
#[derive(Debug, Clone)]
enum Node {
    Scalar(String),
    List(Vec<Node>),
    /// Keys and values; flow style (`{k: v}`) when true.
    Map(Vec<(String, Node)>, bool),
}

impl Node {
    /// The node as the value of a key at `indent`: a block map on lines of
    /// its own, anything else on the key's line. Inside a flow collection
    /// everything is flow.
    fn render(&self, indent: usize, flow: bool, out: &mut String) {
        match self {
            Node::Scalar(s) => out.push_str(s),
            Node::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.render(indent, true, out);
                }
                out.push(']');
            }
            Node::Map(entries, as_flow) if *as_flow || flow => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(k);
                    out.push_str(": ");
                    v.render(indent, true, out);
                }
                out.push('}');
            }
            Node::Map(entries, _) => {
                for (k, v) in entries {
                    out.push('\n');
                    out.push_str(&" ".repeat(indent));
                    out.push_str(k);
                    out.push(':');
                    if !matches!(v, Node::Map(_, false)) {
                        out.push(' ');
                    }
                    v.render(indent + 2, false, out);
                }
            }
        }
    }
}

/// A value: one of `good` three times in four, else one of `bad`.
fn scalar(good: &'static [&'static str], bad: &'static [&'static str]) -> BoxedStrategy<Node> {
    prop_oneof![3 => proptest::sample::select(good), 1 => proptest::sample::select(bad)]
        .prop_map(|s| Node::Scalar(s.to_string()))
        .boxed()
}

fn list(good: &'static [&'static str], bad: &'static [&'static str]) -> BoxedStrategy<Node> {
    proptest::collection::vec(scalar(good, bad), 0..3)
        .prop_map(Node::List)
        .boxed()
}

/// A mapping of some of `fields` (key, value), each there with
/// probability `p`, in block or flow style.
fn map(p: f64, fields: Vec<(&'static str, BoxedStrategy<Node>)>) -> BoxedStrategy<Node> {
    let entries: Vec<BoxedStrategy<Option<(String, Node)>>> = fields
        .into_iter()
        .map(|(k, v)| proptest::option::weighted(p, v.prop_map(move |v| (k.to_string(), v))).boxed())
        .collect();
    (entries, any::<bool>())
        .prop_map(|(entries, flow)| Node::Map(entries.into_iter().flatten().collect(), flow))
        .boxed()
}

/// Good and bad values per kind of key.
const DURATIONS: (&[&str], &[&str]) = (
    &["10m", "1h30m", "90", "1w", "1d"],
    &[
        "0",
        "0s",
        "-5",
        "1h30",
        "10x",
        "1.5h",
        "\"\"",
        "99999999999999999999",
        "18446744073709551615",
        "18446744073709551615w",
        "~",
        "[1h]",
    ],
);
const COUNTS: (&[&str], &[&str]) = (
    &["1", "3", "5", "2"],
    &["0", "-1", "4294967296", "1.5", "x", "99999999999999999999999"],
);
const FACTORS: (&[&str], &[&str]) = (
    &["1", "2", "100", "1.5"],
    &["0.5", "101", ".nan", ".inf", "-0", "1e308"],
);
const ADDRESSES: (&[&str], &[&str]) = (
    &[
        "127.0.0.0/8",
        "\"::1\"",
        "192.0.2.1",
        "2001:db8::/32",
        "::ffff:192.0.2.0/120",
    ],
    &[
        "192.0.2.1/24",
        "10.0.0.0/33",
        "2001:db8::/129",
        "nope",
        "\"\"",
        "0.0.0.0/0",
    ],
);
const RULESETS: (&[&str], &[&str]) = (
    &["sshd", "postfix", "dovecot", "kamailio", "freeswitch", "nginx"],
    &[
        "astrisk",
        "/nonexistent/x.yaml",
        "mine.yaml",
        "../x.yml",
        "\"\"",
        "[sshd]",
    ],
);
const MODES: (&[&str], &[&str]) = (&["normal", "aggressive"], &["turbo", "\"\"", "~"]);
const FILES: (&[&str], &[&str]) = (
    &["/var/log/auth.log", "/var/log/*.log", "/var/log/x"],
    &["auth.log", "/var/*/x.log", "\"/var/log/[\"", "\"\"", "/", "~"],
);
const JOURNAL: (&[&str], &[&str]) = (&["_SYSTEMD_UNIT=ssh.service"], &["ssh.service", "=x", "\"\"", "A=b=c"]);
const BOOLS: (&[&str], &[&str]) = (&["true", "false"], &["yes", "1", "~"]);
const NAMES: &[&str] = &[
    "sshd", "asterisk", "web", "manual", "recidive", "9bad", "a b", "x-y_z", "\"\"", "ä",
];
const TABLES: (&[&str], &[&str]) = (&["nftban", "nft-ban"], &["1x", "\"\"", "a.b"]);
const ACTIONS: (&[&str], &[&str]) = (&["drop", "reject"], &["explode", "~"]);
const HOOKS: (&[&str], &[&str]) = (&["input", "forward", "prerouting"], &["output", "input"]);
const TARGETS: (&[&str], &[&str]) = (
    &["stderr", "journald", "syslog", "/var/log/nftban.log"],
    &["file", "\"\""],
);
const LEVELS: (&[&str], &[&str]) = (&["info", "debug"], &["loud", "\"\""]);
const PATHS: (&[&str], &[&str]) = (&["/run/x.sock", "/var/lib/x.db"], &["relative", "\"\"", "/"]);
const PREFIXES: (&[&str], &[&str]) = (&["64", "48", "56"], &["0", "128", "300"]);
const LISTEN: (&[&str], &[&str]) = (&["127.0.0.1:9100", "\"[::1]:9100\""], &["nowhere", "\"\""]);

fn value((good, bad): (&'static [&'static str], &'static [&'static str])) -> BoxedStrategy<Node> {
    scalar(good, bad)
}

fn values((good, bad): (&'static [&'static str], &'static [&'static str])) -> BoxedStrategy<Node> {
    list(good, bad)
}

fn jail() -> BoxedStrategy<Node> {
    let required = (value(RULESETS), values(FILES), any::<bool>());
    let optional = map(
        0.3,
        vec![
            ("mode", value(MODES)),
            ("journal", values(JOURNAL)),
            ("stdin", value(BOOLS)),
            ("enabled", value(BOOLS)),
            ("findtime", value(DURATIONS)),
            ("maxretry", value(COUNTS)),
            ("bantime", value(DURATIONS)),
            ("ignoreip", values(ADDRESSES)),
            ("max_tracked", value(COUNTS)),
            ("bantime_increment", increment()),
            ("ipv6_escalation", escalation()),
        ],
    );
    (required, optional, proptest::bool::weighted(0.05))
        .prop_map(|((ruleset, files, flow), optional, typo)| {
            let mut entries = vec![("ruleset".to_string(), ruleset), ("files".to_string(), files)];
            if let Node::Map(more, _) = optional {
                entries.extend(more);
            }
            if typo {
                entries.push(("frobnicate".into(), Node::Scalar("1".into())));
            }
            Node::Map(entries, flow)
        })
        .boxed()
}

fn increment() -> BoxedStrategy<Node> {
    map(0.8, vec![("factor", value(FACTORS)), ("max", value(DURATIONS))])
}

fn escalation() -> BoxedStrategy<Node> {
    map(0.8, vec![("prefix", value(PREFIXES)), ("threshold", value(COUNTS))])
}

/// A whole config of the right shape; its top level in flow style
/// (`{jails: ...}`, as JSON is) with probability `flow`.
pub(super) fn shaped(flow: f64) -> impl Strategy<Value = String> {
    let jails = proptest::collection::vec((proptest::sample::select(NAMES), jail()), 0..3)
        .prop_map(|j| Node::Map(j.into_iter().map(|(n, j)| (n.to_string(), j)).collect(), false))
        .boxed();
    let top = map(
        0.5,
        vec![
            ("socket", value(PATHS)),
            ("database", value(PATHS)),
            ("history_keep", value(DURATIONS)),
            (
                "log",
                map(0.5, vec![("target", value(TARGETS)), ("level", value(LEVELS))]),
            ),
            (
                "nftables",
                map(
                    0.5,
                    vec![
                        ("table", value(TABLES)),
                        ("action", value(ACTIONS)),
                        ("hooks", values(HOOKS)),
                    ],
                ),
            ),
            (
                "defaults",
                map(
                    0.3,
                    vec![
                        ("findtime", value(DURATIONS)),
                        ("maxretry", value(COUNTS)),
                        ("bantime", value(DURATIONS)),
                        ("ignoreip", values(ADDRESSES)),
                        ("max_tracked", value(COUNTS)),
                        ("bantime_increment", increment()),
                        ("ipv6_escalation", escalation()),
                    ],
                ),
            ),
            ("jails", jails),
            (
                "recidive",
                map(
                    0.8,
                    vec![
                        ("findtime", value(DURATIONS)),
                        ("maxretry", value(COUNTS)),
                        ("bantime", value(DURATIONS)),
                    ],
                ),
            ),
            ("metrics", map(0.9, vec![("listen", value(LISTEN))])),
        ],
    );
    (top, proptest::bool::weighted(flow)).prop_map(|(node, flow)| {
        let mut out = String::new();
        match node {
            Node::Map(entries, _) => Node::Map(entries, flow).render(0, false, &mut out),
            other => other.render(0, false, &mut out),
        }
        out.trim_start().to_string() + "\n"
    })
}
