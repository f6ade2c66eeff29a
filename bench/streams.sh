#!/usr/bin/env bash
# bench/streams.sh: the 5,000-stream phase. STREAMS (5000) concurrent ~1 s streams (the trickle upstream:
# 50 chunks 20 ms apart), all opened at once, through one llmrelay worker pinned to CPU 0, and the same
# straight to the mock (direct) for the baseline, in one sitting: streams ok, TTFB p50/p99 (added TTFB =
# llmrelay's minus direct's), total time, the gateway's peak RSS (VmHWM) and CPU seconds.
# It is bench/run.sh with the harness's phase d at a count: PHASES="e d" STREAMS=5000 (knobs of run.sh apply,
# e.g. QUIET_WAIT / QUIET_FORCE=1 on a busy machine).
set -euo pipefail
export STREAMS=${STREAMS:-5000} STREAM_TIMEOUT=${STREAM_TIMEOUT:-120} PHASES=${PHASES:-"e d"}
exec "$(dirname "$0")/run.sh" direct llmrelay
