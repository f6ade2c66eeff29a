"""OpenTelemetry traces: one span per call, one per upstream attempt (GenAI semantic
conventions), exported over OTLP/HTTP. Optional: ``pip install llmrelay[otel]``.

Off by default (``tracing: false``): then nothing here is imported, ``Services.tracing``
is None and a call pays one None check. On, the standard ``OTEL_*`` environment
variables configure the SDK as everywhere else: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_SERVICE_NAME`` (default here ``llmrelay``), ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``. A client's W3C ``traceparent`` becomes the call
span's parent, and each attempt sends its own ``traceparent`` upstream.

Attributes follow https://opentelemetry.io/docs/specs/semconv/gen-ai/ (``gen_ai.*``,
``error.type``), plus llmrelay's own (``llmrelay.*``: attempts, fallback, cache,
guardrails, cost). Keys and credentials are never attributes; prompts and answers are
recorded (redacted, as ``gen_ai.input.messages`` / ``gen_ai.output.messages``) only with
``tracing_record_content: true``.

The provider is the gateway's own, not the process-global one: no module state, and
an embedding application's tracing is left alone.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.config_error import ConfigError
from llmrelay.redaction import redact

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

    from llmrelay.context import Call
    from llmrelay.providers.base import UpstreamCall

#: ``gen_ai.operation.name`` by route; other routes are "chat".
_OPERATIONS = {
    "/v1/embeddings": "embeddings",
    "/v1/completions": "text_completion",
}


def start_tracing(*, record_content: bool) -> Tracing:
    """The tracer of ``tracing: true``; a clear start-up error without the extra."""
    try:
        return Tracing(record_content=record_content)
    except ImportError as exc:
        raise ConfigError(
            "invalid config: tracing: true needs OpenTelemetry, which is not installed "
            f"({exc.name}): pip install 'llmrelay[otel]'"
        ) from exc


class Tracing:
    """The gateway's tracer: starts a :class:`CallSpan` per call."""

    def __init__(self, *, record_content: bool, exporter: SpanExporter | None = None) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        defaults = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "llmrelay"}
        self.provider: TracerProvider = TracerProvider(resource=Resource.create(defaults))
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:  # tests: the SDK's in-memory exporter, spans visible at once
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.tracer: Tracer = self.provider.get_tracer("llmrelay")
        self.propagator = TraceContextTextMapPropagator()
        self.record_content = record_content

    def start(self, call: Call) -> CallSpan:
        from opentelemetry.trace import SpanKind

        parent = call.request.header("traceparent")
        context = self.propagator.extract({"traceparent": parent}) if parent else None
        operation = _OPERATIONS.get(call.route, "chat")
        span = self.tracer.start_span(
            operation,
            context=context,
            kind=SpanKind.SERVER,
            attributes={
                "gen_ai.operation.name": operation,
                "llmrelay.request_id": call.request_id,
                "http.route": call.route,
            },
        )
        call.span_trace_id = format(span.get_span_context().trace_id, "032x")
        return CallSpan(self, span, operation)

    def close(self) -> None:
        """Flush what is buffered and stop the exporter (at shutdown)."""
        self.provider.shutdown()


class CallSpan:
    """The spans of one call: its own, and one per attempt (ended with the call, from
    what the router recorded of each attempt, so the router does no span work)."""

    __slots__ = ("_attempts", "_operation", "_span", "_tracing")

    def __init__(self, tracing: Tracing, span: Span, operation: str) -> None:
        self._tracing = tracing
        self._span = span
        self._operation = operation
        self._attempts: list[tuple[dict[str, Any], Span, int]] = []

    def attempt(self, entry: dict[str, Any], ucall: UpstreamCall) -> None:
        """An upstream try begins: its span, and its ``traceparent`` on the request."""
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind

        model = str(entry.get("model", ""))
        start = time.time_ns()
        span = self._tracing.tracer.start_span(
            f"{self._operation} {model}",
            context=trace.set_span_in_context(self._span),
            kind=SpanKind.CLIENT,
            start_time=start,
            attributes={
                "gen_ai.operation.name": self._operation,
                "gen_ai.provider.name": str(entry.get("provider", "")),
                "gen_ai.request.model": model,
            },
        )
        carrier: dict[str, str] = {}
        self._tracing.propagator.inject(carrier, context=trace.set_span_in_context(span))
        ucall.headers.update(carrier)
        self._attempts.append((entry, span, start))

    def end(self, call: Call) -> None:
        """The call is over: its attributes, its attempts' outcomes, the spans ended."""
        from opentelemetry.trace import Status, StatusCode

        for entry, span, start in self._attempts:
            status = entry.get("status")
            if isinstance(status, int):
                span.set_attribute("http.response.status_code", status)
            if entry.get("error"):
                span.set_attribute("error.type", str(entry["error"]))
                span.set_status(Status(StatusCode.ERROR))
            took = entry.get("latency_ms")
            end = start + int(took * 1e6) if isinstance(took, int | float) else None
            span.end(end_time=end)
        span = self._span
        span.set_attributes(_call_attributes(call))
        if call.error is not None:
            span.set_attribute("error.type", call.error.code or call.error.wire_type)
            span.set_status(Status(StatusCode.ERROR))
        if self._tracing.record_content:
            _record_content(span, call)
        target = call.target
        if target is not None and call.model:
            span.update_name(f"{self._operation} {call.model}")
        span.end()


def _call_attributes(call: Call) -> dict[str, Any]:
    out: dict[str, Any] = {"http.response.status_code": call.status}
    if call.model is not None:
        out["gen_ai.request.model"] = call.model
    if call.target is not None:
        out["gen_ai.provider.name"] = call.target.provider.name
        out["gen_ai.response.model"] = call.target.model
    if call.usage is not None:
        out["gen_ai.usage.input_tokens"] = call.usage.prompt_tokens
        out["gen_ai.usage.output_tokens"] = call.usage.completion_tokens
    if call.finish_reason:
        out["gen_ai.response.finish_reasons"] = [call.finish_reason]
    tried = [a for a in call.attempts if "skipped" not in a]
    out["llmrelay.attempts"] = len(tried)
    targets = {(a.get("provider"), a.get("model")) for a in call.attempts}
    out["llmrelay.fallback"] = len(targets) > 1
    out["llmrelay.stream"] = call.stream
    if call.cache is not None:
        out["llmrelay.cache"] = call.cache.result
    if call.guardrails is not None:
        summary = call.guardrails.summary()
        findings = summary.get("findings", [])
        out["llmrelay.guardrails.findings"] = sum(int(f.get("count", 1)) for f in findings)
        actions = sorted({str(f.get("action")) for f in findings})
        if actions:
            out["llmrelay.guardrails.actions"] = actions
    if call.cost_nanos is not None:
        out["llmrelay.cost_usd"] = call.cost_nanos / 1e9
    return out


def _record_content(span: Span, call: Call) -> None:
    """Prompts and answers, redacted: only with ``tracing_record_content``."""
    if call.body is not None and "messages" in call.body:
        span.set_attribute(
            "gen_ai.input.messages", redact(orjson.dumps(call.body["messages"]).decode())
        )
    if call.response_body is not None:
        span.set_attribute(
            "gen_ai.output.messages", redact(call.response_body.decode("utf-8", "replace"))
        )
