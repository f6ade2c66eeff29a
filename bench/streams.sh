#!/usr/bin/env bash
# bench/streams.sh: the 5,000-concurrent-streams target (issue 14) measured at a steady arrival rate.
#
#   bench/streams.sh                        # 5,000 open at 250 streams/s (20-s streams) + a burst of 5,000, 2 reps
#   RATES="250 500 1000" bench/streams.sh   # a sweep: each rate with streams of OPEN/rate s, so 5,000 are open
#   RATES="500 1000" STREAM_S=1 BURST=0 bench/streams.sh   # 1-second streams: as many open as the rate
#
# Client (bench/stream_load.py: uvloop, one raw asyncio protocol per stream, open loop) and the
# trickle upstream on CPU 1; llmrelay (one worker, bench/config.yaml's settings) on CPU 0 with its
# provider pointed straight at the trickle upstream (no nginx in the path), so the two targets
# have the same upstream and the same schedule. UPSTREAM=lean (default): bench/stream_upstream.py
# on :18091, the harness trickle's bytes at ~a tenth of its CPU (the aiohttp one, UPSTREAM=harness
# on :18081, costs ~1.3 ms a stream and alone saturates CPU 1 at 500 streams/s):
#   direct    client -> trickle                 (the floor: client, mock, loopback)
#   llmrelay  client -> llmrelay -> trickle
# Each stream is 21 SSE events (the role, 19 content, the finish with usage, then [DONE]), the
# first right after the head, then one every STREAM_S/20 s (trickle URL /c/21/d/<ms>/v1).
# Stream i is due at i/RATE s: the open streams ramp to RATE*STREAM_S (= OPEN), stay there for
# STREAM_S, and drain; 2*OPEN streams per run. Per run: TTFB p50/p99 (request written -> first
# body byte), the same over the plateau (streams written while >= 90 % of the peak were open),
# the client's own lag behind the schedule, completions ([DONE] and the chunked end), the
# gateway's CPU (mean and busiest second), CPU per stream, VmHWM (reset before the run), and how
# busy each CPU was (CPU 0 outside the gateway = other jobs).
#
# Knobs: OPEN (5000), RATES ("250"), STREAM_S (OPEN/rate), REPS (2: direct then llmrelay, back to
# back, per rep), BURST (1: also OPEN streams due at once, STREAM_S 1 s), PROCS (1 client process),
# LOCK (/tmp/peers-bench.lock, held for the whole invocation: the mocks and port 8000 are shared
# with other engineers; an invocation estimated over 10 minutes is refused unless LONG_OK=1), PROFILE
# (0; 1: py-spy on the gateway through each shape's first llmrelay run, collapsed stacks in
# profile-*.txt: it costs CPU 1 a few %, so those runs' figures are not clean). Results: $PEERS_DIR/results/streams-<ts>/ (JSON per
# run, table.md), the table printed at the end.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
PEERS=${PEERS:-$(cd "$BENCH_DIR/../../shared/peers" && pwd)}
export PEERS
source "$PEERS/lib/common.sh"
LLMRELAY_DIR=$(cd "$BENCH_DIR/.." && pwd)
PY=$LLMRELAY_DIR/.venv/bin/python
OPEN=${OPEN:-5000}
RATES=${RATES:-250}
REPS=${REPS:-2}
BURST=${BURST:-1}
PROCS=${PROCS:-1}
LOCK=${LOCK:-/tmp/peers-bench.lock}
PORT=${LLMRELAY_PORT:-8000}
UPSTREAM=${UPSTREAM:-lean}
if [ "$UPSTREAM" = harness ]; then UP_PORT=18081; else UP_PORT=${UP_PORT:-18091}; fi
UP_PID=
TS=$(date +%Y%m%d-%H%M%S)
OUT=$PEERS_DIR/results/streams-$TS
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/streams-bench.XXXXXX)

# The shapes of this invocation: "rate stream_s delay_ms" per line.
shapes() {
  local r s
  for r in $RATES; do
    s=${STREAM_S:-$(awk -v o="$OPEN" -v r="$r" 'BEGIN { printf "%g", o / r }')}
    echo "$r $s $(awk -v s="$s" 'BEGIN { printf "%g", s * 1000 / 20 }')"
  done
  if [ "$BURST" = 1 ]; then echo "0 1 50"; fi
}

# llmrelay's config: bench/config.yaml's settings, one provider + model per trickle shape.
CONFIG=$WORK/config.yaml
sed '/^providers:/,$d' "$BENCH_DIR/config.yaml" > "$CONFIG"
sed -i "s|^database_url:.*|database_url: sqlite+aiosqlite:///$WORK/llmrelay.db|" "$CONFIG"
sed -i "s|^log_file:.*|log_file: $WORK/interactions.log|" "$CONFIG"
{
  echo "providers:"
  { shapes | awk '{ print $3 }'; echo 50; } | sort -u | while read -r d; do
    printf '  - name: trickle-%s\n    type: openai_compatible\n    base_url: http://127.0.0.1:%s/c/21/d/%s/v1\n    api_key: dummy\n' "${d/./_}" "$UP_PORT" "$d"
  done
  echo "models:"
  { shapes | awk '{ print $3 }'; echo 50; } | sort -u | while read -r d; do
    printf '  - name: trickle-%s\n    provider: trickle-%s\n    model: gpt-4o-mini\n' "${d/./_}" "${d/./_}"
  done
} >> "$CONFIG"
if [ "${PRINT_CONFIG:-0}" = 1 ]; then cat "$CONFIG"; rm -rf "$WORK"; exit 0; fi

started_mocks=0
cleanup() {
  "$PEERS/stop.sh" llmrelay >/dev/null 2>&1 || true
  if [ "$started_mocks" = 1 ]; then "$PEERS/stop.sh" trickle >/dev/null 2>&1 || true; fi
  if [ "$UPSTREAM" != harness ] && [ -n "$UP_PID" ]; then kill "$UP_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

run_one() {  # run_one TARGET REP RATE STREAM_S DELAY_MS
  local target=$1 rep=$2 rate=$3 s=$4 d=$5 n url pids=() hdr=()
  n=$((2 * OPEN)); [ "$rate" = 0 ] && n=$OPEN
  if [ "$target" = direct ]; then
    url=http://127.0.0.1:$UP_PORT/c/21/d/$d/v1/chat/completions
  else
    url=http://127.0.0.1:$PORT/v1/chat/completions
    pids=(--pids "$(cat "$RUN_DIR/llmrelay.pid")")
    hdr=(-H "Authorization: Bearer $(cat "$RUN_DIR/llmrelay.key")")
  fi
  log "$target #$rep: $n streams at ${rate}/s (0 = at once), ${s} s each"
  local spy=
  if [ "${PROFILE:-0}" = 1 ] && [ "$target" = llmrelay ] && [ "$rep" = 1 ]; then
    # py-spy on the gateway for the run (CPU 1, sampling without stopping it), collapsed stacks
    taskset -c "$LOAD_CPU" "$LLMRELAY_DIR/.venv/bin/py-spy" record --nonblocking -r "${PROFILE_RATE:-250}" \
      -p "$(cat "$RUN_DIR/llmrelay.pid")" --format raw -o "$OUT/profile-r$rate-s$s.txt" \
      -d "$(awk -v n="$n" -v r="$rate" -v s="$s" 'BEGIN { printf "%d", (r > 0 ? n / r : 3) + s + 1 }')" \
      > /dev/null 2>&1 &
    spy=$!
  fi
  taskset -c "$LOAD_CPU" "$PY" "$BENCH_DIR/stream_load.py" --url "$url" --model "trickle-${d/./_}" \
    --rate "$rate" --streams "$n" --procs "$PROCS" --label "$target" --rep "$rep" --stream-s "$s" \
    --mock-pids "$UP_PID" "${pids[@]}" "${hdr[@]}" \
    --json "$OUT/$target-r$rate-s$s-$rep.json" --timeout $((60 + ${s%.*} * 2)) > /dev/null
  "$PY" -c 'import json, sys; r = json.load(open(sys.argv[1])); print({k: r.get(k) for k in sys.argv[2:]})' \
    "$OUT/$target-r$rate-s$s-$rep.json" ok streams peak_open ttfb_p50_ms ttfb_p99_ms lag_p99_ms gw_cpu_pct \
    gw_vmhwm_mb mock_cpu_s cpu_busy_pct >&2
  if [ -n "$spy" ]; then wait "$spy" || true; fi
  echo "$OUT/$target-r$rate-s$s-$rep.json" >> "$OUT/runs.txt"
}

estimate() {  # seconds of measurement for the shapes: runs of (n/rate + stream_s + 3) s, 2 targets, REPS
  shapes | awk -v o="$OPEN" -v reps="$REPS" '{ n = $1 > 0 ? 2 * o : o; t += 2 * reps * (($1 > 0 ? n / $1 : 5) + $2 + 4) }
    END { printf "%d", t + 20 }'
}

# All shapes in one hold of the lock (mocks and port 8000 are shared): trickle up, one fresh llmrelay,
# per shape REPS x (direct, llmrelay), llmrelay stopped. Keep one invocation under ~10 minutes.
EST=$(estimate)
log "about $EST s of measurement under $LOCK"
if [ "$EST" -gt 600 ] && [ "${LONG_OK:-0}" != 1 ]; then
  log "more than 10 minutes under the shared lock: split RATES over several invocations (or LONG_OK=1)"; exit 2
fi
exec 9> "$LOCK"
log "waiting for $LOCK"
flock 9
log "got $LOCK"
# The upstream. Daemons are started with the lock's fd closed: one that inherited it would hold
# the lock after this script.
if [ "$UPSTREAM" = harness ]; then  # the harness's trickle server (start-upstream.sh's command line, no nginx)
  if ! [ -f "$RUN_DIR/trickle.pid" ] || ! kill -0 "$(cat "$RUN_DIR/trickle.pid")" 2>/dev/null; then
    started_mocks=1
    start_bg trickle "$LOAD_CPU" "$HPY" "$PEERS/upstream/trickle.py" --port 18081 \
      --chunks "${TRICKLE_CHUNKS:-50}" --delay-ms "${TRICKLE_DELAY_MS:-20}" 9>&-
    wait_http http://127.0.0.1:18081/stats 20 || { log "trickle did not come up"; exit 1; }
  fi
  UP_PID=$(cat "$RUN_DIR/trickle.pid")
else  # bench/stream_upstream.py, the same bytes at a tenth of the CPU, on a port of its own
  taskset -c "$LOAD_CPU" "$PY" "$BENCH_DIR/stream_upstream.py" --port "$UP_PORT" > "$WORK/upstream.log" 2>&1 9>&- &
  UP_PID=$!
  for _ in $(seq 50); do grep -q listening "$WORK/upstream.log" && break; sleep 0.1; done
fi
LLMRELAY_BENCH_CONFIG=$CONFIG LLMRELAY_BENCH_DB=$WORK/llmrelay.db "$BENCH_DIR/start-llmrelay.sh" 9>&-
# warm-up (not recorded): trickle's and the gateway's code paths, the gateway's upstream pool
taskset -c "$LOAD_CPU" "$PY" "$BENCH_DIR/stream_load.py" --url "http://127.0.0.1:$UP_PORT/c/21/d/50/v1/chat/completions" \
  --rate 500 --streams 1000 > /dev/null 9>&-
taskset -c "$LOAD_CPU" "$PY" "$BENCH_DIR/stream_load.py" --url "http://127.0.0.1:$PORT/v1/chat/completions" \
  --model trickle-50 --rate 250 --streams 500 -H "Authorization: Bearer $(cat "$RUN_DIR/llmrelay.key")" > /dev/null 9>&-
sleep 2
while read -r rate s d; do
  for rep in $(seq 1 "$REPS"); do
    run_one direct "$rep" "$rate" "$s" "$d" 9>&-; sleep 3
    run_one llmrelay "$rep" "$rate" "$s" "$d" 9>&-; sleep 3
  done
done < <(shapes)
"$PEERS/stop.sh" llmrelay
if [ "$started_mocks" = 1 ]; then "$PEERS/stop.sh" trickle; started_mocks=0; fi
if [ "$UPSTREAM" != harness ]; then kill "$UP_PID"; wait "$UP_PID" 2>/dev/null || true; UP_PID=; fi
flock -u 9
exec 9>&-

{
  echo "## 5,000 streams, steady arrivals — $(date -u +%Y-%m-%dT%H:%M:%SZ), llmrelay $(git -C "$LLMRELAY_DIR" rev-parse --short HEAD), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  # shellcheck disable=SC2046
  "$PY" "$BENCH_DIR/stream_load.py" table $(cat "$OUT/runs.txt")
} | tee "$OUT/table.md"
