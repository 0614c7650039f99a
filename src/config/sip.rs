//! The `sip:` section (the SIP kernel meter) made into a [`SipSpec`]:
//! at the top level or inside one jail, its jail found or made, its
//! defaults filled, every value checked at its key.

use super::*;

/// The SIP meter's spec from the top-level `sip:` or a jail's (at most one
/// of them), and whether its jail is to be made. `err` places a problem at
/// a key path.
pub(super) fn build_sip(
    top: Option<SipConfig>,
    in_jails: Vec<(String, SipConfig)>,
    jails: &[Jail],
    def_bantime: Duration,
    def_ignore: &[IpNet],
    err: &dyn Fn(&[&str], Problem) -> ConfigError,
) -> Result<(Option<SipSpec>, bool), ConfigError> {
    // (key path, the jail it names, the section)
    let mut all: Vec<(Vec<String>, Option<String>, SipConfig)> = Vec::new();
    if let Some(t) = top {
        all.push((vec!["sip".into()], None, t));
    }
    for (name, c) in in_jails {
        if c.jail.is_some() {
            return Err(err(&["jails", &name, "sip", "jail"], Problem::SipJailKey));
        }
        all.push((vec!["jails".into(), name.clone(), "sip".into()], Some(name), c));
    }
    if all.len() > 1 {
        let keys: Vec<&str> = all[1].0.iter().map(String::as_str).collect();
        let first = all[0].0.join(".");
        return Err(err(&keys, Problem::SipTwice { first }));
    }
    let Some((keys, of_jail, c)) = all.pop() else {
        return Ok((None, false));
    };
    if let Some(j) = jails.iter().find(|j| SIP_SET_STEMS.contains(&j.name.as_str())) {
        return Err(err(&["jails", &j.name], Problem::SipSetName(j.name.clone())));
    }
    fn at<'a>(keys: &'a [String], key: &'a str) -> Vec<&'a str> {
        keys.iter().map(String::as_str).chain([key]).collect()
    }
    let at = |key: &'static str| at(&keys, key);
    let (jail, implicit) = match (of_jail, &c.jail) {
        (Some(name), _) => (name, false),
        (None, Some(name)) => {
            if !jails.iter().any(|j| &j.name == name) {
                return Err(err(&at("jail"), Problem::SipNoJail(name.clone())));
            }
            (name.clone(), false)
        }
        (None, None) => (SIP_JAIL.to_string(), !jails.iter().any(|j| j.name == SIP_JAIL)),
    };
    let owner = jails.iter().find(|j| j.name == jail);
    let rate = match &c.rate {
        Some(text) => text
            .parse::<Rate>()
            .map_err(|()| err(&at("rate"), Problem::SipRate(text.clone())))?,
        None => "20/second".parse().expect("a valid rate"),
    };
    let burst = c.burst.unwrap_or(rate.count.saturating_mul(2));
    if burst == 0 {
        return Err(err(&at("burst"), Problem::Zero));
    }
    let bantime = c
        .bantime
        .map(|d| d.0)
        .unwrap_or_else(|| owner.map_or(def_bantime, |j| j.bantime));
    if bantime.is_zero() {
        return Err(err(&at("bantime"), Problem::ZeroDuration));
    }
    let ipv6_prefix = c.ipv6_prefix.unwrap_or(64);
    if !(1..=128).contains(&ipv6_prefix) {
        return Err(err(&at("ipv6_prefix"), Problem::SipPrefix(ipv6_prefix)));
    }
    let size = c.size.unwrap_or(65_536);
    if !(1..=MAX_SIP_SIZE).contains(&size) {
        return Err(err(&at("size"), Problem::SipSize(size)));
    }
    let ports = c.ports.unwrap_or_default();
    let udp = ports.udp.unwrap_or_else(|| vec![5060]);
    let tcp = ports.tcp.unwrap_or_else(|| vec![5060]);
    let tls = ports.tls.unwrap_or_else(|| vec![5061]);
    for (key, list) in [("udp", &udp), ("tcp", &tcp), ("tls", &tls)] {
        if list.contains(&0) {
            let mut k = at("ports");
            k.push(key);
            return Err(err(&k, Problem::SipPort));
        }
    }
    if udp.is_empty() && tcp.is_empty() && tls.is_empty() {
        return Err(err(&at("ports"), Problem::SipNoPort));
    }
    let trusted = owner.map_or_else(|| def_ignore.to_vec(), |j| j.ignoreip.clone());
    let spec = SipSpec {
        jail,
        udp,
        tcp,
        tls,
        rate,
        burst,
        bantime,
        ipv6_prefix,
        size,
        trusted,
    };
    Ok((Some(spec), implicit))
}
