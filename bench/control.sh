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

# shellcheck source=bench/example.sh
. bench/example.sh
run_example control_bench nftban-cbench "" "$@"
