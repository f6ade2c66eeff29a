"""``POST /admin/providers/{name}/test``: one small real call through a provider.

A one-token chat completion when a model is known (the body's, else the provider's
first listed model), else the provider's model list. The answer reports whether it
worked, the upstream status, the latency and the error's class; the upstream's words
are scrubbed of every configured credential first (a provider may echo the key it was
sent in its refusal).
"""

from __future__ import annotations

import time
from typing import Any

from llmrelay.errors import GatewayError, UpstreamError, UpstreamUnreachable
from llmrelay.providers.registry import Provider
from llmrelay.redaction import Redactor
from llmrelay.routing.classify import classes_of

#: Seconds a test call may take at most (the provider's own timeout may be longer).
TEST_TIMEOUT = 30.0


async def check(provider: Provider, model: str | None, redactor: Redactor) -> dict[str, Any]:
    """Call ``provider`` once; the outcome as the admin API shows it."""
    spec = provider.spec
    listed = provider.models()
    model = model or (listed[0] if listed else None)
    if model is not None:
        body = {"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
        call = provider.adapter.chat_request(spec, body, model, False)
        kind = "chat"
    else:
        listing = provider.adapter.models_request(spec)
        if listing is None:
            return _outcome(False, None, 0.0, "chat", "no_model", "name a model to test with")
        call, kind = listing, "models"
    started = time.perf_counter()
    status: int | None = None
    try:
        resp = await provider.transport.send(
            call,
            provider=spec.name,
            timeout=min(spec.timeout, TEST_TIMEOUT),
            connect_timeout=min(spec.connect_timeout, TEST_TIMEOUT),
            stream=False,
        )
        status = resp.status
        data = await resp.read()
        if status >= 400:
            raise provider.adapter.error(spec, status, data, resp.headers)
    except UpstreamError as exc:
        clean = redactor.error(exc)
        classes = sorted(classes_of(clean))
        if isinstance(exc, UpstreamUnreachable):
            status = None
        out = _outcome(False, status, _ms(started), kind, type(exc).__name__, clean.message, model)
        return {**out, "error_classes": classes}
    except GatewayError as exc:
        message = redactor.text(exc.message)
        return _outcome(False, status, _ms(started), kind, type(exc).__name__, message, model)
    provider.state.ok()
    return _outcome(True, status, _ms(started), kind, None, None, model)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _outcome(
    ok: bool,
    status: int | None,
    latency_ms: float,
    kind: str,
    error_class: str | None,
    error: str | None,
    model: str | None = None,
) -> dict[str, Any]:
    return {
        "ok": ok,
        "status": status,
        "latency_ms": latency_ms,
        "call": kind,
        "model": model,
        "error_class": error_class,
        "error_classes": [],
        "error": None if error is None else error[:500],
    }
