"""The ``cache`` block: one parser for route configs, the settings and key metadata.

``{"mode": "simple", "ttl": 3600}`` is seed 004's shape; llmrelay adds ``max_age``
(entries older than this are not served), ``scope`` (whose entries a call may see:
``key`` by default, ``team`` or ``global`` widen it deliberately), ``namespace`` (a
partition chosen by the operator) and ``store_truncated`` (also keep answers cut by
``max_tokens``). ``mode: semantic`` adds ``threshold`` (cosine similarity a stored
question must reach; default 0.95, Portkey's figure in seed 004) and
``embedding_model`` (``provider/model``; default: the settings'
``response_cache.embedding_model``). A leaf module: routing validates route configs with
it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The longest time an entry may live or be accepted (30 days, as route configs cap it).
MAX_CACHE_SECONDS = 30 * 86400.0
DEFAULT_TTL = 3600.0
DEFAULT_THRESHOLD = 0.95
MODES = ("simple", "semantic")
SCOPES = ("key", "team", "global")
_FIELDS = (
    "embedding_model",
    "max_age",
    "mode",
    "namespace",
    "scope",
    "store_truncated",
    "threshold",
    "ttl",
)
MAX_NAMESPACE_CHARS = 200


class CacheOptionsError(ValueError):
    """An invalid cache block; ``path`` names the field (``cache.ttl``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class CacheOptions:
    mode: str = "simple"
    ttl: float = DEFAULT_TTL
    max_age: float | None = None
    scope: str = "key"
    namespace: str = ""
    store_truncated: bool = False
    threshold: float = DEFAULT_THRESHOLD
    embedding_model: str | None = None


def _seconds(raw: Mapping[str, Any], key: str, path: str) -> float | None:
    if key not in raw or raw[key] is None:
        return None
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CacheOptionsError(f"{path}.{key}", "must be a number of seconds")
    if not 0 < value <= MAX_CACHE_SECONDS:
        raise CacheOptionsError(
            f"{path}.{key}", f"must be above 0 and at most {MAX_CACHE_SECONDS:g} seconds"
        )
    return float(value)


def check_namespace(value: object, where: str) -> str:
    if (
        not isinstance(value, str)
        or len(value) > MAX_NAMESPACE_CHARS
        or not (value.isprintable() and value.isascii())
    ):
        raise CacheOptionsError(
            where, f"must be printable ASCII text of at most {MAX_NAMESPACE_CHARS} characters"
        )
    return value


def parse_cache_options(raw: object, path: str = "cache") -> CacheOptions:
    """Validate a cache block; raises :class:`CacheOptionsError` naming the bad field."""
    if not isinstance(raw, Mapping):
        raise CacheOptionsError(path, "must be an object")
    for key in raw:
        if key not in _FIELDS:
            raise CacheOptionsError(
                f"{path}.{key}", f"unknown field; allowed: {', '.join(_FIELDS)}"
            )
    mode = raw.get("mode", "simple")
    if mode not in MODES:
        raise CacheOptionsError(f"{path}.mode", "must be simple or semantic")
    scope = raw.get("scope", "key")
    if scope not in SCOPES:
        raise CacheOptionsError(f"{path}.scope", "must be key, team or global")
    truncated = raw.get("store_truncated", False)
    if not isinstance(truncated, bool):
        raise CacheOptionsError(f"{path}.store_truncated", "must be true or false")
    namespace = raw.get("namespace", "")
    check_namespace(namespace, f"{path}.namespace")
    ttl = _seconds(raw, "ttl", path)
    threshold = check_threshold(raw.get("threshold", DEFAULT_THRESHOLD), f"{path}.threshold")
    model = raw.get("embedding_model")
    if model is not None and (not isinstance(model, str) or "/" not in model.strip("/")):
        raise CacheOptionsError(
            f"{path}.embedding_model", "must name an embeddings model as provider/model"
        )
    return CacheOptions(
        mode=str(mode),
        ttl=DEFAULT_TTL if ttl is None else ttl,
        max_age=_seconds(raw, "max_age", path),
        scope=str(scope),
        namespace=str(namespace),
        store_truncated=truncated,
        threshold=threshold,
        embedding_model=model,
    )


def check_threshold(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise CacheOptionsError(where, "must be a cosine similarity above 0 and at most 1")
    return float(value)
