"""Model aliases stored in the ``model_aliases`` table, read into the resolver.

A row names its target either as text (``target``: ``provider/model`` or another model
name) or, as seed 000 writes it, by reference: a ``models`` row (``target_model_id``)
and a ``providers`` row (``provider_id``), which give ``<provider name>/<model name>``.
Aliases of the YAML file win over stored ones of the same name. The table is read at
start and again after every change made through the admin API (:func:`refresh`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from llmrelay.store.database import Connect
from llmrelay.store.tables import model_aliases, models, providers

if TYPE_CHECKING:
    from llmrelay.services import Services


def alias_target(target: str | None, model: str | None, provider: str | None) -> str | None:
    """What an alias row resolves to: its text, else ``provider/model`` of its ids."""
    if target:
        return target
    if model and provider:
        return f"{provider}/{model}"
    return model  # a model row without a provider: the model name, resolved as usual


async def stored_aliases(connect: Connect) -> dict[str, str]:
    """Every enabled alias of the table with a target, by alias."""
    a = model_aliases
    query = (
        select(a.c.alias, a.c.target, models.c.model_name, providers.c.name)
        .select_from(a)
        .outerjoin(models, models.c.id == a.c.target_model_id)
        .outerjoin(providers, providers.c.id == a.c.provider_id)
        .where(a.c.enabled.is_(True))
    )
    async with connect() as conn:
        rows = (await conn.execute(query)).all()
    out: dict[str, str] = {}
    for alias, target, model, provider in rows:
        found = alias_target(target, model, provider)
        if found:
            out[alias] = found
    return out


async def refresh(services: Services) -> None:
    """Read the table again and give the resolver the new aliases (YAML ones win)."""
    aliases = await stored_aliases(services.engine.connect)
    aliases.update(services.settings.aliases)
    services.resolver.set_aliases(aliases)
    services.router.forget_plans()
