"""The bundled tokenizer: token counts for ``/v1/messages/count_tokens`` without a network.

tiktoken downloads its encoding files on first use; llmrelay ships OpenAI's
``cl100k_base`` ranks instead (``data/cl100k_base.tiktoken.gz``, see its README), checks
them against the SHA-256 tiktoken expects, and builds the encoding from them once per
process, on first use (about 0.3 s and 30 MB, so never at start-up, and in a worker
thread so the event loop is not held).

A count is exact for models that use ``cl100k_base`` and an estimate for every other
model (each vendor has its own tokenizer). Messages are counted the way OpenAI's
cookbook counts chat prompts: the text of every message plus 3 tokens of framing per
message and 3 that prime the reply; tool definitions and a response schema by their
JSON; an image as one high-detail tile (:data:`~llmrelay.governance.estimate.IMAGE_TOKENS`).
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.governance.estimate import IMAGE_TOKENS

if TYPE_CHECKING:
    import tiktoken

ENCODING = "cl100k_base"
_DATA = "cl100k_base.tiktoken.gz"
_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
#: cl100k_base's pattern and special tokens, as in tiktoken_ext/openai_public.py.
_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
    r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}
PER_MESSAGE = 3
REPLY_PRIMING = 3


class TokenizerDataError(RuntimeError):
    """The bundled encoding file is missing or not the file it should be."""


@functools.cache
def encoding() -> tiktoken.Encoding:
    """The ``cl100k_base`` encoding from the bundled ranks (built once, then cached)."""
    import tiktoken  # heavy and rarely needed: imported on first count only

    packed = resources.files("llmrelay.data").joinpath(_DATA).read_bytes()
    raw = gzip.decompress(packed)
    if hashlib.sha256(raw).hexdigest() != _SHA256:
        raise TokenizerDataError(f"llmrelay/data/{_DATA} does not match {ENCODING}'s hash")
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in raw.splitlines() if line)
    }
    return tiktoken.Encoding(
        name=ENCODING, pat_str=_PATTERN, mergeable_ranks=ranks, special_tokens=_SPECIAL
    )


def count_text(text: str) -> int:
    """Tokens of ``text``; special-token strings in it count as ordinary text."""
    return len(encoding().encode_ordinary(text)) if text else 0


def count_chat(body: dict[str, Any]) -> int:
    """Prompt tokens of an OpenAI chat body (see the module docstring for the rules)."""
    total = REPLY_PRIMING
    for message in body.get("messages") or []:
        total += PER_MESSAGE + count_text(str(message.get("role") or ""))
        total += _content(message.get("content"))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            total += count_text(str(function.get("name") or ""))
            total += count_text(str(function.get("arguments") or ""))
    if body.get("tools"):
        total += count_text(orjson.dumps(body["tools"]).decode())
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("json_schema"):
        total += count_text(orjson.dumps(fmt["json_schema"]).decode())
    return total


def _content(content: Any) -> int:
    if isinstance(content, str):
        return count_text(content)
    total = 0
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            total += count_text(str(part.get("text") or ""))
        elif part.get("type") in ("image_url", "input_image", "file"):
            total += IMAGE_TOKENS
    return total
