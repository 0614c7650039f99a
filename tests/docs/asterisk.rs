//! docs/protecting-asterisk.md: its `nftban test` commands (the blocks
//! marked `<!-- asterisk: run -->`) run as written, in a temporary folder
//! with the built binary first on `PATH`, and each line of the output the
//! page shows after them (the `text` block that follows; `...` stands for
//! lines left out) is in what they print, in that order. No root needed:
//! `nftban test` needs no daemon.

use std::process::Command;

use super::markdown::{blocks, read};
use crate::support::{run, stderr, stdout};

#[test]
fn protecting_asterisk_commands_print_what_the_page_shows() {
    let page = read("docs/protecting-asterisk.md");
    let bs = blocks(&page);
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_nftban")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut n = 0;
    for (i, b) in bs.iter().enumerate() {
        if b.marker.as_deref() != Some("asterisk: run") {
            continue;
        }
        n += 1;
        let shown = bs
            .get(i + 1)
            .filter(|s| s.lang == "text")
            .unwrap_or_else(|| panic!("docs/protecting-asterisk.md:{}: no text block shows the output", b.line));
        let dir = tempfile::tempdir().unwrap();
        let o = run(Command::new("bash")
            .args(["-e", "-c", &b.text])
            .current_dir(dir.path())
            .env("PATH", &path));
        assert!(
            o.status.success(),
            "docs/protecting-asterisk.md:{}: {}",
            b.line,
            stderr(&o)
        );
        let out = stdout(&o);
        let mut rest = out.as_str();
        for line in shown.text.lines().filter(|l| l.trim() != "...") {
            match rest.find(line) {
                Some(at) => rest = &rest[at + line.len()..],
                None => panic!(
                    "docs/protecting-asterisk.md:{}: the page shows {line:?}, the command prints:\n{out}",
                    shown.line
                ),
            }
        }
    }
    assert_eq!(n, 3, "the page's commands were not found");
}
