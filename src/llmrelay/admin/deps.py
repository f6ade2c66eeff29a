"""FastAPI dependencies shared by the admin routes: the services, the caller."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from llmrelay.admin.auth import Principal, authenticate, require_write

if TYPE_CHECKING:
    from llmrelay.services import Services


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def reader(request: Request) -> Principal:
    """Any authenticated caller (``viewer`` or ``admin``)."""
    return await authenticate(services_of(request), request.headers.get("authorization"))


async def writer(request: Request) -> Principal:
    """A caller with the ``admin`` role."""
    principal = await reader(request)
    require_write(principal)
    return principal


Reader = Annotated[Principal, Depends(reader)]
Writer = Annotated[Principal, Depends(writer)]
