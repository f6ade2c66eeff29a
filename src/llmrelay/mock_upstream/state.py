"""What a running mock holds: its script, its request log and its configuration.

:class:`MockState` is passed explicitly to every route factory; there is no
module-level state, so several mocks can run side by side in one process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from llmrelay.mock_answers import openai_format as oa

from .script import Behaviour, RequestLog, Script


@dataclass(slots=True)
class MockState:
    """Everything a running mock mutates or is configured with."""

    script: Script = field(default_factory=Script)
    log: RequestLog = field(default_factory=RequestLog)
    models: tuple[str, ...] = oa.DEFAULT_MODELS
    #: When set, OpenAI routes demand ``Authorization: Bearer <api_key>``.
    api_key: str | None = None
    #: Failure injection by model name: ``(glob pattern, behaviour)`` pairs, the first
    #: whose pattern matches the request's model (body ``model``, or the model in the
    #: path) answering a request that brings no header and finds the queue empty. So
    #: one mock can serve models that work beside models that fail, stall or break their
    #: stream, whatever order the calls come in (what ``llmrelay probe`` is tested on).
    model_behaviours: tuple[tuple[str, Behaviour], ...] = ()


#: Builds one wire format's routes over the mock's state.
RouteFactory = Callable[[MockState], list[web.RouteDef]]
