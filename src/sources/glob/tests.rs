//! Glob sources with real files in a temp folder: several files, files
//! created later, rotated copies that match the pattern too.

use super::*;
use std::io::Write;
use std::sync::Mutex;

#[test]
fn names_match_like_the_shell_and_compressed_files_are_left_out() {
    assert!(name_matches(OsStr::new("*.log"), OsStr::new("full.log")));
    assert!(!name_matches(OsStr::new("*.log"), OsStr::new(".hidden.log")));
    assert!(name_matches(OsStr::new("*access.log"), OsStr::new("site-access.log")));
    assert!(name_matches(OsStr::new("messages*"), OsStr::new("messages.2.gz")));
    assert!(name_matches(OsStr::new("x[0-9]"), OsStr::new("x7")));
    assert!(!name_matches(OsStr::new("x[0-9]"), OsStr::new("xa")));
    assert!(is_pattern(Path::new("/var/log/asterisk/*.log")));
    assert!(!is_pattern(Path::new("/var/log/auth.log")));
    for name in ["messages.2.gz", "a.xz", "a.zst", "a.bz2"] {
        assert!(is_compressed(OsStr::new(name)), "{name}");
    }
    let dir = tempfile::tempdir().unwrap();
    for name in ["messages", "messages.1", "messages.2.gz", "other"] {
        std::fs::write(dir.path().join(name), "x\n").unwrap();
    }
    std::fs::create_dir(dir.path().join("messages.d")).unwrap();
    let found = expand(&dir.path().join("messages*"));
    assert_eq!(found, [dir.path().join("messages"), dir.path().join("messages.1")]);
    assert!(expand(&dir.path().join("nothing*")).is_empty());
    assert!(expand(Path::new("/no/such/folder/*.log")).is_empty());
}

/// libc's `fnmatch(3)` with `FNM_PERIOD`, which matched names before the
/// glob crate: the `fnmatch` column of the table below is checked with it.
fn fnmatch(pattern: &[u8], name: &[u8]) -> bool {
    let (p, n) = (
        std::ffi::CString::new(pattern).unwrap(),
        std::ffi::CString::new(name).unwrap(),
    );
    // SAFETY: two valid NUL-terminated strings for the duration of the call.
    unsafe { libc::fnmatch(p.as_ptr(), n.as_ptr(), libc::FNM_PERIOD) == 0 }
}

/// The glob crate beside `fnmatch(3)` on tricky cases: (pattern, name,
/// what fnmatch says, what `name_matches` says). They agree on everything
/// a log pattern needs; the rows where they differ come last.
#[test]
fn name_matching_beside_fnmatch() {
    let table: &[(&str, &[u8], bool, bool)] = &[
        ("*.log", b"full.log", true, true),
        ("*.log", b".x.log", false, false),
        (".*.log", b".x.log", true, true),
        ("?x", b".x", false, false),
        ("[.]x", b".x", false, false),
        ("*", b".", false, false),
        ("a?c", b"abc", true, true),
        ("a?c", b"ac", false, false),
        ("[ab]*", b"bx", true, true),
        ("[ab]*", b"cx", false, false),
        ("[!a]*", b"bx", true, true),
        ("[!a]*", b"ax", false, false),
        ("[!a]*", b".x", false, false),
        ("*[0-9]", b"messages.1", true, true),
        ("*[0-9]", b"messages", false, false),
        ("x[z-a]", b"xb", false, false),
        ("[]]", b"]", true, true),
        ("[*]", b"*", true, true),
        ("*.LOG", b"x.log", false, false),
        ("\u{e9}t\u{e9}*", "\u{e9}t\u{e9}.log".as_bytes(), true, true),
        ("*.log", b"\xff.log", true, true),
        // `?` is one character for the crate, one byte for fnmatch in the
        // C locale (nftban never sets another).
        ("a?c", "a\u{e9}c".as_bytes(), false, true),
        // A backslash escapes for fnmatch only; `[*]` does it for both.
        ("\\*", b"*", true, false),
        ("\\*", b"\\x", false, true),
        // `[^...]` is glibc's `[!...]`; for the crate `^` is a member.
        ("[^a]*", b"bx", true, false),
        // fnmatch takes an unclosed `[` literally, the crate rejects the
        // pattern; likewise `**` inside a name, and POSIX classes.
        ("[", b"[", true, false),
        ("a[b*", b"a[bc", true, false),
        ("a**", b"abc", true, false),
        ("[[:digit:]]*", b"1x", true, false),
    ];
    for &(pattern, name, libc_says, ours) in table {
        assert_eq!(
            fnmatch(pattern.as_bytes(), name),
            libc_says,
            "fnmatch({pattern:?}, {name:?})"
        );
        assert_eq!(
            name_matches(OsStr::new(pattern), OsStr::from_bytes(name)),
            ours,
            "name_matches({pattern:?}, {name:?})"
        );
    }
}

/// A glob reader on a thread, collecting (file name, line).
struct Reader {
    lines: Arc<Mutex<Vec<(String, String)>>>,
    positions: Arc<Mutex<BTreeMap<PathBuf, Position>>>,
    stats: Arc<SourceStats>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    fn start(pattern: &Path, saved: BTreeMap<PathBuf, Position>) -> Reader {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let positions = Arc::new(Mutex::new(BTreeMap::new()));
        let stats = Arc::new(SourceStats::new(pattern.to_path_buf()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, p, s, st, pat) = (
            lines.clone(),
            positions.clone(),
            stats.clone(),
            stop.clone(),
            pattern.to_path_buf(),
        );
        let thread = std::thread::spawn(move || {
            follow(
                &pat,
                s,
                st,
                &saved,
                |f: &SourceStats, line: &str| {
                    let name = f.path.file_name().unwrap().to_string_lossy().into_owned();
                    l.lock().unwrap().push((name, line.to_string()));
                },
                |f: &Path, pos| {
                    p.lock().unwrap().insert(f.to_path_buf(), pos);
                },
            )
        });
        let r = Reader {
            lines,
            positions,
            stats,
            stop,
            thread: Some(thread),
        };
        r.wait("the reader to look", |r| r.stats.state() != SourceState::Starting);
        r
    }

    fn lines(&self) -> Vec<(String, String)> {
        self.lines.lock().unwrap().clone()
    }

    /// Wait for a condition (events, not time: the deadline only ends a hung test).
    fn wait(&self, what: &str, f: impl Fn(&Reader) -> bool) {
        let start = Instant::now();
        while !f(self) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(mut self) -> BTreeMap<PathBuf, Position> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        self.positions.lock().unwrap().clone()
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn append(path: &Path, lines: &[&str]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

fn members(stats: &SourceStats) -> Vec<String> {
    stats
        .members()
        .iter()
        .map(|m| m.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Two files match at start (read from their end, as single files are);
/// a third created later is read from its start; status lists each file
/// and the pattern's counts are their sums.
#[test]
fn follows_every_matching_file_and_picks_up_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let b = dir.path().join("b.log");
    append(&a, &["old a"]);
    append(&b, &["old b"]);
    std::fs::write(dir.path().join("notes.txt"), "not matched\n").unwrap();
    let r = Reader::start(&dir.path().join("*.log"), BTreeMap::new());
    assert_eq!(members(&r.stats), ["a.log", "b.log"]);
    assert_eq!(r.stats.state(), SourceState::Reading);
    append(&a, &["a1"]);
    append(&b, &["b1"]);
    r.wait("a1 and b1", |r| r.lines().len() == 2);
    let c = dir.path().join("c.log");
    append(&c, &["c1", "c2"]);
    r.wait("the new file's lines", |r| r.lines().len() == 4);
    append(&dir.path().join("notes.txt"), &["still not matched"]);
    append(&c, &["c3"]);
    r.wait("c3", |r| r.lines().len() == 5);
    let mut got = r.lines();
    got.sort();
    let want: Vec<(String, String)> = [
        ("a.log", "a1"),
        ("b.log", "b1"),
        ("c.log", "c1"),
        ("c.log", "c2"),
        ("c.log", "c3"),
    ]
    .iter()
    .map(|(f, l)| (f.to_string(), l.to_string()))
    .collect();
    assert_eq!(got, want);
    assert_eq!(members(&r.stats), ["a.log", "b.log", "c.log"]);
    assert_eq!(r.stats.lines.load(Ordering::Relaxed), 5, "the pattern sums its files");
    let c_stats = r.stats.members().into_iter().find(|m| m.path == c).unwrap();
    assert_eq!(c_stats.lines.load(Ordering::Relaxed), 3);
    r.stop();
}

/// `messages*` also matches the rotated `messages.1` (and `.2.gz`): each
/// line is read once, including one the service writes to the old file
/// after the rename, before it reopens.
#[test]
fn a_rotated_copy_matching_the_pattern_is_not_read_twice() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("messages");
    append(&log, &["before start"]);
    let r = Reader::start(&dir.path().join("messages*"), BTreeMap::new());
    let long: String = "x".repeat(1500); // more than the fingerprint's head
    append(&log, &["one", &long, "two"]);
    r.wait("three lines", |r| r.lines().len() == 3);
    // Rotation by rename-and-create, with a late line on the old file.
    let rotated = dir.path().join("messages.1");
    std::fs::rename(&log, &rotated).unwrap();
    append(&rotated, &["late line on the old file"]);
    append(&log, &["new one"]);
    r.wait("the new file's line", |r| r.lines().iter().any(|l| l.1 == "new one"));
    r.wait("the late line", |r| r.lines().iter().any(|l| l.1.starts_with("late")));
    r.wait("both files followed", |r| {
        members(&r.stats) == ["messages", "messages.1"]
    });
    // A second rotation, with compression of the oldest: .1 -> .2 -> .2.gz.
    std::fs::rename(&rotated, dir.path().join("messages.2")).unwrap();
    std::fs::rename(&log, &rotated).unwrap();
    append(&log, &["newest"]);
    r.wait("the newest line", |r| r.lines().iter().any(|l| l.1 == "newest"));
    r.wait("three files followed", |r| members(&r.stats).len() == 3);
    let gz = dir.path().join("messages.2.gz");
    std::fs::write(&gz, std::fs::read(dir.path().join("messages.2")).unwrap()).unwrap();
    std::fs::remove_file(dir.path().join("messages.2")).unwrap();
    append(&log, &["last"]);
    r.wait("the last line", |r| r.lines().iter().any(|l| l.1 == "last"));
    r.wait("the .2 file dropped", |r| {
        members(&r.stats) == ["messages", "messages.1"]
    });
    let got: Vec<String> = r.lines().into_iter().map(|l| l.1).collect();
    let mut sorted = got.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), got.len(), "a line was read twice: {got:?}");
    assert_eq!(got.len(), 7, "{got:?}");
    r.stop();
}

/// A pattern that matches nothing yet is not an error: its state says so,
/// and the first file that appears is read from its start.
#[test]
fn a_pattern_matching_nothing_yet_waits() {
    let dir = tempfile::tempdir().unwrap();
    let r = Reader::start(&dir.path().join("*.log"), BTreeMap::new());
    assert_eq!(r.stats.state(), SourceState::NoMatch);
    append(&dir.path().join("x.log"), &["first"]);
    r.wait("the first line", |r| r.lines().len() == 1);
    assert_eq!(r.stats.state(), SourceState::Reading);
    r.stop();
}

/// Rotated while nftban was stopped: the file read before now has another
/// name; it is recognised by its head and read on from where reading
/// stopped, not from its start; the new file is read from its start.
#[test]
fn rotation_while_stopped_is_recognised_by_the_files_head() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("messages");
    append(&log, &[]);
    let r = Reader::start(&dir.path().join("messages*"), BTreeMap::new());
    // Longer than the fingerprint's head: a short head proves nothing.
    let long = "y".repeat(1500);
    append(&log, &["one", &long]);
    r.wait("two lines", |r| r.lines().len() == 2);
    let saved = r.stop();
    assert!(saved.contains_key(&log), "{saved:?}");
    // Stopped: a line, rotation, a line in the new file.
    append(&log, &["while stopped, old file"]);
    std::fs::rename(&log, dir.path().join("messages.1")).unwrap();
    append(&log, &["while stopped, new file"]);
    let r = Reader::start(&dir.path().join("messages*"), saved);
    r.wait("both lines written while stopped", |r| r.lines().len() == 2);
    let mut got: Vec<String> = r.lines().into_iter().map(|l| l.1).collect();
    got.sort();
    assert_eq!(got, ["while stopped, new file", "while stopped, old file"]);
    r.stop();
}

/// copytruncate: the copy `messages.1` holds lines already read; it is
/// recognised by its head (the original was truncated meanwhile) and not
/// read again.
#[test]
fn a_copytruncate_copy_is_not_read_twice() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("messages");
    append(&log, &[]);
    let r = Reader::start(&dir.path().join("messages*"), BTreeMap::new());
    let long = "z".repeat(1500);
    append(&log, &[&long, "two"]);
    r.wait("two lines", |r| r.lines().len() == 2);
    std::fs::copy(&log, dir.path().join("messages.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &["after truncation"]);
    r.wait("the new line", |r| r.lines().iter().any(|l| l.1 == "after truncation"));
    r.wait("the copy followed", |r| members(&r.stats).len() == 2);
    append(&log, &["last"]);
    r.wait("the last line", |r| r.lines().iter().any(|l| l.1 == "last"));
    assert_eq!(r.lines().len(), 4, "{:?}", r.lines());
    r.stop();
}

/// A FIFO that matches the pattern used to be passed over in silence (or
/// to hang the reader, opened between the listing and the look at its
/// head): it is listed with the files, unreadable, with what it is, and
/// never opened; once a regular file takes its place it is read from its
/// start. A folder that matches is no file of the pattern.
#[test]
fn a_fifo_matching_the_pattern_is_listed_unreadable_then_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("b.log");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    std::fs::create_dir(dir.path().join("folder.log")).unwrap();
    append(&dir.path().join("a.log"), &["old"]);
    let r = Reader::start(&dir.path().join("*.log"), BTreeMap::new());
    r.wait("the FIFO listed unreadable", |r| {
        r.stats
            .members()
            .iter()
            .any(|m| m.path == fifo && m.state() == SourceState::Unreadable("is a FIFO, not a regular file".into()))
    });
    assert_eq!(members(&r.stats), ["a.log", "b.log"]);
    let status = r.stats.status(0, std::time::SystemTime::now());
    assert_eq!(status.files[1].state, "unreadable");
    assert_eq!(status.files[1].error.as_deref(), Some("is a FIFO, not a regular file"));
    std::fs::remove_file(&fifo).unwrap();
    append(&fifo, &["first of b"]);
    r.wait("b.log read", |r| {
        r.lines().contains(&("b.log".into(), "first of b".into()))
    });
    append(&dir.path().join("a.log"), &["new in a"]);
    r.wait("a.log read on", |r| {
        r.lines().contains(&("a.log".into(), "new in a".into()))
    });
    r.stop();
}

/// The copytruncate race the soak benchmark found: the original is
/// truncated and written again after the pass read it but before the copy
/// is looked at. The copy must be recognised by the head the member's tail
/// read, not by what the path holds now, so it waits for the member to
/// notice its truncation, then resumes where reading stopped: never read
/// from its start (which counted every copied failure twice).
#[test]
fn a_copy_made_just_before_a_truncation_the_pass_has_not_seen_is_not_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("messages");
    let long = "z".repeat(1500);
    append(&log, &[&long, "two"]);
    let mut glob = Glob {
        pattern: dir.path().join("messages*"),
        stats: Arc::new(SourceStats::new(dir.path().join("messages*"))),
        members: BTreeMap::new(),
        left: VecDeque::new(),
        waiting: BTreeMap::new(),
    };
    let mut lines: Vec<String> = Vec::new();
    glob.add(log.clone(), StartAt::Beginning, &mut |_, l| lines.push(l.to_string()));
    assert_eq!(lines.len(), 2);
    let read_to = glob.members.get_mut(&log).unwrap().tail.position().unwrap().offset;
    // logrotate's copytruncate, and the service writing on, between two passes.
    let copy = dir.path().join("messages.1");
    std::fs::copy(&log, &copy).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(
        &log,
        &["after truncation, a line long enough to be something else entirely"],
    );
    assert_eq!(glob.decide(&copy), None, "the copy waits: it is the member's own file");
    // The next pass notices the truncation; the copy is then the left file.
    let mut positions = Vec::new();
    glob.pass(&mut |_, l| lines.push(l.to_string()), &mut |p, pos| {
        positions.push((p.to_path_buf(), pos))
    });
    let copy_member = glob.members.get_mut(&copy).expect("the copy followed");
    assert_eq!(
        copy_member.tail.position().unwrap().offset,
        read_to,
        "on from where reading stopped"
    );
    assert_eq!(
        lines.iter().filter(|l| l.as_str() == "two").count(),
        1,
        "no copied line read twice: {lines:?}"
    );
}
