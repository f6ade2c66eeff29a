"""The probe's options: the ``probe`` settings section, then flags, then environment.

Kept apart from the running code so the command can refuse bad flags (exit 2) before
anything is started, and so the JSON report can record what was asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from llmrelay.config import ProbeSettings

#: Where the gateway is, and the key to call it with; the seed's names are read too.
URL_ENV = ("LLMRELAY_URL", "GATEWAYZ_API_URL")
KEY_ENV = ("LLMRELAY_API_KEY", "GATEWAYZ_API_KEY")


class ProbeConfigError(ValueError):
    """A flag or setting the probe cannot run with (exit code 2)."""


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    """Everything one probe run needs to know, validated."""

    max_models_per_gateway: int = 3
    timeout_seconds: float = 30.0
    test_message: str = 'Respond with: "Test successful"'
    max_tokens: int = 50
    temperature: float = 0.7
    concurrency: int = 2
    providers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    stream: bool = False
    capabilities: bool = False
    url: str | None = None
    #: Never written to the report (see :meth:`public`).
    key: str | None = field(default=None, repr=False)

    def public(self) -> dict[str, Any]:
        """What the JSON report records of the options: everything but the key."""
        out = asdict(self)
        out.pop("key")
        out["providers"], out["models"] = list(self.providers), list(self.models)
        return out


def first_env(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The first of ``names`` set (non-empty) in ``env``."""
    return next((env[n] for n in names if env.get(n)), None)


def build_options(
    settings: ProbeSettings, flags: Mapping[str, Any], env: Mapping[str, str]
) -> ProbeOptions:
    """Settings, overridden by the flags that were given, URL and key from env last."""
    values: dict[str, Any] = {
        "max_models_per_gateway": settings.max_models_per_gateway,
        "timeout_seconds": settings.timeout_seconds,
        "test_message": settings.test_message,
        "max_tokens": settings.max_tokens,
        "temperature": settings.temperature,
        "concurrency": settings.concurrency,
    }
    for flag, name in (
        ("models_count", "max_models_per_gateway"),
        ("timeout", "timeout_seconds"),
        ("concurrency", "concurrency"),
    ):
        if flags.get(flag) is not None:
            values[name] = flags[flag]
    url = flags.get("url") or first_env(env, URL_ENV)
    key = flags.get("key") or first_env(env, KEY_ENV)
    options = ProbeOptions(
        **values,
        providers=tuple(flags.get("provider") or ()),
        models=tuple(flags.get("model") or ()),
        stream=bool(flags.get("stream")),
        capabilities=bool(flags.get("capabilities")),
        url=url.rstrip("/") if url else None,
        key=key,
    )
    problem = _problem(options)
    if problem:
        raise ProbeConfigError(problem)
    return options


def _problem(o: ProbeOptions) -> str | None:
    if o.max_models_per_gateway < 1:
        return "--models (probe.max_models_per_gateway) must be at least 1"
    if o.timeout_seconds <= 0:
        return "--timeout (probe.timeout_seconds) must be more than 0"
    if o.concurrency < 1:
        return "--concurrency (probe.concurrency) must be at least 1"
    if o.max_tokens < 1:
        return "probe.max_tokens must be at least 1"
    if not o.test_message.strip():
        return "probe.test_message must not be empty"
    if o.url is not None and not o.url.startswith(("http://", "https://")):
        return f"--url {o.url!r} must start with http:// or https://"
    if o.url is not None and not o.key:
        return "--url needs a key: --key KEY or LLMRELAY_API_KEY"
    return None
