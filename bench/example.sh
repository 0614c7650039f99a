# Sourced by the benchmarks that run one example against the release
# nftban (bench/control.sh, daemon.sh, fleet.sh): what they share.
#
# `run_example EXAMPLE PREFIX HEADER [ARGS...]` runs
# target/release/examples/EXAMPLE with target/release/nftban and ARGS,
# between a line that says when, on which commit and machine (with HEADER,
# if not empty, before the load) and a closing line. The example deletes
# its network namespaces and folders itself; should it be killed or fail,
# the exit trap stops it and what still runs in its namespaces, and deletes
# them (`PREFIX-*-<its pid>-*`) and its folders (`/tmp/PREFIX-*` made since
# it started).

run_example() {
    local example=$1 header=$3
    _bench_prefix=$2
    shift 3
    _bench_pid=""
    _bench_stamp=$(mktemp "/tmp/$example-start.XXXXXX")
    trap _bench_cleanup EXIT
    trap 'exit 130' INT TERM
    echo "# $(date -u +%FT%TZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?'), nproc $(nproc), kernel $(uname -r), $(nft -v)${header:+, $header}, load $(cut -d' ' -f1-3 /proc/loadavg)"
    "target/release/examples/$example" "$PWD/target/release/nftban" "$@" &
    _bench_pid=$!
    wait "$_bench_pid"
    echo
    echo "# done $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
}

_bench_cleanup() {
    set +e
    if [ -n "$_bench_pid" ]; then
        kill "$_bench_pid" 2>/dev/null
        wait "$_bench_pid" 2>/dev/null
    fi
    for ns in $(ip netns list | awk -v p="-${_bench_pid:-none}-" -v pre="^$_bench_prefix-" '$1 ~ pre && index($1, p) {print $1}'); do
        for p in $(ip netns pids "$ns"); do kill -9 "$p" 2>/dev/null || true; done
        ip netns delete "$ns"
    done
    [ -n "$_bench_pid" ] && find /tmp -maxdepth 1 -name "$_bench_prefix-*" -user root -newer "$_bench_stamp" -exec rm -rf {} +
    rm -f "$_bench_stamp"
}
