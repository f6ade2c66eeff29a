"""Semantic mode: the question a call asks, the context it asks it in, and the index.

A call is looked up by meaning only within its **context**: an exact hash of everything
but the last user turn (endpoint, targets, scope, namespace, system prompt, earlier
turns, tools, parameters; see :func:`split`), so "what is the age of Apple's CEO" never
answers the same words asked under another system prompt, with other tools or of another
model. Within a context the last user turn's embedding is compared by cosine similarity
with the stored questions'; the best one at or above the threshold answers.

:class:`SemanticIndex` keeps the vectors in this process, at most ``max_per_context``
questions per context and ``max_vectors`` overall, oldest first out; entries expire with
the answer they point at. With numpy installed each context is also a matrix
(``cache/vector_matrix.py``) and a search is one matrix product (~0.1 µs per stored
question); without it the list is scanned in pure Python (~16 µs per question: 1,000 per
context by default is ~16 ms a search; bench/semantic_cost.py). Vectors shared by
instances: ``cache/shared_vectors.py``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from llmrelay.cache import vector_matrix
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

    def __init__(
        self, max_vectors: int, max_per_context: int = 1000, vectorised: bool | None = None
    ) -> None:
        self.max_vectors = max_vectors
        self.max_per_context = max_per_context
        self.count = 0
        self._contexts: OrderedDict[str, list[_Stored]] = OrderedDict()
        #: numpy matrices mirroring ``_contexts`` row for row (when numpy is installed).
        self.vectorised = vector_matrix.available() if vectorised is None else vectorised
        self._rows: dict[str, vector_matrix.Rows] = {}
        #: Each context's entry keys: a refresh is found without a scan.
        self._keys: dict[str, set[str]] = {}

    def search(
        self, context: str, vector: list[float], threshold: float
    ) -> tuple[str, float] | None:
        """The entry key of the most similar live question at or above ``threshold``."""
        stored = self._contexts.get(context)
        if not stored:
            return None
        now = time.monotonic()
        rows = self._rows.get(context)
        if rows is not None:
            alive = rows.live(now)
            if not alive.all():
                flags = alive.tolist()
                live = [s for s, keep in zip(stored, flags, strict=True) if keep]
                self.count -= len(stored) - len(live)
                stored[:] = live
                self._keys[context] = {s.key for s in live}
                rows.keep(alive)
            if rows.dim == len(vector) and stored:
                scores = rows.scores(vector)
                at = int(scores.argmax())
                score = float(scores[at])
                return (stored[at].key, score) if score >= threshold else None
        live = [s for s in stored if s.expires > now]
        if len(live) != len(stored):
            self.count -= len(stored) - len(live)
            if rows is not None:
                rows.keep([s.expires > now for s in stored])
            stored[:] = live
            self._keys[context] = {s.key for s in live}
        best: tuple[str, float] | None = None
        for s in live:
            score = cosine(vector, s.vector)
            if score >= threshold and (best is None or score > best[1]):
                best = (s.key, score)
        return best

    def add(self, context: str, vector: list[float], key: str, ttl: float) -> None:
        stored = self._contexts.setdefault(context, [])
        rows = self._rows.get(context)
        if rows is None and self.vectorised:
            rows = self._rows[context] = vector_matrix.Rows(len(vector))  # a new context
        before = len(stored)
        keys = self._keys.setdefault(context, set())
        if key in keys:  # a refreshed answer replaces
            if rows is not None:
                rows.keep([s.key != key for s in stored])
            stored[:] = [s for s in stored if s.key != key]
        expires = time.monotonic() + ttl
        stored.append(_Stored(vector, key, expires))
        if rows is not None:
            rows.append(vector, expires)
        keys.add(key)
        if len(stored) > self.max_per_context:
            keys.discard(stored[0].key)
            del stored[0]
            if rows is not None:
                rows.drop_first()
        self.count += len(stored) - before
        self._contexts.move_to_end(context)
        while self.count > self.max_vectors and self._contexts:
            oldest = next(iter(self._contexts))
            dropped = self._contexts[oldest]
            self._keys[oldest].discard(dropped.pop(0).key)
            oldest_rows = self._rows.get(oldest)
            if oldest_rows is not None:
                oldest_rows.drop_first()
            self.count -= 1
            if not dropped:
                del self._contexts[oldest]
                del self._keys[oldest]
                self._rows.pop(oldest, None)

    def status(self) -> dict[str, int]:
        return {"contexts": len(self._contexts), "vectors": self.count}
