#!/usr/bin/env bash
# bench/run.sh [target ...]   targets: direct litellm portkey llmrelay portkey-stock
#                             (default: direct litellm portkey llmrelay)
# One sitting: start the mock upstreams, then for each target start it pinned to CPU 0, run the
# shared harness's run-bench.sh against it, stop it. Prints the side-by-side markdown table
# (baseline: direct) and saves it to /tmp/peers/results/llmrelay-sitting-<timestamp>.md.
# Knobs are the harness's (PHASES, REPEATS, DURATION, STREAMS, GW_CPU, LOAD_CPU, SETTLE, ...), plus:
#   QUIET_MAX=5  QUIET_WAIT=900    before each target, wait (up to QUIET_WAIT s, then give up with exit 3
#                                  unless QUIET_FORCE=1) until the whole machine is below QUIET_MAX % CPU busy:
#                                  other jobs on this 2-core box skew every figure.
# After each target it logs how much of the gateway's CPU (GW_CPU) went to anything but the gateway
# process (other jobs, kernel work not charged to it); above FOREIGN_MAX (5) % the target is measured
# again, up to RETRIES (2) times, and still-dirty targets are marked NOT CLEAN under the table.
set -uo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
PEERS=${PEERS:-$(cd "$BENCH_DIR/../../shared/peers" && pwd)}
export PEERS
source "$PEERS/lib/common.sh"
TARGETS=("$@"); [ ${#TARGETS[@]} -gt 0 ] || TARGETS=(direct litellm portkey llmrelay)
T0=$SECONDS; TS=$(date +%Y%m%d-%H%M%S)
mkdir -p "$PEERS_DIR/results"
trap '"$PEERS/stop.sh" >/dev/null 2>&1' EXIT
"$PEERS/start-upstream.sh" || exit 1
# jiffies -> seconds; busy = user+nice+system+irq+softirq+steal
HZ=$(getconf CLK_TCK)
cpu_busy() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
all_busy() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }
tree_cpu() {  # utime+stime jiffies of a pid and its descendants
  local p t=0 all; [ -n "${1:-}" ] || { echo 0; return; }
  all="$1 $(ps -o pid= --ppid "$1" 2>/dev/null | tr '\n' ' ')"
  for p in $all; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}
wait_quiet() {  # until the machine is below QUIET_MAX % busy over 5 s; give up after QUIET_WAIT s
  local end=$((SECONDS + ${QUIET_WAIT:-900})) b0 t0 b1 t1 pct
  while :; do
    read -r b0 t0 < <(all_busy); sleep 5; read -r b1 t1 < <(all_busy)
    pct=$(( (b1 - b0) * 100 / (t1 - t0 > 0 ? t1 - t0 : 1) ))
    [ "$pct" -le "${QUIET_MAX:-5}" ] && return 0
    if [ $SECONDS -ge $end ]; then
      if [ "${QUIET_FORCE:-0}" = 1 ]; then log "WARNING: machine still ${pct}% busy; measuring anyway (QUIET_FORCE=1)"; return 0; fi
      log "machine still ${pct}% busy after ${QUIET_WAIT:-900} s: giving up (QUIET_FORCE=1 measures anyway)"; exit 3
    fi
    log "machine ${pct}% busy, waiting; busiest: $(top -b -n 2 -d 1 -w 200 | awk '/^top -/ { n++ } n == 2 && $1 ~ /^[0-9]+$/ && $9 + 0 > 5 { printf "%s %s%%; ", $12, $9 }' | head -c 200)"
    sleep 10
  done
}
FOREIGN=()
# gw_start NAME: remember the gateway pid and its CPU so far; gw_stop NAME: read its CPU, then stop it
g1=0
# (the window starts after the gateway is up: its own start-up CPU is not counted either way)
gw_start() { gpid=$(cat "$RUN_DIR/$1.pid" 2>/dev/null); g0=$(tree_cpu "$gpid"); c0=$(cpu_busy "$GW_CPU"); w0=$SECONDS; }
gw_stop() { g1=$(tree_cpu "$gpid"); [ "$g1" -ge "$g0" ] || g1=$g0; "$PEERS/stop.sh" "$1"; }
run_target() {  # start -> bench -> stop one target
  case $1 in
    direct)   "$PEERS/bench-direct.sh" ;;
    litellm)  "$PEERS/start-litellm.sh" && gw_start litellm && sleep "${SETTLE:-3}" && "$PEERS/bench-litellm.sh"; gw_stop litellm ;;
    portkey)  "$PEERS/start-portkey.sh" && gw_start portkey && sleep "${SETTLE:-3}" && "$PEERS/bench-portkey.sh"; gw_stop portkey ;;
    portkey-stock) PORTKEY_DIR=$PEERS_DIR/portkey-stock "$PEERS/start-portkey.sh" && gw_start portkey && sleep "${SETTLE:-3}" && \
                   PORTKEY_DIR=$PEERS_DIR/portkey-stock NAME=portkey-stock PHASES="${STOCK_PHASES:-e a b}" "$PEERS/bench-portkey.sh"
                   gw_stop portkey ;;
    llmrelay) "$BENCH_DIR/start-llmrelay.sh" && gw_start llmrelay && sleep "${SETTLE:-3}" && "$BENCH_DIR/bench-llmrelay.sh"; gw_stop llmrelay ;;
  esac
}
SUMS=()
for t in "${TARGETS[@]}"; do
  case $t in direct|litellm|portkey|portkey-stock|llmrelay) ;; *) echo "unknown target $t" >&2; continue ;; esac
  for try in $(seq 0 "${RETRIES:-2}"); do
    sleep "${SETTLE:-3}"
    wait_quiet
    c0=$(cpu_busy "$GW_CPU"); w0=$SECONDS; g0=0; g1=0; gpid=
    run_target "$t"
    c1=$(cpu_busy "$GW_CPU")
    read -r fs pct < <(awk -v c=$((c1 - c0)) -v g=$((g1 - g0)) -v hz="$HZ" -v w=$((SECONDS - w0)) \
      'BEGIN { f = (c - g) / hz; if (f < 0) f = 0; printf "%.1f %.1f\n", f, w ? 100 * f / w : 0 }')
    line="- $t: CPU $GW_CPU busy outside the gateway process: $fs s of $((SECONDS - w0)) s ($pct%)"
    log "${line#- }"
    awk -v p="$pct" -v m="${FOREIGN_MAX:-5}" 'BEGIN { exit !(p <= m) }' && break
    if [ "$try" -lt "${RETRIES:-2}" ]; then log "$t: other jobs took CPU $GW_CPU (> ${FOREIGN_MAX:-5}%): measuring it again"
    else line="$line — NOT CLEAN (other jobs ran)"; fi
  done
  FOREIGN+=("$line")
  SUMS+=("$PEERS_DIR/results/$t-latest/summary.json")
done
"$PEERS/stop.sh" nginx trickle
{
  echo "## llmrelay vs peer gateways — $(date -Is), $(nproc) CPUs, gateway on CPU $GW_CPU, total $((SECONDS - T0)) s"
  echo
  "$HPY" "$PEERS/lib/bench.py" table "${SUMS[@]}" --baseline direct
  echo
  printf '%s\n' "${FOREIGN[@]}"
  for s in "${SUMS[@]}"; do jq -r '"- \(.name): \(.version)  pids \(.pids) affinity \(.gw_affinity)  \(.cmdline)"' "$s"; done
} | tee "$PEERS_DIR/results/llmrelay-sitting-$TS.md"
