"""The audit log: every change made through the admin plane, in the change's own
transaction (so a change and its record are written together or not at all).

``before`` and ``after`` are the resource as the API shows it with every secret-looking
field masked: a viewer may read the audit log, and it must not become the place a
credential leaks from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmrelay.store.bounds import clean_json, clean_text
from llmrelay.store.schema import AuditEntry, new_id, utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from llmrelay.admin.auth import Principal

#: Field names whose values are never stored in the audit log.
SECRET_FIELDS = frozenset(
    {
        "api_key",
        "real_api_key",
        "new_api_key",
        "virtual_key",
        "key",
        "token",
        "secret",
        "password",
        "credentials",
        "aws_secret_access_key",
        "aws_session_token",
        "encrypted_credentials",
        "encrypted_provider_key",
        "key_hash",
        "token_hash",
        "previous_key_hash",
    }
)
MASK = "***"


def masked(value: Any) -> Any:
    """``value`` with every secret field's value replaced by ``***``, recursively."""
    if isinstance(value, dict):
        return {
            k: (MASK if k in SECRET_FIELDS and v is not None else masked(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def record(
    session: AsyncSession,
    principal: Principal,
    action: str,
    resource: str,
    resource_id: str | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add an audit entry to ``session`` (committed with the change it records)."""
    session.add(
        AuditEntry(
            id=new_id(),
            created_at=utcnow(),
            actor=clean_text(principal.actor, 200),
            action=clean_text(action, 50),
            resource=clean_text(resource, 50),
            resource_id=None if resource_id is None else clean_text(resource_id, 200),
            before=None if before is None else clean_json(masked(before)),
            after=None if after is None else clean_json(masked(after)),
        )
    )
