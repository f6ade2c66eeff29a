"""What a running mock holds: its script, its request log and its configuration.

:class:`MockState` is passed explicitly to every route factory; there is no
module-level state, so several mocks can run side by side in one process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from llmrelay.mock_answers import openai_format as oa

from .script import RequestLog, Script


@dataclass(slots=True)
class MockState:
    """Everything a running mock mutates or is configured with."""

    script: Script = field(default_factory=Script)
    log: RequestLog = field(default_factory=RequestLog)
    models: tuple[str, ...] = oa.DEFAULT_MODELS
    #: When set, OpenAI routes demand ``Authorization: Bearer <api_key>``.
    api_key: str | None = None


#: Builds one wire format's routes over the mock's state.
RouteFactory = Callable[[MockState], list[web.RouteDef]]
