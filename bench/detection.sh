#!/usr/bin/env bash
# Detection benchmark (docs/performance.md, "Detection"): generates 1,000,000-line
# asterisk and sshd logs with examples/gen_logs.rs (deterministic, with the set of
# attacking hosts beside each log), then reports side by side lines/s and peak memory
# of `nftban test` (release build), fail2ban-regex with Debian's stock filter,
# sshguard's parser (sshd log), fail2ban-rs dry-run with the same rules
# (bench/fail2ban-rs/*.toml), and `grep -cE` of the rules' fixed strings as the floor
# for reading the file; and checks that nftban finds exactly the ground-truth hosts.
#
#   bash bench/detection.sh                 # 1,000,000 lines per log
#   LINES=100000 RUNS=1 bash bench/detection.sh
#
# Needs: python3, GNU time (/usr/bin/time), and for the comparisons Debian's
# fail2ban and sshguard packages and `cargo install fail2ban-rs` (a missing tool
# is reported as such, not fatal). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${LINES:-1000000}
RUNS=${RUNS:-3}          # fast tools: best of RUNS; fail2ban-regex runs once
SEED=${SEED:-1}
DIR=${BENCH_DIR:-/tmp/nftban-bench}
NFTBAN=${NFTBAN:-target/release/nftban}
F2BRS=${FAIL2BAN_RS:-$(command -v fail2ban-rs || echo "$HOME/.cargo/bin/fail2ban-rs")}
SSHG=${SSHG_PARSER:-/usr/libexec/sshguard/sshg-parser}
export LC_ALL=C
mkdir -p "$DIR"

cargo build --release --quiet --bin nftban --example gen_logs

# Fixed strings of the rules (grep floor): one alternation per ruleset.
GREP_asterisk="failed for '|rejected because extension not found|SecurityEvent=\"(FailedACL|InvalidAccountID|InvalidPassword|ChallengeResponseFailed)\"|Incoming SIP connection from unknown peer failed|Rejecting unknown SIP connection|failed to authenticate as|failed MD5 authentication|tried to authenticate with nonexistent user|No registration for peer|hacking attempt detected|not found for endpoint"
GREP_sshd="Failed (password|publickey|keyboard-interactive|none) for|[Ii]nvalid user|[Ii]llegal user|not allowed because|maximum authentication attempts exceeded|Too many authentication failures|Connection closed by (invalid|authenticating) user|error: PAM: |ROOT LOGIN REFUSED|penalty: failed authentication"

# measure NAME OUTFILE CMD...: runs CMD (stdout to OUTFILE) and prints
# "seconds maxrss_kb" (wall clock from date, peak memory from GNU time).
measure() {
  local out=$1
  shift
  local t0 t1 rss
  t0=$(date +%s%N)
  /usr/bin/time -f '%M' -o "$DIR/time.txt" "$@" >"$out" 2>"$DIR/stderr.txt" || true
  t1=$(date +%s%N)
  rss=$(tail -1 "$DIR/time.txt")
  echo "$(((t1 - t0) / 1000000)) $rss"
}

# best RUNS OUT CMD...: the fastest of RUNS runs, and the largest peak memory.
best() {
  local runs=$1 out=$2
  shift 2
  local best_ms="" max_rss=0 ms rss
  for _ in $(seq "$runs"); do
    read -r ms rss < <(measure "$out" "$@")
    if [ -z "$best_ms" ] || [ "$ms" -lt "$best_ms" ]; then best_ms=$ms; fi
    if [ "$rss" -gt "$max_rss" ]; then max_rss=$rss; fi
  done
  echo "$best_ms $max_rss"
}

row() { # tool ms rss note
  local lps
  lps=$(python3 -c "print(f'{$LINES*1000/max($2,1):,.0f}')")
  printf '| %s | %s | %s | %.1f | %s |\n' "$1" "$lps" "$(python3 -c "print(f'{$2/1000:.2f}')")" "$(python3 -c "print($3/1024)")" "$4"
  echo "$1 $2 $3" >>"$DIR/results.txt"
}

echo "# Detection benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -h | awk '/^Mem:/{print $2}') RAM, kernel $(uname -r)"
echo "- load average before: $(cut -d' ' -f1-3 /proc/loadavg); rustc processes running (other builds on this machine): $(pgrep -c -x rustc || true)"
echo "- $LINES lines per log, seed $SEED; fast tools best of $RUNS runs, fail2ban-regex one run"
: >"$DIR/results.txt"

for kind in asterisk sshd; do
  log=$DIR/$kind.log
  ./target/release/examples/gen_logs "$kind" "$LINES" "$log" "$SEED" 2>/dev/null
  size=$(du -m "$log" | cut -f1)
  cat "$log" >/dev/null # page cache: every tool reads from memory
  echo
  echo "## $kind ($LINES lines, $size MB, $(wc -l <"$log.hosts") attacking hosts in the ground truth)"
  echo
  echo "| tool | lines/s | seconds | peak MB | found |"
  echo "|---|---:|---:|---:|---|"

  read -r ms rss < <(best "$RUNS" "$DIR/$kind.nftban.json" "$NFTBAN" test "$log" "$kind" --json)
  check=$(python3 - "$DIR/$kind.nftban.json" "$log.hosts" <<'EOF'
import json, sys
got = set(json.load(open(sys.argv[1]))["hosts"])
want = set(open(sys.argv[2]).read().split())
if got == want:
    print(f"{len(got)} hosts = ground truth")
else:
    print(f"{len(got)} hosts, MISMATCH: {len(want - got)} missing, {len(got - want)} extra")
EOF
)
  row "nftban test (release)" "$ms" "$rss" "$check"

  pat=GREP_$kind
  read -r ms rss < <(best "$RUNS" "$DIR/$kind.grep.txt" grep -cE "${!pat}" "$log")
  row "grep -cE fixed strings (floor)" "$ms" "$rss" "$(cat "$DIR/$kind.grep.txt") lines"

  if [ -x "$F2BRS" ]; then
    read -r ms rss < <(best "$RUNS" "$DIR/$kind.f2brs.txt" "$F2BRS" -c "bench/fail2ban-rs/$kind.toml" dry-run "$log")
    row "fail2ban-rs $("$F2BRS" --version | cut -d' ' -f2) dry-run, same rules" "$ms" "$rss" "$(grep -m1 'Unique IPs' "$DIR/$kind.f2brs.txt" | tr -s ' ' | cut -d' ' -f4) hosts, $(grep -m1 'Matches' "$DIR/$kind.f2brs.txt" | tr -s ' ' | cut -d' ' -f3) lines"
  else
    echo "| fail2ban-rs | not installed (cargo install fail2ban-rs) | | | |"
  fi

  if [ "$kind" = sshd ]; then
    if [ -x "$SSHG" ]; then
      read -r ms rss < <(best "$RUNS" "$DIR/$kind.sshg.txt" sh -c "exec $SSHG < $log")
      row "sshguard $(dpkg-query -W -f='${Version}' sshguard 2>/dev/null) sshg-parser" "$ms" "$rss" "$(cut -d' ' -f2 "$DIR/$kind.sshg.txt" | sort -u | wc -l) hosts, $(wc -l <"$DIR/$kind.sshg.txt") attacks"
    else
      echo "| sshguard parser | not installed (apt-get install sshguard) | | | |"
    fi
  fi

  if command -v fail2ban-regex >/dev/null && [ -f "/etc/fail2ban/filter.d/$kind.conf" ]; then
    read -r ms rss < <(best 1 "$DIR/$kind.f2b.txt" fail2ban-regex "$log" "/etc/fail2ban/filter.d/$kind.conf")
    row "fail2ban-regex $(fail2ban-regex --version | head -1 | cut -d' ' -f2), stock filter.d/$kind.conf" "$ms" "$rss" "$(grep -m1 '^Lines:' "$DIR/$kind.f2b.txt" | sed 's/^Lines: //')"
  else
    echo "| fail2ban-regex | not installed (apt-get install fail2ban) | | | |"
  fi
done

echo
echo "- load average after: $(cut -d' ' -f1-3 /proc/loadavg); rustc processes running: $(pgrep -c -x rustc || true)"
echo
python3 - "$DIR/results.txt" "$LINES" <<'EOF'
import sys
rows = {}
kind = None
order = []
for line in open(sys.argv[1]):
    parts = line.split()
    ms, rss = int(parts[-2]), int(parts[-1])
    name = " ".join(parts[:-2])
    if name.startswith("nftban"):
        kind = "asterisk" if "asterisk" not in rows else "sshd"
        rows[kind] = {}
    rows[kind][name.split()[0]] = (ms, rss)
lines = int(sys.argv[2])
print("## Targets")
print()
for kind, r in rows.items():
    n_ms, n_rss = r["nftban"]
    def x(tool):
        return f"{r[tool][0] / n_ms:.1f}x" if tool in r else "n/a"
    f2b = r.get("fail2ban-regex")
    rs = r.get("fail2ban-rs")
    grep = r.get("grep")
    print(f"- {kind}: {x('fail2ban-regex')} fail2ban-regex (target 100x: {'met' if f2b and f2b[0] >= 100 * n_ms else 'NOT met'}), "
          f"{x('fail2ban-rs')} fail2ban-rs (target 2x: {'met' if rs and rs[0] >= 2 * n_ms else 'NOT met'}), "
          f"{grep[0] / n_ms * 100:.0f}% of the grep floor (target 70%: {'met' if grep[0] >= 0.7 * n_ms else 'NOT met'}), "
          f"peak {n_rss / 1024:.1f} MB (target < 50 MB: {'met' if n_rss < 50 * 1024 else 'NOT met'})")
EOF
