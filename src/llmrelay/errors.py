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
    ├── PayloadTooLarge         413  body over ``max_body_bytes``
    ├── RateLimited             429  a limit of ours was hit (not retryable here)
    ├── ServiceUnavailable      503  draining, dependency down
    │   └── CircuitOpen         503  every target of the route is cooling down
    └── UpstreamError           the provider answered with an error (status passed on)
        ├── UpstreamUnreachable 502  connection refused/reset, DNS, TLS
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

    Retryable when a fresh attempt can plausibly succeed: 408, 409, 429 and 5xx.
    """

    error_type = "api_error"

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
    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(
            message, status=502, error_type="api_error", code="upstream_unreachable",
            provider=provider,
        )


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
