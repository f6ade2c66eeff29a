#!/usr/bin/env bash
# Sourced by scripts/run and scripts/test: installs exactly what uv.lock pins into .venv.
# Needs only python3 (>= 3.11) on the machine; uv itself comes from PyPI into .tools/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV_VERSION="0.13.9"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "llmrelay needs Python >= 3.11 (found: $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x "$ROOT/.tools/bin/uv" ] || [ "$("$ROOT/.tools/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "bootstrap: installing uv $UV_VERSION into .tools/" >&2
  "$PYTHON" -m venv "$ROOT/.tools"
  "$ROOT/.tools/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
export UV_PROJECT_ENVIRONMENT="$ROOT/.venv"
export UV_PYTHON="$PYTHON"
# Bytecode compiled once here: with PYTHONDONTWRITEBYTECODE=1 (set on this machine, and in
# the Docker image) no process writes .pyc, so without this every start, and each of the
# suite's gateway processes, compiled every module from source (~2 s of CPU a start).
"$ROOT/.tools/bin/uv" sync --frozen --quiet --compile-bytecode --project "$ROOT" "$@"
"$ROOT/.venv/bin/python" -m compileall -q -j 0 "$ROOT/src" >/dev/null
