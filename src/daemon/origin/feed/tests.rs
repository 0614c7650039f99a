//! A feed's thread against a stand-in engine: its refreshes, the list
//! kept on disk, failures that keep the old list, APIBAN's cursor over a
//! small HTTP server on loopback.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;

use super::*;
use crate::daemon::Event;

/// A stand-in engine: holds each feed's list and answers as the engine
/// would (the diff's size).
fn engine() -> (Decisions, Arc<Mutex<BTreeSet<IpNet>>>) {
    let (tx, rx) = mpsc::sync_channel::<Event>(8);
    let held = Arc::new(Mutex::new(BTreeSet::new()));
    let kernel = Arc::clone(&held);
    std::thread::spawn(move || {
        while let Ok(ev) = rx.recv() {
            if let Event::Feed { list, reply, .. } = ev {
                let mut k = kernel.lock().unwrap();
                let new: BTreeSet<IpNet> = list.into_iter().collect();
                let added = new.difference(&k).count();
                let removed = k.difference(&new).count();
                *k = new;
                let _ = reply.send(Ok(Applied {
                    added,
                    removed,
                    entries: k.len(),
                }));
            }
        }
    });
    let decisions = Decisions {
        tx,
        stop: Arc::new(AtomicBool::new(false)),
    };
    (decisions, held)
}

fn config_with(dir: &Path, feed: &str) -> Config {
    let text = format!(
        "database: {}/nftban.db\ndefaults: {{ignoreip: [127.0.0.0/8, 198.51.100.0/28]}}\nfeeds:\n  {feed}\n",
        dir.display()
    );
    Config::from_text(&dir.join("nftban.yaml"), &text).unwrap()
}

fn nets(list: &[&str]) -> BTreeSet<IpNet> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn a_file_feed_refreshes_keeps_its_list_on_disk_and_survives_a_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.txt");
    std::fs::write(
        &list,
        "# mine\n192.0.2.1\n203.0.113.0/24 ; net\n10.1.0.0/16\n198.51.100.3\n",
    )
    .unwrap();
    let config = config_with(
        dir.path(),
        &format!("mine: {{file: {}, format: plain, refresh: 1s}}", list.display()),
    );
    let mut feed = feeds(&config).pop().unwrap();
    assert_eq!(feed.sets(), "feed_mine");
    let (decisions, held) = engine();
    let outcome = feed.refresh(&decisions).unwrap();
    assert!(matches!(outcome, Ok(Outcome::Applied(Applied { added: 2, .. }))));
    // What a `status` reads between the refresh and its record: the
    // entries and the state together, never the entries of a feed still
    // said to be starting.
    let st = feed.stats.lock().unwrap().clone();
    assert_eq!((st.entries, st.state.as_str()), (2, "ok"));
    feed.record(outcome);
    assert_eq!(*held.lock().unwrap(), nets(&["192.0.2.1/32", "203.0.113.0/24"]));
    let st = feed.stats.lock().unwrap().clone();
    assert_eq!(
        (st.entries, st.state.as_str(), st.origin.as_str()),
        (2, "ok", "feed:mine")
    );
    assert_eq!(st.skipped.get("private"), Some(&1));
    assert_eq!(st.skipped.get("ignoreip"), Some(&1));
    assert_eq!(st.refreshes.get("ok"), Some(&1));
    assert!(st.next_refresh.unwrap() > st.last_refresh.unwrap());
    let kept = dir.path().join("feeds/mine");
    assert!(kept.exists(), "the last good list is kept beside the history");

    // A bad line: the list stays, the error names the feed, line and text.
    std::fs::write(&list, "192.0.2.1\n192.0.2.2\nnot-an-address\n").unwrap();
    let outcome = feed.refresh(&decisions).unwrap();
    feed.record(outcome);
    assert_eq!(*held.lock().unwrap(), nets(&["192.0.2.1/32", "203.0.113.0/24"]));
    let st = feed.stats.lock().unwrap().clone();
    assert_eq!(st.state, "failing");
    let e = st.last_error.unwrap();
    assert!(
        e.starts_with("feed mine: line 3: `not-an-address` is not an address or prefix"),
        "{e}"
    );
    assert_eq!(st.refreshes.get("error"), Some(&1));

    // A missing file is a failure too.
    std::fs::remove_file(&list).unwrap();
    let outcome = feed.refresh(&decisions).unwrap();
    feed.record(outcome);
    assert!(feed
        .stats
        .lock()
        .unwrap()
        .last_error
        .as_deref()
        .unwrap()
        .contains("list.txt"));
    assert_eq!(*held.lock().unwrap(), nets(&["192.0.2.1/32", "203.0.113.0/24"]));

    // Fixed: additions and removals, the error gone.
    std::fs::write(&list, "192.0.2.1\n192.0.2.9\n").unwrap();
    let outcome = feed.refresh(&decisions).unwrap();
    assert!(matches!(
        outcome,
        Ok(Outcome::Applied(Applied {
            added: 1,
            removed: 1,
            entries: 2
        }))
    ));
    feed.record(outcome);
    assert_eq!(*held.lock().unwrap(), nets(&["192.0.2.1/32", "192.0.2.9/32"]));
    let st = feed.stats.lock().unwrap().clone();
    assert_eq!((st.state.as_str(), st.last_error), ("ok", None));

    // A new start puts the kept list back without reading the source.
    std::fs::remove_file(&list).unwrap();
    let mut again = feeds(&config).pop().unwrap();
    let (decisions, held) = engine();
    assert!(again.restore(&decisions).is_some());
    assert_eq!(*held.lock().unwrap(), nets(&["192.0.2.1/32", "192.0.2.9/32"]));
    assert_eq!(again.stats.lock().unwrap().entries, 2);
    // `status` says when the list put back was fetched, not "never".
    assert!(again.stats.lock().unwrap().last_refresh.is_some());
}

/// After a start that put a kept list back, a URL is fetched once the
/// rest of its interval has passed; a local file at once (an edit made
/// before a reload applies at the reload), as is any source without a
/// kept list.
#[test]
fn a_local_file_is_read_at_start_a_url_after_the_rest_of_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let ten_minutes_ago = now - Duration::from_secs(600);
    let config = config_with(dir.path(), "mine: {file: /etc/nftban/mine.txt, format: plain}");
    let file = feeds(&config).pop().unwrap();
    assert_eq!(file.first_wait(Some(ten_minutes_ago), now), Duration::ZERO);
    assert_eq!(file.first_wait(None, now), Duration::ZERO);
    let config = config_with(
        dir.path(),
        "mine: {url: 'http://192.0.2.1/list', format: plain, refresh: 1h}",
    );
    let url = feeds(&config).pop().unwrap();
    assert_eq!(url.first_wait(Some(ten_minutes_ago), now), Duration::from_secs(3000));
    assert_eq!(
        url.first_wait(Some(now - Duration::from_secs(7200)), now),
        Duration::ZERO
    );
    assert_eq!(url.first_wait(None, now), Duration::ZERO);
}

#[test]
fn backoff_doubles_from_the_polite_minimum_up_to_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        dir.path(),
        "mine: {url: 'http://192.0.2.1/list', format: plain, refresh: 10m}",
    );
    let mut feed = feeds(&config).pop().unwrap();
    let mut waits = Vec::new();
    for n in 1..=12 {
        feed.failures = n;
        waits.push(feed.backoff().as_secs());
    }
    assert_eq!(&waits[..6], &[1, 2, 4, 8, 16, 32]);
    assert_eq!(*waits.last().unwrap(), 600);
    let config = config_with(
        dir.path(),
        "sh: {url: 'https://www.spamhaus.org/drop/drop.txt', format: drop, refresh: 5m}",
    );
    let feed = feeds(&config).pop().unwrap();
    assert_eq!(feed.spec.refresh, Duration::from_secs(3600), "raised to Spamhaus' hour");
    assert_eq!(feed.spec.raised_from, Some(Duration::from_secs(300)));
}

/// A small HTTP server on loopback answering each path with a canned
/// (status, body); records the paths and headers asked.
fn serve(answers: Vec<(&'static str, u16, String)>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&asked);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                request.push_str(&line);
            }
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            log.lock().unwrap().push(request.clone());
            let (code, body) = answers
                .iter()
                .find(|(p, _, _)| *p == path)
                .map(|(_, c, b)| (*c, b.clone()))
                .unwrap_or((404, "no".into()));
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (format!("http://{addr}"), asked)
}

#[test]
fn apiban_follows_its_cursor_and_keeps_what_it_learnt() {
    let sample = include_str!("../../../../tests/data/apiban-banned.json").to_string();
    let none = include_str!("../../../../tests/data/apiban-none.json").to_string();
    let (base, asked) = serve(vec![
        ("/api/SECRET/banned/100", 200, sample),
        ("/api/SECRET/banned/1701890000", 400, none.clone()),
        (
            "/api/SECRET/banned/1701890500",
            200,
            "{\"ipaddress\":[\"192.0.2.77\"],\"ID\":\"1701890600\"}".into(),
        ),
        ("/api/SECRET/banned/1701890600", 400, none),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("apiban.key");
    std::fs::write(&key, "SECRET\n").unwrap();
    let config = config_with(
        dir.path(),
        &format!(
            "apiban: {{url: '{base}/api/{{key}}/banned', key_file: {}, format: apiban}}",
            key.display()
        ),
    );
    let mut feed = feeds(&config).pop().unwrap();
    assert_eq!(feed.spec.refresh, Duration::from_secs(600));
    let (decisions, held) = engine();
    let outcome = feed.refresh(&decisions).unwrap();
    feed.record(outcome);
    assert_eq!(
        *held.lock().unwrap(),
        nets(&[
            "198.51.100.23/32",
            "203.0.113.45/32",
            "192.0.2.200/32",
            "2001:db8:5::9/128"
        ])
    );
    assert_eq!(feed.saved.cursor.as_deref(), Some("1701890000"));
    let paths: Vec<String> = asked
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    assert_eq!(paths, ["/api/SECRET/banned/100", "/api/SECRET/banned/1701890000"]);
    // The key shows nowhere in status.
    let st = feed.stats.lock().unwrap().clone();
    assert!(!st.source.contains("SECRET") && st.source.ends_with("/api/{key}/banned"));
    assert_eq!(st.entries, 4);
    // "No new bans": nothing changes.
    let outcome = feed.refresh(&decisions).unwrap();
    assert!(matches!(outcome, Ok(Outcome::Unchanged)));
    // From a later cursor: added to what is kept.
    feed.saved.cursor = Some("1701890500".into());
    let outcome = feed.refresh(&decisions).unwrap();
    assert!(matches!(
        outcome,
        Ok(Outcome::Applied(Applied {
            added: 1,
            removed: 0,
            entries: 5
        }))
    ));
    // Kept across a restart, cursor included.
    let again = state::read(&feed.spec.state).unwrap().unwrap();
    assert_eq!(again.cursor.as_deref(), Some("1701890600"));
    assert_eq!(again.entries.len(), 5);
}

#[test]
fn http_errors_keep_the_list_and_say_why() {
    let (base, _) = serve(vec![("/list", 200, "192.0.2.5\n".into())]);
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        dir.path(),
        &format!("web: {{url: '{base}/list', format: plain, refresh: 1s}}"),
    );
    let mut feed = feeds(&config).pop().unwrap();
    let (decisions, held) = engine();
    let outcome = feed.refresh(&decisions).unwrap();
    feed.record(outcome);
    assert_eq!(*held.lock().unwrap(), nets(&["192.0.2.5/32"]));
    if let FeedSource::Url { url, .. } = &mut feed.spec.source {
        *url = format!("{base}/gone");
    }
    let outcome = feed.refresh(&decisions).unwrap();
    feed.record(outcome);
    let st = feed.stats.lock().unwrap().clone();
    assert!(st.last_error.as_deref().unwrap().contains("HTTP 404"), "{st:?}");
    assert_eq!(*held.lock().unwrap(), nets(&["192.0.2.5/32"]));
}

/// An empty list where there was one (an empty answer, a file being
/// rewritten) keeps the previous list and says why: before, it lifted
/// every entry.
#[test]
fn an_empty_list_keeps_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.txt");
    std::fs::write(&list, "203.0.113.1\n203.0.113.2\n").unwrap();
    let config = config_with(
        dir.path(),
        &format!("mine: {{file: {}, format: plain, refresh: 1s}}", list.display()),
    );
    let mut feed = feeds(&config).pop().unwrap();
    let (decisions, held) = engine();
    let outcome = feed.refresh(&decisions).unwrap();
    feed.record(outcome);
    for empty in ["", "# nothing listed today\n"] {
        std::fs::write(&list, empty).unwrap();
        let outcome = feed.refresh(&decisions).unwrap();
        feed.record(outcome);
        assert_eq!(*held.lock().unwrap(), nets(&["203.0.113.1/32", "203.0.113.2/32"]));
        let st = feed.stats.lock().unwrap().clone();
        assert_eq!(st.state, "failing");
        let e = st.last_error.unwrap();
        assert!(e.contains("the list came back empty (2 entries before)"), "{e}");
    }
}

/// A 304 keeps the list and its time on disk moves on (a restart right
/// after waits the rest of the interval, as after a 200); a list kept
/// from another source (the `url` changed) is put back but fetched anew
/// at once.
#[test]
fn a_304_counts_as_a_fetch_and_a_new_source_is_fetched_at_once() {
    let (base, asked) = serve(vec![
        ("/list", 200, "192.0.2.5\n".into()),
        ("/same", 304, String::new()),
        ("/other", 200, "192.0.2.6\n".into()),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let feed_text = |path: &str| format!("web: {{url: '{base}{path}', format: plain, refresh: 1h}}");
    let config = config_with(dir.path(), &feed_text("/list"));
    let mut feed = feeds(&config).pop().unwrap();
    let (decisions, held) = engine();
    let outcome = feed.refresh(&decisions).unwrap();
    feed.record(outcome);
    let kept = dir.path().join("feeds/web");
    let old = SystemTime::now() - Duration::from_secs(600);
    std::fs::File::options()
        .write(true)
        .open(&kept)
        .unwrap()
        .set_modified(old)
        .unwrap();
    // The source says nothing changed (a 304; the URL is swapped in
    // place, the kept list's source stays the feed's).
    if let FeedSource::Url { url, .. } = &mut feed.spec.source {
        *url = format!("{base}/same");
    }
    let outcome = feed.refresh(&decisions).unwrap();
    if let FeedSource::Url { url, .. } = &mut feed.spec.source {
        *url = format!("{base}/list");
    }
    assert!(matches!(outcome, Ok(Outcome::Unchanged)));
    let at = std::fs::metadata(&kept).unwrap().modified().unwrap();
    assert!(at > old + Duration::from_secs(300), "the kept list's time moved on");
    // Restarted with the same source: waits for the rest of the hour.
    let mut same = feeds(&config).pop().unwrap();
    let kept_at = same.restore(&decisions);
    assert!(same.first_wait(kept_at, SystemTime::now()) > Duration::from_secs(3000));
    // With another source: the old list back, and a fetch at once.
    let config = config_with(dir.path(), &feed_text("/other"));
    let mut moved = feeds(&config).pop().unwrap();
    let kept_at = moved.restore(&decisions);
    assert_eq!(*held.lock().unwrap(), nets(&["192.0.2.5/32"]));
    assert_eq!(moved.first_wait(kept_at, SystemTime::now()), Duration::ZERO);
    let outcome = moved.refresh(&decisions).unwrap();
    moved.record(outcome);
    assert_eq!(*held.lock().unwrap(), nets(&["192.0.2.6/32"]));
    assert!(asked.lock().unwrap().iter().any(|r| r.starts_with("GET /other")));
}

/// A byte that is not UTF-8 (even in a comment) fails the list with its
/// line, as a bad entry does; before, "stream did not contain valid
/// UTF-8" named no line.
#[test]
fn a_list_that_is_not_text_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.txt");
    std::fs::write(&list, b"203.0.113.1\n# caf\xe9\n203.0.113.2\n").unwrap();
    let e = fetch::read_file(&list).unwrap_err().to_string();
    assert_eq!(e, format!("{}: line 2: not UTF-8 text", list.display()));
}
