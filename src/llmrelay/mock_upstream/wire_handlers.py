"""What every wire format's mock routes share: the scripted prologue and JSON answers.

A mocked call first takes its :class:`~.script.Behaviour` (queued, or from the
``x-mock-behaviour`` header), which may delay it, drop the socket or fail it as
scripted; then the provider's authentication; then its JSON body. The order matters:
a script lines up with request order only if every call consumes its behaviour before
anything else can end it. :class:`WireHandlers` runs that prologue once for all
formats; each format words the failures the way its provider does.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from multidict import CIMultiDict

from .script import Behaviour, BehaviourError, apply_preamble, closed_response, send_raw_body

if TYPE_CHECKING:
    from .state import MockState

#: Checks a request's credentials (given the raw body, which AWS signs too): None to
#: let it through, else the provider's refusal.
Authenticator = Callable[[web.Request, bytes], web.Response | None]
#: A route's work once the prologue let the request through.
BodyHandler = Callable[[web.Request, Behaviour, dict[str, Any]], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(
    obj: object,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    content_type: str = "application/json",
) -> web.Response:
    """orjson-encoded response; extra headers may override the content type."""
    all_headers: CIMultiDict[str] = CIMultiDict({"Content-Type": content_type})
    for name, value in (headers or {}).items():
        all_headers[name] = value  # case-insensitive replace
    return web.Response(body=orjson.dumps(obj), status=status, headers=all_headers)


class WireHandlers(abc.ABC):
    """Base of one wire format's route handlers."""

    #: The provider's words for a body that is not JSON, and for JSON that is no object.
    bad_json = "We could not parse the JSON body of your request."
    not_an_object = "The request body must be a JSON object."

    def __init__(self, state: MockState) -> None:
        self._state = state

    @abc.abstractmethod
    def _error(
        self, status: int, behaviour: Behaviour | None = None, *, message: str | None = None
    ) -> web.Response:
        """The provider's error answer: scripted by ``behaviour``, or saying ``message``."""

    def _invalid_behaviour(self, exc: BehaviourError) -> web.Response:
        return self._error(400, message=str(exc))

    def _authenticate(self, request: web.Request, body: bytes) -> web.Response | None:
        return None

    async def _begin(
        self,
        request: web.Request,
        *,
        use_queue: bool = True,
        authenticate: Authenticator | None = None,
    ) -> tuple[Behaviour, dict[str, Any]] | web.StreamResponse:
        """The prologue: the behaviour and the JSON body (``{}`` for a GET), or the
        response to send when the request ends here (scripted error, dropped socket,
        refused credentials, bad body)."""
        try:
            behaviour = self._state.script.next_for(request.headers, use_queue=use_queue)
        except BehaviourError as exc:
            return self._invalid_behaviour(exc)
        if self._state.model_behaviours and behaviour == Behaviour():
            behaviour = await self._model_behaviour(request) or behaviour
        if await apply_preamble(request, behaviour):
            return closed_response()
        if behaviour.is_error:
            return self._error(behaviour.status, behaviour)
        raw = await request.read()
        denied = (authenticate or self._authenticate)(request, raw)
        if denied is not None:
            return denied
        if request.method == "GET":
            return behaviour, {}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self._error(400, message=self.bad_json)
        if not isinstance(body, dict):
            return self._error(400, message=self.not_an_object)
        if behaviour.raw_body is not None:
            streamed = body.get("stream") is True or "stream" in request.path.lower()
            return await send_raw_body(
                request, behaviour, "text/event-stream" if streamed else "application/json"
            )
        return behaviour, body

    async def _model_behaviour(self, request: web.Request) -> Behaviour | None:
        """The behaviour :attr:`MockState.model_behaviours` gives this request's model."""
        model: object = request.match_info.get("model") or (
            request.match_info.get("model_action", "").partition(":")[0] or None
        )
        if model is None and request.method == "POST":
            try:
                body = orjson.loads(await request.read())  # aiohttp keeps the body for later
            except orjson.JSONDecodeError:
                return None
            model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str):
            return None
        for pattern, behaviour in self._state.model_behaviours:
            if fnmatchcase(model, pattern):
                return behaviour
        return None

    def scripted(
        self,
        handler: BodyHandler,
        *,
        use_queue: bool = True,
        authenticate: Authenticator | None = None,
    ) -> Handler:
        """``handler`` behind the prologue: it runs only for requests that got through."""

        async def run(request: web.Request) -> web.StreamResponse:
            begun = await self._begin(request, use_queue=use_queue, authenticate=authenticate)
            if isinstance(begun, web.StreamResponse):
                return begun
            return await handler(request, *begun)

        return run
