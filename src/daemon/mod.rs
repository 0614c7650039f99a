//! The daemon (`nftban run`): wires sources, engine, firewall and control
//! socket together.
//!
//! Threads: one per source ([`reader`]: reading and matching; jails that
//! read the same source share its thread and try all their rules in one
//! pass per line), one per other origin of bans ([`origin`]), one accepting
//! on the control socket and one per client connected to it (bounded;
//! their requests still reach the engine one at a time, over the channel),
//! one for signals, one reading the firewall's watcher
//! (self-healing), and the engine loop ([`events`]) on the caller's thread.
//! They talk over one bounded channel; when the engine falls behind,
//! sources wait and their lines stay on disk instead of in memory.

mod engine;
mod events;
mod notify;
mod origin;
mod outbox;
mod reader;
mod resolve;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{format_duration, Config};
use crate::control::server::{raise_open_files, serve, Limits, Server};
use crate::control::{Request, Response};
use crate::events::Hub;
use crate::firewall::{Firewall, Watcher};
use crate::sources::{Context, Saved, Source, SourceState, SourceStats};
pub use engine::{Decision, Engine, RequestError, FORGET_INTERVAL};
pub use events::Event;
use events::Exit;

/// Why the daemon could not start (or restart for a reload).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The ban history cannot be opened.
    #[error(transparent)]
    History(#[from] crate::store::Error),
    /// The table cannot be created or adopted.
    #[error("cannot set up `table inet {table}`")]
    Setup {
        table: String,
        source: crate::firewall::Error,
    },
    /// The control socket cannot be bound.
    #[error("cannot open the control socket {}", .path.display())]
    Socket {
        path: PathBuf,
        source: crate::control::server::BindError,
    },
    /// The metrics address cannot be listened on.
    #[error("cannot listen for metrics on {listen} (metrics.listen)")]
    Metrics {
        listen: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// A thread (or the signal handler) cannot be started.
    #[error("cannot start the daemon's threads")]
    Threads(#[source] std::io::Error),
    /// The re-exec for a reload failed.
    #[error("cannot restart for the reload")]
    Reload(#[source] std::io::Error),
}

impl From<std::io::Error> for DaemonError {
    fn from(e: std::io::Error) -> DaemonError {
        DaemonError::Threads(e)
    }
}

/// How many events may wait for the engine before sources block.
const QUEUE: usize = 16 * 1024;

/// Run the daemon until SIGTERM or SIGINT. The firewall's watcher, if it
/// has one, reports other processes' changes to nftban's table, and the
/// engine heals it.
pub fn run(config: Config, mut firewall: Box<dyn Firewall>) -> Result<(), DaemonError> {
    // Signals first: a SIGTERM at any point of the start (once the control
    // socket exists, say) is a clean stop that the engine loop finds
    // waiting, not the default kill.
    //
    // SIGTERM and SIGINT are blocked in every thread but the signal
    // thread, which unblocks them for itself: every thread spawned from
    // here inherits the block. At a reload's restart that thread is
    // stopped first, so a SIGTERM sent then is taken by no thread about
    // to vanish: it stays pending through the exec, for the new image
    // (whose signal thread takes it as soon as it runs).
    stop_signals(libc::SIG_BLOCK);
    let (tx, rx) = mpsc::sync_channel::<Event>(QUEUE);
    let signals = spawn_signal_thread(tx.clone())?;
    let store = crate::store::Store::open(&config.database)?;
    let saved = Arc::new(saved_checkpoints(&store));
    tracing::info!("ban history in {}", config.database.display());
    // Subscribe before setup, so no change after it goes unseen.
    let watcher = firewall.watch(&config.table).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot watch nf_tables events: nftban will not notice (nor heal) changes other tools make to table inet {}", config.table);
        None
    });
    // The kernel meter's reader of its caught sets: a socket of its own.
    let catches = firewall.catches(&config.table_spec()).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot read the SIP meter's caught sets: the kernel still bans floods, but nftban will not learn of those bans");
        None
    });
    let hub = Hub::default();
    let mut engine = Engine::new(&config, firewall)
        .with_store(store)
        .with_events(hub.clone());
    // The fleet hears of this node's bans from the start: those restored
    // are told again, for what an outage or a stop kept back.
    let fleet = match config.fleet.clone().map(origin::fleet::fleet) {
        Some((fleet, teller)) => {
            engine = engine.sharing(Box::new(teller));
            Some(fleet)
        }
        None => None,
    };
    // Each feed's figures show in `status` from the start.
    let feeds = origin::feeds(&config);
    for f in &feeds {
        engine.attach_feed(f.sets(), f.stats());
    }
    let restored = engine.start(&config).map_err(|source| DaemonError::Setup {
        table: config.table.clone(),
        source,
    })?;
    let chains: Vec<&str> = config.hooks.iter().map(|h| h.chain()).collect();
    tracing::info!(
        table = %config.table,
        "nftables table inet {} ready (action {}, chains: {}); {restored} running ban(s) restored",
        config.table,
        config.action,
        chains.join(", ")
    );
    let server = Server::bind(&config.socket).map_err(|source| DaemonError::Socket {
        path: config.socket.clone(),
        source,
    })?;
    tracing::info!("control socket {} (mode 0600)", config.socket.display());

    let stop = Arc::new(AtomicBool::new(false));
    let sources = start_sources(&config, &mut engine, &saved, &tx, &stop)?;
    for origin in origin::configured(&config, catches, fleet, feeds) {
        origin::spawn(origin, tx.clone(), stop.clone())?;
    }
    wait_for_sources(&sources);
    let answering = Arc::new(AtomicBool::new(false));
    let sinks = spawn_event_sinks(&config.events, &hub)?;
    spawn_control_thread(&server, tx.clone(), answering.clone(), hub.clone())?;
    if let Some(m) = config.metrics {
        spawn_metrics_thread(m.listen, tx.clone())?;
    }
    if let Some(watcher) = watcher {
        spawn_watcher_thread(watcher, tx.clone(), stop.clone())?;
    }
    drop(tx);

    tracing::info!("nftban running; logs go to {}", config.log.target);
    notify::notify(&format!("READY=1\nSTATUS=watching {} jail(s)", config.jails.len()));
    let exit = events::run(&mut engine, rx, &config, &answering);
    stop.store(true, Ordering::Relaxed);
    // The socket goes first: an `nftban events` client whose connection
    // ends below connects again at once, and must find no socket (and
    // retry until the reloaded daemon binds it) rather than this one,
    // whose engine no longer answers ("the daemon is stopping", which
    // ended the client).
    drop(server);
    // The last events reach the sinks; `nftban events` clients see the
    // connection end (and, for a reload, connect again).
    hub.close();
    if let Some(sinks) = sinks {
        sinks.finish(Duration::from_secs(2));
    }
    if exit == Exit::Reload {
        // The new config was checked. Start over in this same process (same
        // pid for systemd): bans stay in the kernel, the history restores
        // them, sources resume at their saved checkpoints.
        notify::notify("RELOADING=1");
        tracing::info!("reloading {}", config.path.display());
        drop(engine);
        // A SIGTERM from now on must wait, pending, for the new image:
        // the signal thread, the only one that takes it, ends (the mask
        // and pending signals pass through exec). Stop now if one came
        // since the engine loop ended.
        if signals.end() {
            notify::notify("STOPPING=1");
            tracing::info!("stopped (asked during the reload); bans stay in the kernel until their timeouts end");
            return Ok(());
        }
        return Err(DaemonError::Reload(exec_self()));
    }
    notify::notify("STOPPING=1");
    tracing::info!("stopped; bans stay in the kernel until their timeouts end");
    Ok(())
}

/// Where an earlier run stopped reading; nothing (read from the end) if
/// the history cannot say.
fn saved_checkpoints(store: &crate::store::Store) -> Saved {
    let positions = store.positions().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read saved file positions; following files from their end");
        Default::default()
    });
    let cursors = store.cursors().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read saved journal cursors; following the journal from its end");
        Default::default()
    });
    Saved { positions, cursors }
}

/// Start one reader per source: jails naming the same source (a file, a
/// pattern, the same journal matches, stdin) share it. Each jail's status
/// lists its sources in config order. Returns every source's stats.
fn start_sources(
    config: &Config,
    engine: &mut Engine,
    saved: &Arc<Saved>,
    tx: &SyncSender<Event>,
    stop: &Arc<AtomicBool>,
) -> Result<Vec<Arc<SourceStats>>, DaemonError> {
    /// One source and the jails that read it.
    struct Shared {
        source: Box<dyn Source>,
        stats: Arc<SourceStats>,
        jails: Vec<usize>,
    }
    let mut shared: BTreeMap<String, Shared> = BTreeMap::new();
    // Names in `<HOST>`: counted for every jail, resolved on the
    // resolver's thread for the jails that ask (docs/faq.md row 1).
    let stats: Vec<Arc<resolve::NameStats>> = config.jails.iter().map(|_| Arc::default()).collect();
    let resolver = match config.jails.iter().any(|j| j.usedns.resolves()) {
        true => Some(resolve::spawn(
            resolve::System,
            resolve::Limits::DEFAULT,
            stats.clone(),
            tx.clone(),
        )?),
        false => None,
    };
    let names = reader::Names { stats, resolver };
    for (i, jail) in config.jails.iter().enumerate() {
        tracing::info!(
            jail = %jail.name,
            "jail {}: ruleset {}, files {:?}{}{}, ban after {} failures within {} for {}",
            jail.name,
            jail.ruleset,
            jail.files,
            match jail.journal.is_empty() {
                true => String::new(),
                false => format!(", journal {:?}", jail.journal),
            },
            if jail.stdin { ", stdin" } else { "" },
            jail.maxretry,
            format_duration(jail.findtime),
            format_duration(jail.bantime)
        );
        for (what, why) in &jail.rules.left_out {
            tracing::warn!(jail = %jail.name, "jail {}: {}: left out, nftban cannot run it: `{what}`: {why}", jail.name, jail.rules.origin);
        }
        engine.attach_names(i, names.stats[i].clone(), jail.usedns.resolves());
        if jail.usedns.resolves() {
            tracing::info!(jail = %jail.name, "jail {}: host names in its lines are resolved (usedns: yes)", jail.name);
        }
        for source in reader::sources_of(jail) {
            let label = source.label();
            let entry = shared.entry(label.clone()).or_insert_with(|| Shared {
                source,
                stats: Arc::new(SourceStats::new(label.into())),
                jails: Vec::new(),
            });
            engine.attach_source(i, entry.stats.clone());
            entry.jails.push(i);
        }
    }
    let mut all = Vec::new();
    for Shared { source, stats, jails } in shared.into_values() {
        let ctx = Context {
            stats: stats.clone(),
            stop: stop.clone(),
            saved: saved.clone(),
        };
        reader::spawn(source, &jails, &config.jails, &names, ctx, tx.clone())?;
        all.push(stats);
    }
    Ok(all)
}

/// Answer on the control socket (and tell systemd READY) only once every
/// source has opened its file (or found it missing): a line written after
/// the first answer is then never skipped by a reader that starts at the
/// end of its file. Bounded, so a stuck source cannot hang start.
fn wait_for_sources(sources: &[Arc<SourceStats>]) {
    let looked = std::time::Instant::now();
    while sources.iter().any(|s| s.state() == SourceState::Starting) && looked.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Ask the engine loop, from another thread, and wait for its answer.
fn ask(tx: &SyncSender<Event>, req: Request) -> Response {
    let (rtx, rrx) = mpsc::channel();
    if tx.send(Event::Request(req, rtx)).is_err() {
        return Response::err("the daemon is stopping");
    }
    rrx.recv()
        .map(events::Answer::into_response)
        .unwrap_or_else(|_| Response::err("the daemon is stopping"))
}

fn spawn_control_thread(
    server: &Server,
    tx: SyncSender<Event>,
    answering: Arc<AtomicBool>,
    hub: Hub,
) -> Result<(), DaemonError> {
    let listener = server.listener()?;
    // Every client the cap admits holds a descriptor.
    let open_files = match raise_open_files() {
        Ok((before, after)) => {
            if after > before {
                tracing::info!("open files limit raised from {before} to {after} (the hard limit) for control clients");
            }
            after
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open files limit; serving fewer control clients at once");
            1024
        }
    };
    let limits = Limits::DEFAULT.within_open_files(open_files);
    tracing::info!("control socket serves up to {} clients at once", limits.clients);
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || serve(listener, limits, answering, hub, move |req| ask(&tx, req)))?;
    Ok(())
}

/// The sinks of `events:` (a JSON lines file, a Unix socket), if any, on
/// a thread of their own.
fn spawn_event_sinks(
    config: &crate::config::EventsConfig,
    hub: &Hub,
) -> Result<Option<crate::events::sink::Writer>, DaemonError> {
    use crate::events::sink::{FileSink, Sink, SocketSink};
    let mut sinks: Vec<Box<dyn Sink + Send>> = Vec::new();
    if let Some(file) = &config.file {
        sinks.push(Box::new(FileSink::new(file.clone())));
    }
    if let Some(socket) = &config.socket {
        sinks.push(Box::new(SocketSink::new(socket.clone())));
    }
    if sinks.is_empty() {
        return Ok(None);
    }
    let names: Vec<String> = sinks.iter().map(|s| s.name()).collect();
    // The hub's cap is for clients: the sinks' subscription comes first.
    let sub = hub
        .subscribe(None)
        .map_err(|e| DaemonError::Threads(std::io::Error::other(e)))?;
    let writer = crate::events::sink::spawn(sub, sinks)?;
    tracing::info!("ban events go to {}", names.join(" and "));
    Ok(Some(writer))
}

fn spawn_metrics_thread(listen: std::net::SocketAddr, tx: SyncSender<Event>) -> Result<(), DaemonError> {
    let listener = crate::control::metrics::bind(listen).map_err(|source| DaemonError::Metrics { listen, source })?;
    tracing::info!("Prometheus metrics on http://{listen}/metrics");
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        crate::control::metrics::serve(listener, || {
            ask(
                &tx,
                Request::Status {
                    jail: None,
                    brief: true,
                },
            )
            .data()
            .ok()
        })
    })?;
    Ok(())
}

fn spawn_watcher_thread(
    mut watcher: Box<dyn Watcher>,
    tx: SyncSender<Event>,
    stop: Arc<AtomicBool>,
) -> Result<(), DaemonError> {
    std::thread::Builder::new().name("nft-monitor".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match watcher.wait() {
                Ok(Some(notice)) => {
                    if tx.send(Event::Kernel(notice)).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reading nf_tables events failed; retrying in a second");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    })?;
    Ok(())
}

/// The thread that turns signals into events, the only one that takes
/// SIGTERM and SIGINT.
struct SignalThread {
    /// Set by the signal handler itself on SIGTERM or SIGINT, for the
    /// moment the engine loop no longer reads events (a reload's restart).
    stop_asked: Arc<AtomicBool>,
    handle: signal_hook::iterator::Handle,
    thread: std::thread::JoinHandle<()>,
}

impl SignalThread {
    /// End the thread (from then on no thread takes SIGTERM or SIGINT:
    /// they stay pending) and say whether a stop was asked before.
    fn end(self) -> bool {
        self.handle.close();
        let _ = self.thread.join();
        self.stop_asked.load(Ordering::SeqCst)
    }
}

/// Start the signal thread (see [`SignalThread`]).
fn spawn_signal_thread(tx: SyncSender<Event>) -> Result<SignalThread, DaemonError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let stop_asked = Arc::new(AtomicBool::new(false));
    for sig in [SIGTERM, SIGINT] {
        signal_hook::flag::register(sig, stop_asked.clone())?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let handle = signals.handle();
    let thread = std::thread::Builder::new().name("signals".into()).spawn(move || {
        // The only thread that takes them (see `run`); one sent before
        // now, or during a reload's restart, was pending and comes now.
        stop_signals(libc::SIG_UNBLOCK);
        for sig in signals.forever() {
            let event = match sig {
                // As `nftban reload`; nobody waits for the answer.
                SIGHUP => Event::Request(Request::Reload, mpsc::channel().0),
                SIGINT => Event::Shutdown("SIGINT"),
                _ => Event::Shutdown("SIGTERM"),
            };
            let _ = tx.send(event);
        }
    })?;
    Ok(SignalThread {
        stop_asked,
        handle,
        thread,
    })
}

/// Replace this process with a new image of the same program and
/// arguments (a reload); returns only on failure. Not `Command::exec`:
/// std empties the signal mask right before execve, so a SIGTERM pending
/// then would be taken by this image's handler, about to vanish, and lost.
/// execv keeps the mask, and the SIGTERM stays pending for the new image.
fn exec_self() -> std::io::Error {
    let (path, args) = match this_command() {
        Ok(command) => command,
        Err(e) => return e,
    };
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: `path` and every argument are NUL-terminated strings that
    // outlive the call, and `argv` ends with a null pointer.
    unsafe { libc::execv(path.as_ptr(), argv.as_ptr()) };
    std::io::Error::last_os_error()
}

/// This process's executable and arguments, as `execv` takes them.
fn this_command() -> std::io::Result<(std::ffi::CString, Vec<std::ffi::CString>)> {
    use std::os::unix::ffi::OsStrExt;
    let c = |s: &std::ffi::OsStr| std::ffi::CString::new(s.as_bytes()).map_err(std::io::Error::from);
    let path = c(std::env::current_exe()?.as_os_str())?;
    let args = std::env::args_os().map(|a| c(&a)).collect::<std::io::Result<_>>()?;
    Ok((path, args))
}

/// Block or unblock (`how`) SIGTERM and SIGINT in the calling thread.
fn stop_signals(how: libc::c_int) {
    // SAFETY: a zeroed sigset_t is a valid argument to sigemptyset, which
    // initialises it; pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}
