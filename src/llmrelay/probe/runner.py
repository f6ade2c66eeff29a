"""Runs the tiers of every chosen model, a few at a time per provider.

Providers run side by side (they are different hosts), but within one provider at most
``concurrency`` models are in flight, so a probe never stampedes a local Ollama or a
small account's rate limit; a model's tiers run one after the other. A model's tiers
stop at the first failure that makes the next ones pointless (the key is refused, the
model is not there, the call timed out): they would fail the same way and only spend
the provider's time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .config import ProbeOptions
from .report import ModelResult, ProviderReport
from .targets import ProviderTargets, Target
from .tiers import CAPABILITY_TIERS, Tier, TierResult, chat, embeddings, stream
from .wire import Client

#: Failures after which a model's remaining tiers are not tried.
_FINAL_REASONS = frozenset({"auth", "not_found", "timeout", "unreachable"})

#: Told about each model as it starts (result None) and when it is done.
Progress = Callable[[Target, ModelResult | None], None]


def _listed_tier(target: Target) -> TierResult:
    if target.listed:
        return TierResult("listed", True)
    return TierResult(
        "listed", False, "not_found", None, "not in the gateway's model list for this key"
    )


async def probe_model(client: Client, options: ProbeOptions, target: Target) -> ModelResult:
    """Every tier this run asks of ``target``."""
    result = ModelResult(target, [_listed_tier(target)])
    plan: list[Tier]
    if target.embedding:
        plan = [embeddings]
    else:
        plan = [chat]
        if options.stream:
            plan.append(stream)
        if options.capabilities:
            plan.extend(CAPABILITY_TIERS)
    for tier in plan:
        outcome = await tier(client, options, target.model)
        result.tiers.append(outcome)
        if not outcome.ok and outcome.reason in _FINAL_REASONS:
            break
    return result


async def run_provider(
    client: Client, options: ProbeOptions, group: ProviderTargets, progress: Progress
) -> ProviderReport:
    """One provider's models, at most ``options.concurrency`` at once, sharing one
    ``retry-after`` cool-down."""
    gate = asyncio.Semaphore(options.concurrency)
    client = client.for_provider()

    async def one(target: Target) -> ModelResult:
        async with gate:
            progress(target, None)
            result = await probe_model(client, options, target)
            progress(target, result)
            return result

    results = await asyncio.gather(*(one(t) for t in group.targets))
    return ProviderReport(group.name, group.listed, list(results))


async def run_all(
    client: Client, options: ProbeOptions, groups: list[ProviderTargets], progress: Progress
) -> list[ProviderReport]:
    """Every provider, side by side; the reports in the gateway's provider order."""
    return list(await asyncio.gather(*(run_provider(client, options, g, progress) for g in groups)))
