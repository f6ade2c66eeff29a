"""Drive an ASGI application's lifespan protocol by hand.

The in-process tier depends only on the ASGI interface of ``create_app``'s result (the
application's internals are free to change): start-up and shutdown are the
``lifespan.startup`` / ``lifespan.shutdown`` messages a server would send.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


class LifespanFailed(RuntimeError):
    """The application answered ``lifespan.startup.failed`` (or returned early)."""


@asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run ``app``'s start-up on entry and its shutdown on exit, like a server would."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()

    async def send(message: Message) -> None:
        await outbox.put(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, send))

    async def reply(expected: str) -> None:
        getter = asyncio.create_task(outbox.get())
        done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
        if getter not in done:
            getter.cancel()
            task.result()  # re-raises the app's exception, if any
            raise LifespanFailed(f"the app returned before sending {expected}")
        message = getter.result()
        if message["type"] != expected:
            raise LifespanFailed(f"{message['type']}: {message.get('message', '')}")

    await inbox.put({"type": "lifespan.startup"})
    await reply("lifespan.startup.complete")
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await reply("lifespan.shutdown.complete")
        await task
