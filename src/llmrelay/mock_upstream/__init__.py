"""Mock upstream LLM provider: a real loopback HTTP server speaking the providers' formats.

Used by integration tests (in-process via :class:`MockUpstream`), by demos and
benchmarks (``llmrelay mock-upstream --port P`` -> :func:`serve_forever`), and
scriptable per request with :class:`Behaviour` (queue or ``x-mock-behaviour``
header) to exercise the gateway's retry, fallback and streaming paths.

Importing this package starts aiohttp's server machinery; nothing on the serve path
imports it (the answers it sends are built by :mod:`llmrelay.mock_answers`, which the
built-in ``mock`` provider uses directly), and ``llmrelay mock-upstream`` imports it
only when run.
"""

from .openai_routes import openai_routes
from .script import Behaviour, BehaviourError, RecordedRequest, RequestLog, Script
from .server import DEFAULT_PROVIDERS, MockUpstream, build_app, serve_forever
from .state import MockState, RouteFactory

__all__ = [
    "DEFAULT_PROVIDERS",
    "Behaviour",
    "BehaviourError",
    "MockState",
    "MockUpstream",
    "RecordedRequest",
    "RequestLog",
    "RouteFactory",
    "Script",
    "build_app",
    "openai_routes",
    "serve_forever",
]
