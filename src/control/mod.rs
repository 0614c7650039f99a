//! The control stage: a Unix socket (mode 0600) through which the CLI asks
//! the running daemon for status and bans or unbans by hand.

pub mod client;
pub mod metrics;
pub mod protocol;
pub mod server;

pub use protocol::{Request, Response};
