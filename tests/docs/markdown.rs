//! Reading the docs as data: fenced blocks with the marker comment before
//! them, table rows, and backticked words. Plain string work, no Markdown
//! parser: the docs are written in a small, regular subset (fences of
//! three backticks, tables with one row a line).

use std::path::{Path, PathBuf};

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the repository, which must exist.
pub fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// One fenced block: its language, text, the line its fence opens on,
/// and the HTML comment on the line before that fence, if any
/// (`<!-- yaml: error -->` gives `yaml: error`).
#[derive(Debug, Clone)]
pub struct Block {
    pub lang: String,
    pub text: String,
    pub line: usize,
    pub marker: Option<String>,
}

/// Every fenced block of `text`, in order.
pub fn blocks(text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim_start();
        if let Some(lang) = l.strip_prefix("```") {
            let marker = (i > 0)
                .then(|| lines[i - 1].trim())
                .and_then(|p| p.strip_prefix("<!--")?.strip_suffix("-->"))
                .map(|m| m.trim().to_string());
            let start = i;
            let mut body = String::new();
            i += 1;
            while i < lines.len() && !lines[i].trim_start().starts_with("```") {
                body.push_str(lines[i]);
                body.push('\n');
                i += 1;
            }
            out.push(Block {
                lang: lang.trim().to_string(),
                text: body,
                line: start + 1,
                marker,
            });
        }
        i += 1;
    }
    out
}

/// The cells of a table row (`| a | b |`), trimmed; `None` for a line
/// that is no row. `\|` inside a cell is kept as `|`.
pub fn row(line: &str) -> Option<Vec<String>> {
    let l = line.trim();
    let inner = l.strip_prefix('|')?.strip_suffix('|')?;
    let mut cells = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cells.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    Some(cells.into_iter().map(|c| c.trim().to_string()).collect())
}

/// The words between backticks in `text`, outside fenced blocks.
pub fn code_spans(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let mut parts = line.split('`');
        parts.next();
        while let (Some(code), Some(_)) = (parts.next(), parts.next()) {
            out.push(code.to_string());
        }
    }
    out
}

/// The Markdown pages of docs/ (sub-folders too) and README.md, as paths
/// relative to the root.
pub fn pages() -> Vec<String> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let rel = format!("{rel}/{name}");
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), &rel, out);
            } else if name.ends_with(".md") {
                out.push(rel);
            }
        }
    }
    let mut out = vec!["README.md".to_string()];
    walk(&root().join("docs"), "docs", &mut out);
    out.sort();
    out
}

#[test]
fn blocks_rows_and_spans_are_read() {
    let text = "a `x.y` b `z`\n<!-- yaml: error -->\n```yaml\nk: 1\n```\n| `a` | b \\| c |\n";
    let b = blocks(text);
    assert_eq!(b.len(), 1);
    assert_eq!(
        (b[0].lang.as_str(), b[0].text.as_str(), b[0].line),
        ("yaml", "k: 1\n", 3)
    );
    assert_eq!(b[0].marker.as_deref(), Some("yaml: error"));
    assert_eq!(code_spans(text), ["x.y", "z", "a"]);
    assert_eq!(row("| `a` | b \\| c |").unwrap(), ["`a`", "b | c"]);
    assert_eq!(row("no row"), None);
}
