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

pid=""
stamp=$(mktemp /tmp/fleet-bench-start.XXXXXX)
cleanup() {
    # The benchmark deletes its namespaces and folders itself; this is for
    # when it was killed or failed: stop it and what still runs in its
    # namespaces, delete them and its temporary folders.
    set +e
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    for ns in $(ip netns list | awk -v p="-${pid:-none}-" '$1 ~ /^nftban-fbench-/ && index($1, p) {print $1}'); do
        for p in $(ip netns pids "$ns"); do kill -9 "$p" 2>/dev/null || true; done
        ip netns delete "$ns"
    done
    [ -n "$pid" ] && find /tmp -maxdepth 1 -name 'nftban-fbench-*' -user root -newer "$stamp" -exec rm -rf {} +
    rm -f "$stamp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "# $(date -u +%FT%TZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?'), nproc $(nproc), kernel $(uname -r), $(nft -v), load $(cut -d' ' -f1-3 /proc/loadavg)"
target/release/examples/fleet_bench "$PWD/target/release/nftban" "$@" &
pid=$!
wait "$pid"
echo
echo "# done $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
