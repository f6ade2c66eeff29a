"""The event loops unit tests run on.

``llmrelay serve`` runs on uvloop, whose transports, timers and ``call_at`` rounding are
not asyncio's; code that drives sockets itself (the upstream client) is tested on both. A
module asks for that with::

    pytestmark = pytest.mark.asyncio(loop_scope="module", loop_factories=["asyncio", "uvloop"])

and its async tests run once per loop (ids ``[asyncio]``, ``[uvloop]``), on a loop of their
own per module. Every other unit test keeps asyncio's default loop, the session's one.
(pytest-asyncio's ``pytest_asyncio_loop_factories`` hook; overriding the
``event_loop_policy`` fixture instead is deprecated, an error under
``filterwarnings = error``.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest
import uvloop

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

_DEFAULT: dict[str, LoopFactory] = {"asyncio": asyncio.new_event_loop}
_BOTH: dict[str, LoopFactory] = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, LoopFactory]:
    marker = item.get_closest_marker("asyncio")
    if marker is not None and "loop_factories" in marker.kwargs:
        return _BOTH
    return _DEFAULT
