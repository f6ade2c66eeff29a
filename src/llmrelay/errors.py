"""The one error hierarchy of llmrelay.

Every failure a client can see is a :class:`GatewayError`, and every instance answers
the same five questions, so the HTTP layer, the router, the endpoint codecs and the
logger never guess or read private attributes:

``status``
    the HTTP status it is answered with (an upstream error carries the provider's own);
``wire_type``
    the OpenAI error ``type`` it is sent with (an upstream error keeps the provider's
    own type, ``overloaded_error``, ``server_error`` ...);
``code``
    the OpenAI error ``code`` (``None`` when the provider gave none);
``retry_may_help``
    asking the same target (for llmrelay's own refusals: llmrelay) again, after any
    ``retry-after`` it carries, may succeed; it decides ``x-should-retry``;
``fallback_may_help``
    another target of the route may answer the same call; a fallback moves on only for
    such errors, and only when the target's ``on_errors`` admits them.

The tree, with the status each class is answered with and its two verdicts
(``R`` retry may help, ``F`` fallback may help)::

    GatewayError                     500       base; never raised as itself
    ├── InternalError                500       a bug of ours (logged with its trace)
    ├── InvalidRequest               400       bad JSON, missing field, bad route config
    │   ├── UnknownModel             400       no route or alias knows the model
    │   └── UnsupportedParameter     400       the provider cannot honour a parameter
    ├── AuthenticationError          401       missing/invalid key
    ├── BudgetExceeded               402       key or team spent its budget
    ├── PermissionDenied             403       key may not use this model / endpoint
    ├── NotFound                     404       no such route, provider or model
    ├── MethodNotAllowed             405       the path exists for another method
    ├── Conflict                     409       admin: a name taken, an idempotency key reused
    ├── RequestTimeout               408  R    request head or body too slow to arrive
    ├── PayloadTooLarge              413       body over ``max_body_bytes``
    ├── RateLimited                  429  R    a limit of ours was hit (after retry-after)
    ├── RequestHeadersTooLarge       431       head over ``max_header_bytes`` / ``max_headers``
    ├── ClientClosedRequest          499       the client left first (recorded, never sent)
    ├── ServiceUnavailable           503  R    draining, dependency down, connection limit
    │   └── CircuitOpen              503    F  every target of the route is cooling down
    └── UpstreamError                (own)  RF the provider answered with an error status
        │                                      (R for 408/409/429/5xx unless permanent
        │                                      or the account is out of quota)
        ├── UpstreamUnreachable      502  RF   connection refused/reset, DNS, TLS, a cut answer
        ├── UpstreamAuthenticationFailed 502 F the provider refused llmrelay's credentials
        ├── UpstreamInvalidResponse  502  RF   a 2xx whose body is not the provider's answer
        ├── UpstreamResponseTooLarge 502    F  an answer / stream event over the size cap
        ├── CapabilityMissing        400    F  the target's provider family cannot serve
        │                                      this call (an attempt outcome, no upstream call)
        └── UpstreamTimeout          504  RF   provider took longer than its timeout
            └── DeadlineExceeded     504    F  the route's total deadline ran out

llmrelay's own refusals are about the request or the gateway, never about one target,
so no fallback can help them; every :class:`UpstreamError` is about one target, so a
fallback may (whether it does is the route config's ``on_errors``).
"""

from __future__ import annotations

from typing import ClassVar

import orjson

#: Upstream statuses for which asking the same target again may succeed.
_RETRY_STATUSES = frozenset({408, 409, 429})

#: Error codes/types that say "your account is out of credit": no retry of the same
#: target can fix them (a fallback to another provider can).
_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "quota_exceeded"})


class GatewayError(Exception):
    """Base of every error that leaves llmrelay in the OpenAI error shape.

    The class attributes are the defaults of each class; an instance may carry its own
    (an upstream error's status and type are the provider's).
    """

    status: int = 500
    wire_type: str = "api_error"
    default_code: ClassVar[str | None] = None
    retry_may_help: bool = False
    fallback_may_help: bool = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = headers or {}

    def to_dict(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.wire_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def body(self) -> bytes:
        return orjson.dumps(self.to_dict())


class InternalError(GatewayError):
    status = 500
    wire_type = "api_error"
    default_code = "internal_error"


class InvalidRequest(GatewayError):
    status = 400
    wire_type = "invalid_request_error"


class UnknownModel(InvalidRequest):
    default_code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(f"unknown model: {model}", param="model")


class UnsupportedParameter(InvalidRequest):
    """The target provider cannot honour a request parameter (and dropping is off).

    Not a reason to fall back: the client asked for the parameter explicitly, and an
    answer from another provider would hide that it was not honoured. The operator's
    lever is ``drop_params``.
    """

    default_code = "unsupported_parameter"

    def __init__(self, param: str, provider: str, hint: str = "") -> None:
        super().__init__(
            f"parameter '{param}' is not supported by provider {provider}"
            f"{'; ' + hint if hint else ''}; remove it, or set drop_params: true on the "
            "provider to drop unsupported parameters",
            param=param,
        )


class AuthenticationError(GatewayError):
    status = 401
    wire_type = "invalid_request_error"
    default_code = "invalid_api_key"


class BudgetExceeded(GatewayError):
    status = 402
    wire_type = "insufficient_quota"
    default_code = "budget_exceeded"


class PermissionDenied(GatewayError):
    status = 403
    wire_type = "permission_error"
    default_code = "model_not_allowed"


class NotFound(GatewayError):
    status = 404
    wire_type = "invalid_request_error"
    default_code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    wire_type = "invalid_request_error"
    default_code = "method_not_allowed"


class Conflict(GatewayError):
    """The change clashes with what is stored (a name taken, an idempotency key reused
    with another body)."""

    status = 409
    wire_type = "invalid_request_error"
    default_code = "conflict"


class PayloadTooLarge(GatewayError):
    status = 413
    wire_type = "invalid_request_error"
    default_code = "request_too_large"


class RequestTimeout(GatewayError):
    """The request head or body did not arrive in time (``header_timeout``,
    ``body_timeout``); on a better connection the same request may get through."""

    status = 408
    wire_type = "invalid_request_error"
    default_code = "request_timeout"
    retry_may_help = True


class RequestHeadersTooLarge(GatewayError):
    """The request line and headers exceed ``max_header_bytes`` or ``max_headers``."""

    status = 431
    wire_type = "invalid_request_error"
    default_code = "request_headers_too_large"


class ClientClosedRequest(GatewayError):
    """The client hung up before its answer was complete (nginx's 499).

    Nobody receives this error; it is what the call's row records, so an interrupted
    call is told apart from one that was answered.
    """

    status = 499
    wire_type = "client_closed_request"
    default_code = "client_closed_request"


class RateLimited(GatewayError):
    """A rate limit of llmrelay's own (a key's or team's) was hit; once the window
    named by ``retry-after`` has passed, the same request may be admitted."""

    status = 429
    wire_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"
    retry_may_help = True


class ServiceUnavailable(GatewayError):
    """llmrelay cannot take the call now (draining, a dependency down, at its
    connection limit); another instance, or this one a moment later, may."""

    status = 503
    wire_type = "api_error"
    default_code = "service_unavailable"
    retry_may_help = True


class CircuitOpen(ServiceUnavailable):
    """Every target the route could use is skipped by its circuit breaker right now.

    Asking again before the ``retry-after`` it carries is pointless (the same targets
    are still cooling down), but a route with another, healthy target can use it.
    """

    default_code = "circuit_open"
    retry_may_help = False
    fallback_may_help = True


class UpstreamError(GatewayError):
    """The provider answered with an error; its status, type and message are passed on.

    ``retry_may_help`` for 408, 409, 429 and 5xx, unless the class is :attr:`permanent`
    or the provider says the account is out of quota. ``fallback_may_help`` always: the
    failure is one target's, and the route config's ``on_errors`` decides.
    """

    #: Asking the same target again cannot help (its credentials are refused, its
    #: answer is too big): no retry of that target, and ``x-should-retry: false``. A
    #: fallback to another target still may.
    permanent: ClassVar[bool] = False
    fallback_may_help = True

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error_type: str | None = None,
        param: str | None = None,
        code: str | int | None = None,
        headers: dict[str, str] | None = None,
        provider: str | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code, headers=headers)
        self.status = status
        #: The provider's own error type (``error_type``), else the usual one for the status.
        self.wire_type = error_type or _type_for_status(status)
        self.provider = provider
        self.retry_may_help = (
            not self.permanent
            and not self.out_of_quota
            and (status in _RETRY_STATUSES or status >= 500)
        )

    @property
    def out_of_quota(self) -> bool:
        """The provider says the account is out of quota or credit (a retry cannot help)."""
        return self.code in _QUOTA_CODES or self.wire_type in _QUOTA_CODES


class UpstreamUnreachable(UpstreamError):
    """The connection failed or broke off; ``detail`` keeps the library's own words.

    The message is for clients (what happened, in plain words); ``detail`` (the
    transport exception) goes only to the attempt record and the log, for operators.
    """

    def __init__(
        self, message: str, *, provider: str | None = None, detail: str | None = None
    ) -> None:
        super().__init__(
            message,
            status=502,
            error_type="api_error",
            code="upstream_unreachable",
            provider=provider,
        )
        self.detail = detail


class UpstreamAuthenticationFailed(UpstreamError):
    """The provider refused llmrelay's own credentials (its 401).

    Passed on as a 401 it would read as "your key is bad" to the client, whose key was
    fine: it is the gateway's configuration that is wrong, so it is a 502 that tells the
    client not to retry, and the provider is marked unhealthy.
    """

    permanent = True

    def __init__(self, provider: str, upstream_message: str) -> None:
        super().__init__(
            f"upstream {provider} rejected the credentials llmrelay holds for it (HTTP 401: "
            f"{upstream_message[:300]}); your own API key is fine: the gateway's operator "
            "must fix this provider's key",
            status=502,
            error_type="api_error",
            code="upstream_authentication_failed",
            provider=provider,
        )


class UpstreamInvalidResponse(UpstreamError):
    """A 2xx answer whose body is not what the provider's API returns (not JSON, or not
    the provider's shape): relaying it as a success would hand the client garbage."""

    def __init__(self, provider: str, what: str) -> None:
        super().__init__(
            f"upstream {provider} answered with {what}; the answer was not passed on",
            status=502,
            error_type="api_error",
            code="upstream_invalid_response",
            provider=provider,
        )


class UpstreamResponseTooLarge(UpstreamError):
    """An upstream answer (or one stream event) over the configured size cap.

    Reading it on would hold the whole thing in memory; the same request would very
    likely produce the same answer again, so it is not retried at that target.
    """

    permanent = True

    def __init__(self, provider: str, what: str, limit: int, setting: str) -> None:
        super().__init__(
            f"upstream {provider} sent {what} larger than the gateway's limit of "
            f"{_size(limit)} ({setting}); the answer was not passed on",
            status=502,
            error_type="api_error",
            code="upstream_response_too_large",
            provider=provider,
        )


class CapabilityMissing(UpstreamError):
    """The target's provider family cannot serve this kind of call (embeddings on
    Anthropic, ...).

    Raised while an attempt is being built, before anything is sent: the router records
    it as that target's outcome, so a fallback whose ``on_errors`` admits it (``4xx``,
    ``400``, ``*``) moves on to the next target. When no target can serve the call the
    client sees this 400, naming the provider and what it lacks.
    """

    permanent = True

    def __init__(self, provider: str, what: str, hint: str = "") -> None:
        super().__init__(
            f"provider {provider} cannot serve {what}{'; ' + hint if hint else ''}",
            status=400,
            error_type="invalid_request_error",
            param="model",
            code="unsupported_endpoint",
            provider=provider,
        )


class UpstreamTimeout(UpstreamError):
    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(
            message, status=504, error_type="timeout", code="upstream_timeout", provider=provider
        )


class DeadlineExceeded(UpstreamTimeout):
    """The route config's total ``deadline`` ran out before any target answered.

    Asking again gets the same deadline (a retry is the client's call, with a longer
    one); a fallback outside the group whose deadline it was may still answer.
    """

    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(message, provider=provider)
        self.code = "deadline_exceeded"
        self.retry_may_help = False


def _size(n: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} bytes"


def _type_for_status(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "rate_limit_error"
    if 400 <= status < 500:
        return "invalid_request_error"
    return "api_error"
