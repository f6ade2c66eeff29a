"""Providers in the database: configured ones written to the ``providers`` table, rows
added there by other means read back as configs.

Configured providers are stored with their credentials sealed (so an operator sees
what runs, and a row added by hand or by a later admin API joins at the next start);
enabled rows the config does not name become extra provider configs. The family
fields of a config (``region``, ``project``, ...) go to the row's plain ``config`` and
its secrets (AWS keys) to the encrypted column only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import msgspec
import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from llmrelay.config_error import ConfigError
from llmrelay.providers.config_types import ProviderConfig, parse_provider
from llmrelay.providers.registry import ProviderSettings, provider_configs, spec_from_config
from llmrelay.store.credentials import CredentialBox, CredentialError
from llmrelay.store.database import Connection, Database
from llmrelay.store.ids import utcnow
from llmrelay.store.tables import providers

log = logging.getLogger("llmrelay")

#: Config fields kept in a row's plain ``config`` / its encrypted credentials.
_STORED_CONFIG = ("api_version", "region", "project", "location", "credentials_file", "drop_params")
_STORED_SECRETS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
#: Fields the admin API stores in ``config`` beside those above.
_ADMIN_CONFIG = ("connect_timeout", "headers")


def stored_fields(cfg: ProviderConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """``(config, secrets)`` of the family fields to keep in a provider row."""
    values = msgspec.structs.asdict(cfg)
    config = {k: values[k] for k in _STORED_CONFIG if values.get(k) not in (None, False)}
    secrets = {k: values[k] for k in _STORED_SECRETS if values.get(k)}
    return config, secrets


def restored_fields(config: Mapping[str, Any], secrets: Mapping[str, Any]) -> dict[str, Any]:
    """Config keys back from a provider row (those its ``type`` reads are kept by the
    strict parse in :func:`config_from_row`)."""
    out = {k: config[k] for k in _STORED_CONFIG if k in config}
    out.update({k: secrets[k] for k in _STORED_SECRETS if k in secrets})
    return out


def config_from_row(row: Any, creds: Mapping[str, Any]) -> ProviderConfig:
    """A ``providers`` row's config, checked like a YAML entry (ConfigError names the
    row)."""
    conf = row.config or {}
    raw: dict[str, Any] = {
        "name": row.name,
        "type": row.provider_type,
        "base_url": conf.get("base_url"),
        "api_key": creds.get("api_key"),
        "timeout": float(conf.get("timeout", 600)),
        "models": list(conf.get("models", [])),
        **{k: conf[k] for k in _ADMIN_CONFIG if k in conf},
        **restored_fields(conf, creds),
    }
    return parse_provider(raw, f"providers table row {row.name!r}")


async def sync_providers(
    db: Database,
    credentials: CredentialBox,
    settings: ProviderSettings,
    env: Mapping[str, str],
) -> list[ProviderConfig]:
    """Store configured providers (credentials encrypted); return the DB-only ones.

    Workers (and instances) starting together race to insert the same rows; the
    loser of a unique-constraint race simply tries again and finds the rows there.
    """
    for attempt in range(3):
        try:
            return await _sync_once(db, credentials, settings, env)
        except IntegrityError:
            if attempt == 2:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


async def _sync_once(
    db: Database,
    credentials: CredentialBox,
    settings: ProviderSettings,
    env: Mapping[str, str],
) -> list[ProviderConfig]:
    configured = provider_configs(settings, env)
    async with db.begin() as conn:
        rows = {r.name: r for r in (await conn.execute(select(providers))).all()}
        now = utcnow()
        for cfg in configured:
            spec = spec_from_config(cfg, env)
            creds = {"api_key": spec.api_key} if spec.api_key else {}
            family_config, family_secrets = stored_fields(cfg)
            creds.update(family_secrets)
            values = {
                "provider_type": cfg.type,
                "encrypted_credentials": credentials.seal(creds) if creds else None,
                "config": {
                    "base_url": spec.base_url,
                    "timeout": cfg.timeout,
                    "models": list(cfg.models),
                    **family_config,
                },
                "enabled": cfg.enabled,
                "source": "config",
                "updated_at": now,
            }
            row = rows.get(cfg.name)
            if row is None:
                await conn.execute(insert(providers).values(name=cfg.name, **values))
            else:
                await conn.execute(
                    update(providers).where(providers.c.id == row.id).values(**values)
                )
        names = {c.name for c in configured}
        return await _row_configs(conn, credentials, list(rows.values()), names)


async def stored_configs(
    db: Database, credentials: CredentialBox, skip: set[str]
) -> list[ProviderConfig]:
    """The configs of the enabled database-only providers (those not in ``skip``).

    What a reload reads: the YAML file's providers were synced at start and do not
    change while the process runs.
    """
    async with db.begin() as conn:
        rows = list((await conn.execute(select(providers))).all())
        return await _row_configs(conn, credentials, rows, skip)


async def _row_configs(
    conn: Connection,
    credentials: CredentialBox,
    rows: list[Any],
    skip: set[str],
) -> list[ProviderConfig]:
    extra: list[ProviderConfig] = []
    for row in rows:
        if row.name in skip or not row.enabled or row.source == "config":
            continue
        try:
            opened = await open_credentials(conn, credentials, row)
            extra.append(config_from_row(row, opened))
        except (CredentialError, ConfigError) as exc:
            log.error("provider %s skipped: %s", row.name, exc)
    return extra


def plaintext_credentials(value: str) -> dict[str, str] | None:
    """The mapping of a credential column written in clear (seed 000's ``'{"api_key":
    ...}'  -- Will be encrypted by app``), or None for a sealed (Fernet) value."""
    if not value.lstrip().startswith("{"):
        return None  # Fernet tokens are urlsafe base64: never a '{'
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise CredentialError("stored provider credentials are neither sealed nor JSON") from exc
    if not isinstance(data, dict):
        raise CredentialError("stored provider credentials are not a JSON object")
    return {str(k): str(v) for k, v in data.items() if v is not None}


async def open_credentials(
    conn: Connection, credentials: CredentialBox, row: Any
) -> dict[str, str]:
    """A row's credentials; a row written in clear is sealed in place first.

    The seal is a compare-and-set (``WHERE encrypted_credentials = <the clear text>``):
    two instances picking up the same row both seal it, the second update matches no
    row and changes nothing, so neither overwrites what the other (or an operator
    updating the row meanwhile) wrote.
    """
    value = row.encrypted_credentials
    if not value:
        return {}
    clear = plaintext_credentials(value)
    if clear is None:
        return credentials.open(value)
    await conn.execute(
        update(providers)
        .where(providers.c.id == row.id, providers.c.encrypted_credentials == value)
        .values(encrypted_credentials=credentials.seal(clear))
    )
    log.info("provider %s: credentials stored in clear were sealed", row.name)
    return clear
