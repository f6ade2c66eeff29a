"""OpenAI's embeddings: the request's inputs, the vectors and the ``list`` answer.

Vectors are deterministic: a hash of the input (unit length, float32-exact so the
``float`` and ``base64`` encodings decode to the same numbers), or for a
``*bag-of-words`` model hashed word counts whose similarity is predictable, so the
semantic cache can be tested offline.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from .openai_reply import count_words

EMBEDDING_DIMS = 8
MAX_EMBEDDING_DIMS = 4096


def embeddings_request_error(body: object) -> tuple[str, str | None] | None:
    """``(message, param)`` when the body is not a usable embeddings request."""
    if not isinstance(body, Mapping):
        return "The request body must be a JSON object.", None
    if not isinstance(body.get("model"), str):
        return "You must provide a model parameter.", "model"
    if not _embedding_inputs(body.get("input")):
        return "'input' must be a non-empty string or array.", "input"
    return None


def _embedding_inputs(value: object) -> list[str | list[int]]:
    """Normalise ``input``: string, list of strings, token list, list of token lists."""
    if isinstance(value, str):
        return [value] if value else []
    if not isinstance(value, list) or not value:
        return []
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [list(value)]
    items: list[str | list[int]] = []
    for item in value:
        if isinstance(item, str):
            items.append(item)
        elif isinstance(item, list) and all(isinstance(v, int) for v in item):
            items.append(list(item))
        else:
            return []
    return items


def embedding_vector(item: str | Sequence[int], dims: int = EMBEDDING_DIMS) -> list[float]:
    """Unit-length vector derived from a hash of the input.

    Values are rounded to float32 so the ``float`` and ``base64`` encodings of
    the same input decode to identical numbers.
    """
    data = item.encode() if isinstance(item, str) else orjson.dumps(list(item))
    digest = hashlib.shake_256(data).digest(2 * dims)
    raw = [v / 32767.5 - 1.0 for v in struct.unpack(f"<{dims}H", digest)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return list(struct.unpack(f"<{dims}f", struct.pack(f"<{dims}f", *(v / norm for v in raw))))


#: The embeddings model whose vectors carry meaning (of a kind): a bag of words.
BAG_OF_WORDS = "bag-of-words"
BAG_OF_WORDS_DIMS = 256


def bag_of_words_vector(text: str, dims: int = BAG_OF_WORDS_DIMS) -> list[float]:
    """Unit-length counts of the text's lowercase words, each hashed to one dimension
    with a sign (the hashing trick): the same words in any order, case or punctuation
    give similarity 1.0; one word of six changed gives about 0.83. So the semantic cache
    can be tested offline against a model whose similarity is predictable."""
    raw = [0.0] * dims
    for word in re.findall(r"[a-z0-9']+", text.lower()):
        digest = hashlib.shake_256(word.encode()).digest(4)
        slot = int.from_bytes(digest[:3], "little") % dims
        raw[slot] += 1.0 if digest[3] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return list(struct.unpack(f"<{dims}f", struct.pack(f"<{dims}f", *(v / norm for v in raw))))


def embeddings_response(body: Mapping[str, Any]) -> dict[str, Any]:
    """The ``list`` object for a validated embeddings request (``*bag-of-words`` models:
    :func:`bag_of_words_vector`; any other: a hash of the input)."""
    bag = str(body.get("model") or "").endswith(BAG_OF_WORDS)
    dims = body.get("dimensions")
    if not isinstance(dims, int) or isinstance(dims, bool) or not 0 < dims <= MAX_EMBEDDING_DIMS:
        dims = BAG_OF_WORDS_DIMS if bag else EMBEDDING_DIMS
    as_base64 = body.get("encoding_format") == "base64"
    data: list[dict[str, Any]] = []
    tokens = 0
    for index, item in enumerate(_embedding_inputs(body.get("input"))):
        vector = (
            bag_of_words_vector(item, dims)
            if bag and isinstance(item, str)
            else embedding_vector(item, dims)
        )
        embedding: list[float] | str = (
            base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode() if as_base64 else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens += count_words(item) if isinstance(item, str) else len(item)
    return {
        "object": "list",
        "data": data,
        "model": body.get("model"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
