"""The one error model: every instance answers status, wire type, code and the two verdicts.

The wire bodies are spelled out byte for byte: clients (the OpenAI and Anthropic SDKs)
pick their exception classes from them, so a change here is a change for every client.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import llmrelay.errors as errors
from llmrelay.errors import (
    AuthenticationError,
    BudgetExceeded,
    CapabilityMissing,
    CircuitOpen,
    DeadlineExceeded,
    GatewayError,
    InvalidRequest,
    RateLimited,
    RequestTimeout,
    ServiceUnavailable,
    UnsupportedParameter,
    UpstreamAuthenticationFailed,
    UpstreamError,
    UpstreamResponseTooLarge,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from llmrelay.providers.anthropic_convert import anthropic_error

SRC = Path(errors.__file__).parent


def all_classes() -> list[type[GatewayError]]:
    found: list[type[GatewayError]] = []
    todo: list[type[GatewayError]] = [GatewayError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(c for c in cls.__subclasses__() if c.__module__ == errors.__name__)
    return found


def test_the_docstring_draws_every_class() -> None:
    doc = errors.__doc__ or ""
    missing = [c.__name__ for c in all_classes() if not re.search(rf"[─ ]{c.__name__}\s", doc)]
    assert not missing, f"not in the tree of errors.py's docstring: {missing}"


def test_every_public_name_has_a_user() -> None:
    """No dead helpers: each public name of errors.py is used by another module."""
    tree = ast.parse((SRC / "errors.py").read_text())
    names = [n.name for n in tree.body if isinstance(n, ast.ClassDef | ast.FunctionDef)]
    names += [
        t.id
        for n in tree.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    ]
    public = [n for n in names if not n.startswith("_")]
    others = "\n".join(
        p.read_text() for p in SRC.rglob("*.py") if p.name != "errors.py" or p.parent != SRC
    )
    unused = [n for n in public if not re.search(rf"\b{n}\b", others)]
    assert not unused, f"public names of errors.py nobody imports: {unused}"


@pytest.mark.parametrize(
    "exc, body",
    [
        (
            AuthenticationError("bad key"),
            b'{"error":{"message":"bad key","type":"invalid_request_error","param":null,'
            b'"code":"invalid_api_key"}}',
        ),
        (
            BudgetExceeded("spent"),
            b'{"error":{"message":"spent","type":"insufficient_quota","param":null,'
            b'"code":"budget_exceeded"}}',
        ),
        (
            InvalidRequest("no", param="x", code="c"),
            b'{"error":{"message":"no","type":"invalid_request_error","param":"x","code":"c"}}',
        ),
        (
            UpstreamError("slow down", status=529, error_type="overloaded_error"),
            b'{"error":{"message":"slow down","type":"overloaded_error","param":null,"code":null}}',
        ),
        (
            UpstreamError("gone", status=404),
            b'{"error":{"message":"gone","type":"not_found_error","param":null,"code":null}}',
        ),
        (
            UpstreamError("oops", status=503),
            b'{"error":{"message":"oops","type":"api_error","param":null,"code":null}}',
        ),
        (
            CapabilityMissing("claude", "embeddings"),
            b'{"error":{"message":"provider claude cannot serve embeddings",'
            b'"type":"invalid_request_error","param":"model","code":"unsupported_endpoint"}}',
        ),
        (
            DeadlineExceeded("late"),
            b'{"error":{"message":"late","type":"timeout","param":null,"code":"deadline_exceeded"}}',
        ),
    ],
)
def test_openai_wire_bodies(exc: GatewayError, body: bytes) -> None:
    assert exc.body() == body
    assert exc.wire_type == exc.to_dict()["error"]["type"]  # type: ignore[index]


def test_status_is_the_instance_s_own() -> None:
    """An upstream error's status is the provider's, read through the same attribute."""
    assert UpstreamError("x", status=418).status == 418
    assert UpstreamUnreachable("x").status == 502 and UpstreamTimeout("x").status == 504
    assert CapabilityMissing("p", "embeddings").status == 400
    assert InvalidRequest("x").status == 400 and CircuitOpen("x").status == 503
    assert UpstreamError("x", status=529, error_type="overloaded_error").wire_type == (
        "overloaded_error"
    )


@pytest.mark.parametrize(
    "status, kind, code, retry",
    [
        (408, None, None, True),
        (409, None, None, True),
        (429, None, None, True),
        (500, None, None, True),
        (503, None, None, True),
        (529, "overloaded_error", None, True),
        (400, None, None, False),
        (404, None, None, False),
        (422, None, None, False),
        (429, "insufficient_quota", None, False),
        (429, None, "insufficient_quota", False),
        (403, None, "billing_hard_limit_reached", False),
    ],
)
def test_upstream_verdicts(status: int, kind: str | None, code: str | None, retry: bool) -> None:
    exc = UpstreamError("x", status=status, error_type=kind, code=code)
    assert exc.retry_may_help is retry
    assert exc.fallback_may_help  # one target's failure: on_errors decides


def test_class_verdicts() -> None:
    # A target that cannot serve the call, or refuses our credentials, or answers too
    # much: asking it again is pointless, another target may do.
    for exc in (
        CapabilityMissing("p", "embeddings"),
        UpstreamAuthenticationFailed("p", "no"),
        UpstreamResponseTooLarge("p", "an answer", 1 << 20, "max_response_bytes"),
        DeadlineExceeded("late"),
        CircuitOpen("cooling"),
    ):
        assert (exc.retry_may_help, exc.fallback_may_help) == (False, True), exc
    # llmrelay's own refusals are about the request or the gateway: no fallback helps.
    for gw_exc in (
        InvalidRequest("x"),
        AuthenticationError("x"),
        BudgetExceeded("x"),
        UnsupportedParameter("top_k", "p"),
    ):
        assert (gw_exc.retry_may_help, gw_exc.fallback_may_help) == (False, False), gw_exc
    for later in (RateLimited("x"), ServiceUnavailable("x"), RequestTimeout("x")):
        assert (later.retry_may_help, later.fallback_may_help) == (True, False), later


@pytest.mark.parametrize(
    "exc, kind",
    [
        # Our own refusals get the Anthropic type of their status, not their OpenAI type.
        (AuthenticationError("x"), "authentication_error"),
        (BudgetExceeded("x"), "billing_error"),
        (RateLimited("x"), "rate_limit_error"),
        (ServiceUnavailable("x"), "overloaded_error"),
        (InvalidRequest("x"), "invalid_request_error"),
        # An upstream's own Anthropic type is kept; another provider's type is mapped.
        (UpstreamError("x", status=529, error_type="overloaded_error"), "overloaded_error"),
        (UpstreamError("x", status=500, error_type="server_error"), "api_error"),
        (
            UpstreamError("x", status=400, error_type="invalid_request_error"),
            "invalid_request_error",
        ),
        (UpstreamTimeout("x"), "timeout_error"),
        (CapabilityMissing("p", "embeddings"), "invalid_request_error"),
    ],
)
def test_anthropic_error_types(exc: GatewayError, kind: str) -> None:
    assert anthropic_error(exc) == {
        "type": "error",
        "error": {"type": kind, "message": exc.message},
    }
