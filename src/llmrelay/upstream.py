"""The one I/O seam to providers: send an :class:`UpstreamCall`, get a response.

:class:`HttpTransport` sends every ``http://`` and ``https://`` call through the lean
httptools client of :mod:`llmrelay.upstream_h1` (a keep-alive pool per host, TLS verified
against the system store, no redirects, no decompression: bytes are relayed as they come;
a quarter to a third less CPU per call than aiohttp's client, bench/RESULTS.md). One
aiohttp session per event loop is kept for what that client does not do: a base URL with
credentials in it (``https://user:pass@host``, sent by aiohttp as basic auth), and, as
``aiohttp_for_https``, the old ``https://`` path for comparison (bench/instructions.py
``--client aiohttp``); that one lives in :mod:`llmrelay.upstream_aiohttp`, imported on
first use. Neither reads proxy settings from the environment (aiohttp's ``trust_env``
was never set), and neither keeps cookies between calls (one caller's cookies must not
ride on another's calls). Transport failures become :class:`UpstreamUnreachable` (502)
or :class:`UpstreamTimeout` (504), so nothing above this module ever sees a library's
exception, and their messages say what happened in plain words
(:func:`~llmrelay.upstream_h1.describe_os`,
:func:`~llmrelay.upstream_aiohttp.describe`): a client cannot act on
``ClientPayloadError: ... TransferEncodingError``, an operator can, so the library's
own text is kept in ``detail`` for the attempt record and the log only.

A non-streaming answer is read up to ``max_body_bytes`` (a declared
``content-length`` over it is refused before reading): past it the call fails with
:class:`UpstreamResponseTooLarge` instead of holding the whole answer in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from llmrelay.providers.base import UpstreamCall
from llmrelay.upstream_h1 import H1Client

if TYPE_CHECKING:
    from llmrelay.upstream_aiohttp import AiohttpClient


class UpstreamResponse(Protocol):
    status: int
    headers: dict[str, str]

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


class Transport(Protocol):
    async def send(
        self,
        call: UpstreamCall,
        *,
        provider: str,
        timeout: float,
        connect_timeout: float,
        stream: bool,
    ) -> UpstreamResponse: ...

    async def close(self) -> None: ...


#: Default cap of a non-streamed upstream answer (``max_upstream_body_bytes``).
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024


class HttpTransport:
    """The upstream client: the lean one, aiohttp where it cannot serve (see above).

    Create it inside the serving event loop.
    """

    def __init__(self, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.max_body_bytes = max_body_bytes
        #: ``http(s)://`` upstreams go through the lean httptools client (a fraction of
        #: aiohttp's cost per call, bench/RESULTS.md); aiohttp only for what it cannot do.
        self._h1 = H1Client(max_body_bytes)
        self._aiohttp: AiohttpClient | None = None
        #: ``https://`` on aiohttp as before the lean client had TLS (the bench compares).
        self.aiohttp_for_https = False
        self._via_h1: dict[str, bool] = {}

    def send(
        self,
        call: UpstreamCall,
        *,
        provider: str,
        timeout: float,
        connect_timeout: float,
        stream: bool,
    ) -> Coroutine[Any, Any, UpstreamResponse]:
        # Not ``async``: the chosen client's coroutine is handed to the caller to await,
        # one coroutine per call fewer than awaiting it here.
        via_h1 = self._via_h1.get(call.url)
        if via_h1 is None:
            via_h1 = H1Client.serves(call.url)
            if len(self._via_h1) < 10_000:
                self._via_h1[call.url] = via_h1
        if via_h1 and not (self.aiohttp_for_https and call.url.startswith("https://")):
            self._h1.max_body_bytes = self.max_body_bytes
            return self._h1.send(
                call, provider=provider, timeout=timeout, connect_timeout=connect_timeout
            )
        return self._send_aiohttp(call, provider, timeout, connect_timeout, stream)

    async def _send_aiohttp(
        self,
        call: UpstreamCall,
        provider: str,
        timeout: float,
        connect_timeout: float,
        stream: bool,
    ) -> UpstreamResponse:
        if self._aiohttp is None:
            # Imported here, not at the top: aiohttp's client is ~0.3 s of import time
            # that only these rare calls need (STYLE rule 10).
            from llmrelay.upstream_aiohttp import AiohttpClient

            self._aiohttp = AiohttpClient(self.max_body_bytes)
        self._aiohttp.max_body_bytes = self.max_body_bytes
        return await self._aiohttp.send(
            call, provider=provider, timeout=timeout, connect_timeout=connect_timeout, stream=stream
        )

    async def close(self) -> None:
        self._h1.close()
        if self._aiohttp is not None:
            await self._aiohttp.close()
            self._aiohttp = None


#: Where providers put their own id of a request, first match wins: OpenAI and most
#: compatible hosts ``x-request-id``; Anthropic ``request-id``; Bedrock
#: ``x-amzn-requestid``; Azure OpenAI ``apim-request-id``; Google ``x-goog-request-id``.
UPSTREAM_REQUEST_ID_HEADERS = (
    "x-request-id",
    "request-id",
    "x-amzn-requestid",
    "apim-request-id",
    "x-goog-request-id",
)


def upstream_request_id(headers: dict[str, str]) -> str | None:
    """The provider's request id from its (lower-cased) response headers, if it sent one.

    Passed on so an operator can quote it to the provider's support; a value that could
    not be a header (too long, control characters) is dropped rather than relayed.
    """
    for name in UPSTREAM_REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value and len(value) <= 200 and value.isprintable() and value.isascii():
            return value
    return None
