"""The budget guard: keeps a running stream within its budget reservation.

A plug-in with only a stream step (see :class:`~llmrelay.governance.reservation.
BudgetWatch` for the bound it keeps): after each upstream read it compares the
stream's running cost with what the call reserved and, past it, asks the governance
backend for one more step; when no budget has room the stream ends after the events
already paid for, with a ``budget_exceeded`` error event, and the upstream is closed.
Every call gets it; it takes part only in streams a budget applies to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmrelay.errors import BudgetExceeded
from llmrelay.plugins.chain import EndStream, Plugin, StreamStep

if TYPE_CHECKING:
    from llmrelay.context import Call
    from llmrelay.governance.governor import Governor
    from llmrelay.governance.reservation import BudgetWatch


class BudgetGuard(Plugin):
    name = "budget_guard"

    def __init__(self, governor: Governor) -> None:
        self.governor = governor

    def applies(self, call: Call) -> bool:
        return call.stream and call.ticket is not None and bool(call.ticket.budgets)

    def stream(self, call: Call) -> StreamStep | None:
        watch = self.governor.stream_watch(call)  # None unless a priced budget applies
        return None if watch is None else _Guard(watch)


class _Guard(StreamStep):
    __slots__ = ("watch",)

    def __init__(self, watch: BudgetWatch) -> None:
        self.watch = watch

    async def feed(self, call: Call, events: list[bytes]) -> list[bytes]:
        if self.watch.over(call):
            try:
                await self.watch.extend(call)
            except BudgetExceeded as exc:  # this read is paid for already: it goes out
                raise EndStream(exc, events) from None
        return events
