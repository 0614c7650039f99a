//! From `fleet:` to a NATS connection and the fleet's stream: credentials,
//! TLS, reconnection without end (a node keeps banning on its own while
//! the servers are away), and the stream made if it is missing.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions, Event};

use super::stats::{State, Stats};
use crate::config::{Credentials, FleetSpec};

/// How long a JetStream request or a publish's ack is waited for. An ack
/// that does not come in time may still have been stored: the publish is
/// retried under the same `Nats-Msg-Id`, which the stream stores once.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// The wait before try number `attempts` (from 1) to reach a server: none
/// before the first, so a node starting (or a connection just lost) tries
/// at once, then 250 ms more per try, at most 2 s between tries, so a node
/// is back soon after a server restarts. (async-nats counts the first try
/// as 1: a wait of `attempts × 250 ms` held every start and every
/// reconnection back by 250 ms; docs/performance.md, "Fleet".)
fn reconnect_delay(attempts: usize) -> Duration {
    Duration::from_millis((attempts.saturating_sub(1) as u64 * 250).min(2000))
}

/// Connect (in the background: the client keeps trying, and buffers what
/// is published meanwhile); the connection's ups and downs go to `stats`.
pub async fn connect(spec: &FleetSpec, stats: Arc<Stats>) -> Result<Client, String> {
    let mut opts = match &spec.credentials {
        Credentials::None => ConnectOptions::new(),
        Credentials::UserPassword { user, password } => {
            ConnectOptions::with_user_and_password(user.clone(), password.clone())
        }
        Credentials::Token(t) => ConnectOptions::with_token(t.clone()),
        Credentials::NKeyFile(path) => {
            let seed =
                std::fs::read_to_string(path).map_err(|e| format!("fleet.auth.nkey_file {}: {e}", path.display()))?;
            ConnectOptions::with_nkey(seed.trim().to_string())
        }
        Credentials::CredsFile(path) => ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| format!("fleet.auth.creds_file {}: {e}", path.display()))?,
    };
    if let Some(tls) = &spec.tls {
        opts = opts.require_tls(true);
        if let Some(ca) = &tls.ca_file {
            opts = opts.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
    }
    let events = stats.clone();
    let servers_text = spec.servers.join(", ");
    let opts = opts
        .name(format!("nftban {}", spec.node))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(reconnect_delay)
        .event_callback(move |event| {
            let stats = events.clone();
            let servers = servers_text.clone();
            async move {
                match event {
                    Event::Connected => {
                        tracing::info!("fleet: connected to NATS");
                        stats.set_state(State::Connected);
                    }
                    Event::Disconnected => {
                        tracing::warn!("fleet: disconnected from NATS; banning locally, publishing when it is back");
                        stats.set_state(State::Disconnected);
                        stats.set_error("disconnected".into());
                    }
                    // Said once per change of error, not at every
                    // reconnect: what is wrong (a refused login, a TLS
                    // mismatch, a refused connection) shows in `status`.
                    Event::ClientError(e) => stats.note_error(format!("NATS client: {e} (servers {servers})")),
                    Event::ServerError(e) => stats.note_error(format!("NATS server: {e} (servers {servers})")),
                    other => {
                        tracing::debug!("fleet: NATS {other}");
                    }
                }
            }
        });
    let servers: Vec<async_nats::ServerAddr> = spec
        .servers
        .iter()
        .map(|s| s.parse().map_err(|e| format!("fleet.servers `{s}`: {e}")))
        .collect::<Result<_, _>>()?;
    opts.connect(servers)
        .await
        .map_err(|e| format!("cannot connect to NATS: {e}"))
}

/// The JetStream context of `client`.
pub fn context(client: Client) -> jetstream::Context {
    jetstream::context::ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .build(client)
}

/// The fleet's stream, made if missing: every subject under the prefix,
/// messages kept for `retention` (the longest ban), duplicates dropped
/// within the same window. An existing stream is taken as it is (an
/// admin may have made it with other limits).
pub async fn stream(js: &jetstream::Context, spec: &FleetSpec) -> Result<stream::Stream, String> {
    let config = stream::Config {
        name: spec.stream.clone(),
        subjects: vec![format!("{}.>", spec.subject_prefix)],
        max_age: spec.retention,
        duplicate_window: spec.retention,
        num_replicas: spec.replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map_err(|e| format!("cannot find or make the stream {}: {e}", spec.stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_try_is_at_once_then_the_waits_grow_to_two_seconds() {
        let waits: Vec<u64> = [1, 2, 3, 8, 9, 1000]
            .into_iter()
            .map(|a| reconnect_delay(a).as_millis() as u64)
            .collect();
        assert_eq!(waits, [0, 250, 500, 1750, 2000, 2000]);
    }
}
