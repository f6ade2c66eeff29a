"""Semantic mode: the question a call asks, the context it asks it in, and the index.

A call is looked up by meaning only within its **context**: an exact hash of everything
but the last user turn (endpoint, targets, scope, namespace, system prompt, earlier
turns, tools, parameters; see :func:`split`), so "what is the age of Apple's CEO" never
answers the same words asked under another system prompt, with other tools or of another
model. Within a context the last user turn's embedding is compared by cosine similarity
with the stored questions'; the best one at or above the threshold answers.

:class:`SemanticIndex` keeps the vectors in this process: per context a list scanned in
pure Python (~16 µs per stored 384-dimension question), at most ``max_per_context``
questions per context (1,000 by default: ~16 ms per search; bench/semantic_cost.py) and
``max_vectors`` overall, oldest first out; entries expire with the answer they point at.
A context of many thousands of questions (one FAQ system prompt) needs a vectorised or
ANN index, and vectors shared by instances need PostgreSQL: both later work
(docs/cache.md).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from llmrelay.cache.embedder import cosine

#: Stands in for the last user turn in the context hash.
QUESTION = "\x00question"


def _text(content: Any, kinds: tuple[str, ...]) -> str | None:
    """Plain text of a message's content, or ``None`` if it holds anything but text (an
    image, a tool result: too much meaning outside the words to match on words)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    parts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") not in kinds:
            return None
        text = part.get("text")
        if not isinstance(text, str):
            return None
        parts.append(text)
    return "\n".join(parts)


def _last_user(
    items: list[Any], kinds: tuple[str, ...], replace: Any
) -> tuple[list[Any], str] | None:
    for i in range(len(items) - 1, -1, -1):
        item = items[i]
        if isinstance(item, dict) and item.get("role") == "user":
            text = _text(item.get("content"), kinds)
            if text is None or not text.strip():
                return None
            return [*items[:i], {**item, "content": replace}, *items[i + 1 :]], text
    return None


def split(route: str, body: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """``(the body with the last user turn replaced, that turn's text)``, or ``None``
    when the call has no plain-text user turn to match on (then it is cached exactly)."""
    if route in ("/v1/chat/completions", "/v1/messages"):
        messages = body.get("messages")
        if not isinstance(messages, list):
            return None
        found = _last_user(messages, ("text",), QUESTION)
        return None if found is None else ({**body, "messages": found[0]}, found[1])
    if route == "/v1/responses":
        given = body.get("input")
        if isinstance(given, str):
            return {**body, "input": QUESTION}, given
        if isinstance(given, list):
            found = _last_user(given, ("input_text",), QUESTION)
            return None if found is None else ({**body, "input": found[0]}, found[1])
    return None


@dataclass(slots=True)
class _Stored:
    vector: list[float]
    key: str
    expires: float


class SemanticIndex:
    """Questions by context: ``context -> [(vector, entry key, expiry)]``."""

    def __init__(self, max_vectors: int, max_per_context: int = 1000) -> None:
        self.max_vectors = max_vectors
        self.max_per_context = max_per_context
        self.count = 0
        self._contexts: OrderedDict[str, list[_Stored]] = OrderedDict()

    def search(
        self, context: str, vector: list[float], threshold: float
    ) -> tuple[str, float] | None:
        """The entry key of the most similar live question at or above ``threshold``."""
        stored = self._contexts.get(context)
        if not stored:
            return None
        now = time.monotonic()
        live = [s for s in stored if s.expires > now]
        if len(live) != len(stored):
            self.count -= len(stored) - len(live)
            stored[:] = live
        best: tuple[str, float] | None = None
        for s in live:
            score = cosine(vector, s.vector)
            if score >= threshold and (best is None or score > best[1]):
                best = (s.key, score)
        return best

    def add(self, context: str, vector: list[float], key: str, ttl: float) -> None:
        stored = self._contexts.setdefault(context, [])
        before = len(stored)
        stored[:] = [s for s in stored if s.key != key]  # a refreshed answer replaces
        stored.append(_Stored(vector, key, time.monotonic() + ttl))
        if len(stored) > self.max_per_context:
            del stored[0]
        self.count += len(stored) - before
        self._contexts.move_to_end(context)
        while self.count > self.max_vectors and self._contexts:
            oldest = next(iter(self._contexts))
            dropped = self._contexts[oldest]
            dropped.pop(0)
            self.count -= 1
            if not dropped:
                del self._contexts[oldest]

    def status(self) -> dict[str, int]:
        return {"contexts": len(self._contexts), "vectors": self.count}
