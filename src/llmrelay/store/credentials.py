"""Provider credentials encrypted at rest (Fernet, key derived from the master key).

Without ``LLMRELAY_MASTER_KEY`` the embedded default generates a random secret once and
keeps it in a 0600 file beside the SQLite database, so a copied database file alone
does not reveal provider keys. Shared PostgreSQL deployments should set the master key
so every instance can decrypt what another wrote.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from cryptography.fernet import Fernet


class CredentialError(Exception):
    """Stored credentials cannot be decrypted with this instance's key."""


def _derive(secret: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"llmrelay-credentials-v1", info=b"")
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode()))


def local_secret(path: Path) -> str:
    """Read (or create, 0600) the instance secret used when no master key is set."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
        return value


class CredentialBox:
    """Encrypts and decrypts a provider's credential mapping.

    The cipher is made with the first seal or open: a gateway whose providers carry no
    credentials (the embedded default) never imports ``cryptography`` (issue 14).
    """

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._cipher: Fernet | None = None

    @property
    def _fernet(self) -> Fernet:
        if self._cipher is None:
            from cryptography.fernet import Fernet

            self._cipher = Fernet(_derive(self._secret))
        return self._cipher

    def seal(self, credentials: dict[str, str]) -> str:
        return self._fernet.encrypt(orjson.dumps(credentials)).decode()

    def open(self, token: str) -> dict[str, str]:
        from cryptography.fernet import InvalidToken

        try:
            data = orjson.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise CredentialError(
                "stored provider credentials cannot be decrypted: was LLMRELAY_MASTER_KEY "
                "changed, or is this instance using a different one?"
            ) from exc
        return {str(k): str(v) for k, v in data.items()}
