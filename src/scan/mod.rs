//! The offline scan behind `nftban test`: every line of a log classified
//! by one ruleset, counted into a [`Report`].
//!
//! A library with a sink, like ripgrep's searcher: it reads and classifies,
//! tells a [`Progress`] how far it got, and returns the report; loading the
//! rule, choosing the input, drawing progress and printing belong to the
//! command (`src/commands/test.rs`). It needs no daemon and no root, and
//! uses nothing of the daemon: lines are classified by the matcher's
//! [`SourceMatcher`](crate::matcher::SourceMatcher), as the daemon's
//! readers classify them.
//!
//! Speed comes from not looking at most lines. A block of lines goes
//! through the rules' literal scan as a whole, and only lines holding a
//! literal are classified one by one; the others are counted (newlines)
//! and missed in bulk ([`blocks`]). A plain regular file is split at line
//! starts over one thread per core ([`parallel`]) and the threads' tallies
//! are merged in file order ([`report`]), so the report is the one a single
//! pass gives. Plain or gzip'd input (by its magic bytes) and stdin are
//! read a block at a time on one thread. Dates are parsed on matched lines
//! only. See docs/performance.md, section "Detection", for the method and
//! the measurements.

mod blocks;
mod parallel;
mod report;

use std::cell::Cell;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::time::SystemTime;

use crate::matcher::Matcher;

pub(crate) use report::{Report, SkippedRule};

/// Which lines the report keeps besides the counts.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Keep {
    /// Every line no rule matched (`--print-missed`); every line is then
    /// classified, not only those holding a literal.
    pub(crate) missed: bool,
    /// Every matched line (`--print-matched`).
    pub(crate) matched: bool,
}

/// Told how far the scan got, once per block read (never per line), from
/// every scanning thread.
pub(crate) trait Progress: Sync {
    /// `bytes` more of the input were read (as stored: compressed bytes of
    /// a gzip'd input), holding `lines` more lines.
    fn advance(&self, bytes: u64, lines: u64);
}

/// No progress to show.
impl Progress for () {
    fn advance(&self, _: u64, _: u64) {}
}

/// Why a scan gave no report.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Reading the input (or gunzipping it) failed.
    #[error("cannot read the input")]
    Read(#[source] std::io::Error),
    /// A scanning thread panicked: a bug; its part of the file is unknown.
    #[error("a scanning thread panicked")]
    Panicked,
}

/// Every line of `input`, plain or gzip'd (by its first two bytes), read
/// on this thread.
pub(crate) fn scan_reader(
    matcher: &Matcher,
    input: impl Read,
    keep: Keep,
    progress: &dyn Progress,
) -> Result<Report, Error> {
    let mut scanner = blocks::Scanner::new(matcher, SystemTime::now(), keep);
    let read = Cell::new(0);
    let lines = blocks::open_lines(blocks::Counting {
        inner: input,
        read: &read,
    })
    .map_err(Error::Read)?;
    blocks::scan_stream(&mut scanner, lines, &read, progress).map_err(Error::Read)?;
    Ok(scanner.tally.into_report(matcher))
}

/// Every line of `file`: a plain regular file on one thread per core, any
/// other (gzip'd, a pipe) as [`scan_reader`] reads it.
pub(crate) fn scan_file(matcher: &Matcher, file: &File, keep: Keep, progress: &dyn Progress) -> Result<Report, Error> {
    let mut magic = [0u8; 2];
    let gzip = file.read_at(&mut magic, 0).unwrap_or(0) == 2 && magic == [0x1f, 0x8b];
    match file.metadata() {
        Ok(meta) if meta.is_file() && !gzip => {
            let size = meta.len();
            let parts = parallel::threads_for(size);
            Ok(parallel::scan_parts(matcher, file, size, parts, keep, progress)?.into_report(matcher))
        }
        _ => scan_reader(matcher, file, keep, progress),
    }
}

#[cfg(test)]
mod tests;
