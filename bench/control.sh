#!/usr/bin/env bash
# Control socket benchmark, see docs/performance.md "Control socket": how
# long `status` takes while 1,000 clients (by default) hold connections to
# the daemon saying nothing, or a byte every half second. The daemon runs
# in a private network namespace the benchmark creates and deletes
# (nftban-cbench-*): the host's ruleset and network are never touched.
# Needs root and ip. About a minute after the build.
# Usage: bash bench/control.sh [--clients N] [--samples N] [--bans N]
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/control.sh: needs root (it creates a network namespace)" >&2; exit 1; }
cargo build --release --locked --bin nftban --example control_bench

pid=""
cleanup() {
    # The benchmark deletes its namespace and folder itself; this is for
    # when it was killed or failed.
    set +e
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        for ns in $(ip netns list | awk -v p="-$pid-" '$1 ~ /^nftban-cbench-/ && index($1, p) {print $1}'); do
            for p in $(ip netns pids "$ns"); do kill -9 "$p" 2>/dev/null || true; done
            ip netns delete "$ns"
        done
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "# $(date -u +%FT%TZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?'), nproc $(nproc), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
target/release/examples/control_bench "$PWD/target/release/nftban" "$@" &
pid=$!
wait "$pid"
echo "# done $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
