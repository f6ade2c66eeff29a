"""Seed 002's ``keys.json``: virtual keys, each bound to a provider and its real key.

::

    {"virtual_keys": {"vk_user1_openai": {"provider": "openai", "api_key": "sk-..."}}}

Imported by ``llmrelay keys import keys.json`` and at start from the ``keys_file``
setting (``LLMRELAY_KEYS_FILE``, or seed 002's ``KEYS_FILE_PATH``). Importing is
idempotent: a key is found by the hash of its virtual key, so a second import changes
nothing, and an entry whose provider or real key changed updates that key's binding in
place (same id, same limits). The virtual keys keep their owners' shapes (see
:func:`~llmrelay.governance.keys.well_formed`). Real keys are sealed at rest and never
printed: errors name an entry by its position and the first characters of its virtual
key, never by a real key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select

from llmrelay.config_error import ConfigError
from llmrelay.governance.keys import hash_key, well_formed
from llmrelay.store.credentials import CredentialBox, CredentialError
from llmrelay.store.schema import ApiKey, new_id, utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import async_sessionmaker

#: Largest keys file read (a file of a few thousand keys is well under it).
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_REAL_KEY_CHARS = 4096
ENTRY_FIELDS = frozenset({"provider", "api_key"})


class KeysFileError(ConfigError):
    """The keys file cannot be imported; the message names the file and the entry."""


@dataclass(frozen=True, slots=True)
class KeyEntry:
    virtual_key: str = field(repr=False)
    provider: str
    api_key: str = field(repr=False)
    #: How errors and listings name the entry without showing the key.
    label: str = ""


@dataclass(slots=True)
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


def shown(virtual_key: str) -> str:
    """A few leading characters of a virtual key: enough to find it, too few to use it."""
    return virtual_key[: min(6, len(virtual_key) // 3)] + "…"


def parse(path: Path) -> list[KeyEntry]:
    """The entries of a keys file, checked; :class:`KeysFileError` names what is wrong."""
    where = str(path)
    try:
        raw = path.read_bytes()[: MAX_FILE_BYTES + 1]
    except OSError as exc:
        raise KeysFileError(f"keys file {where}: cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise KeysFileError(f"keys file {where}: larger than {MAX_FILE_BYTES} bytes")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise KeysFileError(f"keys file {where}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or set(data) != {"virtual_keys"}:
        raise KeysFileError(
            f'keys file {where}: expected {{"virtual_keys": {{...}}}} and nothing else'
        )
    keys = data["virtual_keys"]
    if not isinstance(keys, dict):
        raise KeysFileError(f"keys file {where}: virtual_keys must be an object")
    return [_entry(where, i, vk, value) for i, (vk, value) in enumerate(keys.items(), 1)]


def _entry(where: str, position: int, vk: str, value: Any) -> KeyEntry:
    label = f"virtual_keys entry {position} ({shown(vk)})"

    def bad(what: str) -> KeysFileError:
        return KeysFileError(f"keys file {where}: {label}: {what}")

    if not well_formed(vk):
        raise bad("a virtual key must be 8 to 256 visible ASCII characters, no spaces")
    if not isinstance(value, dict):
        raise bad('expected {"provider": ..., "api_key": ...}')
    unknown = sorted(set(value) - ENTRY_FIELDS)
    if unknown:
        raise bad(f"unknown field {unknown[0]!r} (allowed: provider, api_key)")
    provider, api_key = value.get("provider"), value.get("api_key")
    if not isinstance(provider, str) or not 1 <= len(provider) <= 200:
        raise bad("provider must be a provider name")
    if not isinstance(api_key, str) or not 1 <= len(api_key) <= MAX_REAL_KEY_CHARS:
        raise bad(f"api_key must be a string of 1 to {MAX_REAL_KEY_CHARS} characters")
    return KeyEntry(vk, provider, api_key, label)


def check_providers(entries: list[KeyEntry], where: str, configured: Callable[[str], bool]) -> None:
    for entry in entries:
        if not configured(entry.provider):
            raise KeysFileError(
                f"keys file {where}: {entry.label}: provider {entry.provider!r} is not "
                "configured (add it to providers, or set its API key variable)"
            )


def _name(vk: str) -> str:
    """A stable name for an imported key (the virtual key itself is a secret)."""
    return "keys-file-" + hashlib.sha256(vk.encode()).hexdigest()[:16]


async def import_entries(
    sessions: async_sessionmaker[Any], box: CredentialBox, entries: list[KeyEntry]
) -> ImportReport:
    """Create or update the keys of ``entries``, all in one transaction."""
    report = ImportReport()
    async with sessions() as session, session.begin():
        for entry in entries:
            digest = hash_key(entry.virtual_key)
            row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
            if row is None:
                now = utcnow()
                session.add(
                    ApiKey(
                        id=new_id(),
                        name=_name(entry.virtual_key),
                        key_hash=digest,
                        key_prefix=shown(entry.virtual_key)[:-1],
                        enabled=True,
                        provider=entry.provider,
                        encrypted_provider_key=box.seal({"api_key": entry.api_key}),
                        metadata_={"source": "keys_file"},
                        created_at=now,
                        updated_at=now,
                    )
                )
                report.created += 1
                continue
            if row.provider == entry.provider and _same(box, row, entry.api_key):
                report.unchanged += 1
                continue
            row.provider = entry.provider
            row.encrypted_provider_key = box.seal({"api_key": entry.api_key})
            row.updated_at = utcnow()
            report.updated += 1
    return report


def _same(box: CredentialBox, row: ApiKey, api_key: str) -> bool:
    if row.encrypted_provider_key is None:
        return False
    try:
        return box.open(row.encrypted_provider_key).get("api_key") == api_key
    except CredentialError:
        return False  # sealed with another secret: seal it again with this one
