"""Embeddings for the semantic cache, from a model configured on the gateway.

``provider/model`` is resolved like a request's model and called through the provider's
own adapter and transport (any family that embeds: OpenAI, Gemini, Bedrock, the mock
...), with the cache's timeout. The call is the gateway's own: it has no key, so no rate
limit, budget or usage row of the caller's; its tokens are counted in
``llmrelay_cache_embedding_tokens_total``. Vectors come back normalised (unit length),
so cosine similarity is a dot product.
"""

from __future__ import annotations

import asyncio
import math
import operator
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from llmrelay.routing.resolve import Resolver


class EmbeddingError(Exception):
    """The embedding could not be made (unknown model, upstream error, bad answer)."""


def normalised(values: list[float]) -> list[float]:
    norm = math.sqrt(math.fsum(v * v for v in values))
    if not norm or not math.isfinite(norm):
        raise EmbeddingError("the embedding is empty or not finite")
    return [v / norm for v in values]


def cosine(a: list[float], b: list[float]) -> float:
    """Of two unit vectors (a dot product; vectors of other sizes never match)."""
    if len(a) != len(b):
        return -1.0
    # sum(map(mul)): 16 µs per 384-dimension pair here, 2.5x faster than a generator.
    return float(sum(map(operator.mul, a, b)))


class ProviderEmbedder:
    """Embeds text with ``model`` (``provider/model``) through the gateway's providers."""

    def __init__(self, resolver: Resolver, model: str, timeout: float) -> None:
        self.resolver = resolver
        self.model = model
        self.timeout = timeout
        #: Tokens the cache's embedding calls used (the gateway's own usage).
        self.tokens = 0

    async def embed(self, text: str) -> list[float]:
        try:
            target = self.resolver.resolve(self.model)
        except Exception as exc:
            raise EmbeddingError(f"embedding model {self.model!r} is not configured") from exc
        provider, spec = target.provider, target.provider.spec
        if not provider.caps.embeddings:
            raise EmbeddingError(f"provider {provider.name} has no embeddings API")
        try:
            async with asyncio.timeout(self.timeout):
                request = provider.adapter.embeddings_request(
                    spec, {"model": target.model, "input": text}, target.model
                )
                resp = await provider.transport.send(
                    request,
                    provider=spec.name,
                    timeout=self.timeout,
                    connect_timeout=min(spec.connect_timeout, self.timeout),
                    stream=False,
                )
                body = await resp.read()
            if resp.status >= 400:
                raise provider.adapter.error(spec, resp.status, body, resp.headers)
            result = provider.adapter.embeddings_response(spec, body, target.model)
            data = orjson.loads(result.body)["data"][0]["embedding"]
        except EmbeddingError:
            raise
        except Exception as exc:  # timeout, refused, an error status, an unexpected shape
            raise EmbeddingError(
                f"embedding with {self.model} failed: {type(exc).__name__}"
            ) from exc
        if result.usage is not None:
            self.tokens += result.usage.prompt_tokens
        if not isinstance(data, list) or not all(isinstance(v, int | float) for v in data):
            raise EmbeddingError(f"embedding with {self.model}: not a list of floats")
        return normalised([float(v) for v in data])
