//! The docs against the code: one module per kind of page. None needs
//! root but the getting-started run (`getting_started::`), which skips
//! with a message without it. Generated pages (the configuration
//! reference, the ruleset pages) are rewritten with
//! `NFTBAN_WRITE_SCHEMAS=1 cargo test --test integration docs::`, like the
//! JSON Schemas.

mod asterisk;
mod claims;
mod consistency;
mod getting_started;
mod grafana;
mod keys;
mod markdown;
mod reference;
mod rulesets;
mod session;
mod troubleshooting;
