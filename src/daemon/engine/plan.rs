//! How a request of bans decided outside a jail's failure count (see
//! `manual.rs`) meets the bans the jail already holds: [`plan`] decides
//! which go in and which running prefixes they replace, so that a new ban
//! never shortens a running one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use ipnet::IpNet;

use crate::address::{is_host, show as show_net, AddrMap};
use crate::config::format_duration;

/// One ban a request puts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Wanted {
    pub(super) net: IpNet,
    /// When it ends: the request's end, or later for a prefix that takes
    /// the place of a longer one.
    pub(super) until: SystemTime,
    /// When it would have ended, if it runs already (it is lengthened).
    pub(super) was: Option<SystemTime>,
}

/// Which bans of a request go in, and which running bans they replace.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// In the request's order, each once, none inside another.
    pub(super) wanted: Vec<Wanted>,
    /// Running prefixes inside a wanted prefix, with their expiry: the
    /// interval set cannot hold both, and the wanted one runs as long.
    pub(super) lifted: BTreeMap<IpNet, SystemTime>,
}

/// Plan a request of bans that end at `until`, without touching the
/// record. The rule: a new ban never shortens a running one.
/// - What a running ban already holds until `until` or later (itself, or
///   a prefix around it) goes to `covered`; so does what a wider prefix of
///   the same request holds.
/// - Addresses live in the hash set and prefixes in the interval set, so
///   an address ban and a prefix around it coexist: a prefix leaves the
///   address bans inside it alone, and an address inside a prefix that
///   ends sooner gets its own ban.
/// - The interval set holds no prefix inside another, so nested prefixes
///   become one, the wider, which runs until the later of their ends: a
///   prefix replaces the running prefixes inside it, and a prefix inside a
///   running one that ends sooner has that one run as long instead.
///
/// "Is a wider prefix of this request wanted" is one lookup per prefix
/// length the request holds, and "which earlier bans of the request lie
/// inside this prefix" a range walk over them in address order (kept once
/// the request has a prefix), so a `ban -` of 100,000 prefixes is not
/// quadratic (it was: 43.6 s for 100,000 /24s, issue 16).
pub(super) fn plan(
    bans: &super::Bans,
    nets: Vec<IpNet>,
    until: SystemTime,
    now: SystemTime,
    covered: &mut Vec<String>,
) -> Plan {
    let mut p = Plan::default();
    // The request's wanted bans in order (`None`: taken over by a wider
    // one), and where each net is.
    let mut wanted: Vec<Option<Wanted>> = Vec::new();
    let mut index: AddrMap<IpNet, usize> = AddrMap::with_capacity_and_hasher(nets.len(), Default::default());
    // Wanted nets per family and prefix length.
    let mut lens = [[0u32; 129]; 2];
    let fam = |net: &IpNet| usize::from(matches!(net, IpNet::V6(_)));
    // The wanted nets in address order, from the first prefix on.
    let mut ordered: Option<BTreeSet<IpNet>> = None;
    for net in nets {
        let in_request = |net: &IpNet| {
            let f = fam(net);
            (0..=net.prefix_len())
                .rev()
                .filter(|&l| lens[f][usize::from(l)] > 0)
                .find_map(|len| Some(IpNet::new(net.addr(), len).ok()?.trunc()).filter(|w| index.contains_key(w)))
        };
        if let Some(cover) = in_request(&net) {
            if cover != net {
                covered.push(format!("{} (inside banned {})", show_net(&net), show_net(&cover)));
            }
            continue;
        }
        // The net's own ban, looked up once: a bulk ban of addresses into
        // a jail without prefixes needs no other lookup.
        let own = bans.get(&net);
        let cover = match own {
            Some(t) if t >= until => Some(net),
            _ if bans.has_prefixes() => bans.outlasting(&net, until),
            _ => None,
        };
        if let Some(cover) = cover {
            covered.push(if let (true, Some(end)) = (cover == net, own) {
                let left = end.duration_since(now).unwrap_or_default();
                format!("{} (already banned, {} left)", show_net(&net), format_duration(left))
            } else {
                format!("{} (inside banned {})", show_net(&net), show_net(&cover))
            });
            continue;
        }
        let mut w = Wanted { net, until, was: None };
        if !is_host(&net) {
            if let Some((wider, _)) = bans.wider_prefix(&net, now) {
                covered.push(format!(
                    "{} (inside banned {}, which now runs as long)",
                    show_net(&net),
                    show_net(&wider)
                ));
                w.net = wider;
            }
            for (inner, end) in bans.prefixes_inside(&w.net, now) {
                w.until = w.until.max(end);
                p.lifted.insert(inner, end);
            }
            // Earlier bans of this request inside it: it holds them for as
            // long; those that ran already are replaced like the others.
            let target = w.net;
            let ordered = ordered.get_or_insert_with(|| index.keys().copied().collect());
            let (first, last) = super::bans::span(&target);
            let inside: Vec<IpNet> = ordered
                .range(first..=last)
                .filter(|o| **o != target && target.contains(*o))
                .copied()
                .collect();
            for o_net in inside {
                ordered.remove(&o_net);
                let Some(o) = index.remove(&o_net).and_then(|k| wanted[k].take()) else {
                    continue;
                };
                lens[fam(&o.net)][usize::from(o.net.prefix_len())] -= 1;
                w.until = w.until.max(o.until);
                if !is_host(&o.net) {
                    if let Some(was) = o.was {
                        p.lifted.insert(o.net, was);
                    }
                }
            }
        }
        w.was = if w.net == net { own } else { bans.get(&w.net) }.filter(|&t| t > now);
        if let std::collections::hash_map::Entry::Vacant(slot) = index.entry(w.net) {
            slot.insert(wanted.len());
            lens[fam(&w.net)][usize::from(w.net.prefix_len())] += 1;
            if let Some(ordered) = ordered.as_mut() {
                ordered.insert(w.net);
            }
            wanted.push(Some(w));
        }
    }
    p.wanted = wanted.into_iter().flatten().collect();
    // Named once each, with the prefix that in the end takes their place.
    for (inner, _) in p.lifted.iter().filter(|(_, &end)| end > until) {
        if let Some(outer) = p.wanted.iter().find(|w| w.net.contains(inner)) {
            covered.push(format!(
                "{} (banned for longer: {} now runs as long)",
                show_net(inner),
                show_net(&outer.net)
            ));
        }
    }
    p
}
