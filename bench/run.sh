#!/usr/bin/env bash
# bench/run.sh [target ...]   targets: direct litellm portkey llmrelay portkey-stock
#                             (default: direct litellm portkey llmrelay)
# One sitting: start the mock upstreams, then for each target start it pinned to CPU 0, run the
# shared harness's run-bench.sh against it, stop it. Prints the side-by-side markdown table
# (baseline: direct) and saves it to /tmp/peers/results/llmrelay-sitting-<timestamp>.md.
# Knobs are the harness's (PHASES, REPEATS, DURATION, STREAMS, GW_CPU, LOAD_CPU, SETTLE, ...).
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
SUMS=()
for t in "${TARGETS[@]}"; do
  sleep "${SETTLE:-3}"
  case $t in
    direct)   "$PEERS/bench-direct.sh" ;;
    litellm)  "$PEERS/start-litellm.sh" && sleep "${SETTLE:-3}" && "$PEERS/bench-litellm.sh"; "$PEERS/stop.sh" litellm ;;
    portkey)  "$PEERS/start-portkey.sh" && sleep "${SETTLE:-3}" && "$PEERS/bench-portkey.sh"; "$PEERS/stop.sh" portkey ;;
    portkey-stock) PORTKEY_DIR=$PEERS_DIR/portkey-stock "$PEERS/start-portkey.sh" && sleep "${SETTLE:-3}" && \
                   PORTKEY_DIR=$PEERS_DIR/portkey-stock NAME=portkey-stock PHASES="${STOCK_PHASES:-e a b}" "$PEERS/bench-portkey.sh"
                   "$PEERS/stop.sh" portkey ;;
    llmrelay) "$BENCH_DIR/start-llmrelay.sh" && sleep "${SETTLE:-3}" && "$BENCH_DIR/bench-llmrelay.sh"; "$PEERS/stop.sh" llmrelay ;;
    *) echo "unknown target $t" >&2; continue ;;
  esac
  SUMS+=("$PEERS_DIR/results/$t-latest/summary.json")
done
"$PEERS/stop.sh" nginx trickle
{
  echo "## llmrelay vs peer gateways — $(date -Is), $(nproc) CPUs, gateway on CPU $GW_CPU, total $((SECONDS - T0)) s"
  echo
  "$HPY" "$PEERS/lib/bench.py" table "${SUMS[@]}" --baseline direct
  echo
  for s in "${SUMS[@]}"; do jq -r '"- \(.name): \(.version)  pids \(.pids) affinity \(.gw_affinity)  \(.cmdline)"' "$s"; done
} | tee "$PEERS_DIR/results/llmrelay-sitting-$TS.md"
