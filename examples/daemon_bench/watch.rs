//! Elements added to one set of a namespace, as the kernel announced them
//! (nf_tables events, stamped by the kernel): shared by the daemon and
//! fleet benchmarks (examples/daemon_bench.rs, examples/fleet_bench.rs).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nftban::netns::NetNs;

use super::added::{Added, AddedElements};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Elements added to one set, as the kernel announced them.
pub struct Watch {
    rx: mpsc::Receiver<std::io::Result<Vec<Added>>>,
    set: String,
    /// First event per address.
    pub seen: HashMap<IpAddr, SystemTime>,
    /// The latest event.
    last: Option<SystemTime>,
    pub stop: Arc<AtomicBool>,
}

impl Watch {
    /// No listener at all (nothing is ever seen).
    pub fn idle() -> Watch {
        let (_, rx) = mpsc::channel();
        Watch {
            rx,
            set: String::new(),
            seen: HashMap::new(),
            last: None,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Listen in `ns`, from a thread of its own that entered it.
    pub fn open(ns: &NetNs, set: &str) -> Res<Watch> {
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let name = ns.name.clone();
        std::thread::spawn(move || {
            let opened = enter(&name).and_then(|_| AddedElements::open(Duration::from_millis(200)));
            let mut sock = match opened {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let mut out = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                match sock.read(&mut out) {
                    Ok(_) if out.is_empty() => {}
                    Ok(_) => {
                        if tx.send(Ok(std::mem::take(&mut out))).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        ready_rx.recv()??;
        Ok(Watch {
            rx,
            set: set.to_string(),
            seen: HashMap::new(),
            last: None,
            stop,
        })
    }

    fn take(&mut self, batch: Vec<Added>) {
        for a in batch {
            if a.set == self.set {
                self.seen.entry(a.addr).or_insert(a.at);
                self.last = Some(self.last.map_or(a.at, |l| l.max(a.at)));
            }
        }
    }

    /// Take in what arrived; wait at most until `deadline` for more.
    /// `Ok(false)` when nothing came by then.
    pub fn pump(&mut self, deadline: Instant) -> Res<bool> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(wait) {
            Ok(r) => {
                self.take(r.map_err(|e| format!("nf_tables events: {e}"))?);
                while let Ok(r) = self.rx.try_recv() {
                    self.take(r.map_err(|e| format!("nf_tables events: {e}"))?);
                }
                Ok(true)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(false),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err("the event reader stopped".into()),
        }
    }

    /// Stop listening, and return once the reader has left the multicast
    /// group (its socket closed): from then on the kernel builds no event
    /// for this watch. What arrived before is taken in. (The fleet
    /// benchmark's; the daemon benchmark never stops listening early.)
    #[allow(dead_code)]
    pub fn close(&mut self) -> Res<()> {
        self.stop.store(true, Ordering::Relaxed);
        while let Ok(r) = self.rx.recv() {
            self.take(r.map_err(|e| format!("nf_tables events: {e}"))?);
        }
        Ok(())
    }

    pub fn drain(&mut self) -> Res<()> {
        self.pump(Instant::now()).map(|_| ())
    }

    pub fn count(&self) -> usize {
        self.seen.len()
    }

    /// When `addr` entered the kernel, if by `deadline`.
    pub fn wait_for(&mut self, addr: Ipv4Addr, deadline: Instant) -> Res<Option<SystemTime>> {
        let addr = IpAddr::V4(addr);
        loop {
            if let Some(at) = self.seen.get(&addr) {
                return Ok(Some(*at));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            self.pump(deadline)?;
        }
    }

    /// When the set's `n`-th element arrived, if by `deadline`.
    pub fn wait_count(&mut self, n: usize, deadline: Instant) -> Res<Option<SystemTime>> {
        loop {
            if self.seen.len() >= n {
                return Ok(self.last);
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            self.pump(deadline)?;
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Move this thread into the named namespace (its owner deletes it).
pub fn enter(name: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let context = |what: &str, e: std::io::Error| std::io::Error::new(e.kind(), format!("{what} {name}: {e}"));
    let f = std::fs::File::open(format!("/run/netns/{name}")).map_err(|e| context("open namespace", e))?;
    // SAFETY: setns on a valid namespace fd; affects only this thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(context("setns", std::io::Error::last_os_error()));
    }
    Ok(())
}
