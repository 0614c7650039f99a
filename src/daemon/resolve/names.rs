//! The resolver's state, apart from its thread so that tests drive it with
//! their own clock: lines waiting per name, the lookups running, the
//! cache, and what happens on an answer or a timeout.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::IpAddr;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use ipnet::IpNet;

use super::cache::Cache;
use super::{Limits, Lookup, Msg, NameStats};
use crate::daemon::outbox::Failure;

/// Lines waiting for one name's answer.
struct Pending {
    /// When they are given up.
    deadline: Instant,
    /// (jail, line's time) of each line.
    lines: Vec<(usize, SystemTime)>,
    /// A lookup thread was started for it (else it waits in `queued`).
    started: bool,
}

pub(super) struct Names<L: Lookup> {
    lookup: Arc<L>,
    limits: Limits,
    stats: Vec<Arc<NameStats>>,
    pub(super) cache: Cache,
    pending: HashMap<String, Pending>,
    /// Names waiting for a lookup thread, in the order they came.
    queued: VecDeque<String>,
    /// Lookup threads not yet returned, abandoned ones included.
    pub(super) running: usize,
    /// Lines in `pending`.
    waiting: usize,
    /// Where lookup threads send their answers.
    done: SyncSender<Msg>,
}

impl<L: Lookup> Names<L> {
    pub(super) fn new(lookup: Arc<L>, limits: Limits, stats: Vec<Arc<NameStats>>, done: SyncSender<Msg>) -> Self {
        Names {
            lookup,
            limits,
            stats,
            cache: Cache::new(limits.cache),
            pending: HashMap::new(),
            queued: VecDeque::new(),
            running: 0,
            waiting: 0,
            done,
        }
    }

    fn stats(&self, jail: usize) -> &NameStats {
        &self.stats[jail]
    }

    /// A line of jail `jail` named `name`: answered from the cache into
    /// `out`, or held until its name's lookup answers.
    pub(super) fn ask(&mut self, jail: usize, name: String, at: SystemTime, now: Instant, out: &mut Vec<Failure>) {
        if !super::could_be_a_name(&name) {
            NameStats::add(&self.stats(jail).unresolved);
            return;
        }
        if let Some(addrs) = self.cache.get(&name, now) {
            let st = self.stats(jail);
            NameStats::add(&st.cache_hits);
            NameStats::add(if addrs.is_empty() { &st.unresolved } else { &st.resolved });
            failures(addrs, jail, at, out);
            return;
        }
        if self.waiting >= self.limits.waiting {
            NameStats::add(&self.stats(jail).dropped);
            return;
        }
        self.waiting += 1;
        if let Some(p) = self.pending.get_mut(&name) {
            p.lines.push((jail, at));
            return;
        }
        self.pending.insert(
            name.clone(),
            Pending {
                deadline: now + self.limits.timeout,
                lines: vec![(jail, at)],
                started: false,
            },
        );
        self.queued.push_back(name);
        self.start_queued();
    }

    /// Start lookups for queued names while threads are free.
    fn start_queued(&mut self) {
        while self.running < self.limits.lookups {
            let Some(name) = self.queued.pop_front() else { return };
            // A name whose lines timed out while it waited is gone.
            let Some(p) = self.pending.get_mut(&name) else { continue };
            p.started = true;
            let jail = p.lines[0].0;
            NameStats::add(&self.stats[jail].lookups);
            let lookup = Arc::clone(&self.lookup);
            let done = self.done.clone();
            let asked = name.clone();
            let spawned = std::thread::Builder::new().name("dns-lookup".into()).spawn(move || {
                let result = lookup.lookup(&asked);
                let _ = done.send(Msg::Done { name: asked, result });
            });
            match spawned {
                Ok(_) => self.running += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a thread to resolve {name}; its lines are not counted");
                    self.drop_lines(&name, |s| &s.unresolved);
                }
            }
        }
    }

    /// A lookup's answer: the lines waiting for it get their failures.
    pub(super) fn done(&mut self, name: String, result: io::Result<Vec<IpAddr>>, now: Instant, out: &mut Vec<Failure>) {
        self.running = self.running.saturating_sub(1);
        let mut addrs = match result {
            Ok(addrs) => addrs,
            Err(e) => {
                tracing::debug!(error = %e, "cannot resolve {name} (usedns)");
                Vec::new()
            }
        };
        let mut seen = Vec::with_capacity(addrs.len());
        addrs.retain(|a| {
            let new = !seen.contains(a);
            seen.push(*a);
            new
        });
        if addrs.len() > self.limits.addresses {
            tracing::warn!(
                "{name} resolves to {} addresses; only the first {} get its failures (usedns)",
                addrs.len(),
                self.limits.addresses
            );
            addrs.truncate(self.limits.addresses);
        }
        let ttl = if addrs.is_empty() {
            self.limits.negative_ttl
        } else {
            self.limits.ttl
        };
        if let Some(p) = self.pending.remove(&name) {
            self.waiting -= p.lines.len();
            let shown: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            match shown.is_empty() {
                true => tracing::info!(
                    "{name} has no address; {} line(s) not counted (usedns: yes)",
                    p.lines.len()
                ),
                false => tracing::info!(
                    "resolved {name} to [{}] for {} line(s) (usedns: yes)",
                    shown.join(", "),
                    p.lines.len()
                ),
            }
            for &(jail, at) in &p.lines {
                let st = &self.stats[jail];
                NameStats::add(if addrs.is_empty() { &st.unresolved } else { &st.resolved });
                failures(&addrs, jail, at, out);
            }
        }
        self.cache.put(name, addrs, now + ttl, now);
        self.start_queued();
    }

    /// Give up the lines whose names have not answered by their deadline;
    /// those names are not asked again for a while (their threads may
    /// still answer, and fill the cache).
    pub(super) fn expire(&mut self, now: Instant) {
        let late: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for name in late {
            let started = self.pending.get(&name).is_some_and(|p| p.started);
            tracing::warn!(
                "resolving {name} took longer than {}s{}; its lines are not counted (usedns)",
                self.limits.timeout.as_secs_f32(),
                if started { "" } else { " (waiting for a free lookup)" }
            );
            self.drop_lines(&name, |s| &s.timeouts);
            self.cache.put(name, Vec::new(), now + self.limits.negative_ttl, now);
        }
    }

    /// Drop `name`'s waiting lines, each counted where `counter` says.
    fn drop_lines(&mut self, name: &str, counter: fn(&NameStats) -> &std::sync::atomic::AtomicU64) {
        if let Some(p) = self.pending.remove(name) {
            self.waiting -= p.lines.len();
            for &(jail, _) in &p.lines {
                NameStats::add(counter(&self.stats[jail]));
            }
        }
    }

    /// The earliest deadline of the lines waiting, if any.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Lines waiting for answers.
    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.waiting
    }
}

/// A failure of each of `addrs` for jail `jail`, dated `at`.
fn failures(addrs: &[IpAddr], jail: usize, at: SystemTime, out: &mut Vec<Failure>) {
    out.extend(addrs.iter().map(|&addr| Failure {
        jail,
        net: IpNet::from(addr),
        at,
    }));
}
