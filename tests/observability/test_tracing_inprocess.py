"""Traces in process, read back from the SDK's in-memory exporter: one server span per
call, one client span per upstream attempt, GenAI attributes, the client's traceparent
as parent and each attempt's traceparent sent upstream; content only when enabled."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from llmrelay.mock_upstream import Behaviour, MockUpstream
from llmrelay.telemetry.tracing import Tracing
from tests.gateway_proc import free_port
from tests.inprocess.app_client import InProcessGateway

TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
PARENT = f"00-{TRACE}-{CLIENT_SPAN}-01"
FALLBACK = {
    "strategy": "fallback",
    "targets": [{"provider": "up", "model": "flaky"}, {"provider": "up", "model": "steady"}],
}


@pytest.fixture(scope="module")
async def traced(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[InProcessGateway, InMemorySpanExporter]]:
    config = {
        "providers": [
            {
                "name": "up",
                "type": "openai_compatible",
                "base_url": upstream.base_url,
                "api_key": "upstream-secret-key-123",
            },
            {
                "name": "dead",
                "type": "openai_compatible",
                "base_url": f"http://127.0.0.1:{free_port()}/v1",
                "api_key": "x",
            },
        ],
    }
    gw = InProcessGateway(tmp_path_factory.mktemp("tracing"), config)
    await gw.start()
    exporter = InMemorySpanExporter()
    gw.app.services.tracing = Tracing(record_content=False, exporter=exporter)
    yield gw, exporter
    await gw.stop()


def _by_kind(exporter: InMemorySpanExporter) -> tuple[Any, list[Any]]:
    spans = exporter.get_finished_spans()
    [server] = [s for s in spans if s.kind == SpanKind.SERVER]
    attempts = sorted((s for s in spans if s.kind == SpanKind.CLIENT), key=lambda s: s.start_time)
    return server, attempts


async def test_call_and_attempt_spans(
    traced: tuple[InProcessGateway, InMemorySpanExporter], mock: MockUpstream
) -> None:
    gw, exporter = traced
    exporter.clear()
    key = await gw.create_key("traced")
    mock.script(Behaviour(status=503, error_message="overloaded"))
    body = {"model": "up/flaky", "messages": [{"role": "user", "content": "secret prompt"}]}
    r = await gw.post(
        "/v1/chat/completions",
        body,
        key,
        traceparent=PARENT,
        **{"x-llmrelay-config": json.dumps(FALLBACK), "x-request-id": "traced-1"},
    )
    assert r.status_code == 200, r.text
    server, attempts = _by_kind(exporter)
    assert format(server.context.trace_id, "032x") == TRACE
    assert server.parent is not None and format(server.parent.span_id, "016x") == CLIENT_SPAN
    a = dict(server.attributes)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "up" and a["gen_ai.response.model"] == "steady"
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
    assert list(a["gen_ai.response.finish_reasons"]) == ["stop"]
    assert a["llmrelay.attempts"] == 2 and a["llmrelay.fallback"] is True
    assert a["llmrelay.request_id"] == "traced-1"
    assert "error.type" not in a
    assert [s.name for s in attempts] == ["chat flaky", "chat steady"]
    assert all(s.parent.span_id == server.context.span_id for s in attempts)
    failed, answered = (dict(s.attributes) for s in attempts)
    assert failed["error.type"] and failed["http.response.status_code"] == 503
    assert answered["gen_ai.request.model"] == "steady" and "error.type" not in answered
    # Each attempt told the upstream its own span as the parent.
    sent = [req.headers["traceparent"] for req in mock.requests[-2:]]
    assert sent == [f"00-{TRACE}-{format(s.context.span_id, '016x')}-01" for s in attempts]
    everything = orjson.dumps([dict(s.attributes) for s in exporter.get_finished_spans()])
    assert b"secret prompt" not in everything and key.encode() not in everything
    assert b"upstream-secret-key-123" not in everything


async def test_failed_call_has_error_type_and_content_only_when_enabled(
    traced: tuple[InProcessGateway, InMemorySpanExporter], mock: MockUpstream
) -> None:
    gw, exporter = traced
    services = gw.app.services
    exporter.clear()
    services.tracing = Tracing(record_content=True, exporter=exporter)
    key = await gw.create_key("traced-content")
    try:
        body = {"model": "dead/x", "messages": [{"role": "user", "content": "a visible prompt"}]}
        r = await gw.post("/v1/chat/completions", body, key)
        assert r.status_code == 502
        server, [attempt] = _by_kind(exporter)
        a = dict(server.attributes)
        assert a["error.type"] and a["http.response.status_code"] == 502
        assert "a visible prompt" in a["gen_ai.input.messages"]
        assert dict(attempt.attributes)["error.type"]
        exporter.clear()
        r = await gw.post("/v1/chat/completions", {**body, "model": "up/gpt-4o-mini"}, key)
        server, _ = _by_kind(exporter)
        assert "a visible prompt" in dict(server.attributes)["gen_ai.output.messages"]
    finally:
        services.tracing = Tracing(record_content=False, exporter=exporter)


def test_the_serve_path_does_not_import_opentelemetry(tmp_path: Path) -> None:
    probe = (
        "import json, sys\nimport llmrelay.app, llmrelay.cli\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert not [m for m in json.loads(out) if m.startswith("opentelemetry")]
