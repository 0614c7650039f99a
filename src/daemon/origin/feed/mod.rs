//! Blocklist feeds as an origin of blocks (`feeds:`, docs/feeds.md). Each
//! feed runs on a thread of its own: it puts its last good list (kept on
//! disk) back at start, then fetches its source every `refresh`, parses it
//! ([`parse`]), drops what must never be blocked ([`filter`]) and hands
//! the list to the engine, which applies the difference from what the
//! feed's sets hold in one kernel transaction. Fetching (file or HTTP,
//! [`fetch`]) never happens on the engine's or the readers' threads.
//!
//! A failed fetch (HTTP error, timeout, unreachable server) or a list with
//! a bad line keeps the previous list in place; `status` and the log say
//! why, and the feed tries again with a backoff that doubles from the
//! source's polite minimum up to its `refresh`.

mod fetch;
mod filter;
mod parse;
mod state;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use super::{BanOrigin, Decisions};
use crate::config::{Config, FeedFormat, FeedSource, FeedSpec};
use crate::daemon::engine::{Applied, FeedStats};
use crate::status::FeedStatus;
use fetch::{Client, Fetched, Validators};
use filter::Filter;
use state::Saved;

/// How long an APIBAN address stays blocked after APIBAN last listed it:
/// its API only ever says what is new, never what left, and APIBAN
/// itself lists an address for about a week.
const APIBAN_KEEP: Duration = Duration::from_secs(7 * 86_400);

/// Most pages of APIBAN read in one refresh (250 addresses each).
const APIBAN_PAGES: usize = 100;

/// Where APIBAN's cursor starts (its documentation's first `ID`).
const APIBAN_FIRST: &str = "100";

/// One feed.
pub struct Feed {
    spec: FeedSpec,
    stats: FeedStats,
    client: Client,
    validators: Validators,
    /// The last good list, as on disk.
    saved: Saved,
    /// Refreshes failed in a row.
    failures: u32,
}

/// The feeds `config` asks for.
pub fn feeds(config: &Config) -> Vec<Feed> {
    config.feeds.iter().cloned().map(Feed::new).collect()
}

/// Seconds since the epoch.
fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What one refresh came to.
enum Outcome {
    Applied(Applied),
    Unchanged,
}

impl Feed {
    pub fn new(spec: FeedSpec) -> Feed {
        let stats = FeedStatus {
            name: spec.name.clone(),
            origin: format!("feed:{}", spec.name),
            jail: spec.jail.clone(),
            source: spec.source_text(),
            format: spec.format.as_str().into(),
            refresh: spec.refresh.as_secs(),
            state: "starting".into(),
            ..FeedStatus::default()
        };
        Feed {
            spec,
            stats: Arc::new(Mutex::new(stats)),
            client: Client::default(),
            validators: Validators::default(),
            saved: Saved::default(),
            failures: 0,
        }
    }

    /// The stem of the feed's sets.
    pub fn sets(&self) -> &str {
        &self.spec.sets
    }

    /// Its figures, shared with the engine for `status`.
    pub fn stats(&self) -> FeedStats {
        Arc::clone(&self.stats)
    }

    fn update(&self, f: impl FnOnce(&mut FeedStatus)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Filter `entries` and have the engine apply them. The entries, the
    /// skipped counts and the state `ok` go to the figures together once
    /// the engine took the list: a `status` between two updates showed a
    /// feed's entries while it still said `starting`.
    fn apply(&mut self, entries: Vec<IpNet>, decisions: &Decisions) -> Option<Result<Applied, String>> {
        let filter = Filter {
            ignoreip: self.spec.ignoreip.clone(),
            trusted_private: self.spec.trusted_private,
            own: super::own::own_addresses(),
        };
        let judged = filter.judge(entries);
        let result = decisions.feed(&self.spec.sets, judged.kept)?;
        if let Ok(applied) = &result {
            self.update(|st| {
                st.entries = applied.entries as u64;
                st.skipped = judged.skipped;
                st.merged = judged.merged;
                st.state = "ok".into();
            });
        }
        Some(result)
    }

    /// The list kept on disk back into the kernel; returns when it was
    /// last fetched (the file's time), to keep the polite pace across a
    /// restart. `None` without a list.
    fn restore(&mut self, decisions: &Decisions) -> Option<SystemTime> {
        let saved = match state::read(&self.spec.state) {
            Ok(Some(s)) => s,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(feed = %self.spec.name, "feed {}: the saved list cannot be read ({e}); fetching anew", self.spec.name);
                return None;
            }
        };
        let entries: Vec<IpNet> = saved.entries.keys().copied().collect();
        // Kept from another source: put back (a list is better than none
        // until the new source answers), but not counted as fetched.
        let same_source = saved.source.as_deref().is_none_or(|s| s == self.spec.source_text());
        self.saved = saved;
        match self.apply(entries, decisions)? {
            Ok(a) => {
                tracing::info!(feed = %self.spec.name, "feed {}: {} entries put back from {}", self.spec.name, a.entries, self.spec.state.display());
            }
            Err(e) => {
                tracing::error!(feed = %self.spec.name, "feed {}: the saved list could not be put back: {e}", self.spec.name);
                self.update(|st| st.last_error = Some(e));
            }
        }
        if !same_source {
            tracing::info!(feed = %self.spec.name, "feed {}: the list kept was fetched from another source; fetching {} now", self.spec.name, self.spec.source_text());
            return None;
        }
        let at = std::fs::metadata(&self.spec.state).and_then(|m| m.modified()).ok();
        // `status` says when the list put back was fetched, not "never".
        if let Some(at) = at {
            self.update(|st| {
                st.last_refresh = Some(unix(at));
                st.last_success = Some(unix(at));
            });
        }
        at
    }

    /// Fetch and parse the list: `None` when the source says it did not
    /// change (HTTP 304).
    fn fetch(&mut self, now: SystemTime) -> Result<Option<Saved>, String> {
        let name = &self.spec.name;
        let text = match (&self.spec.source, self.spec.format) {
            (_, FeedFormat::Apiban) => return self.fetch_apiban(now).map(Some),
            (FeedSource::File(path), _) => fetch::read_file(path).map_err(|e| e.to_string())?,
            (source, _) => match self
                .client
                .get(source, "", &mut self.validators, false)
                .map_err(|e| e.to_string())?
            {
                Fetched::Unchanged => return Ok(None),
                Fetched::Text(t) => t,
            },
        };
        let entries = parse::parse_list(self.spec.format, &text).map_err(|e| {
            // A half-taken list would lift what follows the bad line: the
            // validators go too, so the next refresh reads it whole again.
            self.validators = Validators::default();
            format!("feed {name}: {e}")
        })?;
        let at = unix(now);
        Ok(Some(Saved {
            entries: entries.into_iter().map(|n| (n.trunc(), at)).collect(),
            cursor: None,
            source: Some(self.spec.source_text()),
        }))
    }

    /// APIBAN: pages from the cursor until it says nothing is new; the
    /// addresses added to those kept, the ones unlisted for
    /// [`APIBAN_KEEP`] dropped.
    fn fetch_apiban(&mut self, now: SystemTime) -> Result<Saved, String> {
        let name = &self.spec.name;
        let mut saved = self.saved.clone();
        let at = unix(now);
        for _ in 0..APIBAN_PAGES {
            let cursor = saved.cursor.clone().unwrap_or_else(|| APIBAN_FIRST.into());
            let suffix = format!("/{cursor}");
            let body = match self
                .client
                .get(&self.spec.source, &suffix, &mut Validators::default(), true)
                .map_err(|e| e.to_string())?
            {
                Fetched::Unchanged => break,
                Fetched::Text(t) => t,
            };
            let page = parse::parse_apiban(&body).map_err(|e| format!("feed {name}: {e}"))?;
            let Some(next) = page.next else { break };
            for net in page.addrs.iter() {
                saved.entries.insert(net.trunc(), at);
            }
            let same = next == cursor;
            saved.cursor = Some(next);
            if same || page.addrs.is_empty() {
                break;
            }
        }
        let oldest = at.saturating_sub(APIBAN_KEEP.as_secs());
        saved.entries.retain(|_, &mut seen| seen >= oldest);
        saved.source = Some(self.spec.source_text());
        Ok(saved)
    }

    /// One refresh; `None` once the daemon is stopping.
    fn refresh(&mut self, decisions: &Decisions) -> Option<Result<Outcome, String>> {
        let now = SystemTime::now();
        let fetched = match self.fetch(now) {
            Ok(Some(s)) => s,
            // The same list: applied again all the same, for what else
            // may have changed (the host's own addresses), and its time
            // kept, which a restart's politeness waits on.
            Ok(None) => self.saved.clone(),
            Err(e) => return Some(Err(e)),
        };
        // An empty list where there was one is far more often a broken
        // source (an empty answer, a file being rewritten, a cut
        // download) than a list that emptied: it would lift every entry.
        if fetched.entries.is_empty() && !self.saved.entries.is_empty() && self.spec.format != FeedFormat::Apiban {
            self.validators = Validators::default();
            return Some(Err(format!(
                "feed {}: the list came back empty ({} entries before); the previous list stays (take the feed out of the config to lift it)",
                self.spec.name,
                self.saved.entries.len()
            )));
        }
        let entries: Vec<IpNet> = fetched.entries.keys().copied().collect();
        let applied = match self.apply(entries, decisions)? {
            Ok(a) => a,
            Err(e) => {
                // Not in the kernel: the next fetch must not be a 304.
                self.validators = Validators::default();
                return Some(Err(format!("feed {}: {e}", self.spec.name)));
            }
        };
        let changed = fetched.entries.keys().ne(self.saved.entries.keys()) || fetched.cursor != self.saved.cursor;
        if changed || !self.spec.state.exists() {
            if let Err(e) = state::write(&self.spec.state, &fetched) {
                tracing::warn!(feed = %self.spec.name, "feed {}: cannot keep the list in {} ({e}); a restart will fetch it again", self.spec.name, self.spec.state.display());
            }
        } else {
            // Unchanged: its time says when it was last fetched, which a
            // restart waits on (see `run`), rather than rewriting it.
            let _ = std::fs::File::options()
                .write(true)
                .open(&self.spec.state)
                .and_then(|f| f.set_modified(now));
        }
        self.saved = fetched;
        Some(Ok(if applied.added == 0 && applied.removed == 0 {
            Outcome::Unchanged
        } else {
            Outcome::Applied(applied)
        }))
    }

    /// When to try again after `failures` failures in a row: doubling from
    /// the source's polite minimum, at most `refresh`.
    fn backoff(&self) -> Duration {
        let minimum = FeedSpec::polite_minimum(&self.spec.source, self.spec.format);
        let doubled = minimum.saturating_mul(1 << self.failures.saturating_sub(1).min(16));
        doubled.min(self.spec.refresh).max(minimum.min(self.spec.refresh))
    }

    /// Record the outcome of a refresh; returns the wait until the next.
    fn record(&mut self, outcome: Result<Outcome, String>) -> Duration {
        let now = SystemTime::now();
        let name = self.spec.name.clone();
        let (result, wait) = match outcome {
            Ok(o) => {
                self.failures = 0;
                match o {
                    Outcome::Applied(a) => {
                        tracing::info!(feed = %name, "feed {name}: {} entries (+{}, -{}) in one transaction", a.entries, a.added, a.removed)
                    }
                    Outcome::Unchanged => tracing::debug!(feed = %name, "feed {name}: unchanged"),
                }
                let result = if matches!(o, Outcome::Applied(_)) {
                    "ok"
                } else {
                    "unchanged"
                };
                (result, self.spec.refresh)
            }
            Err(e) => {
                self.failures += 1;
                let wait = self.backoff();
                tracing::warn!(feed = %name, "feed {name}: refresh failed, the previous list stays; trying again in {}: {e}", crate::config::format_duration(wait));
                self.update(|st| st.last_error = Some(e));
                ("error", wait)
            }
        };
        self.update(|st| {
            st.last_refresh = Some(unix(now));
            if result != "error" {
                st.last_success = Some(unix(now));
                st.last_error = None;
                st.state = "ok".into();
            } else {
                st.state = "failing".into();
            }
            st.next_refresh = Some(unix(now + wait));
            *st.refreshes.entry(result.into()).or_default() += 1;
        });
        wait
    }
}

impl Feed {
    /// How long after start the first fetch waits, given when the list
    /// put back from disk was fetched (`None`: none was kept). A URL waits
    /// for the rest of the interval it was fetched in (the source's
    /// politeness holds across restarts); a local file costs nothing to
    /// read, so it is read at once: a list edited before a reload or a
    /// restart applies then, not an interval later.
    fn first_wait(&self, kept_at: Option<SystemTime>, now: SystemTime) -> Duration {
        let Some(at) = kept_at else { return Duration::ZERO };
        if matches!(self.spec.source, FeedSource::File(_)) {
            return Duration::ZERO;
        }
        let since = now.duration_since(at).unwrap_or_default();
        self.spec.refresh.checked_sub(since).unwrap_or_default()
    }
}

impl BanOrigin for Feed {
    fn name(&self) -> String {
        format!("feed:{}", self.spec.name)
    }

    fn run(mut self: Box<Self>, decisions: Decisions) {
        // The list kept on disk first, so the kernel has it before (and
        // whether or not) the source answers.
        let kept_at = self.restore(&decisions);
        let first = self.first_wait(kept_at, SystemTime::now());
        let mut next = Instant::now() + first;
        if !first.is_zero() {
            self.update(|st| st.next_refresh = Some(unix(SystemTime::now() + first)));
        }
        while !decisions.stopping() {
            if Instant::now() >= next {
                let Some(outcome) = self.refresh(&decisions) else {
                    return;
                };
                next = Instant::now() + self.record(outcome);
            }
            std::thread::sleep(
                next.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100)),
            );
        }
    }
}

#[cfg(test)]
mod tests;
