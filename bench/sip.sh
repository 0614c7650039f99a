#!/usr/bin/env bash
# SIP flood benchmark, see docs/performance.md "SIP flood": a real Kamailio
# (registrar, authentication required) under a SIPp flood from one network
# namespace while a well-behaved SIPp client in another registers at a
# modest rate; run twice in one go, without nftban and with `nftban run`
# and a bare `sip: {}` (the kernel meter at its defaults). Reports, as
# Markdown on stdout: requests reaching Kamailio per second under the
# flood, the flooder's requests that reached it, packets dropped in the
# kernel (the counters of nftban's `sip` chain), Kamailio's CPU over the
# flood, the good client's registration success rate and time.
#
# Everything runs in three namespaces the benchmark creates and deletes
# (nftban-sipb-{kam,flood,good}-PID, joined by veth pairs); nftban's table
# lives in Kamailio's namespace; the host's ruleset and network are never
# touched. A trap stops Kamailio, SIPp and nftban and deletes the
# namespaces and the temporary folder on every exit.
# Needs root, kamailio (+kamcmd), sipp (package sip-tester), nft, ip.
# Not part of CI. About a minute after the build.
# Usage: bash bench/sip.sh [--rate N] [--seconds S] [--method REGISTER|OPTIONS]
#                          [--good-rate N] [--keep]
# (default: REGISTER flood at 10,000/s for 10 s; the good client registers
# 5 times a second, 2 requests each, from 2 s before the flood to 3 s after)
set -euo pipefail
cd "$(dirname "$0")/.."

rate=10000
seconds=10
method=REGISTER
good_rate=5
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) rate=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --method) method=$2; shift 2 ;;
        --good-rate) good_rate=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        *) echo "bench/sip.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$method" in REGISTER|OPTIONS) ;; *) echo "bench/sip.sh: --method REGISTER or OPTIONS" >&2; exit 2 ;; esac
for n in "$rate" "$seconds" "$good_rate"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "bench/sip.sh: $n is not a positive number" >&2; exit 2; }
done
command_line="bash bench/sip.sh${*:+ $*}"
[ "$(id -u)" = 0 ] || { echo "bench/sip.sh: needs root (it creates network namespaces)" >&2; exit 1; }
for p in kamailio kamcmd sipp nft ip; do
    command -v "$p" >/dev/null || { echo "bench/sip.sh: $p not found (apt-get install kamailio sip-tester nftables iproute2)" >&2; exit 1; }
done
cargo build --release --locked --bin nftban >&2
nftban=$PWD/target/release/nftban

commit=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit-dirty"; fi

ns_kam=nftban-sipb-kam-$$
ns_flood=nftban-sipb-flood-$$
ns_good=nftban-sipb-good-$$
kam_flood=198.51.100.1 flood_addr=198.51.100.2
kam_good=198.51.100.5 good_addr=198.51.100.6
dir=$(mktemp -d /tmp/nftban-sipb.XXXXXX)
kam_pid="" nftban_pid="" flood_pid="" good_pid=""

cleanup() {
    set +e
    for p in $flood_pid $good_pid $nftban_pid $kam_pid; do
        kill "$p" 2>/dev/null
    done
    for p in $flood_pid $good_pid $nftban_pid $kam_pid; do
        wait "$p" 2>/dev/null
    done
    for ns in $ns_flood $ns_good $ns_kam; do
        ip netns list | awk '{print $1}' | grep -qx "$ns" || continue
        for p in $(ip netns pids "$ns"); do kill -9 "$p" 2>/dev/null; done
        ip netns delete "$ns"
    done
    if [ "$keep" = 1 ]; then echo "bench/sip.sh: kept $dir" >&2; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ticks=$(getconf CLK_TCK)
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# --- namespaces --------------------------------------------------------------
for ns in $ns_kam $ns_flood $ns_good; do
    ip netns add "$ns"
    in_ns "$ns" ip link set lo up
done
link() { # link CLIENT_NS IFNAME KAM_ADDR CLIENT_ADDR
    ip link add "$2" netns "$ns_kam" type veth peer name veth0 netns "$1"
    in_ns "$ns_kam" ip addr add "$3/30" dev "$2"
    in_ns "$ns_kam" ip link set "$2" up
    in_ns "$1" ip addr add "$4/30" dev veth0
    in_ns "$1" ip link set veth0 up
}
link "$ns_flood" flood "$kam_flood" "$flood_addr"
link "$ns_good" good "$kam_good" "$good_addr"

# --- Kamailio: a registrar with one account, counting requests per source ---
cat >"$dir/kamailio.cfg" <<EOF
#!KAMAILIO
debug=1
log_stderror=yes
children=2
listen=udp:0.0.0.0:5060
dns=no
rev_dns=no
auto_aliases=no
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "htable.so"
loadmodule "ctl.so"
modparam("ctl", "binrpc", "unix:$dir/kamailio.ctl")
modparam("usrloc", "db_mode", 0)
modparam("htable", "htable", "src=>size=8;")

request_route {
	if (\$sht(src=>\$si) == \$null) { \$sht(src=>\$si) = 1; } else { \$var(n) = \$shtinc(src=>\$si); }
	if (is_method("REGISTER")) {
		if (pv_www_authenticate("\$td", "s3cret-nftban", "0") == 1 && \$au == "alice") {
			save("location");
			exit;
		}
		www_challenge("\$td", "1");
		exit;
	}
	sl_send_reply("404", "Not here");
}
EOF
kamailio -c -f "$dir/kamailio.cfg" >"$dir/kamailio-check.log" 2>&1 \
    || { cat "$dir/kamailio-check.log" >&2; echo "bench/sip.sh: kamailio refuses the config" >&2; exit 2; }
ip netns exec "$ns_kam" kamailio -f "$dir/kamailio.cfg" -DD -E -m 64 -M 8 -Y "$dir" -P "$dir/kamailio.pid" \
    </dev/null >"$dir/kamailio.out" 2>"$dir/kamailio.log" &
kam_pid=$!
kamcmd_() { kamcmd -s "unix:$dir/kamailio.ctl" "$@"; }
for _ in $(seq 100); do kamcmd_ core.version >/dev/null 2>&1 && break; sleep 0.1; done
kamcmd_ core.version >/dev/null || { cat "$dir/kamailio.log" >&2; echo "bench/sip.sh: Kamailio did not start" >&2; exit 2; }
kam_version=$(kamcmd_ core.version | sed "s/ *$//")
rcv_requests() { kamcmd_ stats.get_statistics rcv_requests | awk -F= '{gsub(/ /, "", $2); print $2}'; }
requests_from() { kamcmd_ htable.get src "$1" 2>/dev/null | awk '/value:/ {print $2; f=1} END {if (!f) print 0}'; }
# CPU ticks (utime + stime) of Kamailio's main process and its children.
cpu_of() {
    local sum=0 p
    for p in "$@" $(ps -o pid= --ppid "$1"); do
        [ -r "/proc/$p/stat" ] || continue
        sum=$((sum + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    done
    echo "$sum"
}
udp_rcvbuf_errors() { in_ns "$ns_kam" awk '/^Udp:/ {if (h) {print $6; exit} h=1}' /proc/net/snmp; }

# --- SIPp scenarios ----------------------------------------------------------
if [ "$method" = REGISTER ]; then
    cat >"$dir/flood.xml" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="flood">
<send><![CDATA[
REGISTER sip:[remote_ip] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[remote_ip]>;tag=[call_number]
To: <sip:alice@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:alice@[local_ip]:[local_port]>
Max-Forwards: 70
Expires: 60
User-Agent: flood
Content-Length: 0

]]></send>
</scenario>
EOF
else
    cat >"$dir/flood.xml" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="flood">
<send><![CDATA[
OPTIONS sip:[remote_ip] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:flood@[local_ip]>;tag=[call_number]
To: <sip:[remote_ip]>
Call-ID: [call_id]
CSeq: 1 OPTIONS
Max-Forwards: 70
User-Agent: flood
Content-Length: 0

]]></send>
</scenario>
EOF
fi
# The good client: 401, then the request with credentials, 200; the time
# from the first request to the 200 is response time 1.
cat >"$dir/register.xml" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register">
<send retrans="500" start_rtd="1"><![CDATA[
REGISTER sip:[remote_ip] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[remote_ip]>;tag=[call_number]
To: <sip:alice@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:alice@[local_ip]:[local_port]>
Max-Forwards: 70
Expires: 60
User-Agent: nftban-bench
Content-Length: 0

]]></send>
<recv response="401" auth="true"/>
<send retrans="500"><![CDATA[
REGISTER sip:[remote_ip] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[remote_ip]>;tag=[call_number]
To: <sip:alice@[remote_ip]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:alice@[local_ip]:[local_port]>
[authentication username=alice password=s3cret-nftban]
Max-Forwards: 70
Expires: 60
User-Agent: nftban-bench
Content-Length: 0

]]></send>
<recv response="200" rtd="1"/>
</scenario>
EOF

# A fresh veth loses its first packets: wait until each client is answered.
for pair in "$ns_flood $flood_addr $kam_flood" "$ns_good $good_addr $kam_good"; do
    set -- $pair
    ok=0
    for _ in $(seq 20); do
        if (cd "$dir" && in_ns "$1" timeout 5 sipp "$3:5060" -sf register.xml -i "$2" -p 5999 -m 1 -nostdin \
            -recv_timeout 1000 -timeout 3s >/dev/null 2>&1); then ok=1; break; fi
        sleep 0.25
    done
    [ "$ok" = 1 ] || { echo "bench/sip.sh: Kamailio does not answer $2" >&2; exit 2; }
done

# Last line's value of a column (by header name) of a SIPp statistics file.
stat_col() { awk -F';' -v c="$2" 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == c) k = i; next} {v = $k} END {print v + 0}' "$1"; }
# The meter chain's counters: all of them, and the meter rules' own.
chain_counters() {
    { in_ns "$ns_kam" nft list chain inet nftban sip 2>/dev/null || true; } | awk '
        /counter packets/ {for (i = 1; i <= NF; i++) if ($i == "packets") {all += $(i + 1); if ($0 ~ /update @sip_meter/) meter += $(i + 1)}}
        END {print all + 0, meter + 0}'
}

# --- one phase -----------------------------------------------------------------
# phase NAME: good client from 2 s before the flood to 3 s after it; the
# counters and CPU are read right before and right after the flood.
phase() {
    local name=$1 d="$dir/$1"
    mkdir -p "$d"
    cp "$dir/flood.xml" "$dir/register.xml" "$d/"
    local good_secs=$((seconds + 5))
    local good_calls=$((good_rate * good_secs))
    (cd "$d" && exec ip netns exec "$ns_good" timeout -k 5 $((good_secs + 20)) sipp "$kam_good:5060" -sf register.xml \
        -i "$good_addr" -p 5072 -r "$good_rate" -m "$good_calls" -nostdin -recv_timeout 2000 \
        -timeout "$((good_secs + 10))s" -trace_stat -stf good.csv -fd 1 -trace_rtt -rtt_freq 1 \
        >/dev/null 2>good.err) &
    good_pid=$!
    sleep 2
    local r0 f0 c0 b0 n0 t0
    r0=$(rcv_requests); f0=$(requests_from "$flood_addr"); c0=$(cpu_of "$kam_pid"); b0=$(udp_rcvbuf_errors)
    n0=0; [ -n "$nftban_pid" ] && n0=$(cpu_of "$nftban_pid")
    t0=$(date +%s.%N)
    (cd "$d" && exec ip netns exec "$ns_flood" timeout -k 5 $((seconds + 20)) sipp "$kam_flood:5060" -sf flood.xml \
        -i "$flood_addr" -p 5070 -r "$rate" -m $((rate * seconds)) -nostdin -timeout "$((seconds + 10))s" \
        -trace_stat -stf flood.csv -fd 1 >/dev/null 2>flood.err) || true
    local t1 r1 f1 c1 b1 n1
    t1=$(date +%s.%N)
    r1=$(rcv_requests); f1=$(requests_from "$flood_addr"); c1=$(cpu_of "$kam_pid"); b1=$(udp_rcvbuf_errors)
    n1=0; [ -n "$nftban_pid" ] && n1=$(cpu_of "$nftban_pid")
    local cnt
    cnt=$(chain_counters)
    wait "$good_pid" || true
    good_pid=""
    local sent ok failed created
    sent=$(stat_col "$d/flood.csv" TotalCallCreated)
    ok=$(stat_col "$d/good.csv" SuccessfulCall\(C\))
    failed=$(stat_col "$d/good.csv" FailedCall\(C\))
    created=$(stat_col "$d/good.csv" TotalCallCreated)
    # Response times (ms) of the good client's registrations.
    local rtt
    rtt=$(cat "$d"/register_*_rtt.csv 2>/dev/null | awk -F';' '$2 ~ /^[0-9.]+$/ {print $2}' | sort -n | awk '
        {v[NR] = $1} END {if (NR == 0) {print "- - - -"; exit}
        printf "%d %d %d %d\n", v[int((NR + 1) * 0.5)], v[int((NR - 1) * 0.9) + 1], v[int((NR - 1) * 0.99) + 1], v[NR]}')
    echo "$name $t0 $t1 $sent $((r1 - r0)) $((f1 - f0)) $((c1 - c0)) $((n1 - n0)) $((b1 - b0)) $cnt $ok $failed $created $rtt" >>"$dir/results"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%FT%TZ)

phase off
sleep 2

# --- with nftban: `sip: {}` at its defaults ------------------------------------
cat >"$dir/nftban.yaml" <<EOF
socket: $dir/nftban.sock
database: $dir/nftban.db
log: {target: $dir/nftban.log}
sip: {}
EOF
"$nftban" check --config "$dir/nftban.yaml" >"$dir/nftban-check.out" 2>&1 \
    || { cat "$dir/nftban-check.out" >&2; exit 2; }
ip netns exec "$ns_kam" "$nftban" run --config "$dir/nftban.yaml" </dev/null >/dev/null 2>&1 &
nftban_pid=$!
for _ in $(seq 100); do "$nftban" status --config "$dir/nftban.yaml" >/dev/null 2>&1 && break; sleep 0.1; done
"$nftban" status --config "$dir/nftban.yaml" >/dev/null || { cat "$dir/nftban.log" >&2; echo "bench/sip.sh: nftban did not start" >&2; exit 2; }
phase on
sleep 1
banned=$("$nftban" status sip --config "$dir/nftban.yaml" 2>&1 || true)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report --------------------------------------------------------------------
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
echo "### Results: $started, commit $commit"
echo
echo "- Command: \`$command_line\` ($method flood at $rate/s for $seconds s from one address; good client: $good_rate registrations/s, 2 requests each)"
echo "- Machine: $(nproc) cores ($cpu_model), $mem, kernel $(uname -r), $(nft --version), $kam_version, $(sipp -v 2>&1 | awk 'NF {print $1, $2; exit}')"
echo "- Load average (1, 5, 15 min): $load_before before, $load_after after"
echo
awk -v ticks="$ticks" -v good_secs=$((seconds + 5)) '
function f(x,    s) { s = sprintf("%d", x); while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s); return s }
{
    col = ($1 == "off") ? 1 : 2
    dur = $3 - $2
    sent[col] = f($4) " in " sprintf("%.1f", dur) " s (" f($4 / dur) "/s)"
    reach[col] = f($5 / dur) "/s (" f($5) ")"
    flood[col] = f($6) " of " f($4)
    kcpu[col] = sprintf("%.2f s (%.0f%% of a core)", $7 / ticks, 100 * $7 / ticks / dur)
    ncpu[col] = ($1 == "off") ? "-" : sprintf("%.2f s", $8 / ticks)
    rcvbuf[col] = f($9)
    drop[col] = ($1 == "off") ? "-" : f($10) " (meter rule: " f($11) ")"
    good[col] = f($12) " of " f($14) " (" sprintf("%.1f", $14 ? 100 * $12 / $14 : 0) "%), " f($13) " failed"
    rtt[col] = $15 " / " $16 " / " $17 " / " $18
}
END {
    print "| | without nftban | with nftban (`sip: {}`) |"
    print "|---|---|---|"
    print "| flood sent by SIPp | " sent[1] " | " sent[2] " |"
    print "| requests reaching Kamailio during the flood (all sources) | " reach[1] " | " reach[2] " |"
    print "| flooder requests reaching Kamailio | " flood[1] " | " flood[2] " |"
    print "| packets dropped in the kernel (nftban `sip` chain) | " drop[1] " | " drop[2] " |"
    print "| UDP receive buffer overflows in Kamailio'\''s namespace | " rcvbuf[1] " | " rcvbuf[2] " |"
    print "| Kamailio CPU during the flood | " kcpu[1] " | " kcpu[2] " |"
    print "| nftban CPU during the flood | " ncpu[1] " | " ncpu[2] " |"
    print "| good client registrations OK | " good[1] " | " good[2] " |"
    print "| good client registration time ms, p50 / p90 / p99 / max | " rtt[1] " | " rtt[2] " |"
}' "$dir/results"
echo
echo "\`nftban status sip\` after the flood:"
echo
echo '```'
echo "$banned"
echo '```'
