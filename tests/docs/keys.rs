//! Every key of the config file, read from the JSON Schema the config
//! types generate (`crate::schema::generate`), so the list can never
//! miss a field the parser takes: the paths (`jails.NAME.files`), what
//! each holds, its default, its allowed values, and its description (the
//! field's doc comment).

use nftban::config::FileConfig;
use serde_json::Value;

/// One key of the config file.
#[derive(Debug, Clone)]
pub struct Key {
    /// Dotted path; a map key the user names is `NAME` (`jails.NAME.ruleset`).
    pub path: String,
    /// The field's doc comment.
    pub description: String,
    /// What it holds, in words (`duration`, `list of string`, `section`).
    pub kind: String,
    /// The default the schema states, if it states one.
    pub default: Option<Value>,
    /// Allowed values, when they are a fixed list.
    pub values: Vec<String>,
    /// A section: the keys under it are listed too.
    pub section: bool,
}

/// The config schema as the types generate it.
pub fn schema() -> Value {
    serde_json::from_str(&crate::schema::generate::<FileConfig>()).unwrap()
}

/// Every key, parents before their children, in the schema's order.
pub fn keys() -> Vec<Key> {
    let root = schema();
    let mut out = Vec::new();
    walk(&root, &root, "", &mut out);
    out
}

/// The schema a property stands for: `$ref` followed, the non-null
/// branch of an `anyOf` (an `Option`).
fn resolve<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/$defs/").expect("local $ref");
        return resolve(root, &root["$defs"][name]);
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        let some: Vec<&Value> = any
            .iter()
            .filter(|b| b.get("type") != Some(&Value::from("null")))
            .collect();
        if some.len() == 1 {
            return resolve(root, some[0]);
        }
    }
    s
}

/// Fixed values (`oneOf`/`enum` of constants) of a resolved schema.
fn values(s: &Value) -> Vec<String> {
    let show = |v: &Value| v.as_str().map_or(v.to_string(), str::to_string);
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        return e.iter().map(show).collect();
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
        return one.iter().filter_map(|b| b.get("const")).map(show).collect();
    }
    Vec::new()
}

/// What a property holds, in words.
fn kind(root: &Value, s: &Value) -> String {
    if s.get("$ref").and_then(Value::as_str) == Some("#/$defs/duration") {
        return "duration".into();
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        if let Some(b) = any.iter().find(|b| b.get("type") != Some(&Value::from("null"))) {
            return kind(root, b);
        }
    }
    let r = resolve(root, s);
    if r.get("properties").is_some() || r.get("additionalProperties").is_some_and(Value::is_object) {
        return "section".into();
    }
    if !values(r).is_empty() {
        return "one of the values".into();
    }
    let ty = match r.get("type") {
        Some(Value::Array(t)) => t
            .iter()
            .filter(|t| *t != "null")
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        Some(Value::String(t)) => t.clone(),
        _ => String::new(),
    };
    match ty.as_str() {
        "array" => format!("list of {}", kind(root, &r["items"])),
        "integer" | "number" => {
            let (min, max) = (r.get("minimum"), r.get("maximum"));
            match (min, max) {
                (Some(a), Some(b)) => format!("number, {a} to {b}"),
                (Some(a), None) => format!("number, at least {a}"),
                _ => "number".into(),
            }
        }
        "" => "value".into(),
        t => t.into(),
    }
}

fn walk(root: &Value, s: &Value, prefix: &str, out: &mut Vec<Key>) {
    let Some(props) = s.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, p) in props {
        let path = format!("{prefix}{name}");
        let r = resolve(root, p);
        let key = Key {
            path: path.clone(),
            description: p
                .get("description")
                .or(r.get("description"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            kind: kind(root, p),
            default: p.get("default").cloned(),
            values: values(resolve(root, p.get("items").unwrap_or(p))),
            section: false,
        };
        let section = key.kind == "section";
        out.push(Key { section, ..key });
        if r.get("properties").is_some() {
            walk(root, r, &format!("{path}."), out);
        } else if let Some(each) = r.get("additionalProperties").filter(|a| a.is_object()) {
            walk(root, resolve(root, each), &format!("{path}.NAME."), out);
        }
    }
}

/// The path a key written in the docs stands for: a jail's or feed's name
/// becomes `NAME` (`jails.asterisk.files` is `jails.NAME.files`).
pub fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = path.split('.').collect();
    if parts.len() > 1 && (parts[0] == "jails" || parts[0] == "feeds") {
        parts[1] = "NAME";
    }
    parts.join(".")
}

#[test]
fn keys_cover_sections_lists_and_jails() {
    let keys = keys();
    let find = |p: &str| keys.iter().find(|k| k.path == p).unwrap_or_else(|| panic!("{p}"));
    assert!(find("jails").section);
    assert_eq!(find("jails.NAME.files").kind, "list of string");
    assert_eq!(find("defaults.findtime").kind, "duration");
    assert_eq!(find("nftables.hooks").values, ["prerouting", "input", "forward"]);
    assert_eq!(find("nftables.action").values, ["drop", "reject"]);
    assert_eq!(find("log.target").default, Some(Value::from("stderr")));
    assert!(find("sip.ports.udp").kind.starts_with("list of number"));
    assert!(keys.iter().any(|k| k.path == "jails.NAME.sip.rate"));
    assert_eq!(normalise("jails.asterisk.files"), "jails.NAME.files");
}
