//! The `fleet:` section made into a [`FleetSpec`]: the node's name, the
//! NATS servers and credentials, the jails that publish and accept, the
//! limits on peers' bans; every value checked at its key.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::*;

/// How this node proves who it is to the NATS servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    None,
    UserPassword {
        user: String,
        password: String,
    },
    Token(String),
    /// A file holding an NKey seed.
    NKeyFile(PathBuf),
    /// A creds file (user JWT and NKey seed).
    CredsFile(PathBuf),
}

/// A validated `fleet:` section.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub servers: Vec<String>,
    /// This node's name (`fleet:<node>` on its peers).
    pub node: String,
    pub credentials: Credentials,
    pub tls: Option<FleetTls>,
    pub stream: String,
    pub subject_prefix: String,
    /// Jails whose bans this node publishes.
    pub publish: Vec<String>,
    /// Jails that take peers' bans, each with the `ignoreip` that binds
    /// them (a peer never overrides it).
    pub accept: BTreeMap<String, Vec<IpNet>>,
    /// How long the stream keeps a message (and its id, for duplicates).
    pub retention: Duration,
    pub replicas: usize,
    /// The widest IPv4 prefix a peer may ban here.
    pub ipv4_prefix: u8,
    /// The widest IPv6 prefix a peer may ban here.
    pub ipv6_prefix: u8,
    /// Bans one peer may make here, sustained.
    pub rate: Rate,
    /// ... and at once.
    pub burst: u32,
}

/// Every jail name a ban may name under `config`, in its order.
fn all_jails(config: &Config) -> Vec<(String, Vec<IpNet>)> {
    let mut out: Vec<(String, Vec<IpNet>)> = config
        .jails
        .iter()
        .map(|j| (j.name.clone(), j.ignoreip.clone()))
        .collect();
    if config.sip_implicit_jail {
        out.push((SIP_JAIL.into(), config.default_ignoreip.clone()));
    }
    if config.recidive.is_some() {
        out.push((RECIDIVE_JAIL.into(), config.default_ignoreip.clone()));
    }
    out.push((MANUAL_JAIL.into(), config.default_ignoreip.clone()));
    out
}

/// The longest ban `config` can make: bantimes, their increments' caps,
/// recidive's, the SIP meter's.
fn longest_bantime(config: &Config) -> Duration {
    let jails = config
        .jails
        .iter()
        .map(|j| j.increment.map_or(j.bantime, |i| i.max.0.max(j.bantime)));
    jails
        .chain([config.default_bantime])
        .chain(config.recidive.map(|r| r.bantime.0))
        .chain(config.sip.as_ref().map(|s| s.bantime))
        .max()
        .unwrap_or(config.default_bantime)
}

/// The host name as a node name: characters a subject token cannot hold
/// become `-`.
fn host_node() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "nftban".into()
    } else {
        name
    }
}

fn valid_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl FleetSpec {
    /// The files the daemon reads to connect (credentials, TLS), each
    /// with its key: `check` warns of one it cannot read.
    pub fn files(&self) -> Vec<(&'static str, &Path)> {
        let mut out = Vec::new();
        match &self.credentials {
            Credentials::NKeyFile(p) => out.push(("fleet.auth.nkey_file", p.as_path())),
            Credentials::CredsFile(p) => out.push(("fleet.auth.creds_file", p.as_path())),
            _ => {}
        }
        if let Some(tls) = &self.tls {
            let keyed = [
                ("fleet.tls.ca_file", &tls.ca_file),
                ("fleet.tls.cert_file", &tls.cert_file),
                ("fleet.tls.key_file", &tls.key_file),
            ];
            out.extend(keyed.into_iter().filter_map(|(k, p)| p.as_deref().map(|p| (k, p))));
        }
        out
    }

    /// The addresses of `servers`, as they resolve now.
    pub fn server_addresses(&self) -> Vec<IpAddr> {
        self.servers.iter().flat_map(|s| server_addresses(s)).collect()
    }

    /// Each of `servers` with its addresses, as they resolve now.
    pub fn each_server(&self) -> impl Iterator<Item = (&str, Vec<IpAddr>)> {
        self.servers.iter().map(|s| (s.as_str(), server_addresses(s)))
    }
}

/// The addresses of one of `fleet.servers` (`nats://host:4222`,
/// `tls://user:pass@[2001:db8::1]:4222`, `host`): its address, or what its
/// name resolves to now (nothing if it does not).
fn server_addresses(url: &str) -> Vec<IpAddr> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let rest = rest.split('/').next().unwrap_or(rest);
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => rest.rsplit_once(':').map_or(rest, |(h, _)| h),
    };
    match host.parse::<IpAddr>() {
        Ok(a) => vec![a],
        Err(_) => std::net::ToSocketAddrs::to_socket_addrs(&(host, 4222))
            .map(|found| found.map(|s| s.ip()).collect())
            .unwrap_or_default(),
    }
}

pub(super) fn build_fleet(
    f: FleetConfig,
    config: &Config,
    err: &dyn Fn(&[&str], Problem) -> ConfigError,
) -> Result<FleetSpec, ConfigError> {
    if f.servers.is_empty() {
        return Err(err(&["fleet", "servers"], Problem::FleetNoServer));
    }
    // As the daemon's client reads them: a server it cannot take left the
    // daemon connecting forever while `check` said OK.
    for s in &f.servers {
        if s.trim().is_empty() {
            return Err(err(
                &["fleet", "servers"],
                Problem::FleetServer(format!("`{s}` is not a NATS server address: it is empty")),
            ));
        }
        if let Err(e) = s.parse::<async_nats::ServerAddr>() {
            return Err(err(
                &["fleet", "servers"],
                Problem::FleetServer(format!("`{s}` is not a NATS server address: {e}")),
            ));
        }
    }
    let node = f.node.unwrap_or_else(host_node);
    if !crate::store::valid_node(&node) {
        return Err(err(&["fleet", "node"], Problem::FleetNode(node)));
    }
    let stream = f.stream.unwrap_or_else(|| "NFTBAN".into());
    if !valid_token(&stream) || stream.len() > 64 {
        return Err(err(&["fleet", "stream"], Problem::FleetName(stream)));
    }
    let subject_prefix = f.subject_prefix.unwrap_or_else(|| "nftban".into());
    if !subject_prefix.split('.').all(valid_token) {
        return Err(err(&["fleet", "subject_prefix"], Problem::FleetName(subject_prefix)));
    }
    let a = f.auth;
    let kinds = [
        a.user.is_some() || a.password.is_some(),
        a.token.is_some(),
        a.nkey_file.is_some(),
        a.creds_file.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        return Err(err(
            &["fleet", "auth"],
            Problem::FleetAuth("give one kind of credentials: user and password, token, nkey_file or creds_file"),
        ));
    }
    let credentials = match a {
        FleetAuth {
            user: Some(user),
            password: Some(password),
            ..
        } => Credentials::UserPassword { user, password },
        FleetAuth { user: Some(_), .. } | FleetAuth { password: Some(_), .. } => {
            return Err(err(
                &["fleet", "auth"],
                Problem::FleetAuth("give both `user` and `password`"),
            ));
        }
        FleetAuth { token: Some(t), .. } => Credentials::Token(t),
        FleetAuth { nkey_file: Some(p), .. } => Credentials::NKeyFile(p),
        FleetAuth {
            creds_file: Some(p), ..
        } => Credentials::CredsFile(p),
        _ => Credentials::None,
    };
    if let Some(t) = &f.tls {
        if t.cert_file.is_some() != t.key_file.is_some() {
            return Err(err(&["fleet", "tls"], Problem::FleetTlsPair));
        }
    }
    let jails = all_jails(config);
    let names = || jails.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ");
    let pick = |key: &'static str, list: Option<Vec<String>>| -> Result<Vec<String>, ConfigError> {
        let Some(list) = list else {
            return Ok(jails.iter().map(|(n, _)| n.clone()).collect());
        };
        for name in &list {
            if !jails.iter().any(|(n, _)| n == name) {
                let problem = Problem::FleetJail(name.as_str().into(), names().into());
                return Err(err(&["fleet", key], problem));
            }
        }
        Ok(list)
    };
    let publish = pick("publish", f.publish)?;
    let accept = pick("accept", f.accept)?
        .into_iter()
        .map(|name| {
            let ignore = jails
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, i)| i.clone())
                .unwrap_or_default();
            (name, ignore)
        })
        .collect();
    let retention = f.retention.map(|d| d.0).unwrap_or_else(|| longest_bantime(config));
    if retention.is_zero() {
        return Err(err(&["fleet", "retention"], Problem::ZeroDuration));
    }
    let replicas = f.replicas.unwrap_or(1);
    if !(1..=5).contains(&replicas) {
        return Err(err(&["fleet", "replicas"], Problem::FleetReplicas(replicas)));
    }
    let l = f.limits;
    let ipv4_prefix = l.ipv4_prefix.unwrap_or(24);
    if !(1..=32).contains(&ipv4_prefix) {
        return Err(err(
            &["fleet", "limits", "ipv4_prefix"],
            Problem::FleetPrefix {
                got: ipv4_prefix,
                max: 32,
            },
        ));
    }
    let ipv6_prefix = l.ipv6_prefix.unwrap_or(48);
    if !(1..=128).contains(&ipv6_prefix) {
        return Err(err(
            &["fleet", "limits", "ipv6_prefix"],
            Problem::FleetPrefix {
                got: ipv6_prefix,
                max: 128,
            },
        ));
    }
    let rate = match &l.rate {
        Some(text) => text
            .parse::<Rate>()
            .map_err(|()| err(&["fleet", "limits", "rate"], Problem::FleetRate(text.clone())))?,
        None => "100/second".parse().expect("a valid rate"),
    };
    let burst = l.burst.unwrap_or(10_000);
    if burst == 0 {
        return Err(err(&["fleet", "limits", "burst"], Problem::Zero));
    }
    Ok(FleetSpec {
        servers: f.servers,
        node,
        credentials,
        tls: f.tls,
        stream,
        subject_prefix,
        publish,
        accept,
        retention,
        replicas: replicas.into(),
        ipv4_prefix,
        ipv6_prefix,
        rate,
        burst,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_servers_address_is_read_from_its_url() {
        assert_eq!(
            server_addresses("nats://10.77.0.1:4222"),
            ["10.77.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(server_addresses("10.77.0.1"), ["10.77.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            server_addresses("tls://a:b@[2001:db8::4]:4222"),
            ["2001:db8::4".parse::<IpAddr>().unwrap()]
        );
        assert!(server_addresses("nats://no-such-host.invalid:4222").is_empty());
    }
}
