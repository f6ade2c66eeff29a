"""OpenAI-compatible endpoints: chat completions, embeddings, the model list and models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.api.anthropic_models import anthropic_model, anthropic_model_list, is_anthropic_client
from llmrelay.asgi import Request, Send, send_error
from llmrelay.context import Call
from llmrelay.errors import GatewayError, InvalidRequest, NotFound
from llmrelay.pipeline import (
    authenticate,
    complete_chat,
    open_chat_stream,
    open_routed,
    read_answer,
    relay_stream,
    respond_json,
)
from llmrelay.providers.anthropic_convert import anthropic_error
from llmrelay.providers.base import ChatResult, UpstreamCall
from llmrelay.providers.chat_output import FLOAT_EMBEDDINGS, embeddings_as_base64
from llmrelay.routing.resolve import Target

if TYPE_CHECKING:
    from llmrelay.app import Gateway


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise InvalidRequest("missing required field: model", param="model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("field model must be a non-empty string", param="model")
    return model


def stream_flag(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise InvalidRequest("field stream must be a boolean", param="stream")
    return stream


def validate_messages(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("missing required field: messages", param="messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("field messages must be a non-empty array", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(
                f"messages[{i}] must be an object with a string role", param=f"messages[{i}]"
            )


class ChatCompletions:
    def validate(self, body: dict[str, Any]) -> tuple[str, bool]:
        model = require_model(body)
        validate_messages(body)
        stream = stream_flag(body)
        options = body.get("stream_options")
        if options is not None and not isinstance(options, dict):
            raise InvalidRequest("field stream_options must be an object",
                                 param="stream_options")
        return model, stream

    async def execute(self, gw: Gateway, call: Call, send: Send) -> None:
        assert call.body is not None
        if call.stream:
            resp, translator = await open_chat_stream(gw, call, call.body)
            await relay_stream(gw, call, resp, translator, send)
            return
        result = await complete_chat(gw, call, call.body)
        await respond_json(call, send, result.body)


class Embeddings:
    def validate(self, body: dict[str, Any]) -> tuple[str, bool]:
        model = require_model(body)
        if "input" not in body:
            raise InvalidRequest("missing required field: input", param="input")
        value = body["input"]
        if not isinstance(value, str | list) or (isinstance(value, list) and not value):
            raise InvalidRequest(
                "field input must be a string or a non-empty array", param="input"
            )
        return model, False

    async def execute(self, gw: Gateway, call: Call, send: Send) -> None:
        assert call.body is not None
        body = call.body

        def build(t: Target) -> UpstreamCall:
            return t.provider.adapter.embeddings_request(t.provider.spec, t.body_for(body), t.model)

        def parse(t: Target, raw: bytes) -> ChatResult:
            result = t.provider.adapter.embeddings_response(t.provider.spec, raw, t.model)
            if result.extra.get(FLOAT_EMBEDDINGS) and body.get("encoding_format") == "base64":
                result.body = embeddings_as_base64(result.body)
            return result

        resp = await open_routed(gw, call, build, stream=False, parse=parse)
        result = await read_answer(call, resp, parse)
        call.usage = result.usage
        call.response_body = result.body
        await respond_json(call, send, result.body)


def _allowed(allowed: tuple[str, ...] | None, name: str, target: Target | None) -> bool:
    if allowed is None:
        return True
    from fnmatch import fnmatchcase

    names = [name] + ([target.qualified] if target else [])
    return any(fnmatchcase(n, p) for p in allowed for n in names)


async def list_models(gw: Gateway, request: Request, send: Send) -> None:
    """``GET /v1/models``: what this key may call; ``?provider=`` (or ``?gateway=``) filters.

    Provider lists come from memory (:mod:`llmrelay.providers.model_lists`);
    ``?refresh=true`` asks the providers again first. The Anthropic SDK (it sends
    ``anthropic-version``) gets Anthropic's list shape, in one page.
    """
    call = Call.start(request, "/v1/models")
    anthropic = is_anthropic_client(request)
    try:
        await authenticate(gw, call)
        query = request.query
        only = query.get("provider") or query.get("gateway")
        if only is not None and gw.registry.get(only) is None:
            raise NotFound(f"unknown provider: {only}", param="provider")
        names = [only] if only is not None else [p.name for p in gw.registry]
        if query.get("refresh", "").lower() in ("1", "true", "yes"):
            await gw.model_lists.refresh(names)
        else:
            await gw.model_lists.first_fetch(names)
        data = visible_models(gw, call, only)
        body = anthropic_model_list(data) if anthropic else {"object": "list", "data": data}
        await respond_json(call, send, orjson.dumps(body))
    except GatewayError as exc:
        await send_error(send, exc, call.response_headers(),
                         orjson.dumps(anthropic_error(exc)) if anthropic else None)


async def retrieve_model(gw: Gateway, request: Request, send: Send) -> None:
    """``GET /v1/models/{id}`` (the SDKs' ``models.retrieve``): one entry of the list.

    The id is the rest of the path, so qualified names with a slash (``up/gpt-4o``,
    sent percent-encoded by the SDKs and decoded by the server) work. A model this key
    may not use is a 404, as OpenAI answers for models of other organisations.
    """
    call = Call.start(request, "/v1/models/{id}")
    anthropic = is_anthropic_client(request)
    try:
        await authenticate(gw, call)
        model_id = request.path.split("/models/", 1)[1].rstrip("/")
        await gw.model_lists.first_fetch([p.name for p in gw.registry])
        found = next((m for m in visible_models(gw, call, None) if m["id"] == model_id), None)
        if found is None:
            raise NotFound(f"The model '{model_id}' does not exist or you do not have "
                           "access to it.", param="model", code="model_not_found")
        body = anthropic_model(found) if anthropic else found
        await respond_json(call, send, orjson.dumps(body))
    except GatewayError as exc:
        await send_error(send, exc, call.response_headers(),
                         orjson.dumps(anthropic_error(exc)) if anthropic else None)


def visible_models(gw: Gateway, call: Call, only: str | None) -> list[dict[str, Any]]:
    """Model objects this (authenticated) key may call: routes, aliases, provider lists."""
    assert call.key is not None
    allowed = call.key.allowed_models
    data: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(model_id: str, owner: str) -> None:
        if model_id in seen:
            return
        try:
            target = gw.resolver.resolve(model_id)
        except InvalidRequest:
            return
        if only is not None and target.provider.name != only:
            return
        if not _allowed(allowed, model_id, target):
            return
        seen.add(model_id)
        data.append(
            {"id": model_id, "object": "model", "created": gw.started_at, "owned_by": owner}
        )

    for name in gw.resolver.route_names:
        add(name, "llmrelay")
    for alias in gw.resolver.aliases:
        add(alias, "llmrelay")
    for provider in gw.registry:
        for model in provider.models():
            add(f"{provider.name}/{model}", provider.name)
    return data
