"""The one error hierarchy of llmrelay.

Every failure a client can see is a :class:`GatewayError`. Each subclass knows its HTTP
status, its OpenAI error ``type``, and whether another attempt (a retry or a fallback
target) could succeed, so the HTTP layer, the router and the logger never guess::

    GatewayError
    ├── InvalidRequest          400  bad JSON, missing field, unknown model
    ├── AuthenticationError     401  missing/invalid key
    ├── BudgetExceeded          402  key or team spent its budget
    ├── PermissionDenied        403  key may not use this model / endpoint
    ├── NotFound                404  no such route
    ├── RequestTimeout          408  request head not received within ``header_timeout``
    ├── PayloadTooLarge         413  body over ``max_body_bytes``
    ├── RequestHeadersTooLarge  431  request head over ``max_header_bytes`` / ``max_headers``
    ├── RateLimited             429  a limit of ours was hit (not retryable here)
    ├── ClientClosedRequest     499  the client left first (recorded, never sent)
    ├── ServiceUnavailable      503  draining, dependency down, connection limit
    │   └── CircuitOpen         503  every target of the route is cooling down
    └── UpstreamError           the provider answered with an error (status passed on)
        ├── UpstreamUnreachable 502  connection refused/reset, DNS, TLS, a cut answer
        ├── UpstreamAuthenticationFailed 502  the provider refused llmrelay's credentials
        ├── UpstreamInvalidResponse 502  a 2xx whose body is not the provider's answer
        ├── UpstreamResponseTooLarge 502 an answer / stream event over the size cap
        ├── CapabilityMissing   400  the target's provider family cannot serve this call
        └── UpstreamTimeout     504  provider took longer than its timeout
            └── DeadlineExceeded 504 the route's total deadline ran out
"""

from __future__ import annotations

from typing import ClassVar

import orjson


class GatewayError(Exception):
    """Base of every error that leaves llmrelay in the OpenAI error shape."""

    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None
    retryable: ClassVar[bool] = False

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

    @property
    def http_status(self) -> int:
        return self.status

    def to_dict(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def body(self) -> bytes:
        return orjson.dumps(self.to_dict())


class InternalError(GatewayError):
    status = 500
    error_type = "api_error"
    default_code = "internal_error"


class InvalidRequest(GatewayError):
    status = 400
    error_type = "invalid_request_error"


class UnknownModel(InvalidRequest):
    default_code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(f"unknown model: {model}", param="model")


class UnsupportedParameter(InvalidRequest):
    """The target provider cannot honour a request parameter (and dropping is off)."""

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
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class BudgetExceeded(GatewayError):
    status = 402
    error_type = "insufficient_quota"
    default_code = "budget_exceeded"


class PermissionDenied(GatewayError):
    status = 403
    error_type = "permission_error"
    default_code = "model_not_allowed"


class NotFound(GatewayError):
    status = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    error_type = "invalid_request_error"
    default_code = "method_not_allowed"


class PayloadTooLarge(GatewayError):
    status = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class RequestTimeout(GatewayError):
    """The request line and headers did not arrive within ``header_timeout``."""

    status = 408
    error_type = "invalid_request_error"
    default_code = "request_timeout"


class RequestHeadersTooLarge(GatewayError):
    """The request line and headers exceed ``max_header_bytes`` or ``max_headers``."""

    status = 431
    error_type = "invalid_request_error"
    default_code = "request_headers_too_large"


class ClientClosedRequest(GatewayError):
    """The client hung up before its answer was complete (nginx's 499).

    Nobody receives this error; it is what the call's row records, so an interrupted
    call is told apart from one that was answered.
    """

    status = 499
    error_type = "client_closed_request"
    default_code = "client_closed_request"


class RateLimited(GatewayError):
    status = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class ServiceUnavailable(GatewayError):
    status = 503
    error_type = "api_error"
    default_code = "service_unavailable"


class CircuitOpen(ServiceUnavailable):
    """Every target the route could use is skipped by its circuit breaker right now."""

    default_code = "circuit_open"


class UpstreamError(GatewayError):
    """The provider answered with an error; its status and message are passed on.

    Retryable when a fresh attempt can plausibly succeed: 408, 409, 429 and 5xx, unless
    the class is :attr:`permanent`.
    """

    error_type = "api_error"
    #: Asking the same target again cannot help (its credentials are refused, its
    #: answer is too big): no retry of that target, and ``x-should-retry: false``. A
    #: fallback to another target still may.
    permanent: ClassVar[bool] = False

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
        self._status = status
        self._type = error_type or _type_for_status(status)
        self.provider = provider

    @property
    def http_status(self) -> int:
        return self._status

    @property
    def is_retryable(self) -> bool:
        if self.permanent:
            return False
        return self._status in (408, 409, 429) or self._status >= 500

    def to_dict(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self._type,
                "param": self.param,
                "code": self.code,
            }
        }


class UpstreamUnreachable(UpstreamError):
    """The connection failed or broke off; ``detail`` keeps the library's own words.

    The message is for clients (what happened, in plain words); ``detail`` (the
    transport exception) goes only to the attempt record and the log, for operators.
    """

    def __init__(
        self, message: str, *, provider: str | None = None, detail: str | None = None
    ) -> None:
        super().__init__(
            message, status=502, error_type="api_error", code="upstream_unreachable",
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
            status=502, error_type="api_error", code="upstream_authentication_failed",
            provider=provider,
        )


class UpstreamInvalidResponse(UpstreamError):
    """A 2xx answer whose body is not what the provider's API returns (not JSON, or not
    the provider's shape): relaying it as a success would hand the client garbage."""

    def __init__(self, provider: str, what: str) -> None:
        super().__init__(
            f"upstream {provider} answered with {what}; the answer was not passed on",
            status=502, error_type="api_error", code="upstream_invalid_response",
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
            status=502, error_type="api_error", code="upstream_response_too_large",
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
            status=400, error_type="invalid_request_error", param="model",
            code="unsupported_endpoint", provider=provider,
        )
        self.what = what


class UpstreamTimeout(UpstreamError):
    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(
            message, status=504, error_type="timeout", code="upstream_timeout", provider=provider
        )


class DeadlineExceeded(UpstreamTimeout):
    """The route config's total ``deadline`` ran out before any target answered."""

    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(message, provider=provider)
        self.code = "deadline_exceeded"


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


def status_of(exc: GatewayError) -> int:
    """The HTTP status of any gateway error (upstream errors carry their own)."""
    return exc.http_status
