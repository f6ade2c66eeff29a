"""Database work of one admin request: one session, one transaction, one deadline.

Every admin change runs in a single transaction (the change and its audit entry are
written together or not at all) within ``database_timeout``: a hung database gives a
503, a unique name already taken a 409, never a 500 or a half-written change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.exc import IntegrityError, OperationalError

from llmrelay.errors import Conflict, ServiceUnavailable
from llmrelay.store.deadline import within

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from llmrelay.services import Services

T = TypeVar("T")


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
