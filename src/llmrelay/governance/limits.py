"""Rate limits: what a limit is, and the sliding-log window that enforces it exactly.

A limit allows ``limit`` units (requests, or tokens) in *any* ``window`` seconds: the
window slides with the clock, so there is no edge where a fixed window would let
twice the limit through (all at the end of one minute, all again at the start of the
next). Each admitted call leaves an entry ``(time, amount)``; entries older than the
window drop out.

Admission rule, for requests and tokens alike: a call is admitted while the units used
in the window are *below* the limit, and then adds its amount. For requests the amount
is 1, so exactly ``limit`` calls pass. For tokens the amount is an estimate reserved up
front (prompt estimate + ``max_tokens`` or a default) and corrected to the real count
when the call ends, so a token limit is overshot by at most one call's tokens — the
same contract as budgets.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["requests", "tokens"]

MINUTE = 60.0
HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit that applies to a call (a key's RPM, a team's TPM, ...)."""

    #: ``key``, ``team`` or ``key+model``.
    scope: str
    #: Key id, team id, or ``<key id>:<model pattern>``.
    scope_id: str
    kind: Kind
    limit: int
    window: float
    #: Who it belongs to, for error messages: ``key 'ci'``, ``team 'research'``.
    owner: str

    @property
    def id(self) -> str:
        return f"{self.scope}:{self.scope_id}:{self.kind}:{int(self.window)}"

    def describe(self) -> str:
        unit = (
            "minute"
            if self.window == MINUTE
            else "hour"
            if self.window == HOUR
            else (f"{self.window:g} seconds")
        )
        return f"{self.owner} allows {self.limit} {self.kind} per {unit}"


@dataclass(frozen=True, slots=True)
class WindowState:
    """A limit as seen by one admission, for the ``x-ratelimit-*`` headers."""

    limit: Limit
    #: Units used in the window *before* this call.
    used: int
    #: Seconds until the oldest entry leaves the window (capacity grows then); 0 if empty.
    reset: float

    def remaining(self, amount: int) -> int:
        return max(0, self.limit.limit - self.used - amount)


@dataclass(slots=True)
class _Entry:
    at: float
    ticket: str
    amount: int


@dataclass(slots=True)
class SlidingLog:
    """The entries of one limit inside its window (in process; Redis keeps the same)."""

    window: float
    entries: deque[_Entry] = field(default_factory=deque)
    total: int = 0

    def purge(self, now: float) -> None:
        cutoff = now - self.window
        entries = self.entries
        while entries and entries[0].at <= cutoff:
            self.total -= entries.popleft().amount

    def state(self, limit: Limit, now: float) -> WindowState:
        self.purge(now)
        reset = self.entries[0].at + self.window - now if self.entries else 0.0
        return WindowState(limit, self.total, max(0.0, reset))

    def retry_after(self, limit: int, now: float, *, unit: bool = False) -> float:
        """Seconds until the units used drop below ``limit`` (0 when they already are).

        ``unit``: every entry is one unit (a request window), so the entry that has to
        leave is found by index instead of by summing.
        """
        self.purge(now)
        excess = self.total - limit + 1
        if excess <= 0:
            return 0.0
        if unit:
            if excess > len(self.entries):
                return self.window
            return max(0.0, self.entries[excess - 1].at + self.window - now)
        for entry in self.entries:
            excess -= entry.amount
            if excess <= 0:
                return max(0.0, entry.at + self.window - now)
        return self.window

    def add(self, now: float, ticket: str, amount: int) -> None:
        self.entries.append(_Entry(now, ticket, amount))
        self.total += amount

    def adjust(self, ticket: str, amount: int) -> None:
        """Replace a call's reserved amount with its real one (or drop it with 0)."""
        # In-flight calls are recent: search from the newest end.
        for i in range(len(self.entries) - 1, -1, -1):
            entry = self.entries[i]
            if entry.ticket == ticket:
                self.total += amount - entry.amount
                if amount:
                    entry.amount = amount
                else:
                    del self.entries[i]
                return

    def empty(self, now: float) -> bool:
        self.purge(now)
        return not self.entries


def format_reset(seconds: float) -> str:
    """OpenAI's duration style for ``x-ratelimit-reset-*``: ``250ms``, ``1.5s``, ``6m0s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)}m{int(rest)}s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)}h{int(minutes)}m{int(rest)}s"
