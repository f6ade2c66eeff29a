"""Provider model lists: fetched in the background, refreshed on demand, served from memory.

Every provider whose adapter has a list endpoint (``models_request`` is not None) is
asked for its models at start and then every ``provider_reload_interval`` seconds
(seed 000's ``PROVIDER_RELOAD_INTERVAL``). ``GET /v1/models?refresh=true`` refreshes
on demand. A failed or empty answer keeps the last good list: a provider's brief
outage must not make its models vanish from ``/v1/models``. Requests for the list
never wait on a provider except for an explicit refresh, or the very first fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from llmrelay.errors import GatewayError
from llmrelay.providers.registry import Provider, Registry
from llmrelay.redaction import Redactor

log = logging.getLogger("llmrelay")

#: A listing call gets at most this long, whatever the provider's chat timeout.
LIST_TIMEOUT = 30.0


@dataclass(slots=True)
class ListStatus:
    """What the last refresh of one provider's list did (for logs and health)."""

    refreshed_at: float | None = None
    attempted_at: float | None = None
    count: int = 0
    error: str | None = None


class ModelLists:
    def __init__(self, registry: Registry, interval: float) -> None:
        self._registry = registry
        self._interval = interval
        self._loop: asyncio.Task[None] | None = None
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self.status: dict[str, ListStatus] = {}
        #: A provider's refusal may quote its key: scrubbed before it is logged.
        self.redactor = Redactor.for_providers(p.spec for p in registry)

    def listing(self) -> list[Provider]:
        """Providers that have a list endpoint."""
        return [p for p in self._registry if p.adapter.models_request(p.spec) is not None]

    def start(self) -> None:
        """Fetch every list now and then periodically; an interval of 0 turns this off
        (lists are then fetched only on demand, with ``?refresh=true``)."""
        if self._loop is None and self._interval > 0:
            self._loop = asyncio.create_task(self._run(), name="model-lists")

    async def _run(self) -> None:
        while True:
            await self.refresh(p.name for p in self.listing())
            await asyncio.sleep(self._interval)

    async def refresh(self, names: Iterable[str]) -> None:
        """Refresh these providers' lists and wait; concurrent refreshes of one provider
        share one upstream call."""
        tasks = []
        for name in names:
            provider = self._registry.get(name)
            if provider is None or provider.adapter.models_request(provider.spec) is None:
                continue
            task = self._inflight.get(name)
            if task is None:
                task = asyncio.create_task(self._fetch(provider), name=f"models-{name}")
                self._inflight[name] = task
                task.add_done_callback(self._forget(name))
            tasks.append(task)
        if tasks:
            await asyncio.gather(*(asyncio.shield(t) for t in tasks), return_exceptions=True)

    def _forget(self, name: str) -> Callable[[asyncio.Task[None]], None]:
        def done(_task: asyncio.Task[None]) -> None:
            self._inflight.pop(name, None)

        return done

    async def first_fetch(self, names: Iterable[str], timeout: float = 10.0) -> None:
        """Wait (bounded) for lists that were never fetched and are being fetched now."""
        pending = [
            self._inflight[n]
            for n in names
            if n in self._inflight and (self.status.get(n) or ListStatus()).refreshed_at is None
        ]
        if pending:
            await asyncio.wait([asyncio.shield(t) for t in pending], timeout=timeout)

    async def _fetch(self, provider: Provider) -> None:
        status = self.status.setdefault(provider.name, ListStatus())
        status.attempted_at = time.monotonic()
        ucall = provider.adapter.models_request(provider.spec)
        if ucall is None:
            return
        spec = provider.spec
        try:
            resp = await provider.transport.send(
                ucall,
                provider=spec.name,
                timeout=min(spec.timeout, LIST_TIMEOUT),
                connect_timeout=spec.connect_timeout,
                stream=False,
            )
            body = await resp.read()
            if resp.status >= 400:
                raise provider.adapter.error(spec, resp.status, body, resp.headers)
            models = provider.adapter.parse_models(body)
        except GatewayError as exc:
            self._failed(provider, status, self.redactor.text(exc.message))
            return
        except Exception as exc:  # an answer we cannot parse
            self._failed(provider, status, f"unreadable model list ({type(exc).__name__})")
            return
        if not models:
            self._failed(provider, status, "the provider listed no models")
            return
        provider.listed_models = tuple(dict.fromkeys(models))
        status.refreshed_at = time.time()
        status.count = len(provider.listed_models)
        status.error = None

    def _failed(self, provider: Provider, status: ListStatus, message: str) -> None:
        status.error = message
        log.warning(
            "model list of provider %s not refreshed (keeping %d models): %s",
            provider.name,
            len(provider.listed_models),
            message,
        )

    async def close(self) -> None:
        tasks = [t for t in (self._loop, *self._inflight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loop = None
