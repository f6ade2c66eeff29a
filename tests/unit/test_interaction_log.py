"""The interaction log line: its timestamp is ``created_at.isoformat()`` (written by
orjson from the datetime), also when text that is not valid UTF-8 is cleaned first."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from llmrelay.providers.base import Usage
from llmrelay.store.rows import log_line
from llmrelay.telemetry.interaction import Interaction


def _row(created_at: datetime, model: str = "gpt-4o-mini") -> Interaction:
    return Interaction(
        id="i",
        request_id="r",
        created_at=created_at,
        route="/v1/chat/completions",
        method="POST",
        status=429,
        latency_ms=1.23456,
        overhead_ms=0.4,
        model=model,
        usage=Usage(1, 2, 3),
        cost_nanos=1_500_000_001,
        attempts=[{"provider": "p", "status": 429}],
        error_type="rate_limited",
        error_message="slow down",
    )


@pytest.mark.parametrize(
    "created_at",
    [datetime(2026, 12, 4, 18, 33, 12, 123456, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)],
)
@pytest.mark.parametrize("model", ["gpt-4o-mini", "bad-\ud800-text"])
def test_the_line_carries_the_isoformat_timestamp(created_at: datetime, model: str) -> None:
    line = log_line(_row(created_at, model))
    assert line.endswith(b"\n")
    entry = orjson.loads(line)
    assert entry["timestamp"] == created_at.isoformat()
    assert entry["level"] == "warning" and entry["duration_ms"] == 1.235
    assert entry["cost_usd"] == "1.500000001"
    assert entry["usage"] == {
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "total_tokens": 3,
        "cached_tokens": 0,
    }
    assert entry["attempts"] == [{"provider": "p", "status": 429}]
    assert entry["error"] == {"type": "rate_limited", "message": "slow down"}
    assert entry["model"].startswith("bad-") or entry["model"] == model


def test_round_ms_is_round_to_three_places() -> None:
    """The log line's durations: the same float (and type) as ``round(x, 3)``, halves,
    signed zeros, NaN, infinities, huge values and ints included."""
    import math
    import random
    import struct

    from llmrelay.telemetry.interaction import round_ms

    rng = random.Random(14)
    values: list[float] = [0.0, -0.0, 0.0005, 0.0015, 1.0005, 2.675, 0.4995, -1e-9, 1e300]
    values += [math.nan, math.inf, -math.inf, 2.0**40 / 1000, 2.0**40 / 1000 - 0.0005]
    values += [rng.uniform(0, 100) for _ in range(20_000)]
    values += [rng.randint(0, 10**7) / 1000 + 0.0005 for _ in range(20_000)]
    values += [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(20_000)]
    for v in values:
        assert repr(round_ms(v)) == repr(round(v, 3)), v
    assert round_ms(5) == 5 and type(round_ms(5)) is int  # type: ignore[arg-type]
