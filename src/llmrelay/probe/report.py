"""A probe run's result as data: per model, per provider, in total; and its JSON.

The table (:mod:`.render`), the JSON report (``--json``), the exit code and the history
rows are all read from these objects, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .targets import Target
from .tiers import TierResult

#: Exit codes: every model passed / some model failed / the probe could not run.
EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2


@dataclass(slots=True)
class ModelResult:
    """Every tier tried for one model; it passes when all of them did."""

    target: Target
    tiers: list[TierResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tiers)

    @property
    def failed(self) -> TierResult | None:
        """The first tier that failed (what the table and the history show)."""
        return next((t for t in self.tiers if not t.ok), None)

    @property
    def total_ms(self) -> float:
        return sum(t.ms for t in self.tiers)

    @property
    def ttft_ms(self) -> float | None:
        """Time to the first streamed token (the stream tier's), if it was tried."""
        return next((t.ttft_ms for t in self.tiers if t.ttft_ms is not None), None)

    @property
    def tokens(self) -> int:
        return sum(t.tokens for t in self.tiers)

    @property
    def cost_nanos(self) -> int:
        return sum(t.cost_nanos for t in self.tiers)

    def as_dict(self) -> dict[str, Any]:
        failed = self.failed
        return {
            "model": self.target.model,
            "provider": self.target.provider,
            "listed": self.target.listed,
            "kind": "embedding" if self.target.embedding else "chat",
            "ok": self.ok,
            "reason": failed.reason if failed else None,
            "status": failed.status if failed else None,
            "total_ms": round(self.total_ms, 1),
            "ttft_ms": round(self.ttft_ms, 1) if self.ttft_ms is not None else None,
            "tokens": self.tokens,
            "cost_usd": usd(self.cost_nanos),
            "tiers": [t.as_dict() for t in self.tiers],
        }


@dataclass(slots=True)
class ProviderReport:
    """One provider's models, and its summary verdict."""

    name: str
    listed: int
    models: list[ModelResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(1 for m in self.models if m.ok)

    @property
    def verdict(self) -> str:
        """``OK`` all passed, ``WARN`` some, ``FAIL`` none (``SKIP``: nothing to try)."""
        if not self.models:
            return "SKIP"
        if self.passed == len(self.models):
            return "OK"
        return "WARN" if self.passed else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listed": self.listed,
            "tested": len(self.models),
            "passed": self.passed,
            "verdict": self.verdict,
            "models": [m.as_dict() for m in self.models],
        }


@dataclass(slots=True)
class Report:
    """A whole run."""

    run_id: str
    gateway: str
    started_at: datetime
    finished_at: datetime | None = None
    options: dict[str, Any] = field(default_factory=dict)
    providers: list[ProviderReport] = field(default_factory=list)

    @property
    def models(self) -> list[ModelResult]:
        return [m for p in self.providers for m in p.models]

    @property
    def passed(self) -> int:
        return sum(1 for m in self.models if m.ok)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.passed == len(self.models) else EXIT_FAILED

    def as_dict(self) -> dict[str, Any]:
        models = self.models
        return {
            "run_id": self.run_id,
            "gateway": self.gateway,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "options": self.options,
            "providers": [p.as_dict() for p in self.providers],
            "total": {
                "tested": len(models),
                "passed": self.passed,
                "failed": len(models) - self.passed,
                "tokens": sum(m.tokens for m in models),
                "cost_usd": usd(sum(m.cost_nanos for m in models)),
            },
            "exit_code": self.exit_code,
        }


def usd(nanos: int) -> str:
    """Exact decimal text of integer nano-dollars (never a float)."""
    return f"{nanos // 10**9}.{nanos % 10**9:09d}"
