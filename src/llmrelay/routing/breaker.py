"""Circuit breakers: a target that keeps failing is skipped for a while, then probed.

Per target (``provider/model``)::

    closed ──(failure_threshold failures within window)──▶ open
    open ──(cooldown elapsed)──▶ half_open: the first caller gets the one probe
    half_open ──probe succeeds──▶ closed      half_open ──probe fails──▶ open again

Failures are counted in a sliding window (not "consecutive"), so a target that fails
every other call still trips. Only failures that say the target is unwell count
(5xx, timeouts, refused connections, 429); a client's 400 does not.

:class:`Breaker` is the interface; :class:`LocalBreaker` keeps the state in process
(the default), ``breaker_redis.RedisBreaker`` shares it between instances.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int = 5
    #: Seconds in which ``failure_threshold`` failures open the circuit.
    window: float = 60.0
    #: Seconds an open circuit skips the target before letting one probe through.
    cooldown: float = 30.0


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    state: str  # closed | open | half_open
    #: Seconds until a probe may go through (when not allowed).
    retry_in: float = 0.0


CLOSED = Verdict(True, "closed")


class Breaker(Protocol):
    async def acquire(self, key: str) -> Verdict:
        """May a call go to ``key`` now? In half-open state only one caller gets a yes."""
        ...

    async def success(self, key: str) -> None: ...

    async def failure(self, key: str) -> None: ...

    async def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every circuit seen, for ``/health/ready``."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Circuit:
    failures: deque[float] = field(default_factory=deque)
    #: When the open state ends (0: closed). Past it, the circuit is half open.
    open_until: float = 0.0
    #: While a probe is out, nobody else gets through until this time.
    probe_until: float = 0.0
    opened: int = 0
    last_change: float = 0.0


class LocalBreaker:
    """In-process circuit state (one gateway process; each worker has its own)."""

    def __init__(
        self,
        policy: BreakerPolicy,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._wall = wall
        self._circuits: dict[str, _Circuit] = {}

    def _get(self, key: str) -> _Circuit:
        circuit = self._circuits.get(key)
        if circuit is None:
            circuit = self._circuits[key] = _Circuit()
        return circuit

    def acquire_now(self, key: str) -> Verdict:
        circuit = self._circuits.get(key)
        if circuit is None or not circuit.open_until:
            return CLOSED
        now = self._clock()
        if now < circuit.open_until:
            return Verdict(False, "open", circuit.open_until - now)
        if now < circuit.probe_until:
            return Verdict(False, "half_open", circuit.probe_until - now)
        # The probe holds the target for one cooldown; if it never reports back
        # (client gone mid-call), the next caller probes instead.
        circuit.probe_until = now + self.policy.cooldown
        return Verdict(True, "half_open")

    def success_now(self, key: str) -> None:
        circuit = self._circuits.get(key)
        if circuit is None or not circuit.open_until:
            return
        if self._clock() >= circuit.open_until:  # the probe answered: close
            circuit.open_until = circuit.probe_until = 0.0
            circuit.failures.clear()
            circuit.last_change = self._wall()

    def failure_now(self, key: str) -> None:
        circuit = self._get(key)
        now = self._clock()
        if circuit.open_until:
            if now >= circuit.open_until:  # the probe failed: open for another cooldown
                self._open(circuit, now)
            return  # a late failure of a call started before the circuit opened
        circuit.failures.append(now)
        horizon = now - self.policy.window
        while circuit.failures and circuit.failures[0] < horizon:
            circuit.failures.popleft()
        if len(circuit.failures) >= self.policy.failure_threshold:
            self._open(circuit, now)

    def _open(self, circuit: _Circuit, now: float) -> None:
        circuit.open_until = now + self.policy.cooldown
        circuit.probe_until = 0.0
        circuit.failures.clear()
        circuit.opened += 1
        circuit.last_change = self._wall()

    async def acquire(self, key: str) -> Verdict:
        return self.acquire_now(key)

    async def success(self, key: str) -> None:
        self.success_now(key)

    async def failure(self, key: str) -> None:
        self.failure_now(key)

    async def snapshot(self) -> dict[str, dict[str, Any]]:
        now = self._clock()
        out: dict[str, dict[str, Any]] = {}
        for key, c in self._circuits.items():
            horizon = now - self.policy.window
            recent = sum(1 for t in c.failures if t >= horizon)
            if not c.open_until:
                state, retry_in = "closed", 0.0
            elif now < c.open_until:
                state, retry_in = "open", c.open_until - now
            else:
                state, retry_in = "half_open", 0.0
            out[key] = {
                "state": state,
                "recent_failures": recent,
                "retry_in": round(retry_in, 3),
                "times_opened": c.opened,
                "changed_at": c.last_change or None,
            }
        return out

    async def close(self) -> None:
        return None
