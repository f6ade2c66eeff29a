"""One call to the gateway, as a client makes it: JSON in, JSON or SSE lines out.

Every probe call goes through :func:`call`, which owns the three things each tier would
otherwise repeat: the probe's headers (key, ``x-llmrelay-probe: 1``), the time budget,
and the single wait a 429 with ``retry-after`` earns when the wait fits in that budget.
aiohttp, not httpx: it is what the gateway itself depends on, so the probe adds nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from llmrelay.redaction import redact
from llmrelay.telemetry.interaction import PROBE_HEADER

#: The longest error text kept for the table and the history (a reason, not a dump).
DETAIL_CHARS = 160


@dataclass(slots=True)
class Answer:
    """What came back: status, headers, the JSON body or the SSE data lines."""

    status: int
    headers: dict[str, str]
    body: Any = None
    events: list[Any] = field(default_factory=list)
    done: bool = False
    ttft_ms: float | None = None
    ms: float = 0.0
    #: Set when the stream broke off (connection cut, bad chunk) after it began.
    broken: str | None = None
    waited_s: float = 0.0

    def error(self) -> tuple[str | None, str]:
        """``(code, message)`` of an error body in OpenAI's or Anthropic's shape."""
        err = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(err, dict):
            code = err.get("code") or err.get("type")
            return (str(code) if code else None, str(err.get("message") or ""))
        return None, ""


def headers_for(key: str) -> dict[str, str]:
    """The probe's request headers; Anthropic's endpoint gets the key both ways."""
    return {"authorization": f"Bearer {key}", "x-api-key": key, PROBE_HEADER: "1"}


def short(text: str, key: str | None = None) -> str:
    """Error text fit for a table cell: secrets masked, one line, bounded."""
    if key:
        text = text.replace(key, "***")
    text = " ".join(redact(text).split())
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"


class Cooldown:
    """One provider's "not before" time, set by a 429's ``retry-after``.

    A 429 on one model usually means the provider's account is limited, not the model:
    the provider's other calls wait too instead of spending their own 429s.
    """

    def __init__(self) -> None:
        self._until = 0.0

    def note(self, seconds: float) -> None:
        self._until = max(self._until, time.monotonic() + seconds)

    def remaining(self) -> float:
        return max(0.0, self._until - time.monotonic())


class Client:
    """The probe's session against one gateway (per provider: :meth:`for_provider`)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base: str,
        key: str,
        cooldown: Cooldown | None = None,
    ) -> None:
        self._session = session
        self.base = base.rstrip("/")
        self.key = key
        self.cooldown = cooldown or Cooldown()

    def for_provider(self) -> Client:
        """The same session with a cool-down of its own, for one provider's calls."""
        return Client(self._session, self.base, self.key, Cooldown())

    async def get(self, path: str, timeout: float) -> Answer:
        return await self._with_retry_after(lambda t: self._once("GET", path, None, t), timeout)

    async def post(self, path: str, body: dict[str, Any], timeout: float) -> Answer:
        stream = body.get("stream") is True
        return await self._with_retry_after(
            lambda t: self._once("POST", path, body, t, stream=stream), timeout
        )

    async def _with_retry_after(
        self, attempt: Callable[[float], Awaitable[Answer]], timeout: float
    ) -> Answer:
        """One try; after a 429 whose ``retry-after`` fits in what is left, one more.

        A cool-down another call of this provider started is waited first, when it fits
        in the budget (else the call goes now, and will likely meet its own 429).
        """
        start = time.perf_counter()
        pending = self.cooldown.remaining()
        if 0 < pending < timeout:
            await asyncio.sleep(pending)
        answer = await attempt(timeout - pending if pending < timeout else timeout)
        if answer.status != 429:
            return answer
        wait = _seconds(answer.headers.get("retry-after"))
        if wait is not None:
            self.cooldown.note(wait)
        left = timeout - (time.perf_counter() - start)
        if wait is None or wait >= left:
            return answer
        await asyncio.sleep(wait)
        again = await attempt(left - wait)
        again.waited_s = wait
        return again

    async def _once(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        timeout: float,
        *,
        stream: bool = False,
    ) -> Answer:
        start = time.perf_counter()
        async with asyncio.timeout(timeout):
            async with self._session.request(
                method,
                self.base + path,
                data=orjson.dumps(body) if body is not None else None,
                headers={**headers_for(self.key), "content-type": "application/json"},
            ) as resp:
                headers = {k.lower(): v for k, v in resp.headers.items()}
                if not stream or resp.status != 200:
                    raw = await resp.read()
                    answer = Answer(resp.status, headers, _json(raw))
                else:
                    answer = Answer(resp.status, headers)
                    await _read_stream(resp, answer, start)
        answer.ms = (time.perf_counter() - start) * 1000
        return answer


async def _read_stream(resp: aiohttp.ClientResponse, answer: Answer, start: float) -> None:
    """Collect the SSE ``data:`` payloads; note the first one's time and ``[DONE]``."""
    try:
        async for raw_line in resp.content:
            line = raw_line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if answer.ttft_ms is None:
                answer.ttft_ms = (time.perf_counter() - start) * 1000
            if data == b"[DONE]":
                answer.done = True
                continue
            answer.events.append(_json(data))
    except (aiohttp.ClientError, ValueError) as exc:
        answer.broken = type(exc).__name__


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None


def _seconds(value: str | None) -> float | None:
    """``retry-after`` in seconds (the HTTP-date form is not worth a probe's wait)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
