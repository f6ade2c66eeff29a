"""``Idempotency-Key`` on admin creates and rotations: a retry gets the first answer.

A client that loses the answer of ``POST /admin/virtual-keys`` (a timeout, a dropped
connection) cannot know whether the key exists; resending with the same header must not
make a second key, and must give back the secret the first call made. So the answer is
stored, in the change's own transaction, under ``(header, actor)`` with a fingerprint of
the request (method, path, body): the same request gets the stored answer, another
request under the same header a ``409``. The answer holds a secret, so it is stored
sealed by the gateway's :class:`~llmrelay.store.credentials.CredentialBox`, like
provider credentials. Rows older than :data:`KEEP` are deleted by the next write.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import delete, select

from llmrelay.errors import Conflict, InvalidRequest
from llmrelay.store.schema import IdempotencyRecord, utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from llmrelay.admin.auth import Principal
    from llmrelay.store.credentials import CredentialBox

KEEP = timedelta(days=1)
MAX_KEY_CHARS = 200


def header_key(value: str | None) -> str | None:
    """The ``Idempotency-Key`` header, checked; ``None`` when the request has none."""
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_KEY_CHARS or not value.isprintable():
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} printable characters",
            param="header.idempotency-key",
        )
    return value


def fingerprint(method: str, path: str, body: Any) -> str:
    """What makes two requests the same request: method, path and body (keys sorted)."""
    raw = orjson.dumps([method, path, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()


async def replay(
    session: AsyncSession,
    box: CredentialBox,
    principal: Principal,
    key: str,
    print_: str,
) -> dict[str, Any] | None:
    """The stored answer of this request, or ``None`` when it is new; 409 if reused."""
    await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < utcnow() - KEEP)
    )
    row = await session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.key == key, IdempotencyRecord.actor == principal.actor
        )
    )
    if row is None:
        return None
    if row.fingerprint != print_:
        raise Conflict(
            "this Idempotency-Key was used for a different request; use a new key",
            code="idempotency_key_reused",
            param="header.idempotency-key",
        )
    answer: dict[str, Any] = orjson.loads(box.open(row.body)["answer"])
    return answer


def remember(
    session: AsyncSession,
    box: CredentialBox,
    principal: Principal,
    key: str,
    print_: str,
    status: int,
    answer: dict[str, Any],
) -> None:
    """Store ``answer`` (sealed) under ``key``, committed with the change it answers."""
    session.add(
        IdempotencyRecord(
            key=key,
            actor=principal.actor,
            fingerprint=print_,
            status_code=status,
            body=box.seal({"answer": orjson.dumps(answer).decode()}),
            created_at=utcnow(),
        )
    )
