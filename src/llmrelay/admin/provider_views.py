"""Provider rows as the admin API shows and stores them.

A body uses the field names of a provider entry in the YAML file and is checked by the
same strict union (:func:`~llmrelay.providers.config_types.parse_provider`), so what the
API accepts is exactly what the file accepts, and a bad field is named the same way.
Credentials go to the sealed column only and never come back: a view says whether each
is set and shows a hint of the API key (its first and last characters).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from llmrelay.config_error import ConfigError
from llmrelay.errors import InvalidRequest
from llmrelay.providers.config_types import ProviderConfig, parse_provider
from llmrelay.providers.stored import plaintext_credentials, stored_fields
from llmrelay.store.credentials import CredentialBox, CredentialError
from llmrelay.store.schema import Provider as ProviderRow

#: Where :func:`parse_provider` says a body's problem is (``body.timeout: ...``).
_WHERE = re.compile(r"^invalid config: body\.([A-Za-z_][\w.\[\]]*)")
#: Fields of a body kept in the row's plain ``config``.
_PLAIN = ("base_url", "timeout", "connect_timeout", "models", "headers")
_SECRET_FLAGS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")


def parse_body(raw: dict[str, Any]) -> ProviderConfig:
    """The body as a provider config, or a 400 naming the field."""
    try:
        return parse_provider(raw, "body")
    except ConfigError as exc:
        found = _WHERE.match(str(exc))
        param = found.group(1).rstrip(".") if found else None
        message = str(exc).removeprefix("invalid config: ")
        raise InvalidRequest(message[:500], param=param, code="invalid_value") from None


def row_fields(cfg: ProviderConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """``(config, credentials)`` of the row that stores ``cfg``."""
    values = msgspec.structs.asdict(cfg)
    family_config, secrets = stored_fields(cfg)
    config = {k: values[k] for k in _PLAIN if values.get(k) not in (None, [], {})}
    config.update(family_config)
    if cfg.api_key:
        secrets = {"api_key": cfg.api_key, **secrets}
    return config, secrets


def row_raw(row: ProviderRow, creds: dict[str, str]) -> dict[str, Any]:
    """A stored row back as a body (credentials included: for a merge, never shown)."""
    raw: dict[str, Any] = {"name": row.name, "type": row.provider_type, "enabled": row.enabled}
    raw.update(row.config or {})
    raw.update(creds)
    return raw


def row_credentials(box: CredentialBox, row: ProviderRow) -> dict[str, str] | None:
    """The credentials of a row (None when they cannot be opened); read-only."""
    value = row.encrypted_credentials
    if not value:
        return {}
    try:
        clear = plaintext_credentials(value)
        return clear if clear is not None else box.open(value)
    except CredentialError:
        return None


def hint(secret: str) -> str:
    """Enough of a secret to recognise it, never enough to use it."""
    return f"{secret[:3]}…{secret[-4:]}" if len(secret) >= 16 else "…"


def view(row: ProviderRow, creds: dict[str, str] | None) -> dict[str, Any]:
    """What the API shows of a provider row."""
    conf = dict(row.config or {})
    headers = conf.pop("headers", None) or {}
    out: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "type": row.provider_type,
        "display_name": row.display_name,
        "source": row.source,
        "enabled": bool(row.enabled),
        "read_only": row.source == "config",
        **conf,
        "headers": {str(k): "***" for k in headers},
        "api_key_set": bool(creds and creds.get("api_key")),
        "api_key_hint": hint(creds["api_key"]) if creds and creds.get("api_key") else None,
        "credentials_readable": creds is not None,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
    }
    for flag in _SECRET_FLAGS:
        if creds and creds.get(flag):
            out[f"{flag}_set"] = True
    return out
