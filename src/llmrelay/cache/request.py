"""What a call asks of the cache (its headers) and what it is looked up by (its key).

Per-request headers, all optional::

    cache-control: no-cache            do not answer from the cache; store the new answer
    cache-control: no-store            do not store this call's answer
    cache-control: max-age=<s>         accept only an entry younger than <s> seconds
    x-llmrelay-cache-bypass: true      neither look up nor store (BYPASS)
    x-llmrelay-cache-force-refresh: true   = no-cache  (also x-portkey-cache-force-refresh)
    x-llmrelay-cache-namespace: <ns>   a partition of the call's scope (also
                                       x-portkey-cache-namespace)
    x-llmrelay-cache-ttl: <s>          keep the stored answer at most <s> seconds (a request
                                       may shorten the configured ttl, not extend it)
    x-llmrelay-cache-threshold: <0-1>  semantic mode: the similarity a match needs (a request
                                       may raise the configured threshold, not lower it)

The key is a SHA-256 of the normalised request: the endpoint, the resolved target(s) with
their route overrides (never the alias the client typed), the tenant scope, the namespace
and the body minus the fields that do not change the answer (``stream``,
``stream_options``, ``user``, ``metadata``): so a streamed and a non-streamed call share
an entry, and two keys never share one unless a config widened the scope.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.cache.options import (
    MAX_CACHE_SECONDS,
    CacheOptions,
    CacheOptionsError,
    check_namespace,
    check_threshold,
)
from llmrelay.errors import InvalidRequest

if TYPE_CHECKING:
    from llmrelay.asgi import Request
    from llmrelay.context import Call
    from llmrelay.routing.resolve import Target

#: Body fields that do not change the answer: left out of the key.
NOT_KEYED = frozenset({"model", "stream", "stream_options", "user", "metadata"})
_TRUE = ("1", "true", "yes", "on")
KEY_VERSION = 1


@dataclass(frozen=True, slots=True)
class Directives:
    lookup: bool = True
    store: bool = True
    max_age: float | None = None
    ttl: float | None = None
    namespace: str | None = None
    threshold: float | None = None

    @property
    def bypass(self) -> bool:
        return not self.lookup and not self.store


def _flag(request: Request, *names: str) -> bool:
    for name in names:
        value = request.header(name)
        if value is not None and value.strip().lower() in _TRUE:
            return True
    return False


def _seconds(value: str, where: str, *, allow_zero: bool) -> float:
    try:
        seconds = float(value.strip())
    except ValueError:
        seconds = -1.0
    low_ok = seconds >= 0 if allow_zero else seconds > 0
    if not (low_ok and seconds <= MAX_CACHE_SECONDS):  # NaN fails too
        raise InvalidRequest(
            f"{where}: must be a number of seconds from "
            f"{0 if allow_zero else 'above 0'} to {MAX_CACHE_SECONDS:g}",
            param=where,
            code="invalid_cache_header",
        )
    return seconds


def directives(request: Request) -> Directives:
    """The call's cache headers; a malformed one is a 400 naming it."""
    lookup, store = True, True
    max_age: float | None = None
    if _flag(request, "x-llmrelay-cache-bypass"):
        return Directives(lookup=False, store=False)
    if _flag(request, "x-llmrelay-cache-force-refresh", "x-portkey-cache-force-refresh"):
        lookup = False
    control = request.header("cache-control")
    if control:
        for part in control.split(","):
            name, _, value = part.strip().partition("=")
            name = name.strip().lower()
            if name == "no-cache":
                lookup = False
            elif name == "no-store":
                store = False
            elif name == "max-age":
                max_age = _seconds(value.strip('" '), "cache-control max-age", allow_zero=True)
    ttl_header = request.header("x-llmrelay-cache-ttl")
    ttl = (
        None
        if ttl_header is None
        else _seconds(ttl_header, "x-llmrelay-cache-ttl", allow_zero=False)
    )
    namespace = request.header("x-llmrelay-cache-namespace") or request.header(
        "x-portkey-cache-namespace"
    )
    if namespace is not None:
        try:
            check_namespace(namespace, "x-llmrelay-cache-namespace")
        except CacheOptionsError as exc:
            raise InvalidRequest(str(exc), param=exc.path, code="invalid_cache_header") from None
    threshold: float | None = None
    raw_threshold = request.header("x-llmrelay-cache-threshold")
    if raw_threshold is not None:
        try:
            threshold = check_threshold(float(raw_threshold), "x-llmrelay-cache-threshold")
        except (ValueError, CacheOptionsError):
            raise InvalidRequest(
                "x-llmrelay-cache-threshold: must be a cosine similarity above 0 and at most 1",
                param="x-llmrelay-cache-threshold",
                code="invalid_cache_header",
            ) from None
    return Directives(
        lookup=lookup,
        store=store,
        max_age=max_age,
        ttl=ttl,
        namespace=namespace,
        threshold=threshold,
    )


def scope_of(call: Call, options: CacheOptions) -> str:
    """Whose entries the call may see: its key's unless the config widened the scope (a
    key without a team keeps its own under ``scope: team``)."""
    key = call.key
    assert key is not None
    if options.scope == "global":
        return "global"
    if options.scope == "team" and key.team is not None:
        return f"team:{key.team.id}"
    return f"key:{key.id}"


def candidates(call: Call) -> list[Target]:
    """The targets that may answer the call: the direct call's one, or the plan's leaves."""
    if call.plan is not None:
        return [leaf.target for leaf in call.plan.root.leaves()]
    assert call.target is not None
    return [call.target]


def cache_key(
    call: Call,
    options: CacheOptions,
    namespace: str,
    body: dict[str, Any] | None = None,
    kind: str = "exact",
) -> str:
    """The hex SHA-256 of the normalised request (see the module docstring); ``body`` and
    ``kind`` give a semantic call's context hash (its body without the last user turn)."""
    assert call.body is not None
    body = {k: v for k, v in (call.body if body is None else body).items() if k not in NOT_KEYED}
    targets = sorted(
        ([t.qualified, dict(t.overrides or {})] for t in candidates(call)),
        key=lambda t: orjson.dumps(t, option=orjson.OPT_SORT_KEYS),
    )
    material: dict[str, Any] = {
        "v": KEY_VERSION,
        "kind": kind,
        "route": call.route,
        "targets": targets,
        "scope": scope_of(call, options),
        "namespace": namespace,
        "body": body,
    }
    beta = call.request.header("anthropic-beta")
    if beta:  # Anthropic's beta features change what a Messages call answers
        material["beta"] = beta
    raw = orjson.dumps(material, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(raw).hexdigest()
