#!/usr/bin/env bash
# llmrelay on :${LLMRELAY_PORT:-8000} (bench/start-llmrelay.sh); authenticates with the virtual key it created.
# Extra arguments are passed to run-bench.sh as extra headers; env knobs (PHASES, REPEATS, ...) as documented there.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
PEERS=${PEERS:-$(cd "$BENCH_DIR/../../shared/peers" && pwd)}
source "$PEERS/lib/common.sh"
LLMRELAY_DIR=${LLMRELAY_DIR:-$(cd "$BENCH_DIR/.." && pwd)}
PORT=${LLMRELAY_PORT:-8000}
KEY=$(cat "$RUN_DIR/llmrelay.key" 2>/dev/null) || { log "no $RUN_DIR/llmrelay.key: run bench/start-llmrelay.sh first"; exit 1; }
REV=$(git -C "$LLMRELAY_DIR" rev-parse --short HEAD 2>/dev/null || echo '?')
git -C "$LLMRELAY_DIR" diff --quiet HEAD -- src 2>/dev/null || REV="$REV+dirty"
PYV=$("$LLMRELAY_DIR/.venv/bin/python" -c 'import sys;print(sys.version.split()[0])')
GW_VERSION="$("$LLMRELAY_DIR/.venv/bin/llmrelay" --version) ($REV, python $PYV, uvicorn+uvloop+httptools, 1 worker)" \
  exec "$PEERS/run-bench.sh" "${NAME:-llmrelay}" "http://127.0.0.1:$PORT/v1" "Authorization: Bearer $KEY" "$@"
