"""A real ``llmrelay serve`` with ``tracing: true`` sends its spans over OTLP/HTTP to a
receiver on loopback (``http.server`` decoding the protobuf with opentelemetry-proto),
configured only by the standard ``OTEL_*`` variables."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from llmrelay.mock_upstream import MockUpstream
from tests.gateway_proc import GatewayProcess

TRACE = "5b8efff798038103d269b633813fc60c"
PARENT = f"00-{TRACE}-eee19b7ec3c1b174-01"


class _Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """``(resource attributes, span)`` of everything received."""
        out = []
        for req in list(self.requests):
            for rs in req.resource_spans:
                resource = {a.key: a.value.string_value for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    out.extend((resource, span) for span in ss.spans)
        return out


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.paths.append(self.path)
        self.server.requests.append(request)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _attributes(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in span.attributes:
        v = a.value
        kind = v.WhichOneof("value")
        out[a.key] = (
            list(x.string_value for x in v.array_value.values)
            if kind == "array_value"
            else getattr(v, kind)
        )
    return out


def test_spans_reach_an_otlp_receiver(
    start_gateway: Callable[..., GatewayProcess], mock: MockUpstream, receiver: _Receiver
) -> None:
    gw = start_gateway(
        {
            "tracing": True,
            "providers": [
                {
                    "name": "up",
                    "type": "openai_compatible",
                    "base_url": mock.base_url,
                    "api_key": "upstream-secret-key-123",
                }
            ],
        },
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_SERVICE_NAME": "relay-under-test",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        },
    )
    key = gw.create_key("otlp")
    body = {"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
    r = httpx.post(
        gw.base_url + "/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}", "traceparent": PARENT},
    )
    assert r.status_code == 200
    assert mock.requests[-1].headers["traceparent"].startswith(f"00-{TRACE}-")
    deadline = time.monotonic() + 15
    while len(receiver.spans()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    spans = receiver.spans()
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    assert len(spans) == 2, spans
    resource = spans[0][0]
    assert resource["service.name"] == "relay-under-test"
    by_name = {span.name: span for _, span in spans}
    server = by_name["chat up/gpt-4o-mini"]
    attempt = by_name["chat gpt-4o-mini"]
    assert server.trace_id.hex() == TRACE == attempt.trace_id.hex()
    assert server.parent_span_id.hex() == "eee19b7ec3c1b174"
    assert attempt.parent_span_id == server.span_id
    assert mock.requests[-1].headers["traceparent"] == f"00-{TRACE}-{attempt.span_id.hex()}-01"
    a = _attributes(server)
    assert a["gen_ai.provider.name"] == "up" and a["gen_ai.request.model"] == "up/gpt-4o-mini"
    assert a["gen_ai.response.model"] == "gpt-4o-mini" and a["gen_ai.usage.output_tokens"] > 0
    # The same trace id is in the call's log line.
    gw.stop()
    assert f'"trace_id":"{TRACE}"' in gw.interactions()
    assert key not in str(spans) and "upstream-secret-key-123" not in str(spans)
