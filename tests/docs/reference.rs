//! docs/config-reference.md, generated from the config types: one table
//! per section with every key, what it holds, its default and the field's
//! doc comment (through the JSON Schema, `super::keys`). A test fails when
//! the committed page is not what the types give;
//! `NFTBAN_WRITE_SCHEMAS=1 cargo test --test integration docs::` rewrites
//! it. docs/config.md stays the page that explains; this one is the list.

use super::keys::{keys, Key};
use super::markdown::root;

/// A description on one table line: line breaks as spaces, `|` escaped.
fn cell(text: &str) -> String {
    text.replace("\n\n", " ").replace('\n', " ").replace('|', "\\|")
}

fn row(k: &Key, shown: &str) -> String {
    let mut what = k.kind.clone();
    if !k.values.is_empty() {
        let vals: Vec<String> = k.values.iter().map(|v| format!("`{v}`")).collect();
        what = format!("{what}: {}", vals.join(", "));
    }
    // The schema states serde's defaults; those nftban applies itself are
    // in the doc comment, as `(default X)`.
    let default = match &k.default {
        Some(d) => format!("`{}`", d.as_str().map_or(d.to_string(), str::to_string)),
        None => k
            .description
            .split_once("(default ")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map_or(String::new(), |(d, _)| d.to_string()),
    };
    format!(
        "| `{shown}` | {} | {} | {} |\n",
        cell(&what),
        cell(&default),
        cell(&k.description)
    )
}

/// The page, as the types give it.
pub fn generate() -> String {
    let keys = keys();
    let mut out = String::from(
        "# Configuration reference\n\n\
         <!-- Generated from src/config/file.rs by tests/docs/reference.rs: do not edit; \
         NFTBAN_WRITE_SCHEMAS=1 cargo test --test integration docs:: rewrites it. -->\n\n\
         Every key of `/etc/nftban/nftban.yaml`, generated from the types that read the file (their \
         doc comments are the descriptions), so it lists exactly the keys nftban takes: any other \
         key is an error naming its file, line and column. [config.md](config.md) explains the \
         keys with examples; [config.schema.json](config.schema.json) is the same list for editors. \
         Durations are a number of seconds or units `s`, `m`, `h`, `d`, `w` summed (`1h30m`), at \
         most 10 years. A default in the description column is applied by nftban when the key is \
         left out.\n",
    );
    // The top level first (sections point to their tables), then one table
    // per section.
    let top: Vec<&Key> = keys.iter().filter(|k| !k.path.contains('.')).collect();
    out.push_str("\n## Top level\n\n| key | holds | default | meaning |\n|---|---|---|---|\n");
    for k in top {
        out.push_str(&row(k, &k.path));
    }
    for section in keys.iter().filter(|k| k.section) {
        let children: Vec<&Key> = keys
            .iter()
            .filter(|k| {
                k.path.strip_prefix(&format!("{}.", section.path)).is_some_and(|rest| {
                    let rest = rest.strip_prefix("NAME.").unwrap_or(rest);
                    !rest.contains('.')
                })
            })
            .collect();
        if children.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "\n## `{}`\n\n{}\n\n",
            section.path,
            cell(&section.description)
        ));
        out.push_str("| key | holds | default | meaning |\n|---|---|---|---|\n");
        for k in children {
            out.push_str(&row(k, &k.path));
        }
    }
    out
}

#[test]
fn config_reference_is_the_generated_one() {
    let path = root().join("docs/config-reference.md");
    let text = generate();
    if std::env::var_os("NFTBAN_WRITE_SCHEMAS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "docs/config-reference.md is not what the config types generate; rewrite it with \
         NFTBAN_WRITE_SCHEMAS=1 cargo test --test integration docs::"
    );
}

/// Every key is on the page, once, in its section's table.
#[test]
fn config_reference_lists_every_key_once() {
    let text = generate();
    for k in keys() {
        let n = text.matches(&format!("| `{}` |", k.path)).count();
        assert_eq!(n, 1, "{} is listed {n} times", k.path);
    }
}
