//! `nftban generate`: man pages and shell completions from the clap
//! definition in `cli.rs`, so they never disagree with the binary. The
//! Debian package build (deploy/build-deb.sh) runs the release binary with
//! it and ships what it writes.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::{Cli, Generate};

/// Run `nftban generate WHAT`.
pub fn run(what: Generate) -> anyhow::Result<u8> {
    match what {
        Generate::Man { dir } => {
            for page in man_pages(&dir)? {
                outln!("{}", page.display())?;
            }
        }
        Generate::Completions { shell } => {
            let mut out = std::io::stdout().lock();
            completions(shell, &mut out);
            out.flush()?;
        }
    }
    Ok(0)
}

/// The full command, built: subcommands get their display names
/// (`nftban-status`), which name their man pages.
fn command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Write `nftban.1` and one `nftban-COMMAND.1` per visible subcommand into
/// `dir`; returns the files written. Each subcommand's page points back to
/// nftban(1), and nftban(1) lists them all in SEE ALSO.
pub fn man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let cmd = command();
    let subs: Vec<clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned().collect();
    let mut written = Vec::new();
    let mut write = |page: clap::Command, see_also: Vec<String>| -> anyhow::Result<()> {
        let man = clap_mangen::Man::new(page)
            .manual("nftban manual")
            .source(format!("nftban {}", env!("CARGO_PKG_VERSION")));
        let path = dir.join(man.get_filename());
        let mut text = Vec::new();
        man.render(&mut text)?;
        text.extend_from_slice(see_also_section(&see_also).as_bytes());
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    let mut top: Vec<String> = subs.iter().map(page_name).collect();
    top.push("nft(8)".into());
    write(cmd.clone(), top)?;
    for sub in subs {
        write(sub, vec!["nftban(1)".into()])?;
    }
    Ok(written)
}

/// `nftban-status(1)` for the status subcommand.
fn page_name(sub: &clap::Command) -> String {
    format!("{}(1)", sub.get_display_name().unwrap_or(sub.get_name()))
}

/// A roff SEE ALSO section naming `pages` (as `name(section)`), plus where
/// the longer documentation is installed.
fn see_also_section(pages: &[String]) -> String {
    let refs: Vec<String> = pages
        .iter()
        .map(|p| {
            let (name, rest) = p.split_once('(').unwrap_or((p, ""));
            format!("\\fB{}\\fR({}", name.replace('-', "\\-"), rest)
        })
        .collect();
    format!(
        ".SH \"SEE ALSO\"\n{}\n.PP\nThe full documentation (configuration keys, rulesets, the JSON output) is in\n/usr/share/doc/nftban/.\n",
        refs.join(",\n")
    )
}

/// The completion script of `shell` for every visible subcommand and flag.
/// Hidden subcommands are left out: clap_complete would still offer them
/// (fish lists `generate` among the commands), so the script is made from
/// a copy of the command holding only the visible ones.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    let full = Cli::command();
    let mut cmd = clap::Command::new("nftban")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    clap_complete::generate(shell, &mut cmd, "nftban", out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visible_subcommands() -> Vec<String> {
        command()
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| s.get_name().to_string())
            .collect()
    }

    #[test]
    fn every_subcommand_gets_a_page_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let pages = man_pages(dir.path()).unwrap();
        let subs = visible_subcommands();
        assert!(subs.len() >= 10, "{subs:?}");
        assert_eq!(pages.len(), subs.len() + 1);
        let top = std::fs::read_to_string(dir.path().join("nftban.1")).unwrap();
        assert!(top.starts_with(".ie"), "{top}");
        assert!(top.contains(".TH nftban 1"), "{top}");
        for sub in &subs {
            // troff writes a name's hyphens as `\-` (`nftban\-import\-fail2ban`).
            let esc = sub.replace('-', "\\-");
            let file = dir.path().join(format!("nftban-{sub}.1"));
            let page = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(page.contains(&format!(".TH nftban-{sub} 1")), "{sub}: {page}");
            assert!(
                page.contains(&format!("nftban\\-{esc} \\- ")),
                "{sub}: no NAME line: {page}"
            );
            assert!(page.contains("\\fBnftban\\fR(1)"), "{sub} has no SEE ALSO nftban(1)");
            assert!(
                top.contains(&format!("\\fBnftban\\-{esc}\\fR(1)")),
                "nftban(1) does not list {sub}"
            );
        }
        // The packagers' command stays out of the manual.
        assert!(!dir.path().join("nftban-generate.1").exists());
    }

    #[test]
    fn completions_name_every_subcommand() {
        let subs = visible_subcommands();
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            completions(shell, &mut out);
            let script = String::from_utf8(out).unwrap();
            for sub in &subs {
                assert!(script.contains(sub.as_str()), "{shell}: no {sub}");
            }
            // Flags of subcommands too, e.g. `status --json`.
            assert!(
                script.contains("--json") || script.contains("-l json"),
                "{shell}: no --json"
            );
            assert!(!script.contains("generate"), "{shell} completes the hidden generate");
        }
    }
}
