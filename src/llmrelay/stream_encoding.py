"""Re-encoding OpenAI chunk streams for clients that speak another format.

Inside llmrelay every provider stream is translated to OpenAI ``chat.completion.chunk``
events (:class:`~llmrelay.providers.base.StreamTranslator`). The ``/v1/messages`` and
``/v1/responses`` endpoints answer in Anthropic's and the Responses API's own event
formats, so :func:`llmrelay.stream_relay.relay_stream` passes each translated event through
an :class:`OutputEncoder` — a state machine of the client's format, with its own error
event. Usage, finish reason and completion state still come from the translator, so
billing and logging read the upstream stream whatever the client sees. The plain
OpenAI path has no encoder and pays nothing for this.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from llmrelay.errors import GatewayError


class OutputEncoder(Protocol):
    def feed(self, event: bytes) -> list[bytes]:
        """One OpenAI SSE event (a chunk, ``[DONE]`` or a comment) → client events."""
        ...

    def error_event(self, exc: GatewayError) -> bytes:
        """The client format's event for a stream that ends in an error."""
        ...


def encode_all(encoder: OutputEncoder, events: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for event in events:
        out.extend(encoder.feed(event))
    return out


class PassthroughEncoder:
    """A stream passed through in the client's own format: events go out unchanged;
    only the gateway's own error event is written (by ``error_event``)."""

    __slots__ = ("_error_event",)

    def __init__(self, error_event: Callable[[GatewayError], bytes]) -> None:
        self._error_event = error_event

    def feed(self, event: bytes) -> list[bytes]:
        return [event]

    def error_event(self, exc: GatewayError) -> bytes:
        return self._error_event(exc)
