#!/bin/sh
# The image's entrypoint: apply the database migrations, then serve. A migration that
# fails stops the container with the error and a non-zero status (the orchestrator
# shows it and restarts per its policy) instead of serving on a half-migrated schema.
set -eu
if [ "${1:-serve}" = "serve" ]; then
  if ! llmrelay migrate; then
    echo "llmrelay: database migrations failed (see above); not starting" >&2
    exit 1
  fi
fi
exec llmrelay "$@"
