"""Secrets kept out of everything that leaves llmrelay: client answers, logs and rows.

Upstream error messages are written by the provider, and some echo the credential
they were sent (``Incorrect API key provided: sk-…``). Passed on verbatim they would
hand the provider key to every caller, so every upstream error is scrubbed with two
nets before it leaves or is stored:

* exact strings: every credential a configured provider holds (API keys, AWS secret
  keys and session tokens, credential-like extra headers), whatever their shape;
* shapes: anything that looks like a key (``sk-…``, ``sk-ant-…``, ``AKIA…``,
  ``Bearer …``, ``AIza…``, Google ``ya29.`` access tokens, PEM private keys).

:func:`redact` is the shape net alone (for text with no provider in view, such as a
logged request body); :class:`Redactor` adds the configured secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeVar

from llmrelay.errors import GatewayError
from llmrelay.providers.base import ProviderSpec

E = TypeVar("E", bound=GatewayError)

#: Keys that look like secrets: our virtual keys, OpenAI/Anthropic style keys, bearer
#: tokens, Google API keys and access tokens, AWS access key ids, PEM private keys.
_SECRET = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|sk_[A-Za-z0-9_\-]{8,}|(?i:bearer)\s+[A-Za-z0-9._\-~+/]{8,}=*"
    r"|AIza[0-9A-Za-z_\-]{20,}|AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|ya29\.[0-9A-Za-z_\-.]{8,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$))"
)
#: The key shapes, for other modules that look for secrets (the PII guardrail).
SECRET_SHAPES = _SECRET

#: Configured secrets shorter than this are not matched as plain strings: a two-letter
#: test key would otherwise blank every occurrence of those letters in a message.
MIN_SECRET_CHARS = 8

#: Extra provider header names whose values are credentials.
_CREDENTIAL_HEADER = re.compile(r"auth|key|token|secret|cookie|signature", re.IGNORECASE)


def redact(text: str) -> str:
    """Mask anything shaped like a credential, keeping a short prefix to stay debuggable."""
    return _SECRET.sub(lambda m: m.group(0)[:6] + "…[redacted]", text)


def credential_headers(headers: Iterable[tuple[str, str]]) -> list[str]:
    """The values of the headers in ``headers`` that carry credentials."""
    return [v for k, v in headers if _CREDENTIAL_HEADER.search(k)]


class Redactor:
    """Masks the configured secrets and key-shaped strings in text and errors.

    Built once at start from every configured provider's credentials; used only on
    error paths, so its cost never touches a successful call.
    """

    __slots__ = ("_base", "_exact", "_secrets")

    def __init__(self, secrets: Iterable[str | None], base: Redactor | None = None) -> None:
        self._exact: re.Pattern[str] | None = None
        #: The redactor this one adds to (:meth:`with_secrets`), consulted live.
        self._base = base
        self.renew(secrets)

    def renew(self, secrets: Iterable[str | None]) -> None:
        """Mask exactly ``secrets`` from now on (providers changed while running).

        In place, because bound methods of this redactor are held elsewhere (the
        Responses store's ``redact``); one assignment, so a concurrent call sees the old
        pattern or the new one.
        """
        found = {s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}
        self._secrets = frozenset(found)
        # Longest first: a secret that contains another is masked whole.
        ordered = sorted(found, key=len, reverse=True)
        self._exact = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    @classmethod
    def for_providers(cls, specs: Iterable[ProviderSpec]) -> Redactor:
        """A redactor for every credential the configured providers hold."""
        return cls(provider_secrets(specs))

    def with_secrets(self, more: Iterable[str]) -> Redactor:
        """This redactor plus ``more`` (a bound key's own credential, see
        :mod:`llmrelay.routing.bound`).

        The result holds ``more`` and refers to this redactor rather than copying its
        secrets, so a :meth:`renew` of this one (providers reloaded with new
        credentials) applies to every redactor made from it too.
        """
        return Redactor(more, base=self)

    def text(self, text: str) -> str:
        if self._exact is not None:
            text = self._exact.sub(_mask_exact, text)
        return redact(text) if self._base is None else self._base.text(text)

    def error(self, exc: E) -> E:
        """Scrub the message, parameter, code and headers of ``exc`` in place."""
        exc.message = self.text(exc.message)
        exc.args = (exc.message,)
        if exc.param is not None:
            exc.param = self.text(exc.param)
        if isinstance(exc.code, str):
            exc.code = self.text(exc.code)
        for name, value in list(exc.headers.items()):
            # Header values are latin-1 on the wire: the mask's ellipsis is spelt out.
            exc.headers[name] = self.text(value).replace("…", "...")
        return exc


def provider_secrets(specs: Iterable[ProviderSpec]) -> list[str | None]:
    """Every credential the providers of ``specs`` hold."""
    secrets: list[str | None] = []
    for spec in specs:
        secrets += [
            spec.api_key,
            spec.aws_access_key_id,
            spec.aws_secret_access_key,
            spec.aws_session_token,
            *credential_headers(spec.headers),
        ]
    return secrets


def _mask_exact(match: re.Match[str]) -> str:
    # A configured secret may be short and need not have a public prefix: show a
    # little of it only when that leaves most of it hidden.
    secret = match.group(0)
    return (secret[:4] if len(secret) >= 24 else "") + "…[redacted]"
