"""Vertex AI credentials: OAuth2 access tokens minted by google-auth, cached until expiry.

Adapters are pure, so the token is added on the transport side: :class:`BearerTransport`
wraps the shared HTTP transport for one Vertex provider and puts
``Authorization: Bearer <token>`` on each call. :class:`GoogleTokenSource` owns the
google-auth credentials (a service-account file, or Google's application default
credentials) and refreshes them at most once at a time, a few minutes before they
expire, on a worker thread (google-auth's refresh is blocking I/O against the
credentials' ``token_uri``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from llmrelay.config_error import ConfigError
from llmrelay.errors import UpstreamError
from llmrelay.providers.base import UpstreamCall
from llmrelay.providers.config_types import service_account_info
from llmrelay.upstream import Transport, UpstreamResponse

log = logging.getLogger("llmrelay")

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
#: Refresh this long before the token's expiry, so no call carries a dying token.
REFRESH_MARGIN = dt.timedelta(minutes=5)


def load_credentials(credentials_file: str | None) -> Any:
    """google-auth credentials from a JSON file, or the application default ones.

    A file is loaded with the loader for its declared type (service account or
    authorized user) only, as google-auth advises for configuration files.
    """
    import google.auth

    if not credentials_file:
        credentials, _ = google.auth.default(scopes=SCOPES)
        return credentials
    info = service_account_info(credentials_file)
    if info["type"] == "service_account":
        from google.oauth2 import service_account

        return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=SCOPES
        )
    if info["type"] == "authorized_user":
        from google.oauth2.credentials import Credentials

        return Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
            info, scopes=SCOPES
        )
    raise ValueError(
        f"credentials type {info['type']!r} is not supported; use a service "
        "account key file or application default credentials"
    )


class GoogleTokenSource:
    """A cached access token for one set of credentials; single-flight refresh."""

    def __init__(self, provider: str, credentials: Any) -> None:
        self._provider = provider
        self._credentials = credentials
        self._lock = asyncio.Lock()
        self._http: Any = None

    def _fresh(self) -> str | None:
        token = self._credentials.token
        expiry = self._credentials.expiry  # naive UTC, as google-auth keeps it
        if not token:
            return None
        if expiry is not None:
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            if expiry - REFRESH_MARGIN <= now:
                return None
        return str(token)

    def invalidate(self) -> None:
        """Forget the token (the provider refused it); the next call mints a new one."""
        self._credentials.token = None

    def _refresh_blocking(self) -> None:
        import urllib3
        from google.auth.transport.urllib3 import Request

        if self._http is None:
            self._http = urllib3.PoolManager(timeout=urllib3.Timeout(total=30))
        self._credentials.refresh(Request(self._http))  # type: ignore[no-untyped-call]

    async def token(self) -> str:
        token = self._fresh()
        if token is not None:
            return token
        async with self._lock:
            token = self._fresh()
            if token is not None:
                return token
            try:
                await asyncio.to_thread(self._refresh_blocking)
            except Exception as exc:  # google.auth.exceptions.*, urllib3 errors
                log.warning(
                    "provider %s: access token refresh failed: %s",
                    self._provider,
                    type(exc).__name__,
                )
                raise UpstreamError(
                    f"provider {self._provider}: could not obtain a Google access token "
                    f"({type(exc).__name__}: {_first_line(exc)})",
                    status=401,
                    code="upstream_credentials",
                    provider=self._provider,
                ) from exc
            token = self._credentials.token
            if not token:
                raise UpstreamError(
                    f"provider {self._provider}: the token endpoint returned no access token",
                    status=401,
                    code="upstream_credentials",
                    provider=self._provider,
                )
            return str(token)


def _first_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    return text.splitlines()[0][:200] if text else ""


class BearerTransport:
    """A transport that adds a Google access token to every call of one provider."""

    def __init__(self, inner: Transport, tokens: GoogleTokenSource) -> None:
        self._inner = inner
        self._tokens = tokens

    async def send(
        self,
        call: UpstreamCall,
        *,
        provider: str,
        timeout: float,
        connect_timeout: float,
        stream: bool,
    ) -> UpstreamResponse:
        token = await self._tokens.token()
        headers = dict(call.headers)
        headers["authorization"] = "Bearer " + token
        signed = UpstreamCall(call.method, call.url, headers, call.body)
        resp = await self._inner.send(
            signed,
            provider=provider,
            timeout=timeout,
            connect_timeout=connect_timeout,
            stream=stream,
        )
        if resp.status == 401:
            self._tokens.invalidate()
        return resp

    async def close(self) -> None:
        return None  # the shared inner transport is closed by the gateway


def vertex_transport(
    provider: str, credentials_file: str | None, inner: Transport
) -> BearerTransport:
    """The transport of one Vertex provider; bad credentials fail the start, clearly."""
    try:
        credentials = load_credentials(credentials_file)
    except Exception as exc:  # google.auth.exceptions.DefaultCredentialsError, ValueError
        raise ConfigError(
            f"invalid config: provider {provider!r} (vertex): cannot load Google credentials"
            f" ({type(exc).__name__}: {_first_line(exc)})"
        ) from exc
    return BearerTransport(inner, GoogleTokenSource(provider, credentials))
