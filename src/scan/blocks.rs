//! The whole-block literal scan: input read a block of whole lines at a
//! time, each block classified into a [`Tally`].
//!
//! Why blocks: most lines of a log hold none of the rules' literals, and
//! for those the daemon's per-line path would still find where each line
//! ends and call the matcher. Here [`SourceMatcher::next_candidate`] runs
//! the literal gate over the whole block and returns only the lines that
//! hold a literal; those are classified one by one (exactly as the daemon
//! would), the others are counted by their newlines and missed in bulk.
//! When a rule could match a line without a literal, or every missed line
//! is to be kept, every line is classified.
//!
//! A line longer than [`MAX_LINE`] is skipped whole and counted
//! (`too_long`), as the daemon's sources skip it: the two never disagree
//! on a line, and memory stays bounded. The buffer holds exactly a line at
//! the limit with its newline, so every block's lines are within the limit
//! and a buffer full without a newline is a line over it.

use std::borrow::Cow;
use std::cell::Cell;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::time::SystemTime;

use super::report::Tally;
use super::{Keep, Progress};
use crate::matcher::{LineMatch, Matcher, SourceMatcher};
use crate::sources::MAX_LINE;

/// Bytes read at a time (and the least a thread gets of a file).
pub(super) const BLOCK: usize = 1 << 20;

/// The read buffer: a line at the limit and its newline, so that a full
/// buffer without a newline is a line over the limit, and a block of whole
/// lines never holds one.
const BUFFER: usize = MAX_LINE + 1;
const _: () = assert!(BLOCK <= BUFFER, "a block is read at a time");

/// Counts the bytes read from the raw input (before any decompression),
/// for [`Progress`].
pub(super) struct Counting<'a, R> {
    pub(super) inner: R,
    pub(super) read: &'a Cell<u64>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

/// Plain or gzip'd, decided by the first two bytes.
pub(super) fn open_lines<'a>(input: impl Read + 'a) -> std::io::Result<Box<dyn BufRead + 'a>> {
    let mut r = BufReader::with_capacity(256 * 1024, input);
    let gz = r.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            flate2::bufread::MultiGzDecoder::new(r),
        ))
    } else {
        Box::new(r)
    })
}

/// Classifies blocks of whole lines into a [`Tally`].
pub(super) struct Scanner<'m> {
    sm: SourceMatcher<'m>,
    now: SystemTime,
    keep: Keep,
    pub(super) tally: Tally,
}

impl<'m> Scanner<'m> {
    pub(super) fn new(matcher: &'m Matcher, now: SystemTime, keep: Keep) -> Scanner<'m> {
        Scanner {
            sm: SourceMatcher::single(matcher),
            now,
            keep,
            tally: Tally::new(matcher.sources.len()),
        }
    }

    /// `block` holds whole lines, each ending in `\n` except maybe a last
    /// one at the end of the input. Only lines holding a rule's literal are
    /// looked at one by one (unless every missed line is to be kept);
    /// the others are counted as missed in bulk.
    fn block(&mut self, block: &[u8]) {
        if block.is_empty() {
            return;
        }
        let lines = memchr::memchr_iter(b'\n', block).count() as u64 + u64::from(!block.ends_with(b"\n"));
        self.tally.lines += lines;
        let valid = self.count_invalid_utf8(block);
        let mut seen = 0;
        if self.keep.missed || !self.sm.skips_lines() {
            for line in block.strip_suffix(b"\n").unwrap_or(block).split(|&b| b == b'\n') {
                self.line(line, valid, false);
                seen += 1;
            }
        } else {
            let mut from = 0;
            while let Some((s, e)) = self.sm.next_candidate(block, from) {
                self.line(&block[s..e], valid, true);
                seen += 1;
                from = e + 1;
            }
        }
        // Lines not looked at hold no literal: missed.
        self.tally.missed += lines - seen;
    }

    /// A line longer than [`MAX_LINE`]: counted, not classified.
    fn too_long(&mut self) {
        self.tally.lines += 1;
        self.tally.too_long += 1;
    }

    /// Counts lines holding invalid UTF-8 (read with replacement
    /// characters); `true` when the whole block is valid.
    fn count_invalid_utf8(&mut self, block: &[u8]) -> bool {
        let mut rest = block;
        let mut valid = true;
        while let Err(e) = std::str::from_utf8(rest) {
            self.tally.invalid_utf8 += 1;
            valid = false;
            let bad = e.valid_up_to();
            match memchr::memchr(b'\n', &rest[bad..]) {
                Some(i) => rest = &rest[bad + i + 1..],
                None => break,
            }
        }
        valid
    }

    /// One line of a block (`valid`: the block is valid UTF-8;
    /// `candidate`: [`SourceMatcher::next_candidate`] returned it).
    fn line(&mut self, bytes: &[u8], valid: bool, candidate: bool) {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let line = if valid {
            // SAFETY: a line of a valid UTF-8 block, cut at `\n` (and `\r`),
            // which are never inside a multi-byte character.
            Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(bytes) })
        } else {
            match std::str::from_utf8(bytes) {
                Ok(s) => Cow::Borrowed(s),
                Err(_) => String::from_utf8_lossy(bytes),
            }
        };
        if candidate {
            self.sm.match_candidate(&line, self.now);
        } else {
            self.sm.match_line(&line, self.now);
        }
        let t = &mut self.tally;
        let m = &self.sm.results()[0];
        match m {
            LineMatch::Missed => {
                t.missed += 1;
                if self.keep.missed {
                    t.missed_lines.push(line.into_owned());
                }
                return;
            }
            LineMatch::Ignored => {
                t.ignored += 1;
                return;
            }
            m @ LineMatch::Failure { rule, .. } => {
                t.matched += 1;
                t.hits[*rule] += 1;
                if let Some(net) = m.failure_net() {
                    *t.hosts.entry(net).or_default() += 1;
                }
            }
            LineMatch::NotAnAddress { rule, .. } => {
                t.matched += 1;
                t.not_an_address += 1;
                t.hits[*rule] += 1;
            }
        }
        // The dates of the lines that count (the daemon reads no other).
        match self.sm.parse_date(&line, self.now) {
            Some(f) => t.formats[f.format as usize] += 1,
            None => t.no_date += 1,
        }
        if self.keep.matched {
            t.matched_lines.push(line.into_owned());
        }
    }
}

/// Reads `input` a block at a time and hands whole lines to `scanner`.
/// After each block, tells `progress` how many more bytes of the raw input
/// `read` counted (compressed bytes for a gzip'd input) and how many more
/// lines went by.
pub(super) fn scan_stream(
    scanner: &mut Scanner,
    mut input: impl Read,
    read: &Cell<u64>,
    progress: &dyn Progress,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; BUFFER];
    // Bytes of an unfinished line kept at the start of `buf`.
    let mut kept = 0;
    // Inside a line over the limit (already counted): its bytes are
    // dropped up to its newline.
    let mut skipping = false;
    // What `progress` was told so far.
    let (mut told_bytes, mut told_lines) = (0, 0);
    loop {
        if kept == buf.len() {
            // No newline in more than the limit: a line over it.
            scanner.too_long();
            kept = 0;
            skipping = true;
        }
        let n = match input.read(&mut buf[kept..]) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            if !skipping {
                scanner.block(&buf[..kept]);
            }
        } else {
            let filled = kept + n;
            // Where this read's whole lines start: after the end of a
            // skipped line, if it ends here.
            let mut begin = 0;
            if skipping {
                match memchr::memchr(b'\n', &buf[..filled]) {
                    Some(i) => {
                        skipping = false;
                        begin = i + 1;
                    }
                    None => begin = filled,
                }
            }
            // `kept` bytes hold no newline (when skipping, none are kept).
            let from = begin.max(kept);
            match memchr::memrchr(b'\n', &buf[from..filled]) {
                Some(i) => {
                    let end = from + i + 1;
                    scanner.block(&buf[begin..end]);
                    buf.copy_within(end..filled, 0);
                    kept = filled - end;
                }
                None => {
                    buf.copy_within(begin..filled, 0);
                    kept = filled - begin;
                }
            }
        }
        let (bytes, lines) = (read.get(), scanner.tally.lines);
        progress.advance(bytes - told_bytes, lines - told_lines);
        (told_bytes, told_lines) = (bytes, lines);
        if n == 0 {
            return Ok(());
        }
    }
}
