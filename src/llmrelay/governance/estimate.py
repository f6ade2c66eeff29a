"""Token estimates, for reservations and for streams cut before the provider counted.

No tokenizer: llmrelay bills from the provider's ``usage`` whenever there is one. An
estimate is needed only (a) before the call, to reserve budget and token-limit room,
and (b) for a stream that ended without a usage report (the client hung up, the
upstream broke, or the provider does not report stream usage). For (b) the gateway
counts what it delivered. Both use OpenAI's rule of thumb of ~4 characters per token
(https://help.openai.com/en/articles/4936856), which needs no model files and is
the same on every endpoint.
"""

from __future__ import annotations

from typing import Any

CHARS_PER_TOKEN = 4
#: An inline image (data URL) is not text; count it as one high-detail tile.
IMAGE_TOKENS = 765
#: Body fields whose values are not prompt text.
_NOT_PROMPT = frozenset(
    {
        "model",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "temperature",
        "top_p",
        "n",
        "user",
        "metadata",
        "seed",
        "response_format",
        "encoding_format",
        "dimensions",
        "service_tier",
        "store",
    }
)
_MAX_DEPTH = 32


def tokens_for_chars(chars: int) -> int:
    """Tokens for ``chars`` characters of text (rounded up; 0 for none)."""
    return -(-max(0, chars) // CHARS_PER_TOKEN)


def _text_chars(value: Any, depth: int = 0) -> tuple[int, int]:
    """(characters of text, inline images) in a JSON value."""
    if depth > _MAX_DEPTH:
        return 0, 0
    if isinstance(value, str):
        if value.startswith("data:") and ";base64," in value[:100]:
            return 0, 1
        return len(value), 0
    chars = images = 0
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for item in items:
        c, i = _text_chars(item, depth + 1)
        chars += c
        images += i
    return chars, images


def text_chars(value: Any) -> int:
    """Characters of text in a JSON value (inline images not counted)."""
    return _text_chars(value)[0]


def prompt_tokens(body: dict[str, Any]) -> int:
    """Estimated prompt tokens of any request body (chat, messages, responses, embeddings).

    Every string value counts (message text, roles, tool schemas, system prompts);
    sampling parameters and the model name do not.
    """
    chars = images = 0
    for name, value in body.items():
        if name in _NOT_PROMPT:
            continue
        c, i = _text_chars(value)
        chars += c
        images += i
    return tokens_for_chars(chars) + images * IMAGE_TOKENS


def output_cap(body: dict[str, Any]) -> int | None:
    """The call's own cap on completion tokens, if it sets one."""
    for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def completion_allowance(body: dict[str, Any], default: int) -> int:
    """The most completion tokens the call may produce: its own cap, else ``default``."""
    cap = output_cap(body)
    return default if cap is None else cap
