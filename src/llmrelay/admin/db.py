"""Database work of one admin request: one session, one transaction, one deadline.

Every admin change runs in a single transaction (the change and its audit entry are
written together or not at all) within ``database_timeout``: a hung database gives a
503, a unique name already taken a 409, never a 500 or a half-written change.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.exc import IntegrityError, OperationalError

from llmrelay.errors import Conflict, ServiceUnavailable
from llmrelay.store.deadline import within

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from llmrelay.services import Services

T = TypeVar("T")
log = logging.getLogger("llmrelay.admin")


async def read(services: Services, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in a read-only session within the database timeout."""

    async def go() -> T:
        async with services.sessions() as session:
            return await work(session)

    return await _bounded(services, go())


async def write(
    services: Services,
    work: Callable[[AsyncSession], Awaitable[T]],
    timeout: float | None = None,
) -> T:
    """Run ``work`` in one transaction (committed on return) within the timeout
    (``database_timeout``, or ``timeout`` for bulk work such as a catalog sync)."""

    async def go() -> T:
        async with services.sessions() as session, session.begin():
            return await work(session)

    return await _bounded(services, go(), timeout)


async def after_commit(what: str, work: Awaitable[object]) -> None:
    """Apply a committed change to this instance (reload providers, aliases, ...).

    The change is stored whatever happens here; if the database went away just now,
    the periodic refresh (or the next change, or a restart) applies it, so the answer
    stays the committed change rather than an error that would invite a second one.
    """
    try:
        await work
    except Exception as exc:
        log.warning("%s not applied after an admin change: %s", what, type(exc).__name__)


async def _bounded(services: Services, work: Awaitable[T], timeout: float | None = None) -> T:
    seconds = services.settings.database_timeout if timeout is None else timeout
    try:
        return await within(seconds, work)  # type: ignore[arg-type]
    except TimeoutError as exc:
        raise ServiceUnavailable("the database did not answer in time; retry") from exc
    except IntegrityError as exc:
        raise Conflict("the change clashes with a stored row (a name already taken?)") from exc
    except OperationalError as exc:
        raise ServiceUnavailable("the database is unavailable; retry") from exc
