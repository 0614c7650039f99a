//! nftban: a fail2ban for modern kernels. See ARCHITECTURE.md for the map.
pub mod config;
pub mod firewall;
pub mod matcher;
pub mod sources;
pub mod tracker;
