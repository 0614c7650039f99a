//! A feed's text from its source: a local file, or HTTP(S) with ureq
//! (rustls, timeouts), with `If-None-Match`/`If-Modified-Since` so an
//! unchanged list costs the server a 304 and the host nothing.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use crate::config::FeedSource;

/// Largest list taken (FireHOL level1 is about 100 KiB, Spamhaus DROP
/// about 50 KiB; a list of a million prefixes about 20 MiB).
pub const MAX_BYTES: u64 = 64 << 20;

/// Connect and whole-request timeouts.
const CONNECT: Duration = Duration::from_secs(10);
const WHOLE: Duration = Duration::from_secs(60);

/// What a fetch brought.
#[derive(Debug)]
pub enum Fetched {
    /// The list's text.
    Text(String),
    /// The server says nothing changed since the validators sent (304).
    Unchanged,
}

/// Why a fetch failed, in words for `status` and the log.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot read {path}: {error}")]
    File { path: String, error: std::io::Error },
    #[error("cannot read the key file {path}: {error}")]
    Key { path: String, error: std::io::Error },
    #[error("{0}")]
    Http(String),
    #[error("{0}: the list is larger than {mib} MiB", mib = MAX_BYTES >> 20)]
    TooLarge(String),
    #[error("{0}: {1}")]
    NotText(String, String),
}

/// The list's bytes as text: a byte that is not UTF-8 is an error that
/// names its line (`line 12: not UTF-8 text`), as a bad entry is.
fn text_of(bytes: Vec<u8>, what: &str) -> Result<String, FetchError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..valid].iter().filter(|b| **b == b'\n').count() + 1;
        FetchError::NotText(what.to_string(), format!("line {line}: not UTF-8 text"))
    })
}

/// The validators of the last good answer, sent with the next request.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// HTTP(S) client of one feed: one agent (its connections kept).
pub struct Client {
    agent: ureq::Agent,
}

impl Default for Client {
    fn default() -> Client {
        Client {
            agent: ureq::AgentBuilder::new()
                .timeout_connect(CONNECT)
                .timeout(WHOLE)
                .user_agent(concat!("nftban/", env!("CARGO_PKG_VERSION"), " (blocklist feed)"))
                .build(),
        }
    }
}

/// Read a local list.
pub fn read_file(path: &Path) -> Result<String, FetchError> {
    let err = |error| FetchError::File {
        path: path.display().to_string(),
        error,
    };
    let file = std::fs::File::open(path).map_err(err)?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1).read_to_end(&mut bytes).map_err(err)?;
    let shown = path.display().to_string();
    if bytes.len() as u64 > MAX_BYTES {
        return Err(FetchError::TooLarge(shown));
    }
    text_of(bytes, &shown)
}

/// The key of `key_file`, trimmed; none wanted without one.
fn key_of(source: &FeedSource) -> Result<String, FetchError> {
    match source {
        FeedSource::Url {
            key_file: Some(path), ..
        } => std::fs::read_to_string(path)
            .map(|k| k.trim().to_string())
            .map_err(|error| FetchError::Key {
                path: path.display().to_string(),
                error,
            }),
        _ => Ok(String::new()),
    }
}

impl Client {
    /// GET the feed's URL (`suffix` appended: APIBAN's `/<ID>`), with its
    /// headers and the validators. A 304 is [`Fetched::Unchanged`]; an
    /// APIBAN 400 carries its "no new bans" JSON, so `accept_400` takes
    /// the body of one. New validators go to `validators`.
    pub fn get(
        &self,
        source: &FeedSource,
        suffix: &str,
        validators: &mut Validators,
        accept_400: bool,
    ) -> Result<Fetched, FetchError> {
        let FeedSource::Url { url, headers, .. } = source else {
            unreachable!("get is for URL feeds")
        };
        let key = key_of(source)?;
        let url = format!("{}{suffix}", url.replace("{key}", &key));
        let mut req = self.agent.get(&url);
        for (name, value) in headers {
            req = req.set(name, &value.replace("{key}", &key));
        }
        if let Some(e) = &validators.etag {
            req = req.set("If-None-Match", e);
        }
        if let Some(m) = &validators.last_modified {
            req = req.set("If-Modified-Since", m);
        }
        // The URL may hold the key: errors name the URL as configured.
        let shown = match source {
            FeedSource::Url { url, .. } => format!("{url}{suffix}"),
            FeedSource::File(_) => unreachable!(),
        };
        let resp = match req.call() {
            Ok(r) if r.status() == 304 => return Ok(Fetched::Unchanged),
            Ok(r) => r,
            Err(ureq::Error::Status(400, r)) if accept_400 => r,
            Err(ureq::Error::Status(code, r)) => {
                return Err(FetchError::Http(format!(
                    "GET {shown}: HTTP {code} {}",
                    r.status_text()
                )))
            }
            Err(ureq::Error::Transport(t)) => {
                // Its kind and message: its whole text repeats the URL
                // and the kind ("...: Network Error: Network Error: ...").
                let detail = match t.message() {
                    Some(m) => format!("{}: {m}", t.kind()),
                    None => t.to_string(),
                };
                let detail = strip_url(&detail, &key);
                return Err(FetchError::Http(format!("GET {shown}: {detail}")));
            }
        };
        let etag = resp.header("ETag").map(str::to_string);
        let last_modified = resp.header("Last-Modified").map(str::to_string);
        let mut bytes = Vec::new();
        resp.into_reader()
            .take(MAX_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| FetchError::Http(format!("GET {shown}: reading the answer: {e}")))?;
        if bytes.len() as u64 > MAX_BYTES {
            return Err(FetchError::TooLarge(format!("GET {shown}")));
        }
        let body = text_of(bytes, &format!("GET {shown}"))?;
        validators.etag = etag;
        validators.last_modified = last_modified;
        Ok(Fetched::Text(body))
    }
}

/// A transport error's text without the key (ureq names the URL).
fn strip_url(text: &str, key: &str) -> String {
    if key.is_empty() {
        text.to_string()
    } else {
        text.replace(key, "<key>")
    }
}
