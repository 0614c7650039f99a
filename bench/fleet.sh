#!/usr/bin/env bash
# Fleet benchmark, see docs/performance.md "Fleet": nftban nodes sharing bans
# over Debian's nats-server (JetStream), each node and the server in private
# network namespaces created and deleted by the benchmark (nftban-fbench-*):
# the host's ruleset and network are never touched. Reports, in one run, the
# latency from a log line on node A to the element in node B's kernel set,
# the rate at which 100,000 bans from A are applied on B, how long a new node
# takes to catch up on them, and a CrowdSec-style poll every 10 s beside it.
# Needs root, ip, nft and the nats-server package. About 2 to 4 minutes after
# the build (the throughput phase waits at most 120 s for B).
# Usage: bash bench/fleet.sh [--samples N] [--bans N] [--poll-secs S] [--poll-samples N]
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/fleet.sh: needs root (it creates network namespaces)" >&2; exit 1; }
[ -x /usr/sbin/nats-server ] || { echo "bench/fleet.sh: /usr/sbin/nats-server not found (apt-get install nats-server)" >&2; exit 1; }
cargo build --release --locked --bin nftban --example fleet_bench

# shellcheck source=bench/example.sh
. bench/example.sh
run_example fleet_bench nftban-fbench "" "$@"
