"""The probe's table: the seed's layout as text, and a live view while it runs.

The final text is the seed's "Example Output" (a block per provider with one line per
model, ``[OK]`` / ``[FAIL]`` and the time; then the summary with ``[OK]`` / ``[WARN]`` /
``[FAIL]`` per provider and the total), plus what the seed lacks: the reason of each
failure, the time to first token when streamed, and the probe's own tokens and cost.
While it runs, a terminal gets a rich live table with a progress bar; a pipe or a file
gets only the final text, so scripts and CI logs stay clean.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from .classify import label
from .report import ModelResult, ProviderReport, Report, usd
from .targets import ProviderTargets, Target

RULE = "=" * 78
#: Width of the model column in the per-model lines (the seed's is 34).
MODEL_WIDTH = 34


def model_line(index: int, count: int, result: ModelResult) -> str:
    """``[1/3] model ... [OK] (2.45s)``, with TTFT, tokens, cost, or the failure."""
    head = f"[{index}/{count}] {result.target.model:<{MODEL_WIDTH}} ..."
    seconds = f"({result.total_ms / 1000:.2f}s)"
    failed = result.failed
    if failed is None:
        extra = [f"ttft {result.ttft_ms / 1000:.2f}s"] if result.ttft_ms is not None else []
        extra.append(f"{result.tokens} tok")
        if result.cost_nanos:
            extra.append(f"${usd(result.cost_nanos)}")
        detail = next((t.detail for t in result.tiers if t.tier == "embeddings"), "")
        if detail:
            extra.append(detail)
        return f"{head} [OK] {seconds}  " + "  ".join(extra)
    why = label(failed.reason)
    tier = "" if failed.tier in ("chat", "embeddings") else f"{failed.tier}: "
    return f"{head} [FAIL] {seconds}  {tier}{why}" + (f": {failed.detail}" if failed.detail else "")


def provider_block(report: ProviderReport) -> list[str]:
    count = len(report.models)
    lines = [
        RULE,
        f"Testing Gateway: {report.name.upper()}",
        RULE,
        f"Fetching models from {report.name}...",
        f"Testing {count} models" if count else "No chat models listed",
        "",
    ]
    lines += [model_line(i, count, m) for i, m in enumerate(report.models, 1)]
    return [*lines, ""]


def summary_line(report: ProviderReport) -> str:
    """``[OK] openrouter      :  3/ 3 passed (100.0%)`` (the colon in column 22)."""
    total = len(report.models)
    pct = 100.0 * report.passed / total if total else 0.0
    name = f"[{report.verdict}] {report.name}".ljust(21)
    return f"{name}: {report.passed:>2}/{total:>2} passed ({pct:5.1f}%)"


def render_text(report: Report) -> str:
    """The whole table as the seed lays it out."""
    lines: list[str] = []
    for provider in report.providers:
        lines += provider_block(provider)
    models = report.models
    total, passed = len(models), report.passed
    pct = 100.0 * passed / total if total else 0.0
    lines += [RULE, "TEST SUMMARY", RULE, ""]
    lines += [summary_line(p) for p in report.providers]
    tokens = sum(m.tokens for m in models)
    cost = sum(m.cost_nanos for m in models)
    lines += [
        "",
        f"TOTAL: {passed}/{total} models passed ({pct:.1f}%)",
        f"Probe usage: {tokens} tokens, ${usd(cost)}",
        RULE,
    ]
    return "\n".join(lines) + "\n"


class LiveView:
    """The running table on a terminal: one row per model, and a progress bar."""

    def __init__(self, console: Console, groups: list[ProviderTargets]) -> None:
        self._console = console
        self._rows: dict[tuple[str, str], tuple[str, str, str]] = {
            (t.provider, t.model): ("waiting", "", "") for g in groups for t in g.targets
        }
        self._progress = Progress(
            TextColumn("probing"), BarColumn(), MofNCompleteColumn(), console=console
        )
        self._task = self._progress.add_task("models", total=len(self._rows))

    def update(self, target: Target, result: ModelResult | None) -> None:
        key = (target.provider, target.model)
        if result is None:
            self._rows[key] = ("running", "", "")
            return
        failed = result.failed
        status = "[green]OK[/]" if failed is None else f"[red]FAIL[/] {label(failed.reason)}"
        ttft = f"{result.ttft_ms / 1000:.2f}s" if result.ttft_ms is not None else ""
        self._rows[key] = (status, ttft, f"{result.total_ms / 1000:.2f}s")
        self._progress.advance(self._task)

    def renderable(self) -> Group:
        table = Table("provider", "model", "status", "ttft", "time")
        for (provider, model), (status, ttft, total) in self._rows.items():
            table.add_row(provider, model, status, ttft, total)
        return Group(table, self._progress)

    @contextmanager
    def shown(self) -> Iterator[LiveView]:
        with Live(console=self._console, get_renderable=self.renderable, transient=True):
            yield self
