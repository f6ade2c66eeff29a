"""OpenAI-compatible hosts as data: one row each, no module per provider.

A row gives the default base URL, the environment variable that holds the key (which
also switches the provider on when no config names it), and how the key is sent.
Base URLs follow each provider's own OpenAI-compatibility documentation.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    base_url: str
    #: Environment variable holding the API key (empty: the host needs no key).
    key_env: str
    #: Environment variable that overrides the base URL (local servers move around).
    base_url_env: str = ""
    #: Header that carries the key and the prefix before it.
    auth_header: str = "authorization"
    auth_prefix: str = "Bearer "
    extra_headers: dict[str, str] = field(default_factory=dict)
    #: Whether the host understands ``stream_options.include_usage``.
    stream_usage: bool = True
    #: Whether ``GET {base_url}/models`` lists the models.
    lists_models: bool = True


_ROWS = [
    Preset("openai", "https://api.openai.com/v1", "OPENAI_API_KEY", "OPENAI_BASE_URL"),
    Preset("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    Preset("together", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    Preset("fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
    Preset("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    Preset("deepinfra", "https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY"),
    Preset("cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"),
    Preset("xai", "https://api.x.ai/v1", "XAI_API_KEY"),
    Preset("nebius", "https://api.studio.nebius.com/v1", "NEBIUS_API_KEY"),
    Preset("novita", "https://api.novita.ai/v3/openai", "NOVITA_API_KEY"),
    Preset("featherless", "https://api.featherless.ai/v1", "FEATHERLESS_API_KEY"),
    Preset("chutes", "https://llm.chutes.ai/v1", "CHUTES_API_KEY"),
    Preset("huggingface", "https://router.huggingface.co/v1", "HF_TOKEN"),
    # Anthropic is native (family.ANTHROPIC, its own config struct); the row gives
    # its defaults and switches it on when ANTHROPIC_API_KEY is set. The adapter sends
    # x-api-key and anthropic-version itself.
    Preset(
        "anthropic",
        "https://api.anthropic.com/v1",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        auth_header="x-api-key",
        auth_prefix="",
    ),
    # Local servers: no key; switched on by their base-URL variable.
    Preset("ollama", "http://localhost:11434/v1", "", "OLLAMA_BASE_URL"),
    Preset("vllm", "http://localhost:8000/v1", "VLLM_API_KEY", "VLLM_BASE_URL"),
    # Portkey as an upstream gateway: its key travels in x-portkey-api-key, and the
    # caller picks Portkey's provider with x-portkey-provider / a config (extra headers).
    Preset(
        "portkey",
        "https://api.portkey.ai/v1",
        "PORTKEY_API_KEY",
        auth_header="x-portkey-api-key",
        auth_prefix="",
    ),
]

PRESETS: dict[str, Preset] = {row.name: row for row in _ROWS}
