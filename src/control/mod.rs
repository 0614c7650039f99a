//! The control stage: a Unix socket (mode 0600) through which the CLI asks
//! the running daemon for status and bans or unbans by hand.

pub mod client;
mod line;
pub mod metrics;
pub mod protocol;
pub mod server;
mod subscriber;

pub use protocol::{Request, Response};

#[cfg(test)]
mod tests {
    /// Poll `f` until it gives a value; panics with `what` after a generous
    /// deadline. This waits for an event, it does not measure time.
    pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let start = std::time::Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
