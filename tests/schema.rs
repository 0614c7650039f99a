//! The JSON Schemas in docs/ say what the serde structs accept: the shipped
//! rulesets and the default config validate against them, and each object's
//! property list is exactly the field list serde reports for that struct.
//! The validator is the subset of JSON Schema the two schemas use.

use serde_json::Value;

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn schema(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("docs").join(name)).unwrap()).unwrap()
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap()
}

fn resolve<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
    match s.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.strip_prefix("#/$defs/").expect("only local $defs refs");
            &root["$defs"][name]
        }
        None => s,
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "string" => v.is_string(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => panic!("unknown type {t}"),
    }
}

/// Errors of `v` against `s`, with JSON paths.
fn validate(root: &Value, s: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    if s.get("$ref").is_some() {
        validate(root, resolve(root, s), v, path, errs);
    }
    if let Some(Value::Array(alts)) = s.get("anyOf") {
        let fits = |alt: &Value| {
            let mut e = Vec::new();
            validate(root, alt, v, path, &mut e);
            e.is_empty()
        };
        if !alts.iter().any(fits) {
            errs.push(format!("{path}: {v} fits none of anyOf"));
        }
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(t) => type_ok(t, v),
            Value::Array(ts) => ts.iter().any(|t| type_ok(t.as_str().unwrap(), v)),
            _ => panic!("bad type keyword"),
        };
        if !ok {
            errs.push(format!("{path}: not of type {t}"));
            return;
        }
    }
    if let Some(Value::Array(e)) = s.get("enum") {
        if !e.contains(v) {
            errs.push(format!("{path}: {v} not in {e:?}"));
        }
    }
    if let (Some(p), Some(text)) = (s.get("pattern").and_then(Value::as_str), v.as_str()) {
        if !regex::Regex::new(p).unwrap().is_match(text) {
            errs.push(format!("{path}: `{text}` does not match {p}"));
        }
    }
    if let (Some(n), Some(text)) = (s.get("minLength").and_then(Value::as_u64), v.as_str()) {
        if (text.chars().count() as u64) < n {
            errs.push(format!("{path}: shorter than {n}"));
        }
    }
    if let (Some(n), Some(x)) = (s.get("minimum").and_then(Value::as_i64), v.as_i64()) {
        if x < n {
            errs.push(format!("{path}: below {n}"));
        }
    }
    if let Some(items) = v.as_array() {
        if let Some(n) = s.get("minItems").and_then(Value::as_u64) {
            if (items.len() as u64) < n {
                errs.push(format!("{path}: fewer than {n} items"));
            }
        }
        if let Some(is) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate(root, is, item, &format!("{path}[{i}]"), errs);
            }
        }
    }
    if let Some(obj) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(req)) = s.get("required") {
            for r in req {
                if !obj.contains_key(r.as_str().unwrap()) {
                    errs.push(format!("{path}: missing {r}"));
                }
            }
        }
        for (k, val) in obj {
            let p = format!("{path}.{k}");
            if let Some(names) = s.get("propertyNames") {
                validate(root, names, &Value::String(k.clone()), &p, errs);
            }
            match (props.and_then(|ps| ps.get(k)), s.get("additionalProperties")) {
                (Some(ps), _) => validate(root, ps, val, &p, errs),
                (None, Some(Value::Bool(false))) => errs.push(format!("{p}: unknown key")),
                (None, Some(extra @ Value::Object(_))) => validate(root, extra, val, &p, errs),
                _ => {}
            }
        }
    }
}

fn errors(schema: &Value, v: &Value) -> Vec<String> {
    let mut errs = vec![];
    validate(schema, schema, v, "$", &mut errs);
    errs
}

#[test]
fn shipped_rulesets_validate() {
    let s = schema("ruleset.schema.json");
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("rulesets")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let v = yaml(&std::fs::read_to_string(&path).unwrap());
            assert_eq!(errors(&s, &v), Vec::<String>::new(), "{}", path.display());
            n += 1;
        }
    }
    assert!(n >= 2);
    // The validator is not vacuous.
    let bad = yaml("name: x\nfailregex: []\nprefilter: ''\ndatepattern: [rfc]\nexamples: [{line: a}]\nextra: 1\n");
    assert_eq!(errors(&s, &bad).len(), 5, "{:?}", errors(&s, &bad));
}

#[test]
fn default_config_validates() {
    let s = schema("config.schema.json");
    let v = yaml(&std::fs::read_to_string(root().join("deploy/nftban.yaml")).unwrap());
    assert_eq!(errors(&s, &v), Vec::<String>::new());
    let bad = yaml("jails:\n  1x: {ruleset: a, files: [rel], mode: 3}\nlog: {level: loud}\n");
    assert_eq!(errors(&s, &bad).len(), 4, "{:?}", errors(&s, &bad));
}

/// The fields serde knows for a struct, from its "unknown field" error.
fn serde_fields<T: serde::de::DeserializeOwned + std::fmt::Debug>(doc: &str) -> Vec<String> {
    let e = serde_yaml_ng::from_str::<T>(doc).unwrap_err().to_string();
    let list = e
        .split("expected one of ")
        .nth(1)
        .or_else(|| e.split("expected ").nth(1))
        .unwrap();
    let list = list.replace(" or ", ", ");
    let mut out: Vec<String> = list
        .split(", ")
        .map(|f| f.trim_matches(|c: char| c == '`' || c.is_whitespace()).to_string())
        .map(|f| f.split('`').next().unwrap().to_string())
        .filter(|f| !f.is_empty())
        .collect();
    out.sort();
    out
}

fn schema_fields(s: &Value, at: &Value) -> Vec<String> {
    let at = resolve(s, at);
    let mut out: Vec<String> = at["properties"].as_object().unwrap().keys().cloned().collect();
    out.sort();
    out
}

#[test]
fn schemas_list_exactly_the_serde_fields() {
    use nftban::config::{DefaultsConfig, FileConfig, JailConfig, LogConfig, NftablesConfig};
    use nftban::matcher::ruleset::{Example, Mode};
    use nftban::matcher::Ruleset;
    let r = schema("ruleset.schema.json");
    let c = schema("config.schema.json");
    let z = "zzz: 1\n";
    assert_eq!(serde_fields::<Ruleset>(z), schema_fields(&r, &r));
    assert_eq!(
        serde_fields::<Mode>(z),
        schema_fields(&r, &r["properties"]["modes"]["additionalProperties"])
    );
    assert_eq!(
        serde_fields::<Example>(z),
        schema_fields(&r, &r["properties"]["examples"]["items"])
    );
    assert_eq!(serde_fields::<FileConfig>(z), schema_fields(&c, &c));
    assert_eq!(serde_fields::<LogConfig>(z), schema_fields(&c, &c["properties"]["log"]));
    assert_eq!(
        serde_fields::<NftablesConfig>(z),
        schema_fields(&c, &c["properties"]["nftables"])
    );
    assert_eq!(
        serde_fields::<DefaultsConfig>(z),
        schema_fields(&c, &c["properties"]["defaults"])
    );
    assert_eq!(serde_fields::<JailConfig>(z), schema_fields(&c, &c["$defs"]["jail"]));
}
