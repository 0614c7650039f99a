//! A page followed as an admin would: its marked `sh` blocks run in order
//! in one bash, inside a private network namespace and a private mount
//! namespace in which /etc, /var and /run are overlays on a tmpfs (the
//! page may write /etc/nftban/nftban.yaml or /var/log/..., the host's files
//! and ruleset are never touched), with the built `nftban` first on
//! `PATH`. Each step's output is cut out by markers, and the output the
//! page shows after a step (the `text` block that follows it) must be what
//! the step printed, line by line in order, figures aside. Used by
//! `getting_started` and `troubleshooting`.

use std::path::Path;

use super::markdown::{blocks, read, Block};
use crate::support::*;

/// One `sh` block of a page, with its marker's word and the output the
/// page shows after it.
pub struct Step {
    pub kind: String,
    pub block: Block,
    pub shown: Option<Block>,
}

/// The `sh` blocks of `page`, each marked `<!-- PREFIX: KIND -->` with a
/// KIND of `kinds`.
pub fn steps(page: &str, prefix: &str, kinds: &[&str]) -> Vec<Step> {
    let all = blocks(&read(page));
    let mut out = Vec::new();
    for (i, b) in all.iter().enumerate() {
        if b.lang != "sh" {
            continue;
        }
        let kind = b
            .marker
            .as_deref()
            .and_then(|m| m.strip_prefix(&format!("{prefix}: ")))
            .unwrap_or_else(|| panic!("{page}:{}: a sh block without a `{prefix}:` marker", b.line))
            .to_string();
        assert!(kinds.contains(&kind.as_str()), "{page}:{}: marker {kind:?}", b.line);
        let shown = all.get(i + 1).filter(|n| n.lang == "text").cloned();
        out.push(Step {
            kind,
            block: b.clone(),
            shown,
        });
    }
    out
}

/// A line with its figures made alike (`59m57s left` and `59m58s left`,
/// dates, counts): what the page shows is one run, the test another.
pub fn alike(line: &str) -> String {
    let mut out = String::new();
    for c in line.chars() {
        if c.is_ascii_digit() {
            if !out.ends_with('0') {
                out.push('0');
            }
        } else {
            out.push(c);
        }
    }
    out.trim_end().to_string()
}

/// The script's start: the private mounts, `PATH`, `$W` the work folder.
pub fn prelude(work: &Path) -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_nftban")).parent().unwrap();
    format!(
        "set -u\n\
         W={work}\n\
         mount -t tmpfs tmpfs $W/ovl\n\
         for d in etc var run; do mkdir -p $W/ovl/$d.up $W/ovl/$d.work; \
           mount -t overlay overlay -o lowerdir=/$d,upperdir=$W/ovl/$d.up,workdir=$W/ovl/$d.work /$d || exit 99; done\n\
         export PATH={bin}:$PATH\n\
         cd $W\n",
        work = work.display(),
        bin = bin.display(),
    )
}

/// Step `i` of the script: `body` in a subshell with `set -e`, between
/// markers that carry its exit code.
pub fn step(i: usize, body: &str) -> String {
    format!("echo '=== STEP {i} BEGIN'\n( set -e\n{body})\necho \"=== STEP {i} rc=$?\"\n")
}

/// Start the daemon as the unit does (`ExecStartPre`, `ExecStart`), its
/// log in `$W/daemon.log`, and wait until it answers `nftban status`.
pub const START: &str = "nftban check --config /etc/nftban/nftban.yaml >/dev/null || exit 1\n\
    (nftban run --config /etc/nftban/nftban.yaml >$W/daemon.log 2>&1 & echo $! >$W/daemon.pid)\n\
    for i in $(seq 300); do nftban status >/dev/null 2>&1 && break; sleep 0.1; done\n\
    nftban status >/dev/null\n";

/// The script's end: the daemon stopped, its log printed.
pub const END: &str = "[ -f $W/daemon.pid ] && kill $(cat $W/daemon.pid) && while kill -0 $(cat $W/daemon.pid) 2>/dev/null; do sleep 0.1; done\n\
    echo '=== DAEMON LOG'; cat $W/daemon.log 2>/dev/null\n";

/// Run `script` (from [`prelude`] on) in a fresh network namespace and a
/// private mount namespace: (stdout, stdout and stderr for messages).
pub fn run_script(tag: &str, work: &Path, script: &str) -> (String, String) {
    std::fs::create_dir_all(work.join("ovl")).unwrap();
    let path = work.join("page.sh");
    std::fs::write(&path, script).unwrap();
    let ns = NetNs::create(tag).unwrap();
    let o = run(ns
        .command("unshare")
        .args(["-m", "--propagation", "private", "bash"])
        .arg(&path));
    let out = stdout(&o);
    let all = format!("{out}\n--- stderr:\n{}", stderr(&o));
    (out, all)
}

/// What step `i` printed; it must have run and succeeded.
pub fn output<'a>(out: &'a str, all: &str, i: usize, page: &str, s: &Step) -> &'a str {
    let begin = format!("=== STEP {i} BEGIN\n");
    let Some(from) = out.find(&begin) else {
        panic!("{page}:{}: the step did not run:\n{all}", s.block.line)
    };
    let text = &out[from + begin.len()..];
    let end = text
        .find("=== STEP ")
        .unwrap_or_else(|| panic!("{page}:{}: the step did not end:\n{all}", s.block.line));
    let rc = text[end..].lines().next().unwrap();
    assert_eq!(
        rc,
        format!("=== STEP {i} rc=0"),
        "{page}:{}: the step failed:\n{all}",
        s.block.line
    );
    &text[..end]
}

/// The lines of `shown` (but `...`) are among `printed`'s, in order,
/// figures aside; with `within`, a shown line may be part of a printed
/// one (a log line shown without its time stamp and fields).
pub fn assert_shows(page: &str, shown: &Block, printed: &str, within: bool) {
    let printed: Vec<String> = printed.lines().map(alike).collect();
    let mut at = 0;
    for line in shown.text.lines().filter(|l| l.trim() != "...") {
        let want = alike(line);
        let hit = printed[at..]
            .iter()
            .position(|p| if within { p.contains(&want) } else { *p == want });
        match hit {
            Some(k) => at += k + 1,
            None => panic!(
                "{page}:{}: the page shows {line:?}; what ran printed:\n{}",
                shown.line,
                printed.join("\n")
            ),
        }
    }
}

#[test]
fn alike_lines_differ_only_in_figures() {
    assert_eq!(alike("203.0.113.7 (59m57s left)"), alike("203.0.113.7 (59m58s left)"));
    assert_ne!(alike("Total failed: 3"), alike("Total failures: 3"));
}

/// `NFTBAN_WRITE_SCHEMAS=1`, as for the schemas and generated pages: the
/// outputs a page shows are rewritten with what its steps print, so a
/// change of output is one command away from the page. Blocks that leave
/// lines out (`...`) are kept, and still compared.
pub fn write_mode() -> bool {
    std::env::var_os("NFTBAN_WRITE_SCHEMAS").is_some_and(|v| v == "1")
}

/// Whether a shown block may be rewritten: it shows the whole output.
pub fn rewritable(shown: &Block) -> bool {
    write_mode() && !shown.text.lines().any(|l| l.trim() == "...")
}

/// Replace the text of the blocks of `page` whose fences open on the
/// given lines.
pub fn rewrite(page: &str, edits: &[(usize, String)]) {
    if edits.is_empty() {
        return;
    }
    let path = super::markdown::root().join(page);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut edits = edits.to_vec();
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (fence, body) in edits {
        // `fence` is 1-based: as a 0-based index it is the first line after it.
        let start = fence;
        let end = start
            + lines[start..]
                .iter()
                .position(|l| l.trim_start().starts_with("```"))
                .unwrap();
        let new: Vec<String> = body
            .trim_end_matches('\n')
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect();
        lines.splice(start..end, new);
    }
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}
