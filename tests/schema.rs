//! The JSON Schemas in docs/ are generated from the serde types that read
//! the files (schemars): field doc comments are the descriptions and
//! `deny_unknown_fields` is `additionalProperties: false`. A test fails
//! when the committed schemas differ from what the types generate;
//! `NFTBAN_WRITE_SCHEMAS=1 cargo test --test integration schema::` writes
//! them. The shipped rulesets, the default config and README's example
//! config validate against them (with the `jsonschema` crate), and what
//! the parser refuses (typos, empty rules, bad durations) does not.

use std::path::{Path, PathBuf};

use nftban::config::{Config, FileConfig};
use nftban::matcher::Ruleset;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Doc comments are wrapped at 100 columns; a description is read as
/// running text, so single line breaks become spaces (paragraphs stay).
fn unwrap_descriptions(schema: &mut Schema) {
    if let Some(Value::String(d)) = schema.get_mut("description") {
        *d = d
            .split("\n\n")
            .map(|p| p.replace('\n', " "))
            .collect::<Vec<_>>()
            .join("\n\n");
    }
    schemars::transform::transform_subschemas(&mut unwrap_descriptions, schema);
}

/// The schema of `T` as the file holds it (draft 2020-12, pretty-printed).
pub(crate) fn generate<T: JsonSchema>() -> String {
    let schema = SchemaSettings::draft2020_12()
        .with_transform(unwrap_descriptions)
        .into_generator()
        .into_root_schema_for::<T>();
    serde_json::to_string_pretty(&schema).unwrap() + "\n"
}

/// The schemas the types generate: (file in docs/, text).
fn generated() -> [(&'static str, String); 2] {
    [
        ("config.schema.json", generate::<FileConfig>()),
        ("ruleset.schema.json", generate::<Ruleset>()),
    ]
}

#[test]
fn committed_schemas_are_the_generated_ones() {
    let write = std::env::var_os("NFTBAN_WRITE_SCHEMAS").is_some_and(|v| v == "1");
    for (name, text) in generated() {
        let path = root().join("docs").join(name);
        if write {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "docs/{name} is not what the types generate; rewrite it with \
             NFTBAN_WRITE_SCHEMAS=1 cargo test --test integration schema::"
        );
    }
}

/// Editors take the schemas: each names its draft and is valid under it.
#[test]
fn schemas_are_valid_draft_2020_12() {
    for (name, text) in generated() {
        let schema: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        jsonschema::meta::validate(&schema).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(schema["additionalProperties"], false, "{name}");
    }
}

fn validator(name: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("docs").join(name)).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// The schema's complaints about a YAML document, with their paths.
fn errors(v: &jsonschema::Validator, yaml: &str) -> Vec<String> {
    let doc: Value = serde_yaml_ng::from_str(yaml).unwrap();
    v.iter_errors(&doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn shipped_rulesets_validate() {
    let v = validator("ruleset.schema.json");
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("rulesets")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(errors(&v, &text), Vec::<String>::new(), "{}", path.display());
            n += 1;
        }
    }
    assert!(n >= 2);
}

/// What the schema refuses in a ruleset, the parser refuses too.
#[test]
fn bad_rulesets_are_refused_by_schema_and_parser() {
    let v = validator("ruleset.schema.json");
    let good = "name: x\nfailregex: ['fail <HOST>$']\n";
    assert_eq!(errors(&v, good), Vec::<String>::new());
    Ruleset::parse("x.yaml", good).unwrap();
    for bad in [
        "name: x\nfailregx: ['fail <HOST>$']\n",
        "name: x\nfailregex: []\n",
        "failregex: ['fail <HOST>$']\n",
        "name: x\nfailregex: ['fail <HOST>$']\nprefilter: ''\n",
        "name: x\nfailregex: ['fail <HOST>$']\ndatepattern: [rfc]\n",
        "name: x\nfailregex: ['fail <HOST>$']\nexamples: [{line: a, hots: 192.0.2.1}]\n",
        "name: x\nfailregex: ['fail <HOST>$']\nmodes: {aggressive: {failregx: []}}\n",
    ] {
        assert!(!errors(&v, bad).is_empty(), "the schema takes {bad:?}");
        assert!(Ruleset::parse("x.yaml", bad).is_err(), "the parser takes {bad:?}");
    }
}

fn load(text: &str) -> Result<Config, nftban::config::ConfigError> {
    Config::from_text(Path::new("/etc/nftban/nftban.yaml"), text)
}

/// The config of README's "A minimal config" section.
fn readme_config() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let from = readme.find("A minimal config").unwrap();
    let start = readme[from..].find("```yaml\n").unwrap() + from + "```yaml\n".len();
    let end = readme[start..].find("```").unwrap() + start;
    readme[start..end].to_string()
}

#[test]
fn default_and_readme_configs_validate() {
    let v = validator("config.schema.json");
    let default = std::fs::read_to_string(root().join("deploy/nftban.yaml")).unwrap();
    for (what, text) in [("deploy/nftban.yaml", default), ("README", readme_config())] {
        assert_eq!(errors(&v, &text), Vec::<String>::new(), "{what}");
        load(&text).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

/// What the schema refuses in a config, `nftban check` refuses too.
#[test]
fn bad_configs_are_refused_by_schema_and_parser() {
    let v = validator("config.schema.json");
    let good = "jails:\n  sshd:\n    ruleset: sshd\n    files: [/var/log/auth.log]\n";
    assert_eq!(errors(&v, good), Vec::<String>::new());
    load(good).unwrap();
    for bad in [
        "sockett: /x\n",
        "jails:\n  sshd: {ruleset: sshd, files: [/var/log/auth.log], maxretri: 3}\n",
        "jails:\n  1x: {ruleset: sshd, files: [/var/log/auth.log]}\n",
        "jails:\n  sshd: {ruleset: sshd, files: [auth.log]}\n",
        "jails:\n  sshd: {ruleset: sshd, journal: [ssh.service]}\n",
        "jails:\n  sshd: {ruleset: sshd, files: [/var/log/auth.log], maxretry: 0}\n",
        "jails:\n  sshd: {files: [/var/log/auth.log]}\n",
        "log: {level: loud}\n",
        "log: {target: syslogd}\n",
        "defaults: {bantime: 10x}\n",
        "defaults: {findtime: 1h30}\n",
        "defaults: {ignoreip: [not-an-ip]}\n",
        "defaults: {bantime_increment: {factor: 0.5, max: 1d}}\n",
        "defaults: {ipv6_escalation: {prefix: 128, threshold: 3}}\n",
        "nftables: {table: 'my table'}\n",
        "nftables: {action: explode}\n",
        "nftables: {hooks: []}\n",
        "nftables: {hooks: [input, input]}\n",
        "nftables: {hooks: [output]}\n",
        "recidive: {findtime: 1d, maxretry: 1, bantime: 1w}\n",
        "metrics: {}\n",
    ] {
        assert!(!errors(&v, bad).is_empty(), "the schema takes {bad:?}");
        assert!(load(bad).is_err(), "the parser takes {bad:?}");
    }
}
