//! `nftban status --json` read into the daemon's own types
//! (`nftban::control::protocol`), the stable contract of docs/cli.md: a
//! test reads `st.currently_banned`, and every read checks that the CLI's
//! output still has the contract's fields with their types. Tests of the
//! field names themselves read the raw JSON ([`Setup::status_json`]).

pub use nftban::control::protocol::{JailStatus, Status};

use super::{stdout, wait_for, Setup};

impl Setup {
    /// `nftban status --json` (every jail), or `None` while no daemon
    /// answers: what [`Daemon::start`](super::Daemon::start) waits for, so
    /// every start also checks the all-jails form of the contract.
    pub fn try_status(&self) -> Option<Status> {
        self.status_of(&["status", "--json"])
    }

    /// `nftban status JAIL --json`.
    pub fn jail_status(&self, jail: &str) -> JailStatus {
        self.try_jail_status(jail)
            .unwrap_or_else(|| panic!("no status for jail {jail}: is the daemon running, is the jail configured?"))
    }

    /// `nftban status JAIL --json`, or `None` while no daemon answers or
    /// it has no such jail.
    pub fn try_jail_status(&self, jail: &str) -> Option<JailStatus> {
        self.status_of(&["status", jail, "--json"])
    }

    /// Wait for `what`: until `jail`'s status satisfies `until`; returns
    /// that status.
    pub fn wait_jail(&self, jail: &str, what: &str, until: impl Fn(&JailStatus) -> bool) -> JailStatus {
        wait_for(what, || self.try_jail_status(jail).filter(&until))
    }

    /// `nftban ARGS --json` untyped, for tests of the JSON field names.
    pub fn status_json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.push("--json");
        let o = self.cli_ok(&args);
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", stdout(&o)))
    }

    /// `None` if the command fails (no daemon yet, no such jail); a panic
    /// if it succeeds with what is not a `T`: the contract is broken.
    fn status_of<T: serde::de::DeserializeOwned>(&self, args: &[&str]) -> Option<T> {
        let o = self.cli(args);
        if !o.status.success() {
            return None;
        }
        Some(parse(&format!("nftban {}", args.join(" ")), &stdout(&o)))
    }
}

/// `text` as a `T`; a panic that says what printed it and what it was.
pub fn parse<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> T {
    serde_json::from_str(text).unwrap_or_else(|e| {
        panic!(
            "{what} printed what is not a {} ({e}):\n{text}",
            std::any::type_name::<T>()
        )
    })
}

/// The banned addresses and prefixes of a jail, in status order.
pub fn banned_ips(st: &JailStatus) -> Vec<&str> {
    st.banned.iter().map(|b| b.ip.as_str()).collect()
}
