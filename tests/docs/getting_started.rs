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

use super::markdown::{read, root};
use super::session::{self, Step};
use crate::support::*;

const PAGE: &str = "docs/getting-started.md";

/// The page's steps.
fn steps() -> Vec<Step> {
    session::steps(PAGE, "getting-started", &["run", "install", "start", "not run"])
}

/// The one script: the private mounts, each step, the daemon stopped.
fn script(work: &Path) -> String {
    let mut s = session::prelude(work);
    for (i, st) in steps().iter().enumerate() {
        let body = match st.kind.as_str() {
            "run" => st.block.text.clone(),
            "install" => format!(
                "mkdir -p /etc/nftban && cp {} /etc/nftban/nftban.yaml\n",
                root().join("deploy/nftban.yaml").display()
            ),
            "start" => session::START.to_string(),
            _ => continue,
        };
        s.push_str(&session::step(i, &body));
    }
    s.push_str(session::END);
    s
}

/// The page's steps cover what it promises: an install, a config checked,
/// a start, a ban seen in status and in the kernel set, an unban.
#[test]
fn getting_started_has_the_steps_it_promises() {
    let steps = steps();
    let kinds: Vec<&str> = steps.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "install").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "start").count(), 1, "{kinds:?}");
    let run: String = steps
        .iter()
        .filter(|s| s.kind == "run")
        .map(|s| s.block.text.as_str())
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
    let (out, all) = session::run_script("getting-started", work.path(), &script(work.path()));
    let mut banned_seen = false;
    let mut edits = Vec::new();
    for (i, st) in steps().iter().enumerate() {
        if st.kind == "not run" {
            continue;
        }
        let said = session::output(&out, &all, i, PAGE, st);
        match &st.shown {
            Some(shown) if session::rewritable(shown) => edits.push((shown.line, said.to_string())),
            Some(shown) => session::assert_shows(PAGE, shown, said, false),
            None => {}
        }
        let b = &st.block;
        if b.text.contains("nft list set inet nftban asterisk_v4") && !b.text.contains("unban") {
            assert!(
                said.contains("203.0.113.7"),
                "{PAGE}:{}: the kernel set does not hold the address:\n{all}",
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
    session::rewrite(PAGE, &edits);
}
