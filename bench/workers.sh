#!/usr/bin/env bash
# bench/workers.sh: `--workers 2` against one worker, and whether limits stay exact across workers.
# For W in 1 and 2 (bench/start-llmrelay.sh; W=1 pinned to CPU 0 as in every phase, W=2 on CPUs 0,1 with
# redis_url as llmrelay requires; wrk on CPU 1 in both, so the two workers share it with the load):
#   1. throughput: wrk -c64 for DURATION (15) s, non-streaming, a key without limits -> req/s, non-2xx;
#   2. exactness: a second key with --rpm RPM (1000), wrk -c64 for LIMIT_SECONDS (10) s (< the 60 s window)
#      -> exactly RPM answers 2xx, every other one 429;
#   3. rows: after the writer caught up, rows in `requests` >= the calls wrk completed minus the 429s
#      (a refused call leaves no row), plus those cut at the end of each run (at most 64 per run), and
#      `responses` == `requests`;
#   4. Redis timeouts: the gateway's own log lines saying a Redis call timed out or Redis was
#      unreachable. Under the default redis_fail_mode: open each such call is admitted uncounted,
#      which is the designed behaviour and the only way the rpm count may overshoot;
#      REDIS_FAIL_MODE=closed refuses them with 503 instead, so an overshoot there is a bug.
# Prints a markdown table; raw wrk output in /tmp/peers/results/llmrelay-workers-<ts>/.
set -uo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
PEERS=${PEERS:-$(cd "$BENCH_DIR/../../shared/peers" && pwd)}
source "$PEERS/lib/common.sh"
DURATION=${DURATION:-15}; RPM=${RPM:-1000}; LIMIT_SECONDS=${LIMIT_SECONDS:-10}
[ "$DURATION" -le 120 ] && [ "$LIMIT_SECONDS" -lt 60 ] || { echo "limits: DURATION<=120 LIMIT_SECONDS<60" >&2; exit 2; }
PORT=${LLMRELAY_PORT:-8000}; export LLMRELAY_PORT=$PORT
LLMRELAY=${LLMRELAY:-$BENCH_DIR/../.venv/bin/llmrelay}
OUT=$PEERS_DIR/results/llmrelay-workers-$(date +%Y%m%d-%H%M%S); mkdir -p "$OUT"
trap '"$PEERS/stop.sh" llmrelay >/dev/null 2>&1' EXIT
"$PEERS/start-upstream.sh" >/dev/null || exit 1
URL=http://127.0.0.1:$PORT/v1/chat/completions
run_wrk() {  # run_wrk OUTFILE SECONDS KEY
  taskset -c "$LOAD_CPU" timeout $(($2 + 30)) wrk -t1 -c64 -d"$2s" --timeout 10s -s "$PEERS/lua/chat.lua" \
    -H "Authorization: Bearer $3" "$URL" > "$1" 2>&1
}
field() { awk -v k="$2" '$0 ~ k { print $(NF) }' "$1" | head -1; }
total() { awk '/requests in/ { print $1 }' "$1"; }
echo "| workers | req/s c64 | non-2xx | rpm key: 2xx / limit | 429s | requests completed | rows requests / responses | rows ok | Redis timeouts |" > "$OUT/summary.md"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |" >> "$OUT/summary.md"
for W in 1 2; do
  if [ "$W" = 1 ]; then cpus=$GW_CPU; else cpus=0,1; fi
  WORKERS=$W GW_CPU=$cpus "$BENCH_DIR/start-llmrelay.sh" || exit 1
  CONFIG=$BENCH_DIR/config.yaml
  if [ "$W" -gt 1 ] || [ -n "${LLMRELAY_BENCH_DB:-}" ] || [ "${LLMRELAY_DB:-sqlite}" = postgres ]; then
    CONFIG=$RUN_DIR/llmrelay-bench-config.yaml
  fi
  KEY=$(cat "$RUN_DIR/llmrelay.key")
  LIMITED=$("$LLMRELAY" keys --config "$CONFIG" create --name "bench-rpm-$(date +%s)" --rpm "$RPM" | tail -n 1)
  sleep 2
  run_wrk "$OUT/w$W-warmup.txt" 5 "$KEY"
  run_wrk "$OUT/w$W-throughput.txt" "$DURATION" "$KEY"
  run_wrk "$OUT/w$W-limit.txt" "$LIMIT_SECONDS" "$LIMITED"
  for _ in $(seq 60); do
    p=$(curl -s "http://127.0.0.1:$PORT/api/db-stats" | "$HPY" -c 'import json,sys; print(json.load(sys.stdin)["writer"]["pending"])' 2>/dev/null)
    [ "${p:-1}" = 0 ] && break; sleep 1
  done
  sleep 2  # the other worker's writer too (db-stats answers for the worker that took the request)
  curl -s "http://127.0.0.1:$PORT/api/db-stats" > "$OUT/w$W-db-stats.json"
  "$PEERS/stop.sh" llmrelay >/dev/null
  cp "$LOG_DIR/llmrelay.log" "$OUT/w$W-gateway.log"
  TIMEOUTS=$(grep -c -E "Redis at .* (timed out|is unreachable)" "$OUT/w$W-gateway.log")
  "$HPY" - "$OUT" "$W" "$RPM" "$TIMEOUTS" >> "$OUT/summary.md" <<'PY'
import json, re, sys
out, w, rpm, timeouts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def wrk(name):
    text = open(f"{out}/w{w}-{name}.txt").read()
    n = int(re.search(r"(\d+) requests in", text).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    return n, int(bad.group(1)) if bad else 0, rps
runs = {name: wrk(name) for name in ("warmup", "throughput", "limit")}
n, bad, rps = runs["throughput"]
ln, lbad, _ = runs["limit"]
stats = json.load(open(f"{out}/w{w}-db-stats.json"))
sent = sum(r[0] for r in runs.values())
# A call refused by a limit leaves no row (it is counted as a rejection, as it is refused).
extra = stats["requests"] - (sent - lbad)
ok = 0 <= extra <= 64 * len(runs) and stats["requests"] == stats["responses"]
if lbad == 0 and ln < rpm:
    exact = "limit not reached: lower RPM"
else:
    exact = "exact" if ln - lbad == rpm else "NOT EXACT"
    if ln - lbad > rpm and timeouts:
        exact += ", fail-open after Redis timeouts"
print(f"| {w} | {rps:.0f} | {bad} | {ln - lbad} / {rpm} ({exact}) | {lbad} | {sent} | "
      f"{stats['requests']} / {stats['responses']} | {'yes' if ok else 'NO'} (+{extra} cut) | {timeouts} |")
PY
done
cat "$OUT/summary.md"
log "workers results: $OUT"
