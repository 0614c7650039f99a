//! The `feeds:` section: blocklists (APIBAN, FireHOL, Spamhaus DROP, a
//! list of one's own) made into [`FeedSpec`]s: the source, the format, the
//! refresh interval raised to the source's polite minimum, the jail whose
//! `ignoreip` binds the feed, and the sets that hold it. Every value is
//! checked at its key.

use std::collections::BTreeMap;

use schemars::JsonSchema;

use super::*;

/// `feeds.NAME:` — one blocklist.
#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// A local file holding the list (absolute path). Give `file` or `url`.
    pub file: Option<PathBuf>,
    /// An `https://` (or `http://`) URL of the list. For `apiban`, the
    /// URL up to `/banned` (`https://apiban.org/api/{key}/banned`): the
    /// daemon adds `/<ID>` for its cursor. `{key}` is replaced with the
    /// contents of `key_file`.
    pub url: Option<String>,
    /// HTTP headers sent with each request (`X-Api-Key: ...`); `{key}` in a
    /// value is replaced with the contents of `key_file`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A file holding an API key (read at each fetch, trimmed), so the key
    /// stays out of the config: used where `url` or a header says `{key}`.
    pub key_file: Option<PathBuf>,
    /// How the list is written: `plain` (addresses and prefixes, `#` or
    /// `;` comments), `netset` (FireHOL), `drop` (Spamhaus DROP/EDROP,
    /// text or JSON lines), `apiban` (APIBAN's JSON API).
    pub format: FeedFormat,
    /// How often the list is fetched again (default 1h; `apiban` 10m). Not
    /// below the source's polite minimum: `apiban` 5m, `drop` and Spamhaus
    /// URLs 1h, other URLs and files 1s; lower values are raised, and
    /// `nftban check` says so.
    pub refresh: Option<Dur>,
    /// The jail the feed belongs to: its `ignoreip` (and what no jail
    /// bans) is never blocked by the feed (default `manual`, whose
    /// `ignoreip` is `defaults.ignoreip`).
    pub jail: Option<String>,
    /// Take private and reserved ranges (10.0.0.0/8, 192.168.0.0/16,
    /// fc00::/7, 0.0.0.0/8, ...) from this feed (default false: skipped and
    /// counted). Loopback and the host's own addresses are skipped anyway.
    #[serde(default)]
    pub trusted_private: bool,
}

/// How a feed's list is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FeedFormat {
    /// One address or prefix per line; `#` and `;` start comments.
    Plain,
    /// FireHOL's `.netset`/`.ipset`: the same, `#` comments.
    Netset,
    /// Spamhaus DROP/EDROP: `1.10.16.0/20 ; SBL256894`, or the JSON-lines
    /// form (`{"cidr":"1.10.16.0/20","sblid":"SBL256894",...}`).
    Drop,
    /// APIBAN's JSON API: `{"ipaddress":[...],"ID":"..."}`, fetched from
    /// its incremental `ID` cursor.
    Apiban,
}

impl FeedFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedFormat::Plain => "plain",
            FeedFormat::Netset => "netset",
            FeedFormat::Drop => "drop",
            FeedFormat::Apiban => "apiban",
        }
    }
}

/// Where a feed's list comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedSource {
    File(PathBuf),
    Url {
        url: String,
        headers: Vec<(String, String)>,
        key_file: Option<PathBuf>,
    },
}

/// A validated feed.
#[derive(Debug, Clone)]
pub struct FeedSpec {
    pub name: String,
    pub source: FeedSource,
    pub format: FeedFormat,
    /// Already at least [`FeedSpec::polite_minimum`].
    pub refresh: Duration,
    /// A lower `refresh` the config asked for, raised to `refresh`.
    pub raised_from: Option<Duration>,
    pub jail: String,
    /// The jail's `ignoreip`.
    pub ignoreip: Vec<IpNet>,
    pub trusted_private: bool,
    /// The stem of the feed's own four sets (`feed_NAME`: `feed_NAME_v4`,
    /// `feed_NAME_v4_net`, ...), given to setup as a jail would be.
    pub sets: String,
    /// The last good list, kept across restarts.
    pub state: PathBuf,
}

/// The stem of a feed's sets.
pub fn feed_sets(name: &str) -> String {
    format!("feed_{name}")
}

impl FeedSpec {
    /// The shortest refresh a source is polled at: APIBAN asks for a few
    /// minutes, Spamhaus for an hour at least (it blocks those who fetch
    /// more often); other URLs and local files a second (one's own server
    /// or list: one's own call).
    pub fn polite_minimum(source: &FeedSource, format: FeedFormat) -> Duration {
        let spamhaus = matches!(source, FeedSource::Url { url, .. } if host_of(url).is_some_and(|h| h == "spamhaus.org" || h.ends_with(".spamhaus.org")));
        match (source, format) {
            // A local file (a copy a cron job mirrors, say) asks no server.
            (FeedSource::File(_), _) => Duration::from_secs(1),
            (_, FeedFormat::Apiban) => Duration::from_secs(300),
            (_, FeedFormat::Drop) => Duration::from_secs(3600),
            _ if spamhaus => Duration::from_secs(3600),
            // One's own server or file: one's own call.
            _ => Duration::from_secs(1),
        }
    }

    /// What `status` shows as the source: the file, or the URL as written
    /// (with `{key}`, never the key).
    pub fn source_text(&self) -> String {
        match &self.source {
            FeedSource::File(p) => p.display().to_string(),
            FeedSource::Url { url, .. } => url.clone(),
        }
    }
}

/// The host of an `http(s)://` URL, lowercased.
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']').next()?.trim_start_matches('[')
    } else {
        host.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// The feeds of `raw`, in name order. `jails` are the config's jails
/// (with the names a ban may give: `manual`, `recidive`, `sip`).
pub(super) fn build_feeds(
    raw: BTreeMap<String, FeedConfig>,
    config: &Config,
    err: &dyn Fn(&[&str], Problem) -> ConfigError,
) -> Result<Vec<FeedSpec>, ConfigError> {
    let mut out = Vec::new();
    let state_dir = config
        .database
        .parent()
        .unwrap_or(Path::new("/var/lib/nftban"))
        .join("feeds");
    let table = config.table_spec();
    for (name, f) in raw {
        let at = |key: &'static str| -> [&str; 3] { ["feeds", name.as_str(), key] };
        if !valid_jail_name(&name) || name.len() > 50 {
            return Err(err(&["feeds", &name], Problem::FeedName(name.clone())));
        }
        let sets = feed_sets(&name);
        if table.jails.contains(&sets) {
            return Err(err(&["feeds", &name], Problem::FeedSetsTaken(sets)));
        }
        let source = match (f.file, f.url) {
            (Some(_), Some(_)) | (None, None) => return Err(err(&["feeds", &name], Problem::FeedSource)),
            (Some(file), None) => {
                if !file.is_absolute() {
                    return Err(err(&at("file"), Problem::RelativeFile(file)));
                }
                if f.key_file.is_some() || !f.headers.is_empty() {
                    return Err(err(&at("file"), Problem::FeedFileHeaders));
                }
                FeedSource::File(file)
            }
            (None, Some(url)) => {
                let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
                if !scheme_ok || host_of(&url).is_none() {
                    return Err(err(&at("url"), Problem::FeedUrl(url)));
                }
                if let Some(k) = f.key_file.as_ref().filter(|k| !k.is_absolute()) {
                    return Err(err(&at("key_file"), Problem::RelativeFile(k.clone())));
                }
                let wants_key = url.contains("{key}") || f.headers.values().any(|v| v.contains("{key}"));
                if wants_key && f.key_file.is_none() {
                    return Err(err(&at("key_file"), Problem::FeedNoKeyFile));
                }
                for (h, v) in &f.headers {
                    let bad_name =
                        h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    if bad_name || v.contains(['\r', '\n']) {
                        return Err(err(&at("headers"), Problem::FeedHeader(h.clone())));
                    }
                }
                FeedSource::Url {
                    url,
                    headers: f.headers.into_iter().collect(),
                    key_file: f.key_file,
                }
            }
        };
        if matches!(source, FeedSource::File(_)) && f.format == FeedFormat::Apiban {
            return Err(err(&at("format"), Problem::FeedApibanFile));
        }
        let minimum = FeedSpec::polite_minimum(&source, f.format);
        let asked = f.refresh.map(|d| d.0).unwrap_or(match f.format {
            FeedFormat::Apiban => Duration::from_secs(600),
            _ => Duration::from_secs(3600),
        });
        if asked.is_zero() {
            return Err(err(&at("refresh"), Problem::ZeroDuration));
        }
        let (refresh, raised_from) = if asked < minimum {
            (minimum, Some(asked))
        } else {
            (asked, None)
        };
        let jail = f.jail.unwrap_or_else(|| MANUAL_JAIL.to_string());
        let ignoreip = if let Some(j) = config.jails.iter().find(|j| j.name == jail) {
            j.ignoreip.clone()
        } else if table.jails.contains(&jail) && !jail.starts_with("feed_") {
            config.default_ignoreip.clone()
        } else {
            let names: Vec<&str> = table
                .jails
                .iter()
                .map(String::as_str)
                .filter(|j| !j.starts_with("feed_"))
                .collect();
            return Err(err(
                &at("jail"),
                Problem::FeedJail(jail.into(), names.join(", ").into()),
            ));
        };
        out.push(FeedSpec {
            state: state_dir.join(&name),
            name,
            source,
            format: f.format,
            refresh,
            raised_from,
            jail,
            ignoreip,
            trusted_private: f.trusted_private,
            sets,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_urls() {
        assert_eq!(
            host_of("https://www.spamhaus.org/drop/drop.txt").as_deref(),
            Some("www.spamhaus.org")
        );
        assert_eq!(
            host_of("http://user:pw@Example.COM:8080/x").as_deref(),
            Some("example.com")
        );
        assert_eq!(host_of("http://[2001:db8::1]:80/x").as_deref(), Some("2001:db8::1"));
        assert_eq!(host_of("https:///x"), None);
    }

    fn load(feeds: &str) -> Result<Config, String> {
        let text = format!(
            "jails:\n  sshd: {{ruleset: sshd, files: [/var/log/auth.log], ignoreip: [192.0.2.0/24]}}\nfeeds:\n{feeds}"
        );
        Config::from_text(Path::new("/etc/nftban/nftban.yaml"), &text).map_err(|e| format!("{e}: {}", e.error))
    }

    #[test]
    fn feeds_load_with_their_jail_sets_and_state() {
        let c = load("  sh: {url: 'https://www.spamhaus.org/drop/drop.txt', format: drop, refresh: 5m, jail: sshd}\n  mine: {file: /etc/nftban/mine.txt, format: plain}\n").unwrap();
        let names: Vec<&str> = c.feeds.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["mine", "sh"]);
        let sh = &c.feeds[1];
        assert_eq!(
            (sh.refresh, sh.raised_from),
            (Duration::from_secs(3600), Some(Duration::from_secs(300)))
        );
        assert_eq!(sh.ignoreip, vec!["192.0.2.0/24".parse::<IpNet>().unwrap()]);
        assert_eq!(sh.state, Path::new("/var/lib/nftban/feeds/sh"));
        let mine = &c.feeds[0];
        assert_eq!(
            (mine.jail.as_str(), mine.refresh),
            ("manual", Duration::from_secs(3600))
        );
        let spec = c.table_spec();
        assert!(spec.jails.ends_with(&["feed_mine".to_string(), "feed_sh".to_string()]));
    }

    #[test]
    fn errors_name_the_feed_key() {
        let cases = [
            ("  x: {format: plain}\n", "feeds.x: give one source"),
            ("  x: {file: rel.txt, format: plain}\n", "feeds.x.file:"),
            (
                "  x: {url: 'ftp://h/x', format: plain}\n",
                "feeds.x.url: `ftp://h/x` is not an http",
            ),
            (
                "  x: {url: 'https://h/{key}', format: plain}\n",
                "feeds.x.key_file: the URL or a header says `{key}`",
            ),
            (
                "  x: {file: /x, format: apiban}\n",
                "feeds.x.format: `apiban` is APIBAN's HTTP API",
            ),
            (
                "  x: {file: /x, format: plain, jail: nope}\n",
                "feeds.x.jail: `nope` is no jail of this config (jails: sshd, manual)",
            ),
            ("  x: {file: /x, format: csv}\n", "unknown variant `csv`"),
            ("  x: {file: /x, format: plain, refresh: 0s}\n", "feeds.x.refresh:"),
            (
                "  x: {url: 'https://h/', format: plain, headers: {'Bad Name': v}}\n",
                "feeds.x.headers: header `Bad Name`",
            ),
        ];
        for (yaml, want) in cases {
            let e = load(yaml).unwrap_err();
            assert!(e.contains(want), "{yaml}: {e}");
        }
        let e = Config::from_text(
            Path::new("/etc/nftban/nftban.yaml"),
            "jails:\n  feed_x: {ruleset: sshd, files: [/var/log/auth.log]}\nfeeds:\n  x: {file: /x, format: plain}\n",
        )
        .unwrap_err();
        let e = format!("{e}: {}", e.error);
        assert!(e.contains("would be those of the jail `feed_x`"), "{e}");
    }

    #[test]
    fn polite_minimums() {
        let url = |u: &str| FeedSource::Url {
            url: u.into(),
            headers: vec![],
            key_file: None,
        };
        let spamhaus = url("https://www.spamhaus.org/drop/drop.txt");
        assert_eq!(
            FeedSpec::polite_minimum(&spamhaus, FeedFormat::Plain),
            Duration::from_secs(3600)
        );
        assert_eq!(
            FeedSpec::polite_minimum(&url("https://x.org/a"), FeedFormat::Drop),
            Duration::from_secs(3600)
        );
        assert_eq!(
            FeedSpec::polite_minimum(&url("https://apiban.org/api/k/banned"), FeedFormat::Apiban),
            Duration::from_secs(300)
        );
        assert_eq!(
            FeedSpec::polite_minimum(&url("https://x.org/a"), FeedFormat::Netset),
            Duration::from_secs(1)
        );
        let file = FeedSource::File("/etc/nftban/list".into());
        assert_eq!(
            FeedSpec::polite_minimum(&file, FeedFormat::Plain),
            Duration::from_secs(1)
        );
        // A local copy of Spamhaus's list asks nothing of Spamhaus.
        assert_eq!(
            FeedSpec::polite_minimum(&file, FeedFormat::Drop),
            Duration::from_secs(1)
        );
    }
}
