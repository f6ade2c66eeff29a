"""Every JSON log line of a call names it: ``request_id`` and ``trace_id`` (the client's
``traceparent`` trace, else the call's own), with ``level`` a field, as seed 004's
``jq 'select(.trace_id == …)'`` and ``select(.level == "error")`` filters need."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import SimpleNamespace

import httpx
import orjson

from llmrelay.mock_upstream import MockUpstream
from llmrelay.mock_upstream.script import Behaviour
from llmrelay.telemetry.logs import CURRENT_CALL, JsonFormatter
from tests.gateway_proc import GatewayProcess

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def _lines(text: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]


def _wait(read: Callable[[], str], request_id: str) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    while True:
        lines = [e for e in _lines(read()) if e.get("request_id") == request_id]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_log_lines_of_a_call_carry_its_ids(
    start_gateway: Callable[..., GatewayProcess], mock: MockUpstream
) -> None:
    gw = start_gateway(
        {
            "providers": [
                {
                    "name": "up",
                    "type": "openai_compatible",
                    "base_url": mock.base_url,
                    "api_key": "upstream-secret-key-123",
                }
            ]
        }
    )
    key = gw.create_key("logged")
    body = {"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    auth = {"authorization": f"Bearer {key}"}
    # Seed 004's semantic cache block without an embeddings model: the cache plug-in
    # warns while the call is being served (and the call goes on, matched exactly).
    config = {
        "strategy": "fallback",
        "targets": [{"provider": "up", "model": "gpt-4o-mini"}],
        "cache": {"mode": "semantic"},
    }
    mock.script(Behaviour(status=500, error_message="boom"))
    r = httpx.post(
        gw.base_url + "/chat/completions",
        json=body,
        headers={
            **auth,
            "x-request-id": "req-warned",
            "traceparent": PARENT,
            "x-llmrelay-config": orjson.dumps(config).decode(),
        },
    )
    assert r.status_code == 500, r.text
    warnings = _wait(gw.logs, "req-warned")
    assert warnings and all(w["trace_id"] == TRACE for w in warnings)
    assert {w["level"] for w in warnings} == {"warning"}
    [row] = _wait(gw.interactions, "req-warned")
    assert row["trace_id"] == TRACE and row["level"] == "error"

    r = httpx.post(gw.base_url + "/chat/completions", json=body, headers=auth)
    assert r.status_code == 200
    [row] = _wait(gw.interactions, r.headers["x-request-id"])
    assert row["level"] == "info"
    trace = str(row["trace_id"])
    assert len(trace) == 32 and int(trace, 16) != 0 and trace != TRACE
    text = gw.logs() + gw.interactions()
    assert key not in text and "upstream-secret-key-123" not in text


def test_formatter_names_the_current_call_only_inside_it() -> None:
    record = logging.LogRecord("llmrelay", logging.ERROR, __file__, 1, "boom", None, None)
    outside = orjson.loads(JsonFormatter().format(record))
    assert outside["level"] == "error" and "trace_id" not in outside
    call = SimpleNamespace(request_id="req-1", trace_id=lambda: TRACE)
    token = CURRENT_CALL.set(call)  # type: ignore[arg-type]
    try:
        inside = orjson.loads(JsonFormatter().format(record))
    finally:
        CURRENT_CALL.reset(token)
    assert inside["request_id"] == "req-1" and inside["trace_id"] == TRACE


def test_malformed_traceparent_is_not_taken() -> None:
    from llmrelay.context import parse_traceparent

    assert parse_traceparent(PARENT) == (TRACE, "00f067aa0ba902b7")
    for bad in (
        "",
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"ff-{TRACE}-00f067aa0ba902b7-01",
        f"00-{TRACE.upper()}-00f067aa0ba902b7-01",
        f"00-{TRACE}x-00f067aa0ba902b7-01",
    ):
        assert parse_traceparent(bad) is None, bad
