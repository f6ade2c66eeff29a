#!/usr/bin/env bash
# bench/soak.sh: the soak. REQUESTS (1,000,000) non-streaming requests at CONNS (16) connections through
# llmrelay (bench/start-llmrelay.sh: one worker on CPU 0, SQLite and the interaction log as shipped),
# bounded by MAX_SECONDS (600), as CHUNK (30) s wrk runs back to back. Per chunk: req/s, non-2xx, the
# gateway's RSS, the writer's pending rows. At the end, after the writer has caught up: rows in `requests`
# >= requests wrk completed (+ at most CONNS per chunk: calls cut as wrk stops), the writer's `dropped` 0, `dead_lettered` 0.
# Verdicts: RSS growth after the warm-up (the first WARM_CHUNKS=2 chunks) and throughput decay
# (the last chunk's req/s against the median of the post-warm-up chunks). Prints a markdown table.
# On SQLite each pooled connection is a thread of its own with ~4-5 MB (its page cache, up to
# 2 MB, and its malloc arena): a connection the pool first opens after the warm-up is a step
# in RSS that stops at the pool's size. The `threads` column shows such a step; see RESULTS.md.
#   REQUESTS=200000 MAX_SECONDS=180 bench/soak.sh      # the short version
# Knobs of start-llmrelay.sh apply (LLMRELAY_DB=postgres, LLMRELAY_PORT, ...).
set -uo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
PEERS=${PEERS:-$(cd "$BENCH_DIR/../../shared/peers" && pwd)}
source "$PEERS/lib/common.sh"
REQUESTS=${REQUESTS:-1000000}; MAX_SECONDS=${MAX_SECONDS:-600}; CHUNK=${CHUNK:-30}; CONNS=${CONNS:-16}
WARM_CHUNKS=${WARM_CHUNKS:-2}
[ "$MAX_SECONDS" -le 1800 ] && [ "$REQUESTS" -le 5000000 ] && [ "$CONNS" -le 256 ] \
  || { echo "limits: MAX_SECONDS<=1800 REQUESTS<=5000000 CONNS<=256" >&2; exit 2; }
PORT=${LLMRELAY_PORT:-8000}; export LLMRELAY_PORT=$PORT
OUT=$PEERS_DIR/results/llmrelay-soak-$(date +%Y%m%d-%H%M%S); mkdir -p "$OUT"
trap '"$PEERS/stop.sh" llmrelay >/dev/null 2>&1' EXIT
"$PEERS/start-upstream.sh" >/dev/null || exit 1
"$BENCH_DIR/start-llmrelay.sh" || exit 1
KEY=$(cat "$RUN_DIR/llmrelay.key"); GW=$(cat "$RUN_DIR/llmrelay.pid")
URL=http://127.0.0.1:$PORT/v1/chat/completions
rss() { awk '/VmRSS/ { print $2 }' "/proc/$GW/status"; }
# Anonymous and file-backed kB of the RSS (smaps_rollup), and the gateway's CPU ticks (utime+stime).
mem() { awk '/^Anonymous:/ { a = $2 } /^Rss:/ { r = $2 } END { print a, r - a }' "/proc/$GW/smaps_rollup"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$GW/stat"; }
stats() { curl -s "http://127.0.0.1:$PORT/api/db-stats"; }
done_n=0; t0=$SECONDS; i=0; cpu0=$(ticks)
while [ "$done_n" -lt "$REQUESTS" ] && [ $((SECONDS - t0 + CHUNK)) -le "$MAX_SECONDS" ]; do
  i=$((i + 1))
  taskset -c "$LOAD_CPU" timeout $((CHUNK + 30)) wrk -t1 -c"$CONNS" -d"${CHUNK}s" --timeout 10s \
    -s "$PEERS/lua/chat.lua" -H "Authorization: Bearer $KEY" "$URL" > "$OUT/chunk-$i.txt" 2>&1
  n=$(awk '/requests in/ { print $1 }' "$OUT/chunk-$i.txt"); n=${n:-0}
  rps=$(awk '/^Requests\/sec/ { print $2 }' "$OUT/chunk-$i.txt")
  bad=$(awk '/Non-2xx/ { print $NF }' "$OUT/chunk-$i.txt"); bad=${bad:-0}
  cpu1=$(ticks)
  echo "$i $n ${rps:-0} $bad $(rss) $(stats | "$HPY" -c 'import json,sys; print(json.load(sys.stdin)["writer"].get("pending", -1))') $(mem) $((cpu1 - cpu0)) $(ls "/proc/$GW/task" | wc -l)" >> "$OUT/chunks.txt"
  cpu0=$cpu1
  # The mappings after the warm-up and at the end, to tell heap / arenas / files apart.
  [ "$i" = "$WARM_CHUNKS" ] && cp "/proc/$GW/smaps" "$OUT/smaps-warm.txt"
  done_n=$((done_n + n))
  log "soak chunk $i: $n requests, ${rps:-0} req/s, non-2xx $bad, RSS $(rss) kB, total $done_n"
done
# Let the writer catch up, then count.
for _ in $(seq 60); do
  p=$(stats | "$HPY" -c 'import json,sys; print(json.load(sys.stdin)["writer"]["pending"])' 2>/dev/null)
  [ "${p:-1}" = 0 ] && break; sleep 1
done
stats > "$OUT/db-stats.json"
cp "/proc/$GW/smaps" "$OUT/smaps-end.txt"
"$HPY" - "$OUT" "$done_n" "$WARM_CHUNKS" "$CONNS" "$CHUNK" <<'PY' | tee "$OUT/summary.md"
import json, statistics, sys
out, sent, warm, conns, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = [line.split() for line in open(f"{out}/chunks.txt")]
stats = json.load(open(f"{out}/db-stats.json"))
w = stats["writer"]
hz = 100  # USER_HZ: /proc/PID/stat's ticks
print(f"| chunk ({chunk} s, c{conns}) | requests | req/s | CPU µs/req | non-2xx | RSS MB | anon MB | file MB | threads | writer pending |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for i, n, rps, bad, rss, pending, anon, file, ticks, threads in rows:
    us = 1e6 * int(ticks) / hz / max(int(n), 1)
    print(f"| {i} | {n} | {float(rps):.0f} | {us:.0f} | {bad} | {int(rss) / 1024:.1f} | "
          f"{int(anon) / 1024:.1f} | {int(file) / 1024:.1f} | {threads} | {pending} |")
after = rows[warm:] or rows
base_rss = int(after[0][4]); peak_rss = max(int(r[4]) for r in after)
med = statistics.median(float(r[2]) for r in after)
last = float(rows[-1][2])
print()
# wrk stops each chunk with up to `conns` calls in flight: they are logged too (cut by the client).
extra = stats["requests"] - sent
ok = 0 <= extra <= int(conns) * len(rows) and stats["responses"] == stats["requests"]
print(f"- requests completed {sent}; rows in `requests` {stats['requests']}, `responses` "
      f"{stats['responses']} ({'every one written' if ok else 'MISMATCH'}; {extra} calls cut "
      f"when a wrk run ended, at most {int(conns) * len(rows)})")
print(f"- writer: dropped {w.get('dropped')}, dead-lettered {w.get('dead_lettered')}, "
      f"failed batches {w.get('failed_batches')}, pending {w.get('pending')}")
print(f"- RSS after warm-up (chunk {warm + 1}) {base_rss / 1024:.1f} MB, peak {peak_rss / 1024:.1f} MB: "
      f"growth {100 * (peak_rss - base_rss) / base_rss:+.1f} %")
print(f"- throughput: median after warm-up {med:.0f} req/s, last chunk {last:.0f} req/s "
      f"({100 * (last - med) / med:+.1f} %)")
PY
log "soak results: $OUT"
