//! A plain regular file split over one thread per core.
//!
//! Why it can be split: a plain file can be read anywhere (`pread`), and
//! lines are independent once the rule is loaded (the report counts lines,
//! it does not follow state from one line to the next). So the file is cut
//! at line starts into as many ranges as threads, each range is scanned
//! block by block ([`super::blocks`]) on its own thread (`std::thread::scope`,
//! borrowing the matcher and the file), and the tallies are merged in file
//! order: kept lines come out in file order, and the report is the one a
//! single pass gives. A gzip'd file cannot be entered in the middle and is
//! read on one thread.

use std::cell::Cell;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::time::SystemTime;

use super::blocks::{scan_stream, Counting, Scanner, BLOCK};
use super::report::Tally;
use super::{Error, Keep, Progress};
use crate::matcher::Matcher;

/// Threads for a file of `size` bytes: one per core (at most 8), each with
/// at least a block.
pub(super) fn threads_for(size: u64) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(8).min((size / BLOCK as u64).max(1) as usize)
}

/// Where each of `parts` ranges of `file` (`size` bytes) starts: at the
/// line start at or after an even share of the file; then `size`.
fn bounds(file: &File, size: u64, parts: usize) -> std::io::Result<Vec<u64>> {
    let mut bounds = vec![0u64];
    for i in 1..parts {
        let mut at = size * i as u64 / parts as u64;
        if at == 0 {
            bounds.push(0);
            continue;
        }
        // The first line start at or after `at`: after the `\n` at or after `at - 1`.
        at -= 1;
        let mut buf = [0u8; 4096];
        let start = loop {
            let n = file.read_at(&mut buf, at)?;
            if n == 0 {
                break size;
            }
            if let Some(j) = memchr::memchr(b'\n', &buf[..n]) {
                break at + j as u64 + 1;
            }
            at += n as u64;
        };
        bounds.push(start.max(*bounds.last().unwrap_or(&0)));
    }
    bounds.push(size);
    Ok(bounds)
}

/// `file` (plain, `size` bytes) split at line starts into `parts` ranges,
/// scanned on as many threads; the tallies merged in file order.
pub(super) fn scan_parts(
    matcher: &Matcher,
    file: &File,
    size: u64,
    parts: usize,
    keep: Keep,
    progress: &dyn Progress,
) -> Result<Tally, Error> {
    let now = SystemTime::now();
    let bounds = bounds(file, size, parts).map_err(Error::Read)?;
    let tallies = std::thread::scope(|s| {
        let workers: Vec<_> = bounds
            .windows(2)
            .map(|w| {
                let (at, end) = (w[0], w[1]);
                s.spawn(move || -> std::io::Result<Tally> {
                    let mut scanner = Scanner::new(matcher, now, keep);
                    let read = Cell::new(0);
                    let part = Counting {
                        inner: PartReader { file, at, end },
                        read: &read,
                    };
                    scan_stream(&mut scanner, part, &read, progress)?;
                    Ok(scanner.tally)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join()).collect::<Vec<_>>()
    });
    let mut total = Tally::new(matcher.sources.len());
    for t in tallies {
        total.merge(t.map_err(|_| Error::Panicked)?.map_err(Error::Read)?);
    }
    Ok(total)
}

/// One range of a file, read with `pread` (threads share the file).
struct PartReader<'a> {
    file: &'a File,
    at: u64,
    end: u64,
}

impl Read for PartReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (self.end - self.at).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}
