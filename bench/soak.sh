#!/usr/bin/env bash
# Soak benchmark, see examples/soak.rs: `nftban run` (release build) in a
# private network namespace (nftban-soak-*, created and deleted by the
# benchmark; the host's ruleset and network are never touched) fed 10,000
# Asterisk lines/s with a known ground truth for N minutes, through log
# rotations (rename + create, copytruncate) and one restart; then checks
# that no line was missed or read twice and that the bans in the kernel
# and in `nftban status` are exactly the expected ones, and reports memory
# over time and CPU, as Markdown on stdout. Exit code 0 when every check
# passed, 3 when one failed (its temporary folder is then kept), 2 on error.
# Needs root, ip and nft. Writes about 1.3 MB/s of log under $TMPDIR (/tmp);
# the benchmark keeps at most four log files (rotate 3).
# Usage: bash bench/soak.sh [--minutes N] [--rate LINES_PER_S] [--rotations N] [--seed S]
# (default: 10 minutes, 10,000 lines/s, 3 rotations of each kind)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/soak.sh: needs root (it creates a network namespace)" >&2; exit 1; }
command -v nft >/dev/null || { echo "bench/soak.sh: nft not found (apt-get install nftables)" >&2; exit 1; }
cargo build --release --locked --bin nftban --example soak

commit=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit-dirty"; fi
export SOAK_COMMIT="$commit"
export SOAK_COMMAND="bash bench/soak.sh${*:+ $*}"

pid=""
rc=""
stamp=$(mktemp /tmp/soak-start.XXXXXX)
cleanup() {
    # The benchmark deletes its namespace and folder itself (it keeps the
    # folder when a check failed); this is for when it was interrupted or
    # killed: stop it and what still runs in its namespace, delete the
    # namespace and its folder.
    set +e
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        rc=interrupted
    fi
    for ns in $(ip netns list | awk -v p="-${pid:-none}-" '$1 ~ /^nftban-soak-/ && index($1, p) {print $1}'); do
        for p in $(ip netns pids "$ns"); do kill -9 "$p" 2>/dev/null || true; done
        ip netns delete "$ns"
    done
    if [ "$rc" = interrupted ] || [ "$rc" = 2 ]; then
        find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'nftban-soak-*' -user root -newer "$stamp" -exec rm -rf {} +
    fi
    rm -f "$stamp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

target/release/examples/soak "$PWD/target/release/nftban" "$@" &
pid=$!
set +e
wait "$pid"
rc=$?
set -e
exit "$rc"
