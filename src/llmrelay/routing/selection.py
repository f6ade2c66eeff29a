"""Which route plan a request gets: the first config that applies, bound to targets.

    x-llmrelay-config / x-portkey-config header   (a JSON config or a config's name)
    the request's model, when a named config has that name
    the API key's default config                  (api_keys.route_config)
    the gateway's routing.default_config
    none: the model's one resolved target, as a "direct" plan (pipeline.run)

A config in a header is the client's input: a bad one is a 400 naming the field. A
stored one (YAML, database, a key's default) is the operator's: it is a 500 naming
the config, since the client can do nothing about it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.cache.options import DEFAULT_THRESHOLD
from llmrelay.errors import InternalError, InvalidRequest, PermissionDenied
from llmrelay.json_limits import check_depth
from llmrelay.providers.registry import Registry
from llmrelay.routing.conditions import RequestFacts
from llmrelay.routing.config import RouteConfigError, RouteSpec, parse_route_config
from llmrelay.routing.plan import BindError, Leaf, RoutePlan, bind
from llmrelay.routing.resolve import Resolver, check_allowed
from llmrelay.routing.store import RouteConfigStore, StoredConfigInvalid

if TYPE_CHECKING:
    from llmrelay.context import Call

CONFIG_HEADERS = ("x-llmrelay-config", "x-portkey-config")
METADATA_HEADERS = ("x-llmrelay-metadata", "x-portkey-metadata")
#: Parsed header configs kept (clients tend to send the same few configs).
_HEADER_CACHE = 256


def _check_client_config(header: str, raw: str, data: object) -> None:
    """What a client's config may not do that an operator's may.

    Nesting is bounded (queries nest through ``$and`` / ``$or`` recursively), and
    ``$regex`` is refused: Python's regular expressions backtrack, so a pattern like
    ``^(a+)+$`` against a 30-character header takes minutes of the event loop's time,
    stalling every request of the process. Stored configs are the operator's and may
    use it. Nor may a client widen whose cached answers it reads: a ``cache`` block's
    ``scope`` beyond ``key``, or a semantic ``threshold`` below the default (which would
    let it harvest shared answers to other questions), is the operator's to set.
    """
    check_depth(raw.encode(), data, header, param=header)
    cache = data.get("cache") if isinstance(data, dict) else None
    if isinstance(cache, dict):
        threshold = cache.get("threshold", DEFAULT_THRESHOLD)
        if cache.get("scope", "key") != "key" or (
            isinstance(threshold, int | float) and threshold < DEFAULT_THRESHOLD
        ):
            raise InvalidRequest(
                f"{header}: cache.scope and a cache.threshold below {DEFAULT_THRESHOLD} "
                "decide whose cached answers a call may read: only stored route configs "
                "may set them; store the config and name it in the header",
                param=header,
                code="invalid_route_config",
            )
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "$regex" in node:
                raise InvalidRequest(
                    f"{header}: $regex is only allowed in stored route configs (a regular "
                    "expression from a request could take exponential time); use $eq or "
                    "$in, or store the config and name it in the header",
                    param=header,
                    code="invalid_route_config",
                )
            if _custom_guardrail(node.get("guardrails")):
                raise InvalidRequest(
                    f"{header}: guardrails with custom patterns or a webhook are only "
                    "allowed in stored route configs (a regular expression from a request "
                    "could take exponential time, a URL would make the gateway post text "
                    "wherever it says); store the config and name it in the header",
                    param=header,
                    code="invalid_route_config",
                )
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _custom_guardrail(block: object) -> bool:
    """Whether a guardrails block brings its own regular expressions or webhook."""
    if not isinstance(block, dict):
        return False
    return any(
        isinstance(item, dict) and ("custom" in item or "webhook" in item)
        for stage in block.values()
        if isinstance(stage, list)
        for item in stage
    )


class PlanSelector:
    def __init__(
        self,
        *,
        registry: Registry,
        resolver: Resolver,
        configs: RouteConfigStore,
        default_config: str | None = None,
        enforce_breaker: bool = True,
    ) -> None:
        self.registry = registry
        self.resolver = resolver
        self.configs = configs
        self.default_config = default_config
        #: When off, failures are still counted (``/health/ready`` shows them) but no
        #: target is ever skipped.
        self.enforce_breaker = enforce_breaker
        self._parsed: dict[str, RouteSpec] = {}

    async def plan_for(self, call: Call) -> RoutePlan | None:
        """The route plan of this request, or ``None`` when no config applies."""
        headers = call.request.headers
        for header in CONFIG_HEADERS:
            raw = headers.get(header)
            if raw is not None:
                given, stored = self._from_header(header, raw)
                return self._bind(call, given, header, stored=stored)
        if call.model:
            by_model = self._named(call.model)
            if by_model is not None:
                return self._bind(call, by_model, f"config:{call.model}", stored=True)
        key_config = call.key.route_config if call.key else None
        if not key_config and not self.default_config:
            return None
        fallbacks: tuple[tuple[str, str | None], ...] = (
            ("key", key_config),
            ("default", self.default_config),
        )
        for source, name in fallbacks:
            if not name:
                continue
            spec = self._named(name)
            if spec is None:
                whose = "of this API key" if source == "key" else "routing.default_config"
                raise InternalError(
                    f"route config {name!r} ({whose}) does not exist; "
                    "create it or change the setting"
                )
            return self._bind(call, spec, f"{source}:{name}", stored=True)
        return None

    def _from_header(self, header: str, raw: str) -> tuple[RouteSpec, bool]:
        raw = raw.strip()
        if not raw.startswith("{"):
            spec = self._named(raw)
            if spec is None:
                raise InvalidRequest(
                    f"{header}: no route config named {raw!r}",
                    param=header,
                    code="route_config_not_found",
                )
            return spec, True
        spec = self._parsed.get(raw)
        if spec is not None:
            return spec, False
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(
                f"{header} is not valid JSON: {exc.msg}", param=header, code="invalid_route_config"
            ) from exc
        _check_client_config(header, raw, data)
        try:
            spec = parse_route_config(data)
        except RouteConfigError as exc:
            raise InvalidRequest(
                f"invalid route config in {header}: {exc}",
                param=exc.path or header,
                code="invalid_route_config",
            ) from exc
        if len(self._parsed) >= _HEADER_CACHE:
            self._parsed.clear()
        self._parsed[raw] = spec
        return spec, False

    def _named(self, name: str) -> RouteSpec | None:
        try:
            return self.configs.lookup(name)
        except StoredConfigInvalid as exc:
            raise InternalError(str(exc)) from exc

    def _bind(self, call: Call, spec: RouteSpec, source: str, *, stored: bool) -> RoutePlan:
        try:
            root = bind(spec, self.registry, self.resolver, call.model)
        except BindError as exc:
            if stored:
                raise InternalError(f"route config {source} cannot be used here: {exc}") from exc
            raise InvalidRequest(
                f"invalid route config in {source}: {exc}",
                param=exc.path or source,
                code="invalid_route_config",
            ) from exc
        allowed = call.key.allowed_models if call.key else None
        if allowed is not None:
            for leaf in root.leaves():
                try:
                    check_allowed(allowed, leaf.target, self._names_of(call, leaf, source))
                except PermissionDenied as exc:
                    where = leaf.spec.path or "the target"
                    raise PermissionDenied(
                        f"this API key is not allowed to use {leaf.target.qualified} "
                        f"({where} of the route config in {source})",
                        param="model",
                    ) from exc
        return RoutePlan(root, source, enforce_breaker=self.enforce_breaker)

    def _names_of(self, call: Call, leaf: Leaf, source: str) -> tuple[str, ...]:
        """The names besides ``provider/model`` that may admit this leaf's target.

        Every leaf of every group kind is checked, because any of them may answer
        (fallbacks, load-balanced members, conditional branches, nested groups), and
        each by its own target: an ``override_params.model`` is already the leaf's
        model. Besides the qualified name, a leaf is admitted by a name that resolved
        to exactly its target: the request's model, or the leaf's own model name when
        the config gave no provider. A stored config selected by using its name as the
        model is the operator's alias for its targets, so that name admits the leaves
        that name their model; a leaf taking the request's model does not, since the
        client chose that model.
        """
        names: list[str] = []
        if call.model and self.resolver.resolves_to(call.model, leaf.target):
            names.append(call.model)
        spec = leaf.spec
        if (
            spec.provider is None
            and spec.model
            and self.resolver.resolves_to(spec.model, leaf.target)
        ):
            names.append(spec.model)
        if call.model and source == f"config:{call.model}" and spec.model is not None:
            names.append(call.model)
        return tuple(names)


def request_facts(call: Call) -> RequestFacts:
    """What conditions see: metadata (body + header), the body's params, the headers."""
    body = call.body or {}
    headers = call.request.headers
    metadata: dict[str, Any] = {}
    if isinstance(body.get("metadata"), dict):
        metadata.update(body["metadata"])
    for name in METADATA_HEADERS:
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"{name} is not valid JSON: {exc.msg}", param=name) from exc
        if not isinstance(value, dict):
            raise InvalidRequest(f"{name} must be a JSON object", param=name)
        metadata.update(value)
    return RequestFacts(metadata=metadata, params=body, headers=headers)
