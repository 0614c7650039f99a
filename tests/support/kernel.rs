//! The kernel's side, as the tests see it: nftban's table and sets read
//! back with `nft -j` (a tool nftban itself never runs), and UDP packets
//! through veth pairs between namespaces.

use std::net::SocketAddr;
use std::process::Output;
use std::time::Duration;

use nftban::netns::{udp_probe, NetNs};

use super::{run, stderr, stdout, wait_for};

/// `nft ARGS` inside `ns`, which must succeed; returns its output.
pub fn nft(ns: &NetNs, args: &[&str]) -> Output {
    let o = run(ns.command("nft").args(args));
    assert!(o.status.success(), "nft {}: {}", args.join(" "), stderr(&o));
    o
}

/// `nft -j list table inet nftban` inside `ns`, through the typed schema
/// of the `nftables` crate.
pub fn nft_table(ns: &NetNs) -> nftables::schema::Nftables<'static> {
    let o = nft(ns, &["-j", "list", "table", "inet", "nftban"]);
    let text: &'static str = Box::leak(stdout(&o).into_boxed_str());
    serde_json::from_str(text).expect("nft JSON")
}

/// How many rules nftban's table holds, all chains.
pub fn rule_count(ns: &NetNs) -> usize {
    nft_table(ns)
        .objects
        .iter()
        .filter(|o| {
            matches!(
                o,
                nftables::schema::NfObject::ListObject(nftables::schema::NfListObject::Rule(_))
            )
        })
        .count()
}

/// One element of a set, from nft's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Address, or prefix as `addr/len`.
    pub addr: String,
    /// The timeout it was added with, seconds.
    pub timeout: Option<u32>,
    /// Seconds left until the kernel removes it.
    pub expires: Option<u64>,
}

/// The elements of a set of nftban's table. Those of a masked set
/// (`<jail>_v4_24`, `<jail>_v6_64`, `<jail>_v4_22`), which nft lists as
/// network addresses, come with their prefix length, as `status` shows them.
pub fn elements(ns: &NetNs, set: &str) -> Vec<Element> {
    let o = nft(ns, &["-j", "list", "set", "inet", "nftban", set]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let len = set
        .rsplit_once('_')
        .filter(|(head, len)| {
            (head.ends_with("_v4") || head.ends_with("_v6"))
                && !len.is_empty()
                && len.bytes().all(|b| b.is_ascii_digit())
        })
        .map(|(_, len)| len);
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|item| item["set"]["elem"].as_array())
        .flatten()
        .map(element)
        .map(|mut e| {
            if let Some(len) = len {
                e.addr = format!("{}/{len}", e.addr);
            }
            e
        })
        .collect()
}

fn element(e: &serde_json::Value) -> Element {
    let plain = |addr: String| Element {
        addr,
        timeout: None,
        expires: None,
    };
    if let Some(s) = e.as_str() {
        return plain(s.to_string());
    }
    if let Some(el) = e.get("elem") {
        return Element {
            timeout: el["timeout"].as_u64().map(|t| t as u32),
            expires: el["expires"].as_u64(),
            ..element(&el["val"])
        };
    }
    if let Some(p) = e.get("prefix") {
        return plain(format!("{}/{}", p["addr"].as_str().unwrap(), p["len"]));
    }
    plain(e.to_string())
}

/// Elements of a set as (address or prefix, timeout seconds).
pub fn set_elements(ns: &NetNs, set: &str) -> Vec<(String, Option<u32>)> {
    elements(ns, set).into_iter().map(|e| (e.addr, e.timeout)).collect()
}

/// The addresses and prefixes in a set.
pub fn set_addrs(ns: &NetNs, set: &str) -> Vec<String> {
    elements(ns, set).into_iter().map(|e| e.addr).collect()
}

/// How long [`passes`] waits for an echo.
pub const PROBE_WAIT: Duration = Duration::from_millis(800);

/// Whether a UDP datagram from the namespace `from` to `to` (where
/// `udp_echo` answers) comes back.
pub fn passes(from: &NetNs, to: SocketAddr) -> bool {
    udp_probe(from, to, PROBE_WAIT).unwrap()
}

/// Wait until `to` answers from `from`: a fresh veth or route can lose the
/// very first packets.
pub fn wait_passes(from: &NetNs, to: SocketAddr) {
    wait_for(&format!("{to} to answer from {}", from.name), || {
        passes(from, to).then_some(())
    });
}

/// A PBX namespace and an attacker's, joined by a veth pair: the PBX is
/// 192.0.2.1/24 on `veth0`, the attacker 192.0.2.66/24 on `veth1`.
pub fn pbx_and_attacker(tag: &str) -> (NetNs, NetNs) {
    let pbx = NetNs::create(&format!("{tag}-pbx")).unwrap();
    let attacker = NetNs::create(&format!("{tag}-atk")).unwrap();
    NetNs::link(&pbx, "192.0.2.1/24", &attacker, "192.0.2.66/24").unwrap();
    (pbx, attacker)
}

/// Run `f` on a thread inside `ns`: sockets it opens belong to `ns`, and
/// keep that namespace once returned.
pub fn in_netns<T: Send>(ns: &NetNs, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|sc| {
        sc.spawn(|| {
            ns.enter().unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

/// The rules of a chain of nftban's table that have a counter: each rule's
/// JSON (to tell them apart: the sets it names) and its packet count.
pub fn rule_counters(ns: &NetNs, chain: &str) -> Vec<(String, u64)> {
    let o = nft(ns, &["-j", "list", "chain", "inet", "nftban", chain]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|item| item.get("rule"))
        .filter_map(|rule| {
            let packets = rule["expr"]
                .as_array()?
                .iter()
                .find_map(|e| e["counter"]["packets"].as_u64())?;
            Some((rule["expr"].to_string(), packets))
        })
        .collect()
}
