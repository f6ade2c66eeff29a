"""The ``guardrails`` block of a route config (or of the plug-in's options), parsed strictly.

Shape (seed 004)::

    {"input":  [{"type": "pii_detection", "action": "redact", "restore": true}],
     "output": [{"type": "pii_detection", "action": "deny"}]}

Every key is checked and an error names its path (``guardrails.input[0].action``), so a
misspelt ``acton`` cannot silently turn a redaction into a pass-through. The parsed
form is frozen; the plug-in is built once per distinct block (see
:class:`~llmrelay.plugins.chain.PluginSelector`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmrelay.guardrails import ner

#: The entity types the detectors know (:mod:`.entities`; kept here so validating a
#: route config does not import ``phonenumbers`` and ``stdnum``: ~90 ms).
ENTITIES = frozenset(
    {"EMAIL", "PHONE", "CARD", "IBAN", "SSN", "CMND", "CCCD", "IP", "SECRET", "NAME"}
)
DEFAULT_ENTITIES = ENTITIES
#: Countries whose national id numbers are known (``countries`` option).
NATIONAL_ID_COUNTRIES = frozenset({"VN"})
ACTIONS = ("deny", "redact", "flag")
#: ``numbered``: ``[EMAIL_1]`` (the default, needed to restore); ``redacted``: seed
#: 004's ``[EMAIL_REDACTED]``, the same for every value of a type.
PLACEHOLDERS = ("numbered", "redacted")
_PII_KEYS = frozenset(
    {
        "type",
        "action",
        "restore",
        "placeholder",
        "entities",
        "regions",
        "countries",
        "custom",
        "on_error",
        "name",
        "names",
        "ner_max_chars",
    }
)
#: ``heuristic``: the Vietnamese name / honorific pattern; ``ner``: that plus spaCy's
#: PERSON entities (the optional ``ner`` extra, :mod:`.ner`).
NAME_BACKENDS = ("heuristic", "ner")
#: Characters of one text the NER scans at most by default (~4.5 s of CPU here).
NER_MAX_CHARS = 100_000
_CUSTOM_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,30}")
_SAFETY_KEYS = frozenset(
    {
        "type",
        "threshold",
        "provider",
        "model",
        "webhook",
        "categories",
        "on_error",
        "name",
        "timeout",
    }
)
MAX_CUSTOM = 20
MAX_PATTERN_CHARS = 500


class GuardrailConfigError(ValueError):
    """An invalid guardrails block; ``path`` names the bad field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class CustomPattern:
    name: str
    pattern: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class PiiGuardrail:
    """One ``pii_detection`` entry."""

    name: str
    action: str
    entities: frozenset[str]
    regions: tuple[str, ...] = ("US", "VN", "GB", "DE", "FR")
    countries: tuple[str, ...] = ("VN",)
    custom: tuple[CustomPattern, ...] = ()
    restore: bool = False
    placeholder: str = "numbered"
    #: ``block``: a guardrail that fails stops the call (fail closed); ``allow``: the
    #: call goes on unchecked and the failure is recorded.
    on_error: str = "block"
    #: How ``NAME`` is found: ``heuristic`` or ``ner`` (see :data:`NAME_BACKENDS`).
    names: str = "heuristic"
    ner_max_chars: int = NER_MAX_CHARS

    @property
    def uses_ner(self) -> bool:
        return self.names == "ner" and "NAME" in self.entities


@dataclass(frozen=True, slots=True)
class ContentSafety:
    """One ``content_safety`` entry: deny when a category scores at or above
    ``threshold``, scores from a moderation model (OpenAI's ``/v1/moderations`` wire
    format, at a configured provider) or from the operator's ``webhook``."""

    name: str
    threshold: float
    provider: str = "openai"
    model: str = "omni-moderation-latest"
    webhook: str | None = None
    #: Only these categories count (all when empty).
    categories: frozenset[str] = frozenset()
    on_error: str = "block"
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class GuardrailsConfig:
    input: tuple[PiiGuardrail, ...] = ()
    output: tuple[PiiGuardrail, ...] = ()
    input_safety: tuple[ContentSafety, ...] = ()
    output_safety: tuple[ContentSafety, ...] = ()

    @property
    def restores(self) -> bool:
        return any(g.restore for g in self.input)

    @property
    def uses_ner(self) -> bool:
        """Whether a guardrail finds names with the NER model (:mod:`.ner`)."""
        return any(g.uses_ner for g in self.input + self.output)


def parse_guardrails(raw: object, path: str = "guardrails") -> GuardrailsConfig:
    if not isinstance(raw, Mapping):
        raise GuardrailConfigError(path, "must be an object with input and/or output arrays")
    for key in raw:
        if key not in ("input", "output"):
            raise GuardrailConfigError(f"{path}.{key}", "unknown field; allowed: input, output")
    pii: dict[str, tuple[PiiGuardrail, ...]] = {}
    safety: dict[str, tuple[ContentSafety, ...]] = {}
    for stage in ("input", "output"):
        items = raw.get(stage, [])
        here = f"{path}.{stage}"
        if not isinstance(items, list):
            raise GuardrailConfigError(here, "must be an array of guardrails")
        parsed = [_guardrail(item, f"{here}[{i}]", stage, i) for i, item in enumerate(items)]
        pii[stage] = tuple(g for g in parsed if isinstance(g, PiiGuardrail))
        safety[stage] = tuple(g for g in parsed if isinstance(g, ContentSafety))
    if not any(pii.values()) and not any(safety.values()):
        raise GuardrailConfigError(path, "give at least one guardrail in input or output")
    return GuardrailsConfig(pii["input"], pii["output"], safety["input"], safety["output"])


def _guardrail(raw: object, path: str, stage: str, index: int) -> PiiGuardrail | ContentSafety:
    if not isinstance(raw, Mapping):
        raise GuardrailConfigError(path, "must be an object with a type")
    kind = raw.get("type")
    if kind == "content_safety":
        return _safety(raw, path, stage, index)
    if kind != "pii_detection":
        raise GuardrailConfigError(
            f"{path}.type",
            f"unknown guardrail type {kind!r} (one of: pii_detection, content_safety)",
        )
    for key in raw:
        if key not in _PII_KEYS:
            raise GuardrailConfigError(
                f"{path}.{key}", "unknown field; allowed: " + ", ".join(sorted(_PII_KEYS))
            )
    action = raw.get("action", "redact")
    if action not in ACTIONS:
        raise GuardrailConfigError(f"{path}.action", f"must be one of: {', '.join(ACTIONS)}")
    restore = raw.get("restore", False)
    if not isinstance(restore, bool):
        raise GuardrailConfigError(f"{path}.restore", "must be true or false")
    if restore and (stage != "input" or action != "redact"):
        raise GuardrailConfigError(
            f"{path}.restore",
            "only an input guardrail that redacts can restore the originals in the answer",
        )
    placeholder = raw.get("placeholder", "numbered")
    if placeholder not in PLACEHOLDERS:
        raise GuardrailConfigError(
            f"{path}.placeholder", f"must be one of: {', '.join(PLACEHOLDERS)}"
        )
    if restore and placeholder != "numbered":
        raise GuardrailConfigError(
            f"{path}.placeholder",
            "restore needs numbered placeholders: [EMAIL_REDACTED] cannot say which value it was",
        )
    on_error = raw.get("on_error", "block")
    if on_error not in ("block", "allow"):
        raise GuardrailConfigError(f"{path}.on_error", "must be block (fail closed) or allow")
    name = raw.get("name", f"{stage}_{index}_pii")
    if not isinstance(name, str) or not name or len(name) > 64:
        raise GuardrailConfigError(f"{path}.name", "must be a non-empty string (64 chars max)")
    custom = _custom(raw.get("custom", []), f"{path}.custom")
    entities = _entities(raw.get("entities"), f"{path}.entities")
    entities |= {c.name for c in custom}
    names = _names(raw, path, entities)
    max_chars = raw.get("ner_max_chars", NER_MAX_CHARS)
    if (
        isinstance(max_chars, bool)
        or not isinstance(max_chars, int)
        or not (0 < max_chars <= 1_000_000)
    ):
        raise GuardrailConfigError(f"{path}.ner_max_chars", "must be characters in 1..1000000")
    return PiiGuardrail(
        name=name,
        action=action,
        entities=frozenset(entities),
        regions=_codes(raw.get("regions"), f"{path}.regions", ("US", "VN", "GB", "DE", "FR")),
        countries=_countries(raw.get("countries"), f"{path}.countries"),
        custom=custom,
        restore=restore,
        placeholder=placeholder,
        on_error=on_error,
        names=names,
        ner_max_chars=max_chars,
    )


def _names(raw: Mapping[str, Any], path: str, entities: set[str]) -> str:
    names = raw.get("names", "heuristic")
    if names not in NAME_BACKENDS:
        raise GuardrailConfigError(f"{path}.names", f"must be one of: {', '.join(NAME_BACKENDS)}")
    if names == "ner":
        if "NAME" not in entities:
            raise GuardrailConfigError(
                f"{path}.names", "names: ner finds NAME, which entities leaves out"
            )
        reason = ner.missing()  # looks for the packages, imports none
        if reason is not None:
            raise GuardrailConfigError(f"{path}.names", f"names: ner cannot run: {reason}")
    return str(names)


def _safety(raw: Mapping[str, Any], path: str, stage: str, index: int) -> ContentSafety:
    for key in raw:
        if key not in _SAFETY_KEYS:
            raise GuardrailConfigError(
                f"{path}.{key}", "unknown field; allowed: " + ", ".join(sorted(_SAFETY_KEYS))
            )
    threshold = raw.get("threshold")
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not (0 < threshold <= 1)
    ):
        raise GuardrailConfigError(
            f"{path}.threshold",
            "required: a score in (0, 1]; a category scoring at or above it denies the call",
        )
    strings: dict[str, str | None] = {}
    for key in ("provider", "model", "webhook", "name"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not value or len(value) > 500):
            raise GuardrailConfigError(f"{path}.{key}", "must be a non-empty string")
        strings[key] = value
    webhook = strings["webhook"]
    if webhook is not None and not webhook.startswith(("https://", "http://")):
        raise GuardrailConfigError(f"{path}.webhook", "must be an http(s):// URL")
    if webhook is not None and strings["provider"] is not None:
        raise GuardrailConfigError(f"{path}.webhook", "give provider or webhook, not both")
    categories = raw.get("categories", [])
    if not isinstance(categories, list) or not all(isinstance(c, str) and c for c in categories):
        raise GuardrailConfigError(f"{path}.categories", "must be an array of category names")
    on_error = raw.get("on_error", "block")
    if on_error not in ("block", "allow"):
        raise GuardrailConfigError(f"{path}.on_error", "must be block (fail closed) or allow")
    timeout = raw.get("timeout", 10.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not (0 < timeout <= 60):
        raise GuardrailConfigError(f"{path}.timeout", "must be seconds in (0, 60]")
    return ContentSafety(
        name=strings["name"] or f"{stage}_{index}_content_safety",
        threshold=float(threshold),
        provider=strings["provider"] or "openai",
        model=strings["model"] or "omni-moderation-latest",
        webhook=webhook,
        categories=frozenset(categories),
        on_error=on_error,
        timeout=float(timeout),
    )


def _entities(value: object, path: str) -> set[str]:
    if value is None:
        return set(DEFAULT_ENTITIES)
    if not isinstance(value, list) or not value:
        raise GuardrailConfigError(path, "must be a non-empty array of entity types")
    out: set[str] = set()
    for i, item in enumerate(value):
        if not isinstance(item, str) or item.upper() not in ENTITIES:
            raise GuardrailConfigError(
                f"{path}[{i}]", f"unknown entity {item!r} (one of: {', '.join(sorted(ENTITIES))})"
            )
        out.add(item.upper())
    return out


def _codes(value: object, path: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and len(v) == 2 and v.isalpha() for v in value)
    ):
        raise GuardrailConfigError(
            path, "must be a non-empty array of two-letter region codes (US, VN, ...)"
        )
    return tuple(v.upper() for v in value)


def _countries(value: object, path: str) -> tuple[str, ...]:
    codes = _codes(value, path, ("VN",))
    for i, code in enumerate(codes):
        if code not in NATIONAL_ID_COUNTRIES:
            raise GuardrailConfigError(
                f"{path}[{i}]",
                "national ids are known for: " + ", ".join(sorted(NATIONAL_ID_COUNTRIES)),
            )
    return codes


def _custom(value: object, path: str) -> tuple[CustomPattern, ...]:
    if not isinstance(value, list) or len(value) > MAX_CUSTOM:
        raise GuardrailConfigError(
            path, f"must be an array of at most {MAX_CUSTOM} {{name, pattern}} objects"
        )
    out: list[CustomPattern] = []
    for i, item in enumerate(value):
        here = f"{path}[{i}]"
        if not isinstance(item, Mapping) or set(item) != {"name", "pattern"}:
            raise GuardrailConfigError(here, "must be an object with exactly name and pattern")
        name, pattern = item["name"], item["pattern"]
        if not isinstance(name, str) or _CUSTOM_NAME.fullmatch(name) is None:
            raise GuardrailConfigError(
                f"{here}.name",
                "must be upper case letters, digits and _ (it names the placeholder: [NAME_1])",
            )
        if name in ENTITIES:
            raise GuardrailConfigError(f"{here}.name", f"{name} is a built-in entity")
        if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_PATTERN_CHARS:
            raise GuardrailConfigError(
                f"{here}.pattern", f"must be a regex of 1..{MAX_PATTERN_CHARS} characters"
            )
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise GuardrailConfigError(f"{here}.pattern", f"not a valid regex: {exc}") from exc
        out.append(CustomPattern(name, compiled))
    return tuple(out)


def options_of(raw: Mapping[str, Any]) -> GuardrailsConfig:
    """The plug-in's options: the route config's block, or the same shape from settings."""
    return parse_guardrails(raw)
