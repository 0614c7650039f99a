//! docs/getting-started.md, followed literally: its marked shell blocks
//! run, in page order, in one bash inside a private network namespace and
//! a private mount namespace in which /etc, /var and /run are overlays on
//! a tmpfs (the page writes /etc/nftban/nftban.yaml and
//! /var/log/asterisk/messages as an admin would; the host's files and
//! ruleset are never touched). It must end with the attacker's address in
//! the kernel set, then lifted by the page's `nftban unban`.
//!
//! Markers, on the line before a block:
//! - `<!-- getting-started: run -->`: run as written;
//! - `<!-- getting-started: install -->`: the package install; replaced by
//!   the built binary put first on `PATH`, and the folder and default config
//!   the package installs (/etc/nftban/nftban.yaml from deploy/);
//! - `<!-- getting-started: start -->`: `systemctl` (no systemd here);
//!   replaced by `nftban run` in the background, as the unit's `ExecStart`
//!   runs it, after the unit's `ExecStartPre` (`nftban check`), waiting until
//!   the daemon answers `nftban status`;
//! - `<!-- getting-started: not run -->`: shown only (another service's
//!   setup, an alternative).
//!
//! The page's "How this page is tested" section says the same.

use std::path::Path;

use super::markdown::{blocks, read, root, Block};
use crate::support::*;

/// The marked shell blocks of the page, each with its marker's word and
/// the output the page shows after it (the `text` block that follows, if
/// any).
fn steps() -> Vec<(String, Block, Option<Block>)> {
    let page = read("docs/getting-started.md");
    let all = blocks(&page);
    let mut out = Vec::new();
    for (i, b) in all.iter().enumerate() {
        if b.lang != "sh" {
            continue;
        }
        let kind = b
            .marker
            .as_deref()
            .and_then(|m| m.strip_prefix("getting-started: "))
            .unwrap_or_else(|| {
                panic!(
                    "docs/getting-started.md:{}: a sh block without a getting-started marker",
                    b.line
                )
            })
            .to_string();
        assert!(
            ["run", "install", "start", "not run"].contains(&kind.as_str()),
            "docs/getting-started.md:{}: marker {kind:?}",
            b.line
        );
        let shown = all.get(i + 1).filter(|n| n.lang == "text").cloned();
        out.push((kind, b.clone(), shown));
    }
    out
}

/// A line with its figures made alike (`59m57s left` and `59m58s left`,
/// dates, counts): what the page shows is one run, the test another.
fn alike(line: &str) -> String {
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

/// The one script: the private mounts, then each step between markers in
/// the output (`=== STEP n rc=CODE`), then the daemon stopped.
fn script(work: &Path) -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_nftban")).parent().unwrap();
    let mut s = format!(
        "set -u\n\
         W={work}\n\
         mount -t tmpfs tmpfs $W/ovl\n\
         for d in etc var run; do mkdir -p $W/ovl/$d.up $W/ovl/$d.work; \
           mount -t overlay overlay -o lowerdir=/$d,upperdir=$W/ovl/$d.up,workdir=$W/ovl/$d.work /$d || exit 99; done\n\
         export PATH={bin}:$PATH\n\
         cd $W\n",
        work = work.display(),
        bin = bin.display(),
    );
    for (i, (kind, b, _)) in steps().iter().enumerate() {
        let body = match kind.as_str() {
            "run" => b.text.clone(),
            "install" => format!(
                "mkdir -p /etc/nftban && cp {} /etc/nftban/nftban.yaml\n",
                root().join("deploy/nftban.yaml").display()
            ),
            "start" => "nftban check --config /etc/nftban/nftban.yaml || exit 1\n\
                        (nftban run --config /etc/nftban/nftban.yaml >$W/daemon.log 2>&1 & echo $! >$W/daemon.pid)\n\
                        for i in $(seq 300); do nftban status >/dev/null 2>&1 && break; sleep 0.1; done\n\
                        nftban status >/dev/null\n"
                .to_string(),
            _ => continue,
        };
        s.push_str(&format!(
            "echo '=== STEP {i} BEGIN'\n( set -e\n{body})\necho \"=== STEP {i} rc=$?\"\n"
        ));
    }
    s.push_str("[ -f $W/daemon.pid ] && kill $(cat $W/daemon.pid) && while kill -0 $(cat $W/daemon.pid) 2>/dev/null; do sleep 0.1; done\necho '=== DAEMON LOG'; cat $W/daemon.log 2>/dev/null\n");
    s
}

/// The page's steps cover what it promises: an install, a config checked,
/// a start, a ban seen in status and in the kernel set, an unban.
#[test]
fn getting_started_has_the_steps_it_promises() {
    let steps = steps();
    let kinds: Vec<&str> = steps.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "install").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "start").count(), 1, "{kinds:?}");
    let run: String = steps
        .iter()
        .filter(|(k, _, _)| k == "run")
        .map(|(_, b, _)| b.text.as_str())
        .collect();
    for needed in [
        "/etc/nftban/nftban.yaml",
        "nftban check",
        "nftban status",
        "nft list set inet nftban",
        "nftban unban",
    ] {
        assert!(run.contains(needed), "no step runs {needed}");
    }
    let page = read("docs/getting-started.md");
    assert!(
        page.contains("## How this page is tested"),
        "the page says how it is tested"
    );
}

#[test]
fn getting_started_ends_with_a_kernel_ban() {
    kernel_test!();
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("ovl")).unwrap();
    let script_path = work.path().join("page.sh");
    std::fs::write(&script_path, script(work.path())).unwrap();
    let ns = NetNs::create("getting-started").unwrap();
    let o = run(ns
        .command("unshare")
        .args(["-m", "--propagation", "private", "bash"])
        .arg(&script_path));
    let out = stdout(&o);
    let all = format!("{out}\n--- stderr:\n{}", stderr(&o));
    let steps = steps();
    let mut banned_seen = false;
    for (i, (kind, b, shown)) in steps.iter().enumerate() {
        if kind == "not run" {
            continue;
        }
        let begin = format!("=== STEP {i} BEGIN\n");
        let Some(from) = out.find(&begin) else {
            panic!("step {i} (line {}) did not run:\n{all}", b.line)
        };
        let text = &out[from + begin.len()..];
        let end = text
            .find("=== STEP ")
            .unwrap_or_else(|| panic!("step {i} did not end:\n{all}"));
        let rc = text[end..].lines().next().unwrap();
        assert_eq!(
            rc,
            format!("=== STEP {i} rc=0"),
            "docs/getting-started.md:{}: the step failed:\n{all}",
            b.line
        );
        let said = &text[..end];
        // What the page shows after the step is what it printed (figures
        // aside), line by line, in order.
        if let Some(shown) = shown {
            let printed: Vec<String> = said.lines().map(alike).collect();
            let mut at = 0;
            for line in shown.text.lines().filter(|l| *l != "...") {
                let want = alike(line);
                match printed[at..].iter().position(|p| *p == want) {
                    Some(k) => at += k + 1,
                    None => panic!(
                        "docs/getting-started.md:{}: the page shows {line:?}; the step printed:\n{said}",
                        shown.line
                    ),
                }
            }
        }
        if b.text.contains("nft list set inet nftban asterisk_v4") && !b.text.contains("unban") {
            assert!(
                said.contains("203.0.113.7"),
                "docs/getting-started.md:{}: the kernel set does not hold the address:\n{all}",
                b.line
            );
            banned_seen = true;
        }
        if b.text.contains("nftban unban 203.0.113.7") {
            assert!(banned_seen, "the unban comes before the ban was seen");
            assert!(said.contains("unbanned 203.0.113.7"), "{all}");
        }
    }
    assert!(banned_seen, "no step showed the kernel set:\n{all}");
    assert!(out.contains("=== DAEMON LOG"), "{all}");
}
