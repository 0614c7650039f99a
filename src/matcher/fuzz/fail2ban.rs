//! Hostile fail2ban filters (`nftban test LOG filter.conf`, filters
//! copied from the internet): random `.conf` texts with includes among
//! themselves, and the filters of `tests/data/fail2ban` and of Debian's
//! fail2ban (`/etc/fail2ban/filter.d`, when installed) edited at random.
//! Whatever the text: [`fail2ban::load`] and [`Matcher::new`] do not
//! panic, an error names the file, memory stays within a multiple of the
//! texts read; includes that loop or nest too deep are refused with a
//! message that says so.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::{appears, failure};
use crate::fuzz::{self, capped, test_path};
use crate::matcher::{fail2ban, Matcher, RulesetError, SourceMatcher};

/// Memory a filter may take besides a multiple of the texts it reads:
/// compiling its rules.
const BASE: usize = 48 << 20;
const PER_BYTE: usize = 64;

/// Debian's filters, when fail2ban is installed.
const DEBIAN: &str = "/etc/fail2ban/filter.d";

/// The filters of `tests/data/fail2ban`, and Debian's if installed, as
/// (file name, text); says so when Debian's are not there.
fn filters() -> Vec<(String, String)> {
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fail2ban");
    let mut out = read_confs(&ours);
    if Path::new(DEBIAN).is_dir() {
        out.extend(read_confs(Path::new(DEBIAN)));
    } else {
        eprintln!("{DEBIAN} is absent (fail2ban not installed): only tests/data/fail2ban's filters are edited");
    }
    out
}

fn read_confs(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "conf") && e.path().is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// A folder with every filter of [`filters`] in it (so their includes
/// resolve), where the filter under test is written as `fuzz.conf`.
struct Folder {
    dir: tempfile::TempDir,
    /// Bytes of the files a filter may include.
    includes: usize,
}

impl Folder {
    fn new(filters: &[(String, String)]) -> Folder {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in filters {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let includes = filters.iter().map(|(_, t)| t.len()).sum();
        Folder { dir, includes }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes the files of a case (name, text); `fuzz.conf` is the filter.
    fn write(&self, files: &[(&str, String)]) {
        for name in ["fuzz.conf", "fuzz.local", "a.conf", "b.conf"] {
            let _ = std::fs::remove_file(self.path(name));
        }
        for (name, text) in files {
            std::fs::write(self.path(name), text).unwrap();
        }
    }
}

#[derive(Default)]
struct Tally {
    loaded: Cell<usize>,
    refused: Cell<usize>,
}

/// Lines every loaded filter is tried on.
fn lines() -> Vec<String> {
    let log = include_str!("../../../tests/data/fail2ban/dropbear.log");
    let mut out: Vec<String> = log.lines().map(String::from).collect();
    out.push("Mar 24 15:25:51 host sshd[1]: Failed password for x from 203.0.113.66 port 1 ssh2".into());
    out.push("\0\u{fffd}' failed for '192.0.2.1'".into());
    out
}

/// Loads `fuzz.conf` (with the case's files written) under the memory cap
/// and checks what comes out: loaded and sound, or refused with the
/// file named. Values that refer back to themselves are in the mix: they
/// are refused (see [`values_that_refer_to_themselves_are_refused`]).
fn check(folder: &Folder, files: &[(&str, String)], tally: &Tally) -> Result<(), TestCaseError> {
    folder.write(files);
    let size: usize = files.iter().map(|(_, t)| t.len()).sum::<usize>() + folder.includes;
    let cap = PER_BYTE * size + BASE;
    let path = folder.path("fuzz.conf");
    let (result, peak) = capped(cap, || {
        let imported = fail2ban::load(&path)?;
        let matcher = Matcher::new(&imported.ruleset)?;
        Ok::<_, RulesetError>((imported, matcher))
    });
    prop_assert!(peak <= cap);
    match result {
        Ok((imported, matcher)) => {
            tally.loaded.set(tally.loaded.get() + 1);
            prop_assert!(!imported.ruleset.failregex.is_empty());
            for (rule, why) in &imported.skipped {
                prop_assert!(!why.is_empty(), "skipped without a reason: {}", rule);
            }
            let mut sm = SourceMatcher::single(&matcher);
            for line in lines() {
                sm.match_line(&line, SystemTime::now());
                if let Some(addr) = failure(&sm.results()[0]) {
                    prop_assert!(appears(&line, addr), "{} is not in {:?}", addr, line);
                }
            }
        }
        Err(e) => {
            tally.refused.set(tally.refused.get() + 1);
            prop_assert!(!e.origin.is_empty() && !e.message.is_empty(), "{:?}", e);
            prop_assert!(e.to_string().starts_with(folder.dir.path().to_str().unwrap()), "{}", e);
        }
    }
    Ok(())
}

/// The filters edited at random, as `fuzz.conf` beside the originals.
#[test]
fn edited_filters_load_or_are_refused() {
    fuzz::in_child(&test_path(module_path!(), "edited_filters_load_or_are_refused"), || {
        let filters = filters();
        let folder = Folder::new(&filters);
        let tally = Tally::default();
        let texts: Vec<String> = filters.into_iter().map(|(_, t)| t).collect();
        let case = (proptest::sample::select(texts), fuzz::edits(6));
        fuzz::run(64, case, |(text, edits)| {
            check(&folder, &[("fuzz.conf", fuzz::apply(&text, &edits))], &tally)
        });
        let (loaded, refused) = (tally.loaded.get(), tally.refused.get());
        assert!(loaded > 0 && refused > 0, "{loaded} loaded, {refused} refused");
    });
}

/// Pieces of INI values: rules, substitutions, tags, include names.
const VALUES: &[&str] = &[
    "^",
    "$",
    "<HOST>",
    "<ADDR>",
    "<F-CONTENT>",
    "</F-CONTENT>",
    "<F-NOFAIL>",
    "<F-MLFGAINED>",
    ".*",
    "\\S+",
    "(",
    ")",
    "(?<=x)",
    "\\1",
    "\\Z",
    "fail ",
    "from ",
    "%(x)s",
    "%(y)s",
    "%(_daemon)s",
    "%(__prefix_line)s",
    "<x>",
    "<y>",
    "<lt_file/x>",
    "<lt_<logtype>/x>",
    "%(",
    ")s",
    "<",
    ">",
    "%%",
    "%%Y-%%m-%%d %%H:%%M:%%S",
    "{^LN-BEG}",
    "{NONE}",
    "Epoch",
    "[",
    "]",
    "fuzz.conf",
    "a.conf",
    "b.conf",
    "common.conf",
    "missing.conf",
    "\u{fffd}",
    "\0",
    " ",
    "\t",
];

/// The pieces of [`VALUES`] that are substitutions.
const REFERENCES: &[&str] = &[
    "%(x)s",
    "%(y)s",
    "%(_daemon)s",
    "%(__prefix_line)s",
    "<x>",
    "<y>",
    "<lt_file/x>",
    "<lt_<logtype>/x>",
];

const SECTIONS: &[&str] = &[
    "[INCLUDES]",
    "[DEFAULT]",
    "[Definition]",
    "[Init]",
    "[lt_file]",
    "[",
    "[]",
    "[x",
];
const INI_KEYS: &[&str] = &[
    "before",
    "after",
    "failregex",
    "ignoreregex",
    "prefregex",
    "datepattern",
    "journalmatch",
    "x",
    "y",
    "_daemon",
    "logtype",
    "",
];

/// A random `.conf` text: sections, `key = value` lines of pieces (one
/// substitution at most, so no value doubles when expanded), continuation
/// lines, comments.
fn conf() -> impl Strategy<Value = String> {
    let value = proptest::collection::vec(proptest::sample::select(VALUES), 0..8).prop_map(|p| {
        let mut seen = false;
        p.into_iter()
            .filter(|v| {
                let is_ref = REFERENCES.contains(v);
                let keep = !(is_ref && seen);
                seen |= is_ref;
                keep
            })
            .collect::<String>()
    });
    let line = prop_oneof![
        2 => (proptest::sample::select(INI_KEYS), proptest::sample::select(&[" = ", "=", ": ", " "][..]), value.clone())
            .prop_map(|(k, sep, v)| format!("{k}{sep}{v}")),
        1 => value.prop_map(|v| format!("    {v}")),
        1 => proptest::sample::select(SECTIONS).prop_map(String::from),
        1 => proptest::sample::select(&["# c", "; c", "", "\r"][..]).prop_map(String::from),
    ];
    proptest::collection::vec(line, 0..24).prop_map(|l| l.join("\n"))
}

/// Random filters that include each other (and themselves).
#[test]
fn random_filters_load_or_are_refused() {
    fuzz::in_child(&test_path(module_path!(), "random_filters_load_or_are_refused"), || {
        let filters = filters();
        let folder = Folder::new(&filters);
        let tally = Tally::default();
        let case = (conf(), conf(), conf(), proptest::option::of(conf()), any::<bool>());
        fuzz::run(256, case, |(main, a, b, local, definition)| {
            // Half of them get a rule, so some load.
            let main = if definition {
                format!("[Definition]\nfailregex = fail <HOST>\n{main}")
            } else {
                main
            };
            let mut files = vec![("fuzz.conf", main), ("a.conf", a), ("b.conf", b)];
            files.extend(local.map(|l| ("fuzz.local", l)));
            check(&folder, &files, &tally)
        });
        let (loaded, refused) = (tally.loaded.get(), tally.refused.get());
        assert!(loaded > 0 && refused > 0, "{loaded} loaded, {refused} refused");
    });
}

/// The error of loading `fuzz.conf` after writing `files`.
fn load_error(files: &[(&str, &str)]) -> RulesetError {
    let folder = Folder::new(&[]);
    let files: Vec<(&str, String)> = files.iter().map(|(n, t)| (*n, t.to_string())).collect();
    folder.write(&files);
    let err = fail2ban::load(&folder.path("fuzz.conf")).unwrap_err();
    assert!(err.origin.starts_with(folder.dir.path().to_str().unwrap()), "{err}");
    err
}

/// Includes that loop (a file including itself, two including each
/// other, by `before` or `after`, through the `.local`) are refused, and
/// the message says it is about `[INCLUDES]`.
#[test]
fn include_loops_are_refused_with_a_message() {
    let rule = "[Definition]\nfailregex = fail <HOST>\n";
    let loops: [&[(&str, &str)]; 5] = [
        &[("fuzz.conf", "[INCLUDES]\nbefore = fuzz.conf\n")],
        &[("fuzz.conf", "[INCLUDES]\nafter = fuzz.conf\n")],
        &[
            ("fuzz.conf", "[INCLUDES]\nbefore = a.conf\n"),
            ("a.conf", "[INCLUDES]\nbefore = fuzz.conf\n"),
        ],
        &[
            ("fuzz.conf", "[INCLUDES]\nafter = a.conf\n"),
            ("a.conf", "[INCLUDES]\nafter = b.conf\n"),
            ("b.conf", "[INCLUDES]\nbefore = a.conf\n"),
        ],
        &[("fuzz.conf", rule), ("fuzz.local", "[INCLUDES]\nbefore = fuzz.local\n")],
    ];
    for files in loops {
        let err = load_error(files);
        assert!(err.message.contains("[INCLUDES]"), "{files:?}: {err}");
    }
}

/// Eight levels of includes are read; a ninth is refused, with a message.
#[test]
fn deep_includes_are_refused_with_a_message() {
    let chain = |depth: usize| {
        let folder = Folder::new(&[]);
        for level in 0..depth {
            let text = format!("[INCLUDES]\nbefore = level{}.conf\n", level + 1);
            std::fs::write(folder.path(&format!("level{level}.conf")), text).unwrap();
        }
        std::fs::write(
            folder.path(&format!("level{depth}.conf")),
            "[Definition]\nfailregex = fail <HOST>\n",
        )
        .unwrap();
        let result = fail2ban::load(&folder.path("level0.conf"));
        result.map(|imp| imp.ruleset.failregex)
    };
    assert_eq!(chain(8).unwrap(), ["fail <HOST>"]);
    let err = chain(9).unwrap_err();
    assert!(err.message.contains("[INCLUDES] nest too deep"), "{err}");
}

/// How long a reader may take on a tiny hostile filter: a stand-in for
/// "it never finishes" (a sound reader answers in milliseconds).
const DEADLINE: Duration = Duration::from_secs(60);

/// Loads `text` as `fuzz.conf` on a thread capped at [`BASE`] bytes,
/// within [`DEADLINE`]: the answer and the memory it took, `None` when no
/// answer came. Call in a child process.
fn load_bounded(text: &str) -> Option<(Result<(), RulesetError>, usize)> {
    let folder = Folder::new(&[]);
    folder.write(&[("fuzz.conf", text.to_string())]);
    let path = folder.path("fuzz.conf");
    let answer = fuzz::bounded(DEADLINE, BASE, move || fail2ban::load(&path).map(|_| ()));
    match answer {
        Some(answer) => Some(answer),
        None => {
            // The thread still reads the folder: keep it.
            std::mem::forget(folder);
            None
        }
    }
}

/// A value that refers back to itself is expanded for 64 rounds instead
/// of being refused (fail2ban refuses recursive interpolation). Referring
/// to itself twice (`x = a%(x)s%(x)s`), it doubles each round (2^64
/// copies); so does a chain of values each naming the one before twice
/// (`x1 = %(x0)s%(x0)s`, 40 lines). With one self-reference each, a chain
/// (`x2 = %(x1)s%(x2)s`, ...) grows as a power of the rounds (64^6/720:
/// some 95 MB). Each round rescans the growing text once per reference,
/// so the reader spins long before memory runs out; a Debian filter
/// edited at random did so with a value past 1 MB. All must be refused,
/// in bounded time and memory.
#[test]
fn values_that_refer_to_themselves_are_refused() {
    fuzz::in_child(
        &test_path(module_path!(), "values_that_refer_to_themselves_are_refused"),
        || {
            let doubling: String = (1..=40)
                .map(|i| format!("x{i} = %(x{})s%(x{})s\n", i - 1, i - 1))
                .collect();
            let growing: String = (2..=6).map(|i| format!("x{i} = %(x{})s%(x{i})s\n", i - 1)).collect();
            let cases = [
                "x = a%(x)s%(x)s\n".to_string(),
                format!("x0 = a\n{doubling}x = %(x40)s\n"),
                format!("x1 = a%(x1)s\n{growing}x = %(x6)s\n"),
            ];
            let mut wrong = Vec::new();
            for values in cases {
                let text = format!("[Definition]\n{values}failregex = fail <HOST> %(x)s\n");
                match load_bounded(&text) {
                    None => wrong.push(format!("no answer within {DEADLINE:?}:\n{text}")),
                    Some((Ok(()), memory)) => wrong.push(format!("loaded ({memory} bytes):\n{text}")),
                    Some((Err(_), _)) => {}
                }
            }
            assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        },
    );
}

/// `before = /dev/zero` (or any file that never ends) is read to its end:
/// memory grows until the process dies (here, until the cap makes the
/// read fail with "out of memory"). An include that is not a regular
/// file must be refused, naming it, without reading it.
#[test]
fn an_include_that_never_ends_is_refused() {
    fuzz::in_child(
        &test_path(module_path!(), "an_include_that_never_ends_is_refused"),
        || {
            let text = "[INCLUDES]\nbefore = /dev/zero\n[Definition]\nfailregex = fail <HOST>\n";
            let (result, memory) = load_bounded(text).expect("an answer");
            let err = result.unwrap_err();
            assert!(err.to_string().contains("/dev/zero"), "{err}");
            assert!(memory < 1 << 20, "{memory} bytes taken to refuse it: {err}");
        },
    );
}
