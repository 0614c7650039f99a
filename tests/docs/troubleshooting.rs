//! docs/troubleshooting.md, run: the page's config on a daemon in private
//! namespaces (`super::session`), the situations it explains made with
//! real log lines, then every command of the page run and its output
//! compared with the one shown. The page's "How this page is tested" says
//! the same.

use super::markdown::{blocks, read};
use super::session::{self, Step};
use crate::support::*;

const PAGE: &str = "docs/troubleshooting.md";

const SQLITE3: Need = Need {
    program: "sqlite3",
    package: "sqlite3",
};

/// An Asterisk registration failure of `addr` dated `date` (a shell
/// expression), as the page's situations need.
fn failure(addr: &str, date: &str) -> String {
    format!(
        "echo \"[{date}] NOTICE[31015]: chan_sip.c:25824 in handle_request_register: Registration from '<sip:100@192.0.2.1>' failed for '{addr}:5060' - Wrong password\" >> /var/log/asterisk/messages\n"
    )
}

/// What happens before step `st`: the situation its output shows.
fn before(i: usize, st: &Step, config: &str) -> String {
    let now = "$(date '+%Y-%m-%d %H:%M:%S')";
    let t = &st.block.text;
    if i == 0 {
        return format!(
            "mkdir -p /etc/nftban /var/log/asterisk && touch /var/log/asterisk/messages\n\
             cat > /etc/nftban/nftban.yaml <<'EOF'\n{config}EOF\n\
             export NFTBAN_LOG=debug\n{start}\
             echo \"[{now}] VERBOSE[1234] chan_sip.c: Registration from '<sip:100@192.0.2.1>' succeeded\" >> /var/log/asterisk/messages\n\
             {}{}{}\
             for i in $(seq 300); do grep -q 'net=198.51.100.20' $W/daemon.log && break; sleep 0.1; done\n",
            failure("192.0.2.44", now),
            failure("198.51.100.9", "2026-12-01 03:00:00"),
            failure("198.51.100.20", now),
            start = session::START,
        );
    }
    if t.contains("nftban status asterisk") {
        return format!(
            "{0}{0}{0}nftban ban 2001:db8:1::/48 --bantime 1d >/dev/null\n\
             for i in $(seq 300); do grep -q 'Ban 203.0.113.7' $W/daemon.log && break; sleep 0.1; done\n",
            failure("203.0.113.7", now)
        );
    }
    if t.contains("sqlite3") {
        return "for i in $(seq 300); do [ -n \"$(sqlite3 /var/lib/nftban/nftban.db \"SELECT net FROM bans WHERE net LIKE '203.0.113.7/%'\")\" ] && break; sleep 0.1; done\n".into();
    }
    String::new()
}

#[test]
fn troubleshooting_commands_print_what_the_page_shows() {
    kernel_test!(SQLITE3);
    let page = read(PAGE);
    let all_blocks = blocks(&page);
    let config = &all_blocks
        .iter()
        .find(|b| b.lang == "yaml")
        .expect("the page's config")
        .text;
    let steps = session::steps(PAGE, "troubleshooting", &["run", "journal"]);
    assert!(steps.len() >= 7, "{} steps", steps.len());
    let work = tempfile::tempdir().unwrap();
    let mut script = session::prelude(work.path());
    for (i, st) in steps.iter().enumerate() {
        script.push_str(&before(i, st, config));
        let body = match st.kind.as_str() {
            // No journal here: the same search in the daemon's own log.
            "journal" => "grep -F 203.0.113.7 $W/daemon.log\n".to_string(),
            _ => st.block.text.clone(),
        };
        script.push_str(&session::step(i, &body));
    }
    script.push_str(session::END);
    let (out, all) = session::run_script("troubleshooting", work.path(), &script);
    let mut edits = Vec::new();
    for (i, st) in steps.iter().enumerate() {
        let said = session::output(&out, &all, i, PAGE, st);
        let shown = st
            .shown
            .as_ref()
            .unwrap_or_else(|| panic!("{PAGE}:{}: no output shown", st.block.line));
        if st.kind == "run" && session::rewritable(shown) {
            edits.push((shown.line, said.to_string()));
            continue;
        }
        // A log line is shown without its time stamp and fields.
        session::assert_shows(PAGE, shown, said, st.kind == "journal");
    }
    // The debug lines the page shows are the daemon's.
    let log = out.split_once("=== DAEMON LOG").unwrap().1;
    let debug = all_blocks
        .iter()
        .find(|b| b.lang == "text" && b.text.starts_with("DEBUG "))
        .expect("the page's debug lines");
    // Written by two threads (the reader drops old lines, the engine
    // ignoreip): each is in the log, in whatever order.
    for line in debug.text.lines() {
        let block = super::markdown::Block {
            text: format!("{line}\n"),
            ..debug.clone()
        };
        session::assert_shows(PAGE, &block, log, true);
    }
    session::rewrite(PAGE, &edits);
}
