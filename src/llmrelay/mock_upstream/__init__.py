"""Mock upstream LLM provider: a real loopback HTTP server speaking OpenAI's wire format.

Used by integration tests (in-process via :class:`MockUpstream`), by demos and
benchmarks (``llmrelay mock-upstream --port P`` -> :func:`serve_forever`), and
scriptable per request with :class:`Behaviour` (queue or ``x-mock-behaviour``
header) to exercise the gateway's retry, fallback and streaming paths.
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
