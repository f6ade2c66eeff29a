"""Content safety: category scores for texts, from a moderation model or a webhook.

Both speak OpenAI's ``/v1/moderations`` wire format, so any compatible moderation
service works behind either::

    request   POST {"model": "omni-moderation-latest", "input": ["text", ...]}
              (a webhook also gets "stage": "input" | "output")
    answer    {"results": [{"category_scores": {"violence": 0.92, ...}, ...}, ...]}

The provider is one configured in llmrelay (its credentials and transport, no new
secret in the route config) of an OpenAI-compatible family; a webhook is reached with
the gateway's own HTTP client and is allowed in stored configs only (a URL from a
request would make the gateway post user text wherever a client says).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.providers.base import UpstreamCall
from llmrelay.providers.openai_compat import OpenAICompatAdapter
from llmrelay.routing.plan import find_provider

if TYPE_CHECKING:
    from llmrelay.guardrails.config import ContentSafety
    from llmrelay.providers.registry import Registry
    from llmrelay.upstream import Transport

#: Texts per moderation request, and characters per text (longer ones are split):
#: bounded like any upstream request.
MAX_TEXTS = 32
MAX_TEXT_CHARS = 8000


class ModerationFailed(Exception):
    """The scores could not be had; the guardrail then blocks or allows (``on_error``)."""


class Moderation:
    def __init__(self, registry: Registry, http: Transport) -> None:
        self.registry = registry
        self.http = http

    async def scores(self, guard: ContentSafety, stage: str, texts: list[str]) -> dict[str, float]:
        """The highest score of each category over ``texts``."""
        pieces = [
            t[i : i + MAX_TEXT_CHARS]
            for t in texts
            if t.strip()
            for i in range(0, len(t), MAX_TEXT_CHARS)
        ]
        best: dict[str, float] = {}
        for start in range(0, len(pieces), MAX_TEXTS):
            batch = pieces[start : start + MAX_TEXTS]
            for result in await self._results(guard, stage, batch):
                for category, score in result.items():
                    if score > best.get(category, -1.0):
                        best[category] = score
        return best

    async def _results(
        self, guard: ContentSafety, stage: str, texts: list[str]
    ) -> list[dict[str, float]]:
        if guard.webhook is not None:
            call = UpstreamCall(
                "POST",
                guard.webhook,
                {"content-type": "application/json"},
                orjson.dumps({"model": guard.model, "input": texts, "stage": stage}),
            )
            transport, label = self.http, "guardrail webhook"
        else:
            provider = find_provider(self.registry, guard.provider)
            if provider is None:
                raise ModerationFailed(
                    f"no provider {guard.provider!r} is configured for moderation"
                )
            if type(provider.adapter) is not OpenAICompatAdapter:
                raise ModerationFailed(
                    f"provider {provider.name} ({provider.spec.type}) has "
                    "no OpenAI-compatible /moderations endpoint"
                )
            spec = provider.spec
            call = UpstreamCall(
                "POST",
                spec.base_url.rstrip("/") + "/moderations",
                spec.json_headers(spec.auth_header, spec.auth_prefix),
                orjson.dumps({"model": guard.model, "input": texts}),
            )
            transport, label = provider.transport, f"provider {provider.name}"
        try:
            resp = await transport.send(
                call,
                provider=label,
                timeout=guard.timeout,
                connect_timeout=min(5.0, guard.timeout),
                stream=False,
            )
            try:
                raw = await resp.read()
            finally:
                resp.close()
        except Exception as exc:  # timeouts, refused connections: the guardrail's error
            raise ModerationFailed(f"{label} could not be reached ({type(exc).__name__})") from None
        if resp.status != 200:
            raise ModerationFailed(f"{label} answered {resp.status}")
        return _parse(raw, label, len(texts))


def _parse(raw: bytes, label: str, count: int) -> list[dict[str, float]]:
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ModerationFailed(f"{label} did not answer JSON") from None
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list) or len(results) != count:
        raise ModerationFailed(f"{label} did not answer one result per input")
    out: list[dict[str, float]] = []
    for result in results:
        scores = result.get("category_scores") if isinstance(result, dict) else None
        if not isinstance(scores, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in scores.values()
        ):
            raise ModerationFailed(f"{label} answered results without category_scores")
        out.append({str(k): float(v) for k, v in scores.items()})
    return out
