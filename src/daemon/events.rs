//! The engine loop: every event (failures from the sources, decisions of
//! other origins, control requests, the watcher's notices, signals) arrives
//! on one channel and is handled on this one thread, in order.
//!
//! Batching: the loop takes every event already waiting (up to
//! [`BURST`]) before it flushes, so bans decided together go to the kernel
//! in one netlink batch, while a lone event is flushed as soon as it is
//! handled (no timer, no wait for more).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, SystemTime};

use super::engine::{Chunk, Engine};
use super::outbox::Failure;
use crate::config::Config;
use crate::control::{Request, Response};
use crate::firewall::Notice;
use crate::sources::Checkpoint;

/// What the engine is told.
pub enum Event {
    /// The failures of one read of a source, then, if given, the
    /// checkpoint up to which that source is dealt with.
    Lines {
        failures: Vec<Failure>,
        checkpoint: Option<Checkpoint>,
    },
    /// Bans an origin other than the jails' rules decided.
    Decided(super::origin::Decision),
    /// A fleet peer lifted its bans: lifted here where they are its.
    Lifted {
        jail: String,
        nets: Vec<ipnet::IpNet>,
        origin: crate::store::Origin,
    },
    /// A blocklist feed's new list for its sets (`sets`), and where to say
    /// how it went.
    Feed {
        sets: String,
        list: Vec<ipnet::IpNet>,
        reply: mpsc::Sender<Result<super::engine::Applied, String>>,
    },
    /// A control request and where to send the answer.
    Request(Request, mpsc::Sender<Answer>),
    /// nf_tables events about nftban's table: another process deleted
    /// parts of it, or events were lost.
    Kernel(Notice),
    /// Stop (signal name).
    Shutdown(&'static str),
}

/// How many events are handled before their bans are flushed, at most.
const BURST: usize = 10_000;

/// Why the engine loop ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Exit {
    Stop,
    Reload,
}

/// Handle events until a stop or an accepted reload.
pub(super) fn run(engine: &mut Engine, rx: mpsc::Receiver<Event>, config: &Config, answering: &AtomicBool) -> Exit {
    loop {
        let first = match rx.recv_timeout(engine.wait_at_most()) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout) => {
                engine.tick(SystemTime::now());
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return Exit::Stop,
        };
        // Take the whole burst, then send its bans in one batch.
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(ev) = next.take() {
            if let Some(exit) = handle(engine, ev, config, answering) {
                return exit;
            }
            handled += 1;
            if handled < BURST {
                next = rx.try_recv().ok();
            }
        }
        // A big batch ran with the watcher paused: look for what other
        // tools may have deleted meanwhile, as after lost events.
        if engine.after_burst(SystemTime::now()) {
            engine.heal(Notice::Lost, SystemTime::now());
        }
    }
}

/// Handle one event; `Some` ends the loop.
fn handle(engine: &mut Engine, event: Event, config: &Config, answering: &AtomicBool) -> Option<Exit> {
    let now = SystemTime::now();
    match event {
        Event::Lines { failures, checkpoint } => {
            for f in failures {
                engine.failure_of(f.jail, f.net, f.at, now);
            }
            if let Some(c) = checkpoint {
                engine.checkpoint(c);
            }
        }
        Event::Decided(decision) => {
            if let Err(e) = engine.decided(decision, now) {
                tracing::warn!("bans from another origin refused: {e}");
            }
        }
        Event::Lifted { jail, nets, origin } => {
            engine.lift_learnt(&jail, &nets, origin, now);
        }
        Event::Feed { sets, list, reply } => {
            // Bans decided in this burst go in first: the diff is its own
            // transaction.
            engine.flush(now);
            let _ = reply.send(engine.apply_feed(&sets, list));
        }
        Event::Request(Request::Reload, reply) => {
            let answer = check_reload(config);
            let ok = answer.ok;
            let _ = reply.send(Answer::Ready(answer));
            if ok {
                engine.finish(now);
                // The "ok" must reach `nftban reload` before the restart
                // closes the socket (bounded: a stuck client must not hold
                // the reload).
                let asked = std::time::Instant::now();
                while answering.load(Ordering::SeqCst) && asked.elapsed() < Duration::from_secs(2) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                return Some(Exit::Reload);
            }
        }
        Event::Request(req, reply) => {
            engine.flush(now);
            let _ = reply.send(answer(engine, req, now));
        }
        Event::Kernel(notice) => {
            engine.flush(now);
            engine.heal(notice, now);
        }
        Event::Shutdown(sig) => {
            engine.finish(now);
            tracing::info!("{sig} received, stopping");
            return Some(Exit::Stop);
        }
    }
    None
}

/// The engine's answer to a control request: whole, or a report that the
/// asking thread writes as JSON. A `ban -` chunk's report holds 10,000
/// addresses: written on the engine's thread, it kept the engine from the
/// next chunk (in its profile of a bulk ban), while the asking thread
/// only waits.
pub enum Answer {
    Ready(Response),
    Later(Box<dyn FnOnce() -> Response + Send>),
}

impl Answer {
    /// The report of a request the engine carried out, to be written by
    /// the asking thread; or its error's message.
    fn later<T: serde::Serialize + Send + 'static, E: std::fmt::Display>(result: Result<T, E>) -> Answer {
        match result {
            Ok(report) => Answer::Later(Box::new(move || Response::ok(report))),
            Err(e) => Answer::Ready(Response::err(e.to_string())),
        }
    }

    /// The answer as it goes to the client.
    pub fn into_response(self) -> Response {
        match self {
            Answer::Ready(r) => r,
            Answer::Later(write) => write(),
        }
    }
}

/// Carry out a control request (other than reload) and answer it.
pub(super) fn answer(engine: &mut Engine, req: Request, now: SystemTime) -> Answer {
    match req {
        Request::Status { jail: None, brief } => Answer::Ready(Response::ok(engine.status(now, brief))),
        Request::Status {
            jail: Some(name),
            brief,
        } => Answer::Ready(Response::from_result(engine.jail_status(&name, now, brief))),
        Request::Ban {
            addrs,
            jail,
            bantime,
            force,
            more,
            // The connection's business (the control server's).
            follows: _,
        } => Answer::later(engine.ban_with(
            &addrs,
            jail.as_deref(),
            bantime.map(Duration::from_secs),
            force,
            Chunk::more(more),
            now,
        )),
        Request::Unban { addrs, jail, more, .. } => {
            Answer::later(engine.unban_with(&addrs, jail.as_deref(), Chunk::more(more), now))
        }
        // The control server streams the events; the engine says whether
        // the jail exists.
        Request::Events { jail } => Answer::Ready(Response::from_result(
            jail.map_or(Ok(()), |j| engine.knows_jail(&j))
                .map(|()| crate::events::Subscribed {
                    events: crate::events::VERSION,
                }),
        )),
        // Handled by the loop, which restarts the daemon.
        Request::Reload => Answer::Ready(Response::err("reload is handled by the daemon loop")),
    }
}

/// Check the config file for a reload: the new config as a whole, or its
/// error (the running one stays).
fn check_reload(config: &Config) -> Response {
    // The restart opens the history anew: a folder that became read-only
    // would stop the daemon there, after the "ok".
    let new = Config::load(&config.path)
        .map_err(|e| crate::yaml::report(&e))
        .and_then(|new| {
            crate::store::check_writable(&new.database)
                .map(|()| new)
                .map_err(|e| e.to_string())
        });
    match new {
        Ok(new) => {
            tracing::info!(
                "reload: {} is valid ({} jail(s)); restarting with it",
                config.path.display(),
                new.jails.len()
            );
            Response::ok(format!(
                "reloading {} ({} jail(s))",
                config.path.display(),
                new.jails.len()
            ))
        }
        Err(e) => {
            // A config error names the place; its source chain says what
            // is wrong (`report`).
            tracing::error!("reload refused, the running config stays: {e}");
            Response::err(format!("reload refused, the running config stays: {e}"))
        }
    }
}
