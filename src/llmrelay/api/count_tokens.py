"""``POST /v1/messages/count_tokens``: Anthropic's token counting, for every model.

When the model is served by an Anthropic provider the body is passed through and
Anthropic's own count comes back (it is free there and exact). For any other provider
the body is translated as ``/v1/messages`` would translate it (so a body that call
would refuse is refused here too) and counted with the bundled ``cl100k_base``
tokenizer (:mod:`llmrelay.tokenizer`), in a worker thread. That count is exact only for
models that use that encoding, so the answer says it is an estimate:
``x-llmrelay-token-count: estimate; cl100k_base``.

Counting is not a model call: it costs nothing, leaves no usage row, and counts for
the model's own target (a route config header does not apply). A pass-through does
call the provider, so it counts against the key's request limits like any call (a
reservation of its prompt only, settled at zero tokens and zero cost); a local count
makes no upstream call and takes no limit room.
Errors are in Anthropic's shape, like every ``/v1/messages`` answer.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.api.anthropic import beta_header
from llmrelay.api.messages_translate import to_chat, validate
from llmrelay.api.openai import require_model
from llmrelay.asgi import ClientDisconnected, Request, Send, send_bytes, send_error
from llmrelay.context import Call
from llmrelay.errors import GatewayError, InvalidRequest, UpstreamTimeout
from llmrelay.pipeline import authenticate, parse_json, respond_json
from llmrelay.providers.anthropic_convert import anthropic_error
from llmrelay.providers.base import Usage
from llmrelay.providers.chat_output import upstream_object
from llmrelay.routing.classify import upstream_refusal
from llmrelay.routing.resolve import Target, check_allowed
from llmrelay.tokenizer import ENCODING, count_chat
from llmrelay.upstream import upstream_request_id

if TYPE_CHECKING:
    from llmrelay.app import Gateway

ROUTE = "/v1/messages/count_tokens"


async def count_tokens(gw: Gateway, request: Request, send: Send) -> None:
    call = Call.start(request, ROUTE)
    try:
        await authenticate(gw, call)
        call.raw_body = await request.body(gw.settings.max_body_bytes)
        body = parse_json(call.raw_body)
        model = require_model(body)
        # The count takes a Messages body without max_tokens (Anthropic refuses one); the
        # rest is checked alike.
        if "max_tokens" in body:
            raise InvalidRequest("max_tokens: Extra inputs are not permitted",
                                 param="max_tokens")
        validate({**body, "max_tokens": 1})
        target = gw.resolver.resolve(model)
        assert call.key is not None
        check_allowed(call.key.allowed_models, target, (model,))
        call.target = target
        if target.provider.caps.count_tokens and not target.overrides:
            call.body, call.model = {**body, "max_tokens": 0}, model  # reserve no output
            await gw.governor.admit(call)  # 429 past the key's request limits
            await _pass_through(gw, call, target, body, send)
            return
        chat = to_chat({**body, "max_tokens": 1})
        counted = await asyncio.to_thread(count_chat, chat)
        call.extra_headers["x-llmrelay-token-count"] = f"estimate; {ENCODING}"
        await respond_json(call, send, orjson.dumps({"input_tokens": counted}))
    except GatewayError as exc:
        await send_error(send, exc, call.response_headers(), orjson.dumps(anthropic_error(exc)))
    except ClientDisconnected:
        return
    finally:
        await gw.governor.settle(call)  # no ticket (local count, refusal): a no-op


async def _pass_through(gw: Gateway, call: Call, target: Target, body: dict[str, Any],
                        send: Send) -> None:
    provider = target.provider
    spec = provider.spec
    adapter: Any = provider.adapter
    ucall = adapter.count_tokens_request(spec, body, target.model,
                                         beta_header(call.request))
    # One upstream call, free: recorded so settling keeps the request counted.
    call.attempts.append({"provider": provider.name, "model": target.model})
    call.usage = Usage()
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(spec.timeout):
            resp = await provider.transport.send(
                ucall, provider=spec.name, timeout=spec.timeout + 1,
                connect_timeout=spec.connect_timeout, stream=False)
            raw = await resp.read()
    except TimeoutError:
        raise UpstreamTimeout(f"upstream {spec.name} timed out after {spec.timeout:g}s",
                              provider=spec.name) from None
    finally:
        call.upstream_seconds += time.perf_counter() - t0
    call.attempts[-1]["status"] = resp.status
    call.upstream_request_id = upstream_request_id(resp.headers)
    if call.upstream_request_id is not None:
        call.extra_headers["request-id"] = call.upstream_request_id
    if resp.status >= 400:
        # As on every routed call: a refusal of llmrelay's key is a 502, secrets masked.
        raise upstream_refusal(
            gw.router.redactor.error(adapter.error(spec, resp.status, raw, resp.headers)))
    upstream_object(spec.name, raw)  # a 200 that is not a JSON object is a 502
    call.status = 200
    call.bytes_out = len(raw)
    await send_bytes(send, 200, raw, call.response_headers())
