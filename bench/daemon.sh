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

pid=""
stamp=$(mktemp /tmp/daemon-bench-start.XXXXXX)
cleanup() {
    # The benchmark deletes its namespaces and folders itself; this is for
    # when it was killed or failed: stop it and what still runs in its
    # namespaces, delete them and its temporary folders.
    set +e
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    for ns in $(ip netns list | awk -v p="-${pid:-none}-" '$1 ~ /^nftban-dbench-/ && index($1, p) {print $1}'); do
        for p in $(ip netns pids "$ns"); do kill -9 "$p" 2>/dev/null || true; done
        ip netns delete "$ns"
    done
    [ -n "$pid" ] && find /tmp -maxdepth 1 -name 'nftban-dbench-*' -user root -newer "$stamp" -exec rm -rf {} +
    rm -f "$stamp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "# $(date -u +%FT%TZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?'), nproc $(nproc), kernel $(uname -r), $(nft -v), fail2ban $(fail2ban-server -V | head -1), load $(cut -d' ' -f1-3 /proc/loadavg)"
target/release/examples/daemon_bench "$PWD/target/release/nftban" "$@" &
pid=$!
wait "$pid"
echo
echo "# done $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
