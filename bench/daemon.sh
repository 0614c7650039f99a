#!/usr/bin/env bash
# Daemon benchmark, see docs/performance.md "Daemon": `nftban run`
# beside Debian's fail2ban-server on the same generated Asterisk log, each
# daemon in private network namespaces created and deleted by the benchmark
# (nftban-dbench-*): the host's ruleset and network are never touched.
# Needs root, ip, nft and the fail2ban package. About 11 minutes (fail2ban's
# phases are capped; the output says where a cap was hit).
# Usage: bash bench/daemon.sh [--only nftban|fail2ban] [--phases latency,burst,steady,restore,flood] [--quick]
#        [--flood-rate LINES_PER_S] [--flood-secs S] [--flood-per-attacker N]
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/daemon.sh: needs root (it creates network namespaces)" >&2; exit 1; }
command -v fail2ban-server >/dev/null || { echo "bench/daemon.sh: fail2ban-server not found (apt-get install fail2ban)" >&2; exit 1; }
cargo build --release --locked --bin nftban --example daemon_bench

# shellcheck source=bench/example.sh
. bench/example.sh
run_example daemon_bench nftban-dbench "fail2ban $(fail2ban-server -V | head -1)" "$@"
