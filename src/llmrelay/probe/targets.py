"""Which models a probe run tries: each provider's list, as the gateway serves it.

"Top N" is the provider's own list order (``/v1/models?provider=NAME``, which is the
order the provider's ``/models`` answer or the configured ``models`` gave), chat models
only: names that say embedding, image, audio, moderation or rerank are not asked a chat
question (with ``--capabilities`` the first N embedding models get the embeddings
tier instead). ``--model ID`` tries exactly the models named, listed or not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import aiohttp

from .wire import Client, short

_EMBEDDING = re.compile(r"embed|bag-of-words", re.IGNORECASE)
_NOT_CHAT = re.compile(
    r"dall-e|gpt-image|imagen|stable-diffusion|sdxl|flux|whisper|tts|transcribe|"
    r"moderation|rerank|guard",
    re.IGNORECASE,
)


class ListingError(Exception):
    """The gateway could not list models (unreachable, bad key): the probe cannot run."""


@dataclass(slots=True)
class Target:
    """One model to probe, under the provider that serves it."""

    provider: str
    model: str
    listed: bool = True
    embedding: bool = False


@dataclass(slots=True)
class ProviderTargets:
    """A provider and the models chosen from its list."""

    name: str
    listed: int = 0
    targets: list[Target] = field(default_factory=list)


def kind(model: str) -> str:
    """``chat``, ``embedding`` or ``other`` (image, audio, moderation ...), by name."""
    if _EMBEDDING.search(model):
        return "embedding"
    if _NOT_CHAT.search(model):
        return "other"
    return "chat"


async def list_models(client: Client, timeout: float, provider: str | None) -> list[dict[str, str]]:
    """``GET /v1/models`` (``?provider=``): ``[{id, owned_by}]``, or :class:`ListingError`."""
    path = "/v1/models" + (f"?provider={provider}" if provider else "")
    try:
        answer = await client.get(path, timeout)
    except TimeoutError:
        raise ListingError(f"the gateway did not list models within {timeout:g}s") from None
    except (OSError, aiohttp.ClientError) as exc:
        raise ListingError(f"the gateway at {client.base} is unreachable ({exc})") from None
    if answer.status != 200:
        _, message = answer.error()
        what = {401: "the key was refused", 404: f"unknown provider {provider!r}"}.get(
            answer.status, f"HTTP {answer.status}"
        )
        raise ListingError(f"listing models failed: {what}: {short(message, client.key)}")
    data = answer.body.get("data") if isinstance(answer.body, dict) else None
    if not isinstance(data, list):
        raise ListingError("listing models failed: the answer has no data list")
    return [
        {"id": str(m["id"]), "owned_by": str(m.get("owned_by", ""))}
        for m in data
        if isinstance(m, dict) and "id" in m
    ]


def _provider_of(model: str, owned_by: dict[str, str]) -> str:
    return owned_by.get(model) or (model.split("/", 1)[0] if "/" in model else "llmrelay")


async def select(
    client: Client,
    *,
    providers: tuple[str, ...],
    models: tuple[str, ...],
    per_provider: int,
    timeout: float,
    embeddings: bool,
) -> list[ProviderTargets]:
    """The providers and models of this run, in the gateway's order."""
    listings: list[dict[str, str]] = []
    if providers:
        for name in providers:
            listings.extend(await list_models(client, timeout, name))
    else:
        listings = await list_models(client, timeout, None)
    owned_by = {m["id"]: m["owned_by"] for m in listings}
    groups: dict[str, ProviderTargets] = {}
    if models:
        for model in models:
            name = _provider_of(model, owned_by)
            group = groups.setdefault(name, ProviderTargets(name))
            group.targets.append(
                Target(name, model, listed=model in owned_by, embedding=kind(model) == "embedding")
            )
        for group in groups.values():
            group.listed = sum(1 for m in listings if m["owned_by"] == group.name)
        return list(groups.values())
    for entry in listings:
        name = entry["owned_by"]
        if name == "llmrelay":  # routes and aliases: they point at the providers' models
            continue
        group = groups.setdefault(name, ProviderTargets(name))
        group.listed += 1
        model_kind = kind(entry["id"])
        chosen = [t for t in group.targets if t.embedding == (model_kind == "embedding")]
        if model_kind == "chat" and len(chosen) < per_provider:
            group.targets.append(Target(name, entry["id"]))
        elif model_kind == "embedding" and embeddings and len(chosen) < per_provider:
            group.targets.append(Target(name, entry["id"], embedding=True))
    for name in providers:
        groups.setdefault(name, ProviderTargets(name))
    return list(groups.values())
