//! One integration test binary, one module per topic (as ripgrep does).
//! Tests that need the kernel run inside private network namespaces and
//! skip with a message when not root; CI runs them as root.

mod support;

mod cli;
mod control;
mod daemon;
mod docs;
mod e2e;
mod events;
mod fail2ban_conformance;
mod faults;
mod feeds;
mod firewall;
mod fleet;
mod heal;
mod hostile;
mod hostile_input;
mod import;
mod logging;
mod package;
mod policy;
mod schema;
mod sip;
mod sip_flood;
mod sip_meter;
mod state;
mod status_view;
mod usedns;
