//! Tell systemd (`Type=notify`) when the daemon is ready and when it stops,
//! through libsystemd's own `sd_notify(3)` (the `systemd` crate, already
//! linked for the journal source): it finds `$NOTIFY_SOCKET`, a path or an
//! abstract name (`@...`), and sends nothing when the variable is unset.
//! The pure-Rust `sd-notify` crate does not reach abstract names.

/// Send `state`, newline-separated `KEY=VALUE` assignments (e.g.
/// `READY=1\nSTATUS=...`), if started by systemd; otherwise nothing. A
/// failure is only warned about: the daemon runs on without it.
pub fn notify(state: &str) {
    let pairs: Vec<(&str, &str)> = state.lines().filter_map(|l| l.split_once('=')).collect();
    if let Err(e) = systemd::daemon::notify(pairs.iter()) {
        let socket = std::env::var_os("NOTIFY_SOCKET").unwrap_or_default();
        tracing::warn!(socket = %socket.to_string_lossy(), error = %e, "cannot notify systemd");
    }
}
