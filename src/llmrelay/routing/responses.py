"""Upstream responses the router has already started reading, handed on intact.

The router may only give up on a target while nothing has reached the client, so it
reads a little ahead inside each attempt: a non-streaming body in full, a stream's
first chunk. These wrappers replay what was read, so the relay code after the router
cannot tell them from a fresh response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable

from llmrelay.providers.base import ChatResult
from llmrelay.upstream import UpstreamResponse


class BufferedResponse:
    """A non-streaming answer read in full during the attempt.

    ``answer`` is the adapter's reading of it, when the caller asked the router to
    check the answer inside the attempt (so a 2xx that is no answer can fall back).
    """

    __slots__ = ("_body", "answer", "headers", "status")

    def __init__(
        self, status: int, headers: dict[str, str], body: bytes, answer: ChatResult | None = None
    ) -> None:
        self.status = status
        self.headers = headers
        self._body = body
        self.answer = answer

    async def read(self) -> bytes:
        return self._body

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._body:
            yield self._body

    def close(self) -> None:
        self._body = b""


class PrefetchedStream:
    """A stream whose first chunk arrived during the attempt; replays it, then the rest."""

    __slots__ = ("_first", "_resp", "_rest", "headers", "status")

    def __init__(self, resp: UpstreamResponse, first: bytes, rest: AsyncIterator[bytes]) -> None:
        self._resp = resp
        self._first = first
        self._rest = rest
        self.status = resp.status
        self.headers = resp.headers

    async def read(self) -> bytes:
        parts = [c async for c in self.chunks()]
        return b"".join(parts)

    # Its own iterator, not an async generator over the rest: it is the one layer over
    # every read of a stream (a generator's send and value wrapping per read).
    def chunks(self) -> PrefetchedStream:
        return self

    def __aiter__(self) -> PrefetchedStream:
        return self

    def __anext__(self) -> Awaitable[bytes]:
        first = self._first
        if first:
            self._first = b""
            return _ready(first)
        return self._rest.__anext__()

    def close(self) -> None:
        self._resp.close()


async def _ready(value: bytes) -> bytes:
    return value
