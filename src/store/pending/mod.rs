//! Bans written to the history but not yet to SQLite: an append-only file
//! beside the database (`nftban.db-pending`).
//!
//! A SQLite transaction costs real CPU even in WAL mode (page writes to the
//! WAL, checksums, file locks, a random leaf of the `net` index). Bans come
//! one at a time under a steady attack (each in its own burst, so that it
//! reaches the kernel at once), and that transaction was a large share of
//! the engine's CPU in the daemon benchmark (docs/performance.md,
//! "Daemon"); a bulk request comes in chunks of 10,000, and ten commits of 10,000 write
//! the address index's pages ten times where one of 100,000 writes them
//! once. A line appended here costs one `write`; the engine moves what
//! gathered into SQLite in one transaction about once a second (or once
//! `PENDING_MOST` wait), together with the file positions, and then
//! empties this file.
//!
//! The bans are not kept in memory as well: the move reads this run's
//! lines back from the file (from the page cache) and binds their text
//! as it stands. A copy of every ban waiting was two or three allocations
//! per ban at a bulk ban's pace, and grew without bound while SQLite
//! could not take them (another process holding its lock, a full disk);
//! the file holds them either way.
//!
//! Durability is the same as SQLite's with `synchronous=NORMAL`: a write
//! is in the page cache when `write` returns, so `kill -9` loses nothing;
//! a power cut may lose the last lines, whose bans are still in the kernel
//! until they expire. Lines left by a crash are moved into SQLite when the
//! store opens again; a line whose ban SQLite already holds (the process
//! died between the commit and emptying the file) is skipped there.
//!
//! The file is locked (`flock`) while a store has it open, so two daemons
//! can never share one database (and replay each other's lines).
//!
//! Unbans are lines of the file too (`"unban":true`, with the jail, or
//! none for every jail, the address or prefix and the time): marking a
//! ban lifted is an `UPDATE` of its row, as costly as its insert, and on
//! the engine's thread it was most of a bulk `unban -`
//! (docs/performance.md, "Kernel sets"). The lines are moved in the
//! order they were written, so an unban lifts the bans before it and not
//! one after it.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ipnet::IpNet;

use crate::address::AddrMap;

use super::BanRecord;

mod line;
use line::{bans_of, parse, LineWriter};
pub use line::{rows, Entry, Lift, Row};

/// Why the pending file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be created, opened or read.
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    /// Another process holds its lock.
    #[error("{path} is locked: another nftban daemon uses this ban database; stop it first, or give this one its own `database:`")]
    Locked { path: PathBuf },
}

/// Pending bans per (jail's index in `Pending::jails`, net).
type Counts = AddrMap<(usize, IpNet), u64>;

/// The pending file and what it holds.
pub struct Pending {
    file: File,
    path: PathBuf,
    /// Where the lines begin that are neither in SQLite nor handed to the
    /// mover: those before are a crashed run's (handed to the caller by
    /// [`Pending::open`]) or moved.
    start: u64,
    /// How many lines (bans and unbans) lie from `start` on.
    appended: usize,
    /// The range handed to the mover, how many lines it holds and their
    /// counts (if counted), until the move is told done or failed.
    moving: Option<(super::mover::Range, usize, Option<Counts>)>,
    /// The jails of the counted bans, each named once: the keys of
    /// `counts` hold an index here rather than a copy of the name.
    jails: Vec<String>,
    /// Pending bans per (jail, net), for [`super::Store::ban_count`]:
    /// counted from the file when first asked, then kept up as bans are
    /// appended, until the file is emptied. A bulk ban into jails without
    /// a bantime increment never asks, so pays no hash per ban (which
    /// showed in the engine's profile of a `ban -` of 100,000).
    counts: Option<Counts>,
    buf: Vec<u8>,
    writer: LineWriter,
    /// The file's length after the last whole append: where a write cut
    /// short (a full disk) is cut back to.
    len: u64,
}

/// Where the pending file of database `db` is.
pub fn path_of(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-pending");
    PathBuf::from(p)
}

impl Pending {
    /// Open (or create) and lock the pending file of database `db`. Returns
    /// it, empty in memory, and how many bytes of bans and unbans a crashed
    /// run left in it: they are not read here (after a `kill -9` in a bulk
    /// ban, hundreds of MB); the caller moves them into SQLite
    /// ([`Pending::each_left`]), or reads them ([`Pending::left`]), then
    /// calls [`Pending::clear`].
    pub fn open(db: &Path) -> Result<(Pending, u64), Error> {
        let path = path_of(db);
        let open_err = |source| Error::Open {
            path: path.clone(),
            source,
        };
        // Private whatever the umask (see `store::files`); never through a
        // symbolic link, which someone able to write the folder could plant
        // to make nftban empty another file.
        let file = File::options()
            .read(true)
            .append(true)
            .create(true)
            .mode(super::files::FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(open_err)?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                Error::Locked { path }
            } else {
                open_err(e)
            });
        }
        let left = file.metadata().map_err(open_err)?.len();
        let pending = Pending {
            file,
            path,
            start: left,
            appended: 0,
            moving: None,
            jails: Vec::new(),
            counts: None,
            buf: Vec::new(),
            writer: LineWriter::default(),
            len: left,
        };
        Ok((pending, left))
    }

    /// The bans and unbans in bytes `from..to` of what a crashed run left
    /// ([`Pending::open`]), read in pieces (see [`each_piece`]) and handed
    /// to `each` a piece's worth at a time: to move them into SQLite. A
    /// line that cannot be read is skipped with a warning, as in
    /// [`Pending::left`].
    pub fn each_left<E: From<std::io::Error>>(
        &self,
        from: u64,
        to: u64,
        mut each: impl FnMut(Vec<Entry>) -> Result<(), E>,
    ) -> Result<(), E> {
        each_piece(&self.file, from, to, |text, before| {
            each(parse(text, &self.path, before))
        })
    }

    /// Whether a line of the file ends just before byte `at` (0: the
    /// file's start).
    pub fn ends_line(&self, at: u64) -> std::io::Result<bool> {
        if at == 0 {
            return Ok(true);
        }
        let mut byte = [0u8];
        self.file.read_exact_at(&mut byte, at - 1)?;
        Ok(byte[0] == b'\n')
    }

    /// The bans and unbans in the first `left` bytes, read into memory: for
    /// when SQLite cannot take them at the start, and reads must see them.
    pub fn left(&self, left: u64) -> std::io::Result<Vec<Entry>> {
        Ok(parse(&read_range(&self.file, 0, left)?, &self.path, 0))
    }

    /// Append `bans`, in one `write`, or none of them: a write cut short
    /// (a full disk) is cut back off, so no torn line is left for the next
    /// line to be glued to, and the caller, told of the failure, keeps them
    /// all.
    pub fn append(&mut self, bans: &[BanRecord]) -> std::io::Result<()> {
        self.buf.clear();
        for b in bans {
            self.writer.line(&mut self.buf, b);
        }
        self.write_buf(bans.len())?;
        if let Some(counts) = self.counts.as_mut() {
            count_into(counts, &mut self.jails, bans.iter().map(|b| (b.jail.as_str(), b.net)));
        }
        Ok(())
    }

    /// Append the unbans of `nets` in `jail` (`None`: every jail) at `at`,
    /// as [`Pending::append`] does bans: all in one `write`, or none.
    pub fn append_lifts(&mut self, jail: Option<&str>, nets: &[IpNet], at: SystemTime) -> std::io::Result<()> {
        self.buf.clear();
        for net in nets {
            self.writer.lift(&mut self.buf, jail, net, at);
        }
        self.write_buf(nets.len())
    }

    /// Write `buf`, which holds `lines` lines, or cut the file back.
    fn write_buf(&mut self, lines: usize) -> std::io::Result<()> {
        if let Err(e) = self.file.write_all(&self.buf) {
            // Shrinking needs no space; if even that fails, the start
            // after skips the torn line (and the one glued to it).
            if let Err(cut) = self.file.set_len(self.len) {
                tracing::warn!("{}: cannot cut a torn write back off: {cut}", self.path.display());
            }
            return Err(e);
        }
        self.len += self.buf.len() as u64;
        self.appended += lines;
        Ok(())
    }

    /// How many lines (bans and unbans) wait, neither in SQLite nor
    /// handed to the mover.
    pub fn len(&self) -> usize {
        self.appended
    }

    /// Whether bans wait or are being moved.
    pub fn holds_any(&self) -> bool {
        self.appended > 0 || self.moving.is_some()
    }

    /// The lines that wait, read back from the file (for
    /// [`Pending::waiting`]).
    fn read_back(&self) -> std::io::Result<Vec<u8>> {
        read_range(&self.file, self.start, self.len)
    }

    /// The lines that wait, read back from the file in pieces (see
    /// [`each_piece`]), for [`rows`] to move into SQLite.
    pub fn each_waiting<E: From<std::io::Error>>(
        &self,
        each: impl FnMut(&[u8], usize) -> Result<(), E>,
    ) -> Result<(), E> {
        each_piece(&self.file, self.start, self.len, each)
    }

    /// Hand the lines that wait to the mover: their range, from now on no
    /// longer waiting here (they are still counted).
    pub fn hand_off(&mut self) -> super::mover::Range {
        let range = super::mover::Range {
            from: self.start,
            to: self.len,
        };
        let counts = self.counts.as_mut().map(std::mem::take);
        self.moving = Some((range, std::mem::take(&mut self.appended), counts));
        self.start = self.len;
        range
    }

    /// The mover is done with its range: `moved` into SQLite, or not (its
    /// lines wait again, before those appended since).
    pub fn handed_back(&mut self, moved: bool) {
        let Some((range, n, counts)) = self.moving.take() else {
            return;
        };
        if !moved {
            self.start = range.from;
            self.appended += n;
            match (self.counts.as_mut(), counts) {
                (Some(here), Some(back)) => {
                    for (k, c) in back {
                        *here.entry(k).or_default() += c;
                    }
                }
                // Counted on one side only: counted again when asked.
                _ => self.counts = None,
            }
        }
    }

    /// The file's length in bytes.
    pub fn size(&self) -> u64 {
        self.len
    }

    /// A descriptor of the file for the mover's reads.
    pub fn reader(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }

    /// The bans and unbans this run appended, read back (a read of the
    /// history while SQLite cannot take them).
    pub fn waiting(&self) -> std::io::Result<Vec<Entry>> {
        Ok(parse(&self.read_back()?, &self.path, 0))
    }

    /// How many pending bans `net` has in `jail`: counted from the file
    /// at the first question since it was emptied (a file that cannot be
    /// read back counts none, with a warning, and is read again at the
    /// next question).
    pub fn count(&mut self, jail: &str, net: &IpNet) -> u64 {
        if self.appended == 0 && self.moving.is_none() {
            return 0;
        }
        if let Err(e) = self.counted() {
            tracing::warn!(
                "{}: cannot read pending bans back to count them: {e}",
                self.path.display()
            );
            return 0;
        }
        let Some(k) = self.jails.iter().position(|j| j == jail) else {
            return 0;
        };
        let of = |counts: Option<&Counts>| counts.and_then(|c| c.get(&(k, *net))).copied().unwrap_or(0);
        of(self.counts.as_ref()) + of(self.moving.as_ref().and_then(|(_, _, m)| m.as_ref()))
    }

    /// Count what waits and what is being moved, if not counted yet.
    fn counted(&mut self) -> std::io::Result<()> {
        // In pieces (see [`each_piece`]): what waits may be hundreds of MB.
        let (file, path, jails) = (&self.file, &self.path, &mut self.jails);
        let mut count = |counts: &mut Option<Counts>, from: u64, to: u64| {
            let mut c = Counts::default();
            each_piece(file, from, to, |text, before| -> std::io::Result<()> {
                let entries = parse(text, path, before);
                count_into(&mut c, jails, bans_of(&entries).map(|b| (b.jail.as_str(), b.net)));
                Ok(())
            })?;
            *counts = Some(c);
            std::io::Result::Ok(())
        };
        if let Some((range, _, moving @ None)) = self.moving.as_mut() {
            count(moving, range.from, range.to)?;
        }
        if self.counts.is_none() {
            count(&mut self.counts, self.start, self.len)?;
        }
        Ok(())
    }

    /// SQLite holds everything: no line waits any more, whether or not
    /// the file can be emptied now (it keeps them until then).
    pub fn none_waiting(&mut self) {
        self.counts = None;
        self.jails.clear();
        self.appended = 0;
        self.moving = None;
        self.start = self.len;
    }

    /// SQLite holds everything: empty the file and the counts.
    pub fn clear(&mut self) -> std::io::Result<()> {
        self.none_waiting();
        self.file.set_len(0)?;
        self.len = 0;
        self.start = 0;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Count `bans` (jail, net) into `counts`, each jail interned in `jails`.
fn count_into<'b>(counts: &mut Counts, jails: &mut Vec<String>, bans: impl Iterator<Item = (&'b str, IpNet)>) {
    let mut last: Option<(&str, usize)> = None;
    for (name, net) in bans {
        // The bans of one write are almost always of one jail.
        let jail = match last {
            Some((was, k)) if was == name => k,
            _ => {
                let k = jails.iter().position(|j| j == name).unwrap_or_else(|| {
                    jails.push(name.to_string());
                    jails.len() - 1
                });
                last = Some((name, k));
                k
            }
        };
        *counts.entry((jail, net)).or_default() += 1;
    }
}

/// How much of a pending file a move reads at a time.
const PIECE: usize = 1 << 20;

/// The lines `from..to` of a pending file, read in pieces of about
/// [`PIECE`] bytes, each ending at a line's end, handed to `each` with the
/// number of lines before it: a big move read at once was the largest
/// buffer of the daemon's peak memory in a `ban -` of a million
/// (docs/performance.md).
pub fn each_piece<E: From<std::io::Error>>(
    file: &File,
    from: u64,
    to: u64,
    mut each: impl FnMut(&[u8], usize) -> Result<(), E>,
) -> Result<(), E> {
    let (mut at, mut want, mut lines) = (from, PIECE, 0);
    let mut buf = Vec::new();
    while at < to {
        let n = want.min(usize::try_from(to - at).unwrap_or(usize::MAX));
        buf.resize(n, 0);
        file.read_exact_at(&mut buf, at)?;
        let end = match buf.iter().rposition(|&b| b == b'\n') {
            _ if at + n as u64 == to => n,
            Some(i) => i + 1,
            // A line longer than the piece (none is written so): read more.
            None => {
                want *= 2;
                continue;
            }
        };
        each(&buf[..end], lines)?;
        lines += buf[..end].iter().filter(|&&b| b == b'\n').count();
        at += end as u64;
    }
    Ok(())
}

/// The bytes `from..to` of a pending file.
pub fn read_range(file: &File, from: u64, to: u64) -> std::io::Result<Vec<u8>> {
    let mut text = vec![0; to.saturating_sub(from) as usize];
    file.read_exact_at(&mut text, from)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Origin;
    use std::time::{Duration, UNIX_EPOCH};

    fn entries(bans: &[BanRecord]) -> Vec<Entry> {
        bans.iter().cloned().map(Entry::Ban).collect()
    }

    fn ban(net: &str, reason: Option<&str>) -> BanRecord {
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        BanRecord {
            jail: "sshd".into(),
            net: net.parse().unwrap(),
            at,
            expires: at + Duration::from_secs(600),
            origin: Origin::Escalated,
            reason: reason.map(String::from),
        }
    }

    #[test]
    fn a_range_is_read_in_pieces_of_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        // 40,000 numbered lines (about 3 pieces), one line longer than a
        // piece in the middle, and a last line without its newline.
        let mut text = String::new();
        for i in 0..40_000 {
            text.push_str(&format!(
                "{i} {}\n",
                "x".repeat(if i == 20_000 { PIECE + 10 } else { 60 })
            ));
        }
        text.push_str("40000 end");
        std::fs::write(&path, &text).unwrap();
        let file = File::open(&path).unwrap();
        let (from, to) = (3, text.len() as u64);
        let mut seen = Vec::new();
        let mut pieces = 0;
        each_piece::<std::io::Error>(&file, from, to, |piece, before| {
            pieces += 1;
            let piece = std::str::from_utf8(piece).unwrap();
            assert!(
                pieces == 1 || piece.starts_with(&format!("{before} ")),
                "piece after {before} lines"
            );
            seen.push(piece.to_string());
            Ok(())
        })
        .unwrap();
        assert!(pieces >= 3, "{pieces} piece(s)");
        assert_eq!(seen.concat(), text[3..], "every byte once, in order");
        assert!(seen[..seen.len() - 1].iter().all(|p| p.ends_with('\n')));
    }

    /// What a crashed run left in the pending file of `db`, read back.
    fn left_of(db: &Path) -> Vec<Entry> {
        let (p, n) = Pending::open(db).unwrap();
        p.left(n).unwrap()
    }

    #[test]
    fn appended_bans_come_back_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nftban.db");
        let bans = vec![
            ban("198.51.100.7/32", None),
            ban(
                "2001:db8:1:2::/64",
                Some("escalated: 3 \"addresses\"\tin\n2001:db8:1:2::/64"),
            ),
        ];
        {
            let (mut p, left) = Pending::open(&db).unwrap();
            assert_eq!(left, 0);
            p.append(&bans[..1]).unwrap();
            p.append(&bans[1..]).unwrap();
            assert_eq!(p.waiting().unwrap(), entries(&bans));
            assert_eq!(p.len(), 2);
            assert_eq!(p.count("sshd", &bans[0].net), 1);
            assert_eq!(p.count("other", &bans[0].net), 0);
            let at = UNIX_EPOCH + Duration::from_secs(1_800_000_005);
            p.append_lifts(Some("sshd"), &[bans[0].net], at).unwrap();
            assert_eq!(p.len(), 3, "an unban is a line that waits");
            assert_eq!(p.count("sshd", &bans[0].net), 1, "and not a ban");
            // Dropped without clear: what a kill -9 leaves.
        }
        let (mut p, n) = Pending::open(&db).unwrap();
        let left = p.left(n).unwrap();
        let mut want = entries(&bans);
        want.push(Entry::Lift(Lift {
            jail: Some("sshd".into()),
            net: bans[0].net,
            at: UNIX_EPOCH + Duration::from_secs(1_800_000_005),
        }));
        assert_eq!(left, want);
        // Reopening does not count them as pending of this run.
        assert_eq!(p.len(), 0);
        assert!(p.waiting().unwrap().is_empty());
        p.clear().unwrap();
        drop(p);
        let (_, left) = Pending::open(&db).unwrap();
        assert_eq!(left, 0);
    }

    /// The counts are read from the file at the first question, kept up
    /// after it, and hold across a hand-off to the mover and back; an
    /// emptied file counts nothing, and counts again once asked.
    #[test]
    fn pending_bans_are_counted_from_the_file_when_first_asked() {
        let dir = tempfile::tempdir().unwrap();
        let (mut p, _) = Pending::open(&dir.path().join("nftban.db")).unwrap();
        let (a, b) = (ban("198.51.100.7/32", None), ban("2001:db8::/64", None));
        p.append(&[a.clone(), b.clone(), a.clone()]).unwrap();
        assert!(p.counts.is_none(), "not counted before asked");
        assert_eq!(p.count("sshd", &a.net), 2);
        assert_eq!(p.count("sshd", &b.net), 1);
        assert_eq!(p.count("other", &a.net), 0);
        p.append(std::slice::from_ref(&a)).unwrap();
        assert_eq!(p.count("sshd", &a.net), 3, "kept up once counted");
        // Handed to the mover, appended to meanwhile, and handed back.
        p.hand_off();
        p.append(std::slice::from_ref(&b)).unwrap();
        assert_eq!((p.count("sshd", &a.net), p.count("sshd", &b.net)), (3, 2));
        p.handed_back(false);
        assert_eq!((p.count("sshd", &a.net), p.count("sshd", &b.net)), (3, 2));
        // Handed off before any question: counted from both ranges.
        p.clear().unwrap();
        assert_eq!(p.count("sshd", &a.net), 0);
        p.append(&[a.clone(), a.clone()]).unwrap();
        p.hand_off();
        p.append(std::slice::from_ref(&a)).unwrap();
        assert_eq!(p.count("sshd", &a.net), 3);
        p.handed_back(true);
        assert_eq!(p.count("sshd", &a.net), 1, "the moved ones are SQLite's to count");
    }

    #[test]
    fn a_torn_tail_is_skipped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nftban.db");
        {
            let (mut p, _) = Pending::open(&db).unwrap();
            p.append(&[ban("198.51.100.7/32", None)]).unwrap();
        }
        let mut f = File::options().append(true).open(path_of(&db)).unwrap();
        f.write_all(b"{\"jail\":\"sshd\",\"net\":\"198.51.1\0\0\0\n").unwrap();
        drop(f);
        let left = left_of(&db);
        assert_eq!(left, entries(&[ban("198.51.100.7/32", None)]));
    }

    /// A time past what the clock can hold (written by hand, or by a bug)
    /// used to panic at every start: a crash loop. The line is skipped
    /// with a warning and the others are kept.
    #[test]
    fn a_time_past_the_clock_is_skipped_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nftban.db");
        drop(Pending::open(&db).unwrap());
        let mut f = File::options().append(true).open(path_of(&db)).unwrap();
        let max = u64::MAX;
        for (at, expires) in [
            (1_800_000_000, max),
            (max, max),
            (max, 1_800_000_600),
            (1 << 63, 1 << 63),
        ] {
            writeln!(
                f,
                r#"{{"jail":"sshd","net":"198.51.100.9/32","at":{at},"expires":{expires},"origin":"auto"}}"#
            )
            .unwrap();
        }
        drop(f);
        {
            let (mut p, _) = Pending::open(&db).unwrap();
            p.clear().unwrap();
            p.append(&[ban("198.51.100.7/32", None)]).unwrap();
        }
        let mut f = File::options().append(true).open(path_of(&db)).unwrap();
        writeln!(
            f,
            r#"{{"jail":"sshd","net":"198.51.100.9/32","at":1800000000,"expires":{max},"origin":"auto"}}"#
        )
        .unwrap();
        drop(f);
        let left = left_of(&db);
        assert_eq!(left, entries(&[ban("198.51.100.7/32", None)]));
    }

    /// A write cut short by a full disk left half a line with no newline:
    /// the next line appended after it was glued to it, and both were lost
    /// at the next start. The torn part is cut off.
    #[test]
    fn a_write_cut_short_by_a_full_disk_leaves_no_torn_line() {
        use crate::store::testfs::{fill, possible, with_small_disk};
        if !possible("a_write_cut_short_by_a_full_disk_leaves_no_torn_line") {
            return;
        }
        with_small_disk("64k", |dir| {
            let db = dir.join("nftban.db");
            let (mut p, _) = Pending::open(&db).unwrap();
            p.append(&[ban("198.51.100.1/32", None)]).unwrap();
            let filler = fill(dir);
            // More than the rest of the file's last page: written in part.
            let many: Vec<BanRecord> = (0..100).map(|i| ban(&format!("198.51.100.{i}/32"), None)).collect();
            assert!(p.append(&many).is_err());
            std::fs::remove_file(filler).unwrap();
            p.append(&[ban("198.51.100.2/32", None)]).unwrap();
            drop(p);
            let left = left_of(&db);
            assert_eq!(
                left,
                entries(&[ban("198.51.100.1/32", None), ban("198.51.100.2/32", None)])
            );
        });
    }

    /// Lines SQLite holds that cannot be emptied from the file yet (the
    /// history could not be told first): none waits, none is handed to the
    /// mover again, and the file keeps them until it is emptied.
    #[test]
    fn lines_held_but_not_emptied_wait_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nftban.db");
        let (mut p, _) = Pending::open(&db).unwrap();
        let a = ban("198.51.100.7/32", None);
        p.append(&[a.clone(), a.clone()]).unwrap();
        assert_eq!(p.count("sshd", &a.net), 2);
        let size = p.size();
        p.none_waiting();
        assert_eq!(p.len(), 0);
        assert!(!p.holds_any());
        assert_eq!(p.count("sshd", &a.net), 0);
        assert!(p.waiting().unwrap().is_empty());
        assert_eq!(std::fs::metadata(path_of(&db)).unwrap().len(), size, "kept in the file");
        p.append(std::slice::from_ref(&a)).unwrap();
        let range = p.hand_off();
        assert_eq!((range.from, p.len()), (size, 0), "only what came after is handed off");
        p.clear().unwrap();
        assert_eq!(std::fs::metadata(path_of(&db)).unwrap().len(), 0);
    }

    #[test]
    fn a_second_store_on_the_same_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nftban.db");
        let (first, _) = Pending::open(&db).unwrap();
        let err = Pending::open(&db).err().unwrap().to_string();
        assert!(err.contains("nftban.db-pending is locked"), "{err}");
        drop(first);
        assert!(Pending::open(&db).is_ok());
    }
}
