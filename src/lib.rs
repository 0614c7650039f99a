//! nftban: a fail2ban for modern kernels. Log lines in, per-element
//! nftables set timeouts out, over netlink.
//!
//! The data flow has one module per stage: [`sources`] read lines,
//! [`matcher`] finds failures and their addresses, [`tracker`] decides bans,
//! [`firewall`] puts them into the kernel, [`control`] lets the CLI talk to
//! the running [`daemon`]. See ARCHITECTURE.md for the map.

mod address;
pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod daemon;
mod events;
pub mod firewall;
#[cfg(test)]
mod fuzz;
mod logging;
pub mod matcher;
pub mod netns;
mod regular;
mod scan;
mod sources;
mod status;
mod store;
mod throttle;
mod tracker;
mod yaml;
