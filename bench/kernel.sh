#!/usr/bin/env bash
# Kernel benchmark, see docs/performance.md "Kernel sets".
# Builds the release benchmark and nftban, then runs the benchmark inside a
# private network namespace created here and deleted on exit: the host's
# ruleset and network are never touched. Needs root, nft and ip.
# Usage: bash bench/kernel.sh [SIZES...]   (default 1000 100000 1000000;
# `0`: latency and memory only; `latency`, `memory`, `memory-stdin`: that part only;
# `bulk [SIZES...]`: only `nftban ban -`/`unban -` end to end, the restart, and /24s,
# beside `nft -f`, default 100000 1000000 from the full run)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/kernel.sh: needs root (it creates a network namespace)" >&2; exit 1; }
cargo build --release --locked --bin nftban --example kernel_bench
ns="nftban-bench-$$"
ip netns add "$ns"
trap 'ip netns delete "$ns"' EXIT
ip -n "$ns" link set lo up
echo "# $(date -u +%FT%TZ), nproc $(nproc), kernel $(uname -r), $(nft -v), load $(cut -d' ' -f1-3 /proc/loadavg)"
ip netns exec "$ns" target/release/examples/kernel_bench "$PWD/target/release/nftban" "$@"
