//! The log writer: lines at a fixed rate into `log/messages` (each
//! millisecond, the lines due in one `write`), dated the second they are
//! written, and the log's rotations, done between two writes as logrotate
//! does with `rotate 3`: the older copies shift (`messages.3` is deleted),
//! then either rename + create, or copytruncate.
//!
//! The writer does its own copytruncate, so no line falls between the copy
//! and the truncation (logrotate loses those); the daemon may still be
//! behind in the file when it is truncated, which is what a glob pattern's
//! reader must cope with (docs/config.md, "Glob patterns").

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::traffic::{attack_line, ordinary_line, Attacker, Clock, Plan, Rng, ATTACK_LINES};

/// The log's name in its folder; the jail reads `messages*`.
pub const NAME: &str = "messages";
/// Rotated copies kept, as logrotate's `rotate 3`.
const KEEP: u32 = 3;

/// How a rotation is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    Rename,
    CopyTruncate,
}

impl Rotation {
    pub fn name(self) -> &'static str {
        match self {
            Rotation::Rename => "rename + create",
            Rotation::CopyTruncate => "copytruncate",
        }
    }
}

/// The log being written, and what was written into it.
pub struct Log {
    dir: PathBuf,
    file: File,
    rate: u64,
    /// Lines to write in all.
    pub total: u64,
    attackers: Vec<Attacker>,
    events: Vec<(u64, u32)>,
    next_event: usize,
    clock: Clock,
    rng: Rng,
    buf: String,
    /// Lines written so far.
    pub written: u64,
    pub attack_lines: u64,
    /// Per attacker, the dates (Unix seconds) of its lines as written.
    pub dates: Vec<Vec<i64>>,
    /// The most the writer was behind its schedule, and when (since the start).
    pub behind: (Duration, Duration),
    /// When the last line was written (since the start).
    pub finished: Option<Duration>,
    /// What happened to the log: (when, what).
    pub notes: Vec<(Duration, String)>,
}

impl Log {
    /// An empty `NAME` in `dir` (made if missing), to write `total` lines
    /// at `rate` a second following `plan`.
    pub fn create(dir: &Path, rate: u64, total: u64, plan: Plan, seed: u64) -> io::Result<Log> {
        std::fs::create_dir_all(dir)?;
        let file = open(&dir.join(NAME))?;
        Ok(Log {
            dir: dir.to_path_buf(),
            file,
            rate,
            total,
            dates: vec![Vec::new(); plan.attackers.len()],
            attackers: plan.attackers,
            events: plan.events,
            next_event: 0,
            clock: Clock::new(),
            rng: Rng(seed ^ 0x5eed),
            buf: String::with_capacity(1 << 20),
            written: 0,
            attack_lines: 0,
            behind: (Duration::ZERO, Duration::ZERO),
            finished: None,
            notes: Vec::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn attackers(&self) -> &[Attacker] {
        &self.attackers
    }

    /// Attack lines of the plan that were not written (0 unless the run
    /// was cut short).
    pub fn unwritten_attack_lines(&self) -> usize {
        self.events.len() - self.next_event
    }

    /// Write lines up to number `due` (exclusive), in one `write`. Line `k`
    /// is due `k / rate` s after the start: the next planned attack line
    /// when its time has come, else an ordinary line (one in fifty a decoy).
    fn write_until(&mut self, due: u64) -> io::Result<()> {
        let (secs, t) = self.clock.now();
        let t = t.to_string();
        self.buf.clear();
        while self.written < due {
            let nominal_ms = self.written * 1000 / self.rate;
            match self.events.get(self.next_event) {
                Some(&(at, id)) if at <= nominal_ms => {
                    self.next_event += 1;
                    let variant = self.rng.below(ATTACK_LINES);
                    attack_line(
                        &mut self.buf,
                        variant,
                        &mut self.rng,
                        &t,
                        &self.attackers[id as usize].addr,
                    );
                    self.dates[id as usize].push(secs);
                    self.attack_lines += 1;
                }
                _ => {
                    let r = self.rng.below(100);
                    let variant = if r < 2 { 10 + r } else { self.rng.below(10) };
                    ordinary_line(&mut self.buf, variant, &mut self.rng, &t);
                }
            }
            self.written += 1;
        }
        if !self.buf.is_empty() {
            self.file.write_all(self.buf.as_bytes())?;
        }
        Ok(())
    }

    /// Rotate the log now, between two writes (the caller holds the lock),
    /// and note it at `at` with `why`.
    pub fn rotate_now(&mut self, how: Rotation, at: Duration, why: &str) -> io::Result<()> {
        let note = self.rotate(how)?;
        self.notes.push((at, format!("{note}{why}")));
        Ok(())
    }

    /// Rotate the log; says what was done.
    fn rotate(&mut self, how: Rotation) -> io::Result<String> {
        let t0 = Instant::now();
        let path = self.dir.join(NAME);
        let size = self.file.metadata()?.len();
        for k in (1..=KEEP).rev() {
            let from = self.dir.join(format!("{NAME}.{k}"));
            if !from.exists() {
                continue;
            }
            if k == KEEP {
                std::fs::remove_file(&from)?;
            } else {
                std::fs::rename(&from, self.dir.join(format!("{NAME}.{}", k + 1)))?;
            }
        }
        let first = self.dir.join(format!("{NAME}.1"));
        match how {
            Rotation::Rename => {
                std::fs::rename(&path, &first)?;
                self.file = open(&path)?;
            }
            Rotation::CopyTruncate => {
                std::fs::copy(&path, &first)?;
                self.file.set_len(0)?;
            }
        }
        Ok(format!(
            "{} of {NAME} ({:.0} MB, {} ms)",
            how.name(),
            size as f64 / 1e6,
            t0.elapsed().as_millis()
        ))
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Write until every line is written or `stop` is set, doing `rotations`
/// ((time since `start`, how), in time order) on the way. Whoever holds
/// the lock on `log` holds the writer (the restart uses that to see the
/// daemon catch up).
pub fn run(
    log: Arc<Mutex<Log>>,
    start: Instant,
    rotations: Vec<(Duration, Rotation)>,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    let mut rotations = rotations.into_iter().peekable();
    loop {
        {
            let mut l = log.lock().map_err(|_| io::Error::other("writer lock poisoned"))?;
            if l.written >= l.total || stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let elapsed = start.elapsed();
            if let Some(&(at, how)) = rotations.peek() {
                if elapsed >= at {
                    rotations.next();
                    l.rotate_now(how, elapsed, "")?;
                }
            }
            let elapsed = start.elapsed();
            let due = ((elapsed.as_secs_f64() * l.rate as f64) as u64).min(l.total);
            let behind = Duration::from_secs_f64(due.saturating_sub(l.written) as f64 / l.rate as f64);
            if behind > l.behind.0 {
                l.behind = (behind, elapsed);
            }
            l.write_until(due)?;
            if l.written >= l.total {
                l.finished = Some(start.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
