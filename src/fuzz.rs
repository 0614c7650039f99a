//! What the hostile-input property tests share (`config::fuzz`,
//! `matcher::fuzz`, `yaml::fuzz`): a way to measure and cap the memory a
//! parser takes, a way to run a test whose failure would abort the process
//! in a process of its own, and edits that turn good input into hostile
//! input.
//!
//! Memory is measured, not timed: a counting allocator (the test binary's
//! global allocator) keeps, per thread, the bytes live and their peak since
//! [`measure`] started. A parser fed hostile text can also be run under a
//! hard cap ([`capped`]): an allocation past it fails, which aborts the
//! process (Rust's collections do not recover from a failed allocation), so
//! capped tests run in a child process ([`in_child`]) and the parent test
//! fails with the child's message instead of the whole test binary dying.
//!
//! Runs are seeded ([`config`]): the same cases at every `cargo test`, so
//! that CI never passes or fails by chance; `PROPTEST_RNG_SEED=S` and
//! `PROPTEST_CASES=N` fuzz other and more cases than CI does.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::process::Command;

use proptest::prelude::*;

/// The system allocator, counting per thread.
struct Counting;

thread_local! {
    /// Bytes allocated minus bytes freed by this thread since [`measure`]
    /// started (negative when it frees what was allocated before).
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// The highest `LIVE` since [`measure`] started.
    static PEAK: Cell<isize> = const { Cell::new(0) };
    /// An allocation that would take `LIVE` past this fails.
    static CAP: Cell<isize> = const { Cell::new(isize::MAX) };
}

/// Counts `size` bytes more on this thread; false (nothing counted) when
/// that would pass the cap.
fn grow(size: usize) -> bool {
    let size = isize::try_from(size).unwrap_or(isize::MAX);
    let ok = LIVE.try_with(|live| {
        let next = live.get().saturating_add(size);
        // A refused allocation counts in the peak, so that a parser that
        // recovers from it (`try_reserve`, as `read_to_end` does) is
        // still seen to have asked for more than the cap.
        let _ = PEAK.try_with(|p| p.set(p.get().max(next)));
        if next > CAP.try_with(Cell::get).unwrap_or(isize::MAX) {
            return false;
        }
        live.set(next);
        true
    });
    ok.unwrap_or(true)
}

fn shrink(size: usize) {
    let size = isize::try_from(size).unwrap_or(isize::MAX);
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(size)));
}

// SAFETY: every call goes to the system allocator with the caller's own
// arguments; the counting only reads and writes thread-locals that need no
// allocation (const-initialised `Cell`s without destructors), and a refusal
// is a null pointer, which the contract allows.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !grow(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            shrink(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !grow(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            shrink(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrink(layout.size());
        // SAFETY: `ptr` came from this allocator (so from `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() && !grow(new_size - layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's pointer, layout and size, as `realloc` requires.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        match (p.is_null(), new_size > layout.size()) {
            (true, true) => shrink(new_size - layout.size()),
            (false, false) => shrink(layout.size() - new_size),
            _ => {}
        }
        p
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Runs `f` and returns what it returned with the peak of the bytes this
/// thread held live meanwhile, above what it held when `f` started.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let (live, peak) = (LIVE.with(Cell::get), PEAK.with(Cell::get));
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    let out = f();
    let used = PEAK.with(Cell::get).max(0) as usize;
    // Nested measurements see the outer one's bytes again afterwards.
    LIVE.with(|l| l.set(live.saturating_add(l.get())));
    PEAK.with(|p| p.set(peak.max(live.saturating_add(used as isize))));
    (out, used)
}

/// Runs `f` with allocations on this thread capped at `cap` bytes live
/// above what it holds now: past it an allocation fails, and the process
/// aborts with "memory allocation of N bytes failed" (or the code recovers
/// with an error, and the peak returned, which counts the refused
/// allocation, is over the cap). Run it in [`in_child`], never in the test
/// binary's own process.
pub fn capped<T>(cap: usize, f: impl FnOnce() -> T) -> (T, usize) {
    let before = CAP.with(Cell::get);
    CAP.with(|c| c.set(isize::try_from(cap).unwrap_or(isize::MAX)));
    let out = measure(f);
    CAP.with(|c| c.set(before));
    out
}

/// Runs `f` on a thread of its own, capped at `cap` bytes (see
/// [`capped`]), and waits up to `deadline` for it to finish: its answer
/// and peak memory, or `None` when it did not finish in time (it is left
/// running: call this in [`in_child`]). For inputs that make a parser
/// spin or grow: the deadline is generous, a stand-in for "never".
pub fn bounded<T: Send + 'static>(
    deadline: std::time::Duration,
    cap: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<(T, usize)> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(capped(cap, f));
    });
    rx.recv_timeout(deadline).ok()
}

/// Set in the child process [`in_child`] starts: the test it runs.
const CHILD: &str = "NFTBAN_FUZZ_CHILD";

/// Runs the test `test` (its path in the crate, `config::fuzz::name`) in a
/// child process, where it runs `body`; in the child, runs `body`. The
/// parent asserts that the child passed and shows what it printed, so a
/// test that aborts the process (a capped allocation, a stack overflow)
/// fails alone and says why.
pub fn in_child(test: &str, body: impl FnOnce()) {
    if std::env::var(CHILD).as_deref() == Ok(test) {
        body();
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .args([test, "--exact", "--include-ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD, test)
        .output()
        .expect("start the test binary again");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("1 passed"),
        "{test} in a child process: {}\n{text}",
        out.status
    );
    assert!(
        out.status.success(),
        "{test} in a child process: {}\n{text}",
        out.status
    );
}

/// The path of a test function in this crate, for [`in_child`]:
/// `test_path(module_path!(), "name")`.
pub fn test_path(module: &str, name: &str) -> String {
    let module = module
        .strip_prefix(concat!(env!("CARGO_CRATE_NAME"), "::"))
        .unwrap_or(module);
    format!("{module}::{name}")
}

/// The seed of these tests' runs unless `PROPTEST_RNG_SEED` gives one.
const SEED: u64 = 20261206;

/// proptest's config for these tests: `cases` unless `PROPTEST_CASES` asks
/// for more or fewer, and a fixed seed unless `PROPTEST_RNG_SEED` gives
/// another. Fixed, because a test run must not pass or fail by chance:
/// the tests that check a generator makes both outcomes (some texts load,
/// some are refused) saw one of them missing about once in thirty random
/// runs. Fuzz longer and elsewhere with `PROPTEST_RNG_SEED=N
/// PROPTEST_CASES=M cargo test fuzz`.
pub fn config(cases: u32) -> ProptestConfig {
    fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
        std::env::var(name).ok().and_then(|v| v.parse().ok())
    }
    ProptestConfig {
        cases: env("PROPTEST_CASES").unwrap_or(cases),
        rng_seed: proptest::test_runner::RngSeed::Fixed(env("PROPTEST_RNG_SEED").unwrap_or(SEED)),
        // The failing case is printed; CI keeps no files.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs the property `check` over `cases` values of `strategy` (as
/// `proptest!` does, in a test that needs to do more around it, such as
/// run in a child process).
pub fn run<S: Strategy>(cases: u32, strategy: S, check: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let mut runner = proptest::test_runner::TestRunner::new(config(cases));
    if let Err(e) = runner.run(&strategy, check) {
        panic!("{e}");
    }
}

/// Text hostile to a parser of lines: what makes YAML, INI and log lines
/// go wrong, to be spliced into good input.
pub const NASTY: &[&str] = &[
    "",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\r",
    "\0",
    "\u{feff}",
    "\u{fffd}",
    "é",
    "\u{202e}",
    "𝕏",
    "'",
    "\"",
    "`",
    "\\",
    ":",
    ": ",
    "- ",
    "#",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!tag ",
    "? ",
    "|",
    ">-",
    "---",
    "...",
    "%YAML 1.2",
    "%",
    "<HOST>",
    "(",
    ")",
    "(?P<host>",
    "[%(",
    "%(x)s",
    "<x>",
    "=",
    "18446744073709551616",
    "99999999999999999999999999999999",
    "-1",
    "1e309",
    ".nan",
    "0x",
    "~",
    "null",
    "true",
    "192.0.2.1",
    "2001:db8::1",
    "::ffff:192.0.2.1",
    "0.0.0.0/0",
];

/// One edit of a text taken as lines: what, and three numbers that
/// [`apply`] reads modulo what they pick from.
pub type Edit = (u8, u32, u32, u32);

/// Edits of a text: up to `n` of them.
pub fn edits(n: usize) -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec((0u8..12, any::<u32>(), any::<u32>(), any::<u32>()), 1..=n)
}

/// `n` modulo `len` (which is not 0).
fn pick(n: u32, len: usize) -> usize {
    n as usize % len
}

/// Applies `edits` to `text`, line by line: lines deleted, duplicated,
/// swapped, indented with tabs or more spaces, cut; [`NASTY`] text put into
/// a line; a value replaced by a huge number or a long string; a line
/// wrapped in deep nesting; bytes that are not UTF-8 put in (then read as
/// lossy UTF-8, as a reader that takes any bytes would).
pub fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    for (op, a, b, c) in edits {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let i = pick(*a, lines.len());
        let j = pick(*b, lines.len());
        let line = lines[i].clone();
        let at = floor_char(&line, pick(*c, line.len() + 1));
        match op {
            0 => {
                lines.remove(i);
            }
            1 => lines.insert(j, line),
            2 => lines.swap(i, j),
            3 => lines[i] = format!("{}{}", &line[..at], NASTY[pick(*b, NASTY.len())]) + &line[at..],
            4 => lines[i] = line[..at].to_string(),
            5 => lines[i] = format!("\t{line}"),
            6 => lines[i] = format!("{}{line}", " ".repeat(1 + pick(*b, 8))),
            7 => {
                // A value made huge: a number past 64 bits, or a long string.
                let cut = line.find(": ").map_or(line.len(), |k| k + 2);
                let value = if pick(*b, 2) == 0 {
                    "9".repeat(20 + pick(*c, 40))
                } else {
                    "x".repeat(1000 + pick(*c, 60_000))
                };
                lines[i] = format!("{}{value}", &line[..cut]);
            }
            8 => {
                // Deep nesting, flow or block.
                let depth = 1 + pick(*c, 300);
                lines[i] = if pick(*b, 2) == 0 {
                    format!("{}{}{}", &line[..at], "[".repeat(depth), "]".repeat(depth))
                } else {
                    let nest: String = (0..depth).map(|d| format!("{}k{d}:\n", " ".repeat(d))).collect();
                    format!("{line}\n{nest}")
                };
            }
            9 => {
                let mut bytes = line.into_bytes();
                let bad: &[u8] = [&b"\xff"[..], b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"][pick(*b, 4)];
                bytes.splice(at..at, bad.iter().copied());
                lines[i] = String::from_utf8_lossy(&bytes).into_owned();
            }
            10 => lines[i] = line.replace(' ', "\t"),
            _ => lines.insert(j, NASTY[pick(*c, NASTY.len())].repeat(1 + pick(*a, 64))),
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// The largest char boundary of `s` at or before `i`.
pub fn floor_char(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Text made of YAML's tokens, the config's and rulesets' keys, and
/// [`NASTY`] text, `n` pieces at most.
pub fn yamlish(keys: &'static [&'static str], n: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => proptest::sample::select(keys).prop_map(|k| format!("{k}: ")),
        2 => proptest::sample::select(NASTY).prop_map(String::from),
        2 => (0usize..6).prop_map(|d| format!("\n{}", "  ".repeat(d))),
        1 => "[ -~]{0,12}",
        1 => any::<String>(),
    ];
    proptest::collection::vec(piece, 0..n).prop_map(|p| p.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_sees_the_peak_not_what_is_left() {
        let ((), peak) = measure(|| {
            let big = vec![1u8; 1 << 20];
            drop(std::hint::black_box(big));
        });
        assert!((1 << 20..2 << 20).contains(&peak), "{peak}");
        let (v, peak) = measure(|| vec![0u64; 1000]);
        assert_eq!(v.len(), 1000);
        assert!(peak >= 8000, "{peak}");
    }

    #[test]
    fn a_refused_allocation_shows_in_the_peak() {
        in_child(
            &test_path(module_path!(), "a_refused_allocation_shows_in_the_peak"),
            || {
                let (result, peak) = capped(1 << 20, || Vec::<u8>::new().try_reserve(2 << 20));
                assert!(result.is_err());
                assert!(peak > 1 << 20, "{peak}");
            },
        );
    }

    #[test]
    fn edits_keep_text_valid_and_change_it() {
        let text = "a: 1\nb: {d: 2}\n  c: [x, y]\n";
        let all: Vec<Edit> = (0..12u8).map(|op| (op, 1, 2, 3)).collect();
        for e in &all {
            let out = apply(text, std::slice::from_ref(e));
            assert_ne!(out, text, "edit {e:?} changes the text");
        }
        assert_ne!(apply(text, &all), text);
    }
}
