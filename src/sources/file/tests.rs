use super::*;
use std::io::Write;

fn setup(dir: &Path) -> (PathBuf, Arc<SourceStats>) {
    let path = dir.join("app.log");
    (path.clone(), Arc::new(SourceStats::new(path)))
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// Drive one wake-up by hand, as `follow` does.
fn step(tail: &mut FileTail, start: StartAt) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |l: &str| out.push(l.to_string());
    tail.check(start, &mut push);
    tail.read_available(&mut push).unwrap();
    out
}

#[test]
fn starts_at_the_end_and_reads_appended_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (path, stats) = setup(dir.path());
    append(&path, b"old line\n");
    let mut tail = FileTail::new(&path, stats.clone());
    assert!(step(&mut tail, StartAt::End).is_empty());
    append(&path, b"one\ntwo\n");
    assert_eq!(step(&mut tail, StartAt::Beginning), ["one", "two"]);
    assert_eq!(stats.lines.load(Ordering::Relaxed), 2);
    assert_eq!(stats.state(), SourceState::Reading);
}

#[test]
fn partial_last_line_waits_for_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let (path, stats) = setup(dir.path());
    let mut tail = FileTail::new(&path, stats);
    append(&path, b"");
    step(&mut tail, StartAt::End);
    append(&path, b"hal");
    assert!(step(&mut tail, StartAt::Beginning).is_empty());
    append(&path, b"f\r\nnext");
    assert_eq!(step(&mut tail, StartAt::Beginning), ["half"]);
}

#[test]
fn invalid_utf8_is_read_lossily_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (path, stats) = setup(dir.path());
    append(&path, b"");
    let mut tail = FileTail::new(&path, stats.clone());
    step(&mut tail, StartAt::End);
    append(&path, b"bad \xff\xfe from 192.0.2.1\nok\n");
    assert_eq!(
        step(&mut tail, StartAt::Beginning),
        ["bad \u{fffd}\u{fffd} from 192.0.2.1", "ok"]
    );
    assert_eq!(stats.invalid_utf8.load(Ordering::Relaxed), 1);
}

/// A line over the limit is not handed out in any part, whether it comes
/// in one write or across several, and whether its newline comes or not
/// yet; it is counted once, and the next line is intact. A line at the
/// limit (its `\r` counted) is handed out whole.
#[test]
fn long_lines_are_skipped_whole_and_the_next_line_is_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (path, stats) = setup(dir.path());
    append(&path, b"");
    let mut tail = FileTail::new(&path, stats.clone()).with_max_line(10);
    step(&mut tail, StartAt::End);
    // One long line in a single write, one at the limit, one split across writes.
    append(&path, b"0123456789abcdef\nshort\n012345678\r\n0123456789\n01234");
    let got = step(&mut tail, StartAt::Beginning);
    assert_eq!(got, ["short", "012345678", "0123456789"]);
    append(&path, b"56789XYZ");
    assert!(step(&mut tail, StartAt::Beginning).is_empty());
    assert_eq!(
        stats.truncated.load(Ordering::Relaxed),
        2,
        "counted once it is known too long"
    );
    append(&path, b"more tail\nafter\n");
    assert_eq!(step(&mut tail, StartAt::Beginning), ["after"]);
    assert_eq!(stats.truncated.load(Ordering::Relaxed), 2);
    assert_eq!(stats.lines.load(Ordering::Relaxed), 6, "skipped lines are lines read");
    // The position is past the skipped line: a restart does not read it again.
    assert_eq!(tail.position().unwrap().offset, std::fs::metadata(&path).unwrap().len());
}

/// At the default limit: a line of exactly [`MAX_LINE`] bytes is matched
/// whole, one byte more and it is skipped whole.
#[test]
fn the_default_limit_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (path, stats) = setup(dir.path());
    append(&path, b"");
    let mut tail = FileTail::new(&path, stats.clone());
    step(&mut tail, StartAt::End);
    for len in [MAX_LINE, MAX_LINE + 1] {
        let mut line = vec![b'x'; len];
        line.push(b'\n');
        append(&path, &line);
    }
    append(&path, b"next\n");
    let got = step(&mut tail, StartAt::Beginning);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].len(), MAX_LINE);
    assert_eq!(got[1], "next");
    assert_eq!(stats.truncated.load(Ordering::Relaxed), 1);
}

/// Memory stays bounded whatever the attacker writes: a line of many
/// times the limit, fed in the reads' own sizes and in odd ones, never
/// makes the tail hold (or reserve) more than the limit.
#[test]
fn a_huge_line_holds_no_more_than_the_limit() {
    let stats = Arc::new(SourceStats::new("huge".into()));
    let mut tail = FileTail::new(Path::new("huge"), stats.clone());
    let mut out = Vec::new();
    let chunk = vec![b'A'; 64 * 1024 + 7];
    let mut fed = 0;
    while fed < 5 * MAX_LINE {
        tail.feed(&chunk, &mut |l: &str| out.push(l.len()));
        fed += chunk.len();
        assert!(
            tail.pending.capacity() <= MAX_LINE,
            "{} bytes reserved after {fed} bytes fed",
            tail.pending.capacity()
        );
    }
    tail.feed(b"A\nfail from 192.0.2.1\n", &mut |l: &str| out.push(l.len()));
    assert_eq!(out, ["fail from 192.0.2.1".len()]);
    assert_eq!(stats.truncated.load(Ordering::Relaxed), 1);
    assert_eq!(stats.lines.load(Ordering::Relaxed), 2);
    // Just under the limit in small pieces: kept whole, capacity within the limit.
    let mut tail = FileTail::new(Path::new("huge"), stats.clone());
    let piece = vec![b'B'; 1000];
    for _ in 0..MAX_LINE / 1000 {
        tail.feed(&piece, &mut |l: &str| out.push(l.len()));
    }
    assert!(tail.pending.capacity() <= MAX_LINE);
    tail.feed(b"\n", &mut |l: &str| out.push(l.len()));
    assert_eq!(out[1], MAX_LINE / 1000 * 1000);
}

/// Standard input's last line without its newline: handed out at the end
/// of input if within the limit, never if over it.
#[test]
fn a_last_line_over_the_limit_is_not_handed_out_at_the_end() {
    let stats = Arc::new(SourceStats::new("stdin".into()));
    let mut out = Vec::new();
    let mut tail = FileTail::new(Path::new("stdin"), stats.clone()).with_max_line(10);
    tail.feed(b"ok\n0123456789abc", &mut |l: &str| out.push(l.to_string()));
    tail.finish(&mut |l: &str| out.push(l.to_string()));
    let mut tail = FileTail::new(Path::new("stdin"), stats.clone()).with_max_line(10);
    tail.feed(b"0123456789", &mut |l: &str| out.push(l.to_string()));
    tail.finish(&mut |l: &str| out.push(l.to_string()));
    assert_eq!(out, ["ok", "0123456789"]);
    assert_eq!(stats.truncated.load(Ordering::Relaxed), 1);
}

#[test]
fn rotation_by_rename_finishes_old_file_then_reads_new_from_start() {
    let dir = tempfile::tempdir().unwrap();
    let (path, stats) = setup(dir.path());
    append(&path, b"");
    let mut tail = FileTail::new(&path, stats);
    step(&mut tail, StartAt::End);
    append(&path, b"last of old\n");
    std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    append(&path, b"first of new\n");
    assert_eq!(step(&mut tail, StartAt::Beginning), ["last of old", "first of new"]);
}

#[test]
fn truncation_reads_from_the_start_again() {
    let dir = tempfile::tempdir().unwrap();
    let (path, stats) = setup(dir.path());
    append(&path, b"");
    let mut tail = FileTail::new(&path, stats);
    step(&mut tail, StartAt::End);
    append(&path, b"a long first line\n");
    assert_eq!(step(&mut tail, StartAt::Beginning).len(), 1);
    std::fs::write(&path, b"new\n").unwrap();
    assert_eq!(step(&mut tail, StartAt::Beginning), ["new"]);
}

#[test]
fn missing_then_created_file_is_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let (path, stats) = setup(dir.path());
    let mut tail = FileTail::new(&path, stats.clone());
    assert!(step(&mut tail, StartAt::End).is_empty());
    assert_eq!(stats.state(), SourceState::Missing);
    append(&path, b"hello\n");
    assert_eq!(step(&mut tail, StartAt::Beginning), ["hello"]);
}

#[test]
fn a_directory_is_reported_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let stats = Arc::new(SourceStats::new(dir.path().to_path_buf()));
    let mut tail = FileTail::new(dir.path(), stats.clone());
    step(&mut tail, StartAt::End);
    assert!(matches!(stats.state(), SourceState::Unreadable(e) if e.contains("directory")));
}

#[test]
fn follow_delivers_lines_written_after_start() {
    let dir = tempfile::tempdir().unwrap();
    let (path, stats) = setup(dir.path());
    append(&path, b"before\n");
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = {
        let (path, stats, stop) = (path.clone(), stats.clone(), stop.clone());
        std::thread::spawn(move || {
            follow(
                &path,
                stats,
                stop,
                StartAt::End,
                move |l: &str| tx.send(l.to_string()).unwrap(),
                |_| {},
            )
        })
    };
    while stats.state() != SourceState::Reading {
        std::thread::yield_now();
    }
    append(&path, b"after\n");
    assert_eq!(rx.recv().unwrap(), "after");
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap();
}

#[test]
fn resume_reads_exactly_what_was_written_while_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (path, stats) = setup(dir.path());
    append(&path, b"old 1\n");
    let mut tail = FileTail::new(&path, stats.clone());
    step(&mut tail, StartAt::End);
    append(&path, b"seen\npartial");
    assert_eq!(step(&mut tail, StartAt::Beginning), ["seen"]);
    let pos = tail.position().unwrap();
    assert_eq!(
        pos.offset,
        "old 1\nseen\n".len() as u64,
        "a partial line is not past the position"
    );
    drop(tail);
    // Stopped: the partial line ends and more lines come.
    append(&path, b" line\nwhile stopped\n");
    let mut tail = FileTail::new(&path, stats);
    assert_eq!(step(&mut tail, StartAt::Resume(pos)), ["partial line", "while stopped"]);
}

#[test]
fn resume_on_a_replaced_file_reads_it_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let (path, stats) = setup(dir.path());
    append(&path, b"first file line\n");
    let mut tail = FileTail::new(&path, stats.clone());
    step(&mut tail, StartAt::Beginning);
    let pos = tail.position().unwrap();
    drop(tail);
    std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    append(&path, b"new file, first line\nsecond\n");
    let mut tail = FileTail::new(&path, stats.clone());
    assert_eq!(
        step(&mut tail, StartAt::Resume(pos)),
        ["new file, first line", "second"]
    );
    // A truncated file with the same head is read from its start too.
    let pos = tail.position().unwrap();
    drop(tail);
    std::fs::write(&path, b"new file").unwrap();
    let mut tail = FileTail::new(&path, stats);
    append(&path, b", again\n");
    let got = step(&mut tail, StartAt::Resume(pos));
    assert_eq!(got, ["new file, again"]);
}

/// The fast path for a plain write reads what was appended, and says
/// "nothing new" after a truncation so the caller runs the full check,
/// which then reads the truncated file from its start.
#[test]
fn read_appended_reads_writes_and_leaves_truncation_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let (path, stats) = setup(dir.path());
    let mut tail = FileTail::new(&path, stats);
    let mut out = Vec::new();
    assert!(
        !tail.read_appended(&mut |l: &str| out.push(l.to_string())),
        "no file open yet"
    );
    append(&path, b"first line that is long\n");
    step(&mut tail, StartAt::End);
    append(&path, b"one\n");
    assert!(tail.read_appended(&mut |l: &str| out.push(l.to_string())));
    assert_eq!(out, ["one"]);
    // copytruncate: the file is emptied, then a shorter line written.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    append(&path, b"two\n");
    assert!(!tail.read_appended(&mut |l: &str| out.push(l.to_string())));
    assert_eq!(step(&mut tail, StartAt::Beginning), ["two"]);
}

/// `follow` on a thread of its own, as `FileSource` runs it, collecting
/// lines; stopped on drop (not joined after a failure: a hung reader is
/// what some of these tests catch).
struct Following {
    stats: Arc<SourceStats>,
    stop: Arc<AtomicBool>,
    lines: std::sync::mpsc::Receiver<String>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Following {
    fn start(path: &Path) -> Following {
        let stats = Arc::new(SourceStats::new(path.to_path_buf()));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, lines) = std::sync::mpsc::channel();
        let thread = {
            let (path, stats, stop) = (path.to_path_buf(), stats.clone(), stop.clone());
            std::thread::spawn(move || {
                follow(
                    &path,
                    stats,
                    stop,
                    StartAt::End,
                    move |l: &str| tx.send(l.to_string()).unwrap(),
                    |_| {},
                )
            })
        };
        Following {
            stats,
            stop,
            lines,
            thread: Some(thread),
        }
    }

    /// Wait for the source's state to satisfy `f` (an event: the deadline
    /// only ends a hung test); returns it.
    fn wait_state(&self, what: &str, f: impl Fn(&SourceState) -> bool) -> SourceState {
        let start = std::time::Instant::now();
        loop {
            let state = self.stats.state();
            if f(&state) {
                return state;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(20),
                "timed out waiting for {what}; state: {state:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// The next line handed out (the deadline only ends a hung test).
    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("a line within the deadline")
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if !std::thread::panicking() {
            self.thread.take().unwrap().join().unwrap();
        }
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {path:?}");
}

fn unreadable_with(words: &'static str) -> impl Fn(&SourceState) -> bool {
    move |s| matches!(s, SourceState::Unreadable(e) if e.contains(words))
}

/// A FIFO at the path used to hang the reader for good in `open` (even
/// after the path named a regular file again): it is not opened, status
/// says what it is, and once a regular file takes its place it is read.
#[test]
fn a_fifo_is_unreadable_until_a_regular_file_takes_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = setup(dir.path());
    mkfifo(&path);
    let f = Following::start(&path);
    let state = f.wait_state("the FIFO to be reported", unreadable_with("FIFO"));
    assert_eq!(state, SourceState::Unreadable("is a FIFO, not a regular file".into()));
    std::fs::remove_file(&path).unwrap();
    append(&path, b"first line of the regular file\n");
    assert_eq!(f.next_line(), "first line of the regular file");
    assert_eq!(f.stats.state(), SourceState::Reading);
}

/// A link to /dev/zero used to burn a core for good (reads that never
/// end): it is not opened, status says where it leads and what that is,
/// nothing is read from it; once the path names a regular file it is read.
#[test]
fn a_link_to_dev_zero_is_unreadable_and_nothing_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = setup(dir.path());
    std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
    let f = Following::start(&path);
    let state = f.wait_state("the device to be reported", unreadable_with("character device"));
    assert_eq!(
        state,
        SourceState::Unreadable("is a link to /dev/zero, a character device, not a regular file".into())
    );
    assert_eq!(f.stats.lines.load(Ordering::Relaxed), 0);
    assert_eq!(
        f.stats.truncated.load(Ordering::Relaxed),
        0,
        "nothing read from /dev/zero"
    );
    std::fs::remove_file(&path).unwrap();
    append(&path, b"now a file\n");
    assert_eq!(f.next_line(), "now a file");
}

/// A directory at the path: unreadable, then read once a file takes its
/// place.
#[test]
fn a_directory_is_unreadable_until_a_file_takes_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = setup(dir.path());
    std::fs::create_dir(&path).unwrap();
    let f = Following::start(&path);
    let state = f.wait_state("the directory to be reported", unreadable_with("directory"));
    assert_eq!(
        state,
        SourceState::Unreadable("is a directory, not a regular file".into())
    );
    std::fs::remove_dir(&path).unwrap();
    append(&path, b"a file now\n");
    assert_eq!(f.next_line(), "a file now");
}

/// A file being read, replaced by a FIFO: its last lines are read, the
/// FIFO is reported, and the regular file that comes next is read from its
/// start.
#[test]
fn a_file_replaced_by_a_fifo_is_finished_and_the_fifo_not_opened() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = setup(dir.path());
    append(&path, b"");
    let f = Following::start(&path);
    f.wait_state("the file to be read", |s| *s == SourceState::Reading);
    append(&path, b"one\n");
    assert_eq!(f.next_line(), "one");
    append(&path, b"last of the file\n");
    std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    mkfifo(&path);
    f.wait_state("the FIFO to be reported", unreadable_with("FIFO"));
    assert_eq!(f.next_line(), "last of the file");
    std::fs::remove_file(&path).unwrap();
    append(&path, b"new file\n");
    assert_eq!(f.next_line(), "new file");
}

/// A link that leads out of the folder (admins do that) is followed: a
/// regular file behind it is read.
#[test]
fn a_link_out_of_the_folder_to_a_regular_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("real.log");
    append(&target, b"");
    let (path, _) = setup(dir.path());
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let f = Following::start(&path);
    f.wait_state("the link to be read", |s| *s == SourceState::Reading);
    append(&target, b"through the link\n");
    assert_eq!(f.next_line(), "through the link");
}
