//! The guard of every kernel test: written once as `kernel_test!();` at
//! the top of the test, it takes the test's name from the enclosing
//! function and returns early, saying why, when the test cannot run here
//! (not root, or `ip`/`nft` missing). CI runs as root with the tools, so
//! there every kernel test runs.
//!
//! The decision ([`skip_reason`]) is a pure function of what the machine
//! has, so its tests need neither root nor a machine without the tools.

use std::process::{Command, Stdio};

/// A program a kernel test needs, and the Debian package that has it.
#[derive(Debug, Clone, Copy)]
pub struct Need {
    /// A name looked up on `PATH` (run with `-V`), or an absolute path that
    /// must exist.
    pub program: &'static str,
    pub package: &'static str,
}

/// What every kernel test needs: namespaces and interfaces.
pub const IP: Need = Need {
    program: "ip",
    package: "iproute2",
};
/// What every kernel test needs: reading nftables back.
pub const NFT: Need = Need {
    program: "nft",
    package: "nftables",
};
/// A real journal for the log target and the journal source.
pub const JOURNALD: Need = Need {
    program: "/lib/systemd/systemd-journald",
    package: "systemd",
};

/// Why a kernel test cannot run, or `None` when it can: `root` is whether
/// this process is root, `installed` whether a program is there.
pub fn skip_reason(root: bool, needs: &[Need], installed: impl Fn(&str) -> bool) -> Option<String> {
    if !root {
        return Some("needs root to create private network namespaces (CI runs it as root)".into());
    }
    needs
        .iter()
        .find(|n| !installed(n.program))
        .map(|n| format!("`{}` is not installed (apt-get install {})", n.program, n.package))
}

/// Whether `program` is on this machine: an absolute path exists, a name
/// runs (`NAME -V`).
pub fn installed(program: &str) -> bool {
    if program.starts_with('/') {
        return std::path::Path::new(program).exists();
    }
    Command::new(program)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// True if the kernel test `test` can run here (root, `ip`, `nft` and
/// `extra`); otherwise prints `skipped TEST: why`. Called by
/// [`kernel_test!`].
pub fn kernel_tests_possible(test: &str, extra: &[Need]) -> bool {
    let needs: Vec<Need> = [IP, NFT].iter().chain(extra).copied().collect();
    match skip_reason(nftban::netns::is_root(), &needs, installed) {
        None => true,
        Some(why) => {
            eprintln!("skipped {test}: {why}");
            false
        }
    }
}

/// The enclosing function's path without the crate, as the test harness
/// names a test: `daemon::tells_systemd_when_ready`.
macro_rules! function_name {
    () => {{
        fn f() {}
        let name = std::any::type_name_of_val(&f);
        let name = name.strip_suffix("::f").unwrap_or(name);
        name.split_once("::").map_or(name, |(_krate, path)| path)
    }};
}
pub(crate) use function_name;

/// First line of a kernel test: returns from it, after printing `skipped
/// NAME: why`, unless root with `ip` and `nft` (and the [`Need`]s given,
/// e.g. `kernel_test!(JOURNALD);`).
macro_rules! kernel_test {
    ($($need:expr),* $(,)?) => {
        if !$crate::support::kernel_tests_possible($crate::support::function_name!(), &[$($need),*]) {
            return;
        }
    };
}
pub(crate) use kernel_test;

#[test]
fn function_name_is_the_test_name() {
    assert_eq!(function_name!(), "support::guard::function_name_is_the_test_name");
}

#[test]
fn kernel_tests_skip_unless_root_with_the_tools() {
    let all = |_: &str| true;
    let needs = [IP, NFT, JOURNALD];
    assert_eq!(skip_reason(true, &needs, all), None, "root with every tool runs");
    assert_eq!(
        skip_reason(false, &needs, all).as_deref(),
        Some("needs root to create private network namespaces (CI runs it as root)")
    );
    assert_eq!(
        skip_reason(true, &needs, |p| p != "nft").as_deref(),
        Some("`nft` is not installed (apt-get install nftables)")
    );
    assert_eq!(
        skip_reason(true, &needs, |p| p != JOURNALD.program).as_deref(),
        Some("`/lib/systemd/systemd-journald` is not installed (apt-get install systemd)")
    );
    // Not root wins: that is what most people without the tools are.
    assert!(skip_reason(false, &needs, |_| false).unwrap().starts_with("needs root"));
}

#[test]
fn installed_finds_programs_and_paths() {
    assert!(installed("sh"));
    assert!(installed("/bin/sh"));
    assert!(!installed("nftban-no-such-program"));
    assert!(!installed("/nonexistent/nftban"));
}
