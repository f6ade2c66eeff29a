"""``GET /v1/models`` and ``GET /v1/models/{id}``: what a key may call.

Answered in OpenAI's list shape, or Anthropic's when the client is the Anthropic SDK
(it sends ``anthropic-version``); errors likewise in the client's shape.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.api.anthropic_models import anthropic_model, anthropic_model_list, is_anthropic_client
from llmrelay.asgi import Request, Send, send_bytes, send_error
from llmrelay.context import Call
from llmrelay.errors import GatewayError, InvalidRequest, NotFound
from llmrelay.pipeline import authenticate
from llmrelay.providers.anthropic_convert import anthropic_error
from llmrelay.routing.resolve import Target

if TYPE_CHECKING:
    from llmrelay.services import Services


def _allowed(allowed: tuple[str, ...] | None, name: str, target: Target | None) -> bool:
    if allowed is None:
        return True
    names = [name] + ([target.qualified] if target else [])
    return any(fnmatchcase(n, p) for p in allowed for n in names)


async def list_models(services: Services, request: Request, send: Send) -> None:
    """``GET /v1/models``: what this key may call; ``?provider=`` (or ``?gateway=``) filters.

    Provider lists come from memory (:mod:`llmrelay.providers.model_lists`);
    ``?refresh=true`` asks the providers again first. The Anthropic SDK (it sends
    ``anthropic-version``) gets Anthropic's list shape, in one page.
    """
    call = Call.start(request, "/v1/models")
    anthropic = is_anthropic_client(request)
    try:
        await authenticate(services, call)
        query = request.query
        only = query.get("provider") or query.get("gateway")
        if only is not None and services.registry.get(only) is None:
            raise NotFound(f"unknown provider: {only}", param="provider")
        names = [only] if only is not None else [p.name for p in services.registry]
        if query.get("refresh", "").lower() in ("1", "true", "yes"):
            await services.model_lists.refresh(names)
        else:
            await services.model_lists.first_fetch(names)
        data = visible_models(services, call, only)
        body = anthropic_model_list(data) if anthropic else {"object": "list", "data": data}
        await send_bytes(send, 200, orjson.dumps(body), call.response_headers())
    except GatewayError as exc:
        await send_error(
            send,
            exc,
            call.response_headers(),
            orjson.dumps(anthropic_error(exc)) if anthropic else None,
        )


async def retrieve_model(services: Services, request: Request, send: Send) -> None:
    """``GET /v1/models/{id}`` (the SDKs' ``models.retrieve``): one entry of the list.

    The id is the rest of the path, so qualified names with a slash (``up/gpt-4o``,
    sent percent-encoded by the SDKs and decoded by the server) work. A model this key
    may not use is a 404, as OpenAI answers for models of other organisations.
    """
    call = Call.start(request, "/v1/models/{id}")
    anthropic = is_anthropic_client(request)
    try:
        await authenticate(services, call)
        model_id = request.path.split("/models/", 1)[1].rstrip("/")
        await services.model_lists.first_fetch([p.name for p in services.registry])
        found = next((m for m in visible_models(services, call, None) if m["id"] == model_id), None)
        if found is None:
            raise NotFound(
                f"The model '{model_id}' does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )
        body = anthropic_model(found) if anthropic else found
        await send_bytes(send, 200, orjson.dumps(body), call.response_headers())
    except GatewayError as exc:
        await send_error(
            send,
            exc,
            call.response_headers(),
            orjson.dumps(anthropic_error(exc)) if anthropic else None,
        )


def visible_models(services: Services, call: Call, only: str | None) -> list[dict[str, Any]]:
    """Model objects this (authenticated) key may call: routes, aliases, provider lists."""
    assert call.key is not None
    allowed = call.key.allowed_models
    data: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(model_id: str, owner: str) -> None:
        if model_id in seen:
            return
        try:
            target = services.resolver.resolve(model_id)
        except InvalidRequest:
            return
        if only is not None and target.provider.name != only:
            return
        if not _allowed(allowed, model_id, target):
            return
        seen.add(model_id)
        data.append(
            {"id": model_id, "object": "model", "created": services.started_at, "owned_by": owner}
        )

    for name in services.resolver.route_names:
        add(name, "llmrelay")
    for alias in services.resolver.aliases:
        add(alias, "llmrelay")
    for provider in services.registry:
        for model in provider.models():
            add(f"{provider.name}/{model}", provider.name)
    return data
