#!/usr/bin/env bash
# llmrelay, one process / one worker (uvicorn + uvloop + httptools), pinned to GW_CPU (default 0),
# on 127.0.0.1:${LLMRELAY_PORT:-8000}, configured by bench/config.yaml (upstream = nginx mock :18080).
# Creates a fresh virtual key first and saves it to $PEERS_DIR/run/llmrelay.key (bench-llmrelay.sh sends it).
#   RESET_DB=1   (default) start from an empty benchmark database (/tmp/peers/llmrelay-bench.db) and an
#                empty interaction log, so every sitting measures the same state; RESET_DB=0 keeps both.
#   LLMRELAY_DB=postgres   the PostgreSQL variant: the same config with database_url
#                postgresql+asyncpg://postgres@127.0.0.1:5432/$LLMRELAY_PG_DB (default llmrelay_bench, a
#                database of its own, dropped and created again when RESET_DB=1; trust auth on 127.0.0.1)
#   WORKERS=N    --workers N (default 1); N > 1 adds redis_url $LLMRELAY_REDIS (default
#                redis://127.0.0.1:6379/0, a key prefix of its own) as llmrelay requires, and pins to GW_CPU as given
#   KEY_ARGS     extra options for "keys create" (e.g. "--rpm 2000")
#   LLMRELAY_BENCH_DB=path   a SQLite file of this run's own (others running the bench on this machine use
#                the default one, perhaps at another schema version)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
PEERS=${PEERS:-$(cd "$BENCH_DIR/../../shared/peers" && pwd)}
source "$PEERS/lib/common.sh"
LLMRELAY_DIR=${LLMRELAY_DIR:-$(cd "$BENCH_DIR/.." && pwd)}
LLMRELAY=${LLMRELAY:-$LLMRELAY_DIR/.venv/bin/llmrelay}
CONFIG=${LLMRELAY_BENCH_CONFIG:-$BENCH_DIR/config.yaml}
PORT=${LLMRELAY_PORT:-8000}
DB=${LLMRELAY_BENCH_DB:-$PEERS_DIR/llmrelay-bench.db}
WORKERS=${WORKERS:-1}

if [ "${RESET_DB:-1}" = 1 ]; then rm -rf "$DB" "$DB-wal" "$DB-shm" "$DB.spool" "$LOG_DIR/llmrelay-interactions.log"; fi
if [ "${LLMRELAY_DB:-sqlite}" = postgres ] || [ "$WORKERS" -gt 1 ] || [ -n "${LLMRELAY_BENCH_DB:-}" ]; then
  # A variant of the config, written next to the other run files.
  VARIANT=$RUN_DIR/llmrelay-bench-config.yaml
  sed "s|/tmp/peers/llmrelay-bench.db|$DB|" "$CONFIG" > "$VARIANT"; CONFIG=$VARIANT
  if [ "${LLMRELAY_DB:-sqlite}" = postgres ]; then
    PGDB=${LLMRELAY_PG_DB:-llmrelay_bench}
    [[ $PGDB =~ ^[a-z_][a-z0-9_]*$ ]] || { log "LLMRELAY_PG_DB must be a plain name"; exit 2; }
    if [ "${RESET_DB:-1}" = 1 ]; then
      dropdb -h 127.0.0.1 -U postgres --if-exists "$PGDB" && createdb -h 127.0.0.1 -U postgres "$PGDB"
    fi
    sed -i "s|^database_url:.*|database_url: postgresql+asyncpg://postgres@127.0.0.1:5432/$PGDB|" "$CONFIG"
  fi
  if [ "$WORKERS" -gt 1 ]; then
    printf 'redis_url: %s\nredis_prefix: "{llmrelay-bench-%s}:"\n' "${LLMRELAY_REDIS:-redis://127.0.0.1:6379/0}" "$(date +%s)" >> "$CONFIG"
    # REDIS_FAIL_MODE=closed: a Redis timeout refuses the call (503) instead of admitting it
    # uncounted, so a limit overshoot can only be a counting bug (bench/workers.sh).
    if [ -n "${REDIS_FAIL_MODE:-}" ]; then printf 'redis_fail_mode: %s\n' "$REDIS_FAIL_MODE" >> "$CONFIG"; fi
  fi
fi
# The key: created (and the DB migrated) before the gateway starts; last stdout line is the key.
# (--config belongs to "keys", before the subcommand: "keys create ... --config" is rejected)
# shellcheck disable=SC2086  # KEY_ARGS is a list of options
KEY=$("$LLMRELAY" keys --config "$CONFIG" create --name "bench-$(date +%s)" ${KEY_ARGS:-} | tail -n 1)
[[ $KEY == sk-* ]] || { log "llmrelay keys create did not print a key"; exit 1; }
umask 077; printf '%s\n' "$KEY" > "$RUN_DIR/llmrelay.key"; umask 022

start_bg llmrelay "$GW_CPU" "$LLMRELAY" serve --config "$CONFIG" --host 127.0.0.1 --port "$PORT" --workers "$WORKERS"
wait_up llmrelay "http://127.0.0.1:$PORT/health" "${UP_TIMEOUT:-$((WORKERS > 1 ? 180 : 60))}" || { log "llmrelay did not come up; see $LOG_DIR/llmrelay.log"; exit 1; }
log "llmrelay up on :$PORT ($("$LLMRELAY" --version), key in $RUN_DIR/llmrelay.key)"
