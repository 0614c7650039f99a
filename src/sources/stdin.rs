//! Standard input as a log source: `journalctl -f -o cat | nftban run`,
//! `tail -F x | nftban run`, or a container whose logs are piped in.
//!
//! Bytes are cut into lines by the same code as files (long lines,
//! invalid UTF-8, a partial line waiting for its newline). There is no
//! position to save: what went through the pipe is gone. At the end of
//! input the source says so in status (`closed`) and the daemon goes on
//! with its other sources.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::file::FileTail;
use super::watch::TICK;
use super::{Context, Sink, Source, SourceState, SourceStats};

/// How stdin is named in status and logs.
pub const LABEL: &str = "stdin";

/// Standard input (`stdin: true` in a jail).
pub struct StdinSource;

impl Source for StdinSource {
    fn label(&self) -> String {
        LABEL.to_string()
    }

    fn follow(self: Box<Self>, ctx: Context, sink: &mut dyn Sink) {
        let stats = ctx.stats.clone();
        let sink = std::cell::RefCell::new(sink);
        follow(
            ctx.stats,
            ctx.stop,
            |line| sink.borrow_mut().line(&stats, line, None),
            || sink.borrow_mut().read_done(None),
        );
    }
}

/// Read standard input until its end or until `stop` is set, calling
/// `on_line` for each line and `on_read` after each read that may have
/// handed out lines.
fn follow(stats: Arc<SourceStats>, stop: Arc<AtomicBool>, mut on_line: impl FnMut(&str), mut on_read: impl FnMut()) {
    let mut tail = FileTail::new(Path::new(LABEL), stats.clone());
    stats.set_state(SourceState::Reading);
    let mut buf = [0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, TICK.as_millis() as i32) };
        if ready <= 0 {
            continue;
        }
        if pfd.revents & libc::POLLNVAL != 0 {
            break;
        }
        // SAFETY: reads into a buffer we own, at most its length.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            0 => break,
            n if n > 0 => {
                tail.feed(&buf[..n as usize], &mut on_line);
                on_read();
            }
            _ => {
                let e = std::io::Error::last_os_error();
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                ) {
                    continue;
                }
                tracing::error!(error = %e, "cannot read stdin; it is no longer read");
                stats.set_state(SourceState::Unreadable(e.to_string()));
                return;
            }
        }
    }
    if stop.load(Ordering::Relaxed) {
        return;
    }
    tail.finish(&mut on_line);
    on_read();
    stats.set_state(SourceState::Closed);
    tracing::info!(
        "stdin closed after {} lines: no more lines will come from it; other sources go on",
        stats.lines.load(Ordering::Relaxed)
    );
}
