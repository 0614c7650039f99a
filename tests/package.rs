//! The Debian package as an admin meets it: built by deploy/build-deb.sh,
//! checked by lintian, installed with `dpkg -i` into a clean Debian 12 root
//! (mmdebstrap, cached as a tarball), its files, man pages, completion and
//! unit checked, booted with systemd-nspawn (nftban.service active with
//! metrics on), then removed and purged with nothing left. Also `nftban
//! teardown`, which the package's prerm runs, against the kernel.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// The clean root, kept between runs (building it downloads ~60 MB). The
/// name carries the package list: a different list makes a new tarball.
const ROOT_CACHE: &str = "/var/cache/nftban-test/bookworm-minbase-systemd-man-db-bash-completion-nftables.tar.zst";
/// systemd to boot, man-db for `man`, bash-completion for its loader,
/// nftables to read the kernel's tables back inside the container.
const INCLUDE: &str = "systemd,man-db,bash-completion,nftables";

const MMDEBSTRAP: Need = Need {
    program: "mmdebstrap",
    package: "mmdebstrap",
};
const NSPAWN: Need = Need {
    program: "systemd-nspawn",
    package: "systemd-container",
};
const LINTIAN: Need = Need {
    program: "lintian",
    package: "lintian",
};
const ZSTD: Need = Need {
    program: "zstd",
    package: "zstd",
};

/// The package's prerm runs this: refused while the daemon runs (it would
/// create the table again), then the table is gone with its bans, then
/// there is nothing to do (exit 1).
#[test]
fn teardown_deletes_the_table_and_refuses_while_the_daemon_runs() {
    kernel_test!();
    let ns = NetNs::create("teardown").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    s.cli_ok(&["ban", "203.0.113.5"]);
    let teardown = || {
        run(ns
            .command(env!("CARGO_BIN_EXE_nftban"))
            .args(["teardown", "--config"])
            .arg(&s.config))
    };
    let o = teardown();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("the daemon is running"), "{}", stderr(&o));
    assert_eq!(set_addrs(&ns, "manual_v4"), ["203.0.113.5"]);
    assert!(d.stop());

    let o = teardown();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "table inet nftban deleted");
    let tables = stdout(&nft(&ns, &["list", "tables"]));
    assert!(!tables.contains("nftban"), "{tables}");

    let o = teardown();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "table inet nftban is not there");
}

/// Issue 14's "Done when": the whole life of the package on a clean
/// Debian 12. Builds a release binary (fat LTO: minutes, once per run).
#[test]
fn debian_package_installs_boots_removes_and_purges_cleanly() {
    kernel_test!(MMDEBSTRAP, NSPAWN, LINTIAN, ZSTD);
    let deb = build_deb();
    lintian_has_no_errors(&deb);
    let root = clean_root();
    let root = root.path();
    std::fs::copy(&deb, root.join("tmp/nftban.deb")).unwrap();
    // For the upgrade (the same version again) in the booted container.
    std::fs::copy(&deb, root.join("root/nftban.deb")).unwrap();
    let o = in_root(root, "dpkg -i /tmp/nftban.deb");
    assert!(o.status.success(), "dpkg -i: {}{}", stdout(&o), stderr(&o));
    installed_as_documented(root);
    boot_remove_and_purge(root);
}

/// deploy/build-deb.sh, as a packager runs it; the .deb it made.
fn build_deb() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = run(Command::new("bash").arg(dir.join("deploy/build-deb.sh")));
    assert!(o.status.success(), "build-deb.sh: {}{}", stdout(&o), stderr(&o));
    let name = format!("nftban_{}-1_", env!("CARGO_PKG_VERSION"));
    let debs = dir.join("target/debian");
    std::fs::read_dir(&debs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let f = p.file_name().unwrap().to_string_lossy();
            f.starts_with(&name) && f.ends_with(".deb")
        })
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .unwrap_or_else(|| panic!("no {name}*.deb in {}", debs.display()))
}

/// lintian ends with no error and no warning: the tags overridden in
/// deploy/debian/lintian-overrides are explained in deploy/README.md.
fn lintian_has_no_errors(deb: &Path) {
    let o = run(Command::new("lintian").args(["--fail-on", "error"]).arg(deb));
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "lintian: {out}");
    assert!(!out.lines().any(|l| l.starts_with("E:")), "lintian: {out}");
    // deploy/README.md says no warning is left (the overridden ones explained).
    assert!(!out.lines().any(|l| l.starts_with("W:")), "lintian: {out}");
}

/// A fresh root from the cached tarball, made once with mmdebstrap.
fn clean_root() -> tempfile::TempDir {
    let cache = Path::new(ROOT_CACHE);
    if !cache.exists() {
        std::fs::create_dir_all(cache.parent().unwrap()).unwrap();
        let partial = cache.with_extension("partial.tar.zst");
        let o = run(Command::new("mmdebstrap")
            .args(["--quiet", "--variant=minbase"])
            .arg(format!("--include={INCLUDE}"))
            .arg("bookworm")
            .arg(&partial));
        assert!(o.status.success(), "mmdebstrap: {}", stderr(&o));
        std::fs::rename(&partial, cache).unwrap();
    }
    // Not under /tmp: it may be a small tmpfs, and the root is ~180 MB.
    let root = tempfile::Builder::new()
        .prefix("nftban-root-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let o = run(Command::new("tar")
        .args(["--zstd", "-xpf"])
        .arg(cache)
        .arg("-C")
        .arg(root.path()));
    assert!(o.status.success(), "tar: {}", stderr(&o));
    root
}

/// `sh -c SCRIPT` chrooted into `root` (no mounts needed for these).
fn in_root(root: &Path, script: &str) -> std::process::Output {
    run(Command::new("chroot")
        .arg(root)
        .args(["/bin/sh", "-c", script])
        .env("LANG", "C.UTF-8")
        .env_remove("LC_ALL"))
}

/// The same, which must succeed; its stdout.
fn in_root_ok(root: &Path, script: &str) -> String {
    let o = in_root(root, script);
    assert!(o.status.success(), "{script}: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

/// Files where README.md and deploy/README.md say they are; `--help`,
/// both man pages, the bash completion and the unit work.
fn installed_as_documented(root: &Path) {
    for f in [
        "usr/bin/nftban",
        "lib/systemd/system/nftban.service",
        "etc/nftban/nftban.yaml",
        "usr/share/man/man1/nftban.1.gz",
        "usr/share/man/man1/nftban-status.1.gz",
        "usr/share/man/man1/nftban-teardown.1.gz",
        "usr/share/bash-completion/completions/nftban",
        "usr/share/zsh/vendor-completions/_nftban",
        "usr/share/fish/vendor_completions.d/nftban.fish",
        "usr/share/doc/nftban/copyright",
        "usr/share/doc/nftban/changelog.Debian.gz",
        "usr/share/doc/nftban/rulesets/asterisk.yaml",
        // Enabled at install, so a boot (or `systemctl start`) runs it.
        "etc/systemd/system/multi-user.target.wants/nftban.service",
    ] {
        // symlink_metadata: the enabling link points at /lib/..., which
        // only resolves inside the root.
        assert!(std::fs::symlink_metadata(root.join(f)).is_ok(), "/{f} is not installed");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.join("etc/nftban/nftban.yaml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the config is not 0600");
    let copyright = std::fs::read_to_string(root.join("usr/share/doc/nftban/copyright")).unwrap();
    assert!(copyright.contains("/usr/share/common-licenses/GPL-3"), "{copyright}");
    assert!(copyright.len() < 4000, "the full GPL text is back in copyright");
    // Stripped: the release profile's debug info stays out of the package.
    let bin = std::fs::metadata(root.join("usr/bin/nftban")).unwrap().len();
    assert!(bin < 20_000_000, "usr/bin/nftban is {bin} bytes: not stripped?");

    let help = in_root_ok(root, "nftban --help");
    assert!(
        help.contains("Usage: nftban <COMMAND>") && help.contains("status"),
        "{help}"
    );
    let man = in_root_ok(root, "MANPAGER=cat MANWIDTH=100 man nftban");
    assert!(
        man.contains("nftban-status(1)") && man.contains("SEE ALSO"),
        "man nftban: {man}"
    );
    let man = in_root_ok(root, "MANPAGER=cat MANWIDTH=100 man nftban-status");
    assert!(
        man.contains("--json") && man.contains("nftban-status"),
        "man nftban-status: {man}"
    );
    // bash-completion's loader finds the script by the command's name.
    let complete = |line: &str| {
        in_root_ok(
            root,
            &format!(
                "bash -c '. /usr/share/bash-completion/bash_completion
                 COMP_LINE=\"{line}\"; COMP_POINT=${{#COMP_LINE}}; read -a COMP_WORDS <<< \"$COMP_LINE\"
                 COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
                 _completion_loader nftban
                 f=$(complete -p nftban | sed -E \"s/.* -F ([^ ]+) .*/\\1/\")
                 \"$f\" nftban \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"
                 printf \"%s\\n\" \"${{COMPREPLY[@]}}\"'"
            ),
        )
    };
    let words = complete("nftban st");
    assert_eq!(words.trim(), "status", "completion of `nftban st`: {words}");
    let words = complete("nftban status --js");
    assert_eq!(words.trim(), "--json", "completion of `nftban status --js`: {words}");

    // As systemd itself would: the binaries it runs and the man pages it
    // names must exist (`man:nftban(1)` failed before there was a page).
    let o = run(Command::new("systemd-nspawn")
        .args(["-q", "--register=no", "--keep-unit", "-D"])
        .arg(root)
        .args(["systemd-analyze", "verify", "/lib/systemd/system/nftban.service"]));
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "systemd-analyze verify: {out}");
    assert!(
        !out.contains("nftban.service"),
        "systemd-analyze verify complains: {out}"
    );
}

/// Runs at the container's boot, after nftban.service: writes what it
/// sees into /results, removes and purges the package, powers off.
const BOOT_SCRIPT: &str = r#"#!/bin/bash
r=/results
exec 2>"$r/trace"
set -x
systemctl is-active nftban >"$r/active"
systemctl is-enabled nftban >"$r/enabled"
nftban status >"$r/status" 2>&1
nftban ban 203.0.113.9 >"$r/ban" 2>&1
timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9477; printf "GET /metrics HTTP/1.0\r\n\r\n" >&3; cat <&3' >"$r/metrics" 2>&1
nft list set inet nftban manual_v4 >"$r/set" 2>&1
dpkg -L nftban >"$r/files"
dpkg -i /root/nftban.deb >"$r/upgrade" 2>&1; echo $? >"$r/upgrade.rc"
systemctl is-active nftban >"$r/active-upgraded"
nft list set inet nftban manual_v4 >"$r/set-upgraded" 2>&1
dpkg -r nftban >"$r/remove" 2>&1; echo $? >"$r/remove.rc"
systemctl is-active nftban >"$r/active-removed"
nft list tables >"$r/tables-removed" 2>&1
ls -d /var/lib/nftban >"$r/state-removed" 2>&1
dpkg -P nftban >"$r/purge" 2>&1; echo $? >"$r/purge.rc"
for p in /var/lib/nftban /run/nftban /var/log/nftban /etc/nftban; do [ -e "$p" ] && echo "$p"; done >"$r/left"
journalctl -b --no-pager >"$r/journal" 2>&1
touch "$r/done"
systemctl --no-block poweroff
"#;

const BOOT_UNIT: &str = "[Unit]
Description=nftban package test
After=nftban.service
[Service]
Type=oneshot
ExecStart=/bin/bash /usr/local/sbin/nftban-package-test
[Install]
WantedBy=multi-user.target
";

/// Boot the root with metrics on; nftban.service runs, bans, serves
/// metrics; an upgrade keeps it running with its bans; removal stops it
/// and deletes the table; purge leaves nothing.
fn boot_remove_and_purge(root: &Path) {
    let config = root.join("etc/nftban/nftban.yaml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("metrics: {listen: \"127.0.0.1:9477\"}\n");
    std::fs::write(&config, text).unwrap();
    std::fs::write(root.join("usr/local/sbin/nftban-package-test"), BOOT_SCRIPT).unwrap();
    std::fs::write(root.join("etc/systemd/system/nftban-package-test.service"), BOOT_UNIT).unwrap();
    std::os::unix::fs::symlink(
        "/etc/systemd/system/nftban-package-test.service",
        root.join("etc/systemd/system/multi-user.target.wants/nftban-package-test.service"),
    )
    .unwrap();
    let results = tempfile::tempdir().unwrap();
    let o = run(Command::new("timeout")
        .args(["300", "systemd-nspawn", "-q", "-b", "--register=no", "--keep-unit"])
        .args(["--console=pipe", "--private-network", "-D"])
        .arg(root)
        .arg(format!("--bind={}:/results", results.path().display())));
    let read = |f: &str| std::fs::read_to_string(results.path().join(f)).unwrap_or_default();
    let boot = format!(
        "{}{}\n--- trace\n{}\n--- journal\n{}",
        stdout(&o),
        stderr(&o),
        read("trace"),
        read("journal")
    );
    assert!(
        results.path().join("done").exists(),
        "the boot script did not finish: {boot}"
    );
    assert_eq!(read("active").trim(), "active", "nftban.service: {boot}");
    assert_eq!(read("enabled").trim(), "enabled", "{boot}");
    assert!(read("status").contains("manual"), "nftban status: {}", read("status"));
    assert!(read("ban").contains("203.0.113.9"), "nftban ban: {}", read("ban"));
    assert!(
        read("set").contains("203.0.113.9"),
        "the ban is not in the kernel: {}",
        read("set")
    );
    let metrics = read("metrics");
    assert!(
        metrics.contains("200 OK") && metrics.contains("nftban_bans_total"),
        "metrics: {metrics}"
    );

    // An upgrade restarts the daemon and keeps the table with its bans.
    assert_eq!(read("upgrade.rc").trim(), "0", "dpkg -i again: {}", read("upgrade"));
    assert_eq!(read("active-upgraded").trim(), "active", "after the upgrade: {boot}");
    assert!(
        read("set-upgraded").contains("203.0.113.9"),
        "upgrade lost the ban: {}",
        read("set-upgraded")
    );

    assert_eq!(read("remove.rc").trim(), "0", "dpkg -r: {}", read("remove"));
    assert_ne!(read("active-removed").trim(), "active", "still running after removal");
    assert!(
        !read("tables-removed").contains("nftban"),
        "table left: {}",
        read("tables-removed")
    );
    assert_eq!(
        read("state-removed").trim(),
        "/var/lib/nftban",
        "removal (not purge) keeps the history"
    );
    assert_eq!(read("purge.rc").trim(), "0", "dpkg -P: {}", read("purge"));
    assert_eq!(read("left").trim(), "", "left after purge");

    // Every file the package had is gone (folders it shares are not its).
    let files = read("files");
    assert!(files.contains("/usr/bin/nftban"), "dpkg -L: {files}");
    let left: Vec<&str> = files
        .lines()
        .filter(|f| f.contains("nftban") && root.join(f.trim_start_matches('/')).exists())
        .collect();
    assert!(left.is_empty(), "left after purge: {left:?}");
    let wants = root.join("etc/systemd/system/multi-user.target.wants/nftban.service");
    assert!(std::fs::symlink_metadata(wants).is_err(), "the unit is still enabled");
}
