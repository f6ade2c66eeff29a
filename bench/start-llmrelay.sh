#!/usr/bin/env bash
# llmrelay, one process / one worker (uvicorn + uvloop + httptools), pinned to GW_CPU (default 0),
# on 127.0.0.1:${LLMRELAY_PORT:-8000}, configured by bench/config.yaml (upstream = nginx mock :18080).
# Creates a fresh virtual key first and saves it to $PEERS_DIR/run/llmrelay.key (bench-llmrelay.sh sends it).
#   RESET_DB=1   (default) start from an empty benchmark database (/tmp/peers/llmrelay-bench.db) and an
#                empty interaction log, so every sitting measures the same state; RESET_DB=0 keeps both.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
PEERS=${PEERS:-$(cd "$BENCH_DIR/../../shared/peers" && pwd)}
source "$PEERS/lib/common.sh"
LLMRELAY_DIR=${LLMRELAY_DIR:-$(cd "$BENCH_DIR/.." && pwd)}
LLMRELAY=${LLMRELAY:-$LLMRELAY_DIR/.venv/bin/llmrelay}
CONFIG=${LLMRELAY_BENCH_CONFIG:-$BENCH_DIR/config.yaml}
PORT=${LLMRELAY_PORT:-8000}
DB=$PEERS_DIR/llmrelay-bench.db

if [ "${RESET_DB:-1}" = 1 ]; then rm -f "$DB" "$DB-wal" "$DB-shm" "$LOG_DIR/llmrelay-interactions.log"; fi
# The key: created (and the DB migrated) before the gateway starts; last stdout line is the key.
# (--config belongs to "keys", before the subcommand: "keys create ... --config" is rejected)
KEY=$("$LLMRELAY" keys --config "$CONFIG" create --name "bench-$(date +%s)" | tail -n 1)
[[ $KEY == sk-* ]] || { log "llmrelay keys create did not print a key"; exit 1; }
umask 077; printf '%s\n' "$KEY" > "$RUN_DIR/llmrelay.key"; umask 022

start_bg llmrelay "$GW_CPU" "$LLMRELAY" serve --config "$CONFIG" --host 127.0.0.1 --port "$PORT" --workers 1
wait_up llmrelay "http://127.0.0.1:$PORT/health" 60 || { log "llmrelay did not come up; see $LOG_DIR/llmrelay.log"; exit 1; }
log "llmrelay up on :$PORT ($("$LLMRELAY" --version), key in $RUN_DIR/llmrelay.key)"
