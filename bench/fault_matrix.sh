#!/usr/bin/env bash
# The fault matrix: run every process-level fault test (tests/faults/) and print the table
# of scenario, designed outcome and result. The same table ends every full test run.
# Usage: bench/fault_matrix.sh [extra pytest args]   (writes the table to $OUT too)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
ARGS=("$@"); set --  # bootstrap.sh passes its own arguments to uv sync
source "$ROOT/scripts/bootstrap.sh"
OUT="${OUT:-/tmp/llmrelay-fault-matrix.txt}"
LLMRELAY_FAULT_MATRIX="$OUT" .venv/bin/pytest tests/faults -q -p no:cacheprovider ${ARGS[@]+"${ARGS[@]}"}
echo "table saved to $OUT"
