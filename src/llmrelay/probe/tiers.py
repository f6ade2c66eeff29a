"""What the probe asks a model, one tier at a time, and what counts as an answer.

Each tier is one request through the gateway's public API, judged by what a client
would need: a chat answer with content, a stream that ends with a ``finish_reason``
and ``[DONE]``, a tool call, a JSON object, a translated Messages / Responses answer,
an embedding's dimensions. A failure becomes a reason (:mod:`.classify`), never a trace.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
import orjson

from .classify import classify_status
from .config import ProbeOptions
from .wire import Answer, Client, short

#: Models that think before they answer: a budget as small as a plain model's would be
#: spent before the first word (LiteLLM's ``max_tokens=1`` health checks fail them), so
#: they get at least this many tokens and the least reasoning effort the API allows.
REASONING_MIN_TOKENS = 512
_REASONING = re.compile(r"(^|/)(o\d|gpt-5)|reason|think|(^|[/-])r1\b", re.IGNORECASE)


@dataclass(slots=True)
class TierResult:
    """One tier's outcome for one model."""

    tier: str
    ok: bool
    reason: str | None = None
    status: int | None = None
    detail: str = ""
    ttft_ms: float | None = None
    ms: float = 0.0
    tokens: int = 0
    cost_nanos: int = 0
    #: Seconds waited on a 429's ``retry-after`` before the one retry.
    waited_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "ok": self.ok,
            "reason": self.reason,
            "status": self.status,
            "detail": self.detail,
            "ttft_ms": _round(self.ttft_ms),
            "ms": _round(self.ms),
            "tokens": self.tokens,
            "cost_nanos": self.cost_nanos,
            "waited_s": self.waited_s,
        }


Tier = Callable[[Client, ProbeOptions, str], Awaitable[TierResult]]


def is_reasoning(model: str) -> bool:
    """Whether ``model``'s name says it is a reasoning model (o1/o3/o4, gpt-5, R1 ...)."""
    return _REASONING.search(model) is not None


def chat_body(options: ProbeOptions, model: str, *, stream: bool = False) -> dict[str, Any]:
    """The minimal chat request: the test message and a small budget."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": options.test_message}],
    }
    if is_reasoning(model):
        # Reasoning models refuse temperature and max_tokens (OpenAI's o-series), and
        # need room to think: the least effort gpt-5 allows is "minimal", o-series "low".
        body["max_completion_tokens"] = max(options.max_tokens, REASONING_MIN_TOKENS)
        body["reasoning_effort"] = "minimal" if "gpt-5" in model.lower() else "low"
    else:
        body["max_tokens"] = options.max_tokens
        body["temperature"] = options.temperature
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


async def _ask(
    tier: str,
    client: Client,
    options: ProbeOptions,
    path: str,
    body: dict[str, Any],
    judge: Callable[[Answer], str | None],
) -> TierResult:
    """Send one request; ``judge`` says what is missing from a 200 (None: nothing)."""
    try:
        answer = await client.post(path, body, options.timeout_seconds)
    except TimeoutError:
        return TierResult(
            tier,
            False,
            "timeout",
            None,
            f"no answer within {options.timeout_seconds:g}s",
            ms=options.timeout_seconds * 1000,
        )
    except aiohttp.ClientError as exc:
        return TierResult(tier, False, "unreachable", None, short(str(exc) or type(exc).__name__))
    result = TierResult(
        tier,
        True,
        status=answer.status,
        ttft_ms=answer.ttft_ms,
        ms=answer.ms,
        tokens=_tokens(answer),
        cost_nanos=_cost(answer),
        waited_s=answer.waited_s,
    )
    if answer.status != 200:
        code, message = answer.error()
        result.ok, result.reason = False, classify_status(answer.status, code)
        result.detail = short(message or f"HTTP {answer.status}", client.key)
        return result
    if answer.broken is not None:
        result.ok, result.reason = False, "broken_stream"
        result.detail = f"the stream broke off ({answer.broken}) before it ended"
        return result
    missing = judge(answer)
    if missing is not None:
        result.ok = False
        result.reason = "broken_stream" if body.get("stream") else "bad_answer"
        result.detail = short(missing, client.key)
    return result


def _first_choice(body: Any) -> dict[str, Any]:
    choices = body.get("choices") if isinstance(body, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    return first if isinstance(first, dict) else {}


def _judge_chat(answer: Answer) -> str | None:
    choice = _first_choice(answer.body)
    message = choice.get("message") or {}
    if message.get("content") or message.get("tool_calls"):
        return None
    if choice.get("finish_reason") == "length":
        return None  # a reasoning model that spent the budget thinking still answered
    return "200 without a message in choices[0]"


def _judge_stream(answer: Answer) -> str | None:
    for event in answer.events:
        if isinstance(event, dict) and isinstance(event.get("error"), dict):
            return "error event in the stream: " + str(event["error"].get("message", ""))
    finish = [c.get("finish_reason") for c in map(_first_choice, answer.events) if c]
    if not any(finish):
        return "the stream ended without a finish_reason"
    if not answer.done:
        return "the stream ended without data: [DONE]"
    return None


async def chat(client: Client, options: ProbeOptions, model: str) -> TierResult:
    """A minimal chat answer."""
    return await _ask(
        "chat", client, options, "/v1/chat/completions", chat_body(options, model), _judge_chat
    )


async def stream(client: Client, options: ProbeOptions, model: str) -> TierResult:
    """A streamed answer that ends properly (``finish_reason`` and ``[DONE]``)."""
    body = chat_body(options, model, stream=True)
    return await _ask("stream", client, options, "/v1/chat/completions", body, _judge_stream)


_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The current time in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def _judge_tools(answer: Answer) -> str | None:
    calls = (_first_choice(answer.body).get("message") or {}).get("tool_calls")
    return None if calls else "no tool call although tool_choice was required"


async def tools(client: Client, options: ProbeOptions, model: str) -> TierResult:
    """Tool calling: a forced call to the one tool offered."""
    body = chat_body(options, model)
    body["messages"] = [{"role": "user", "content": "Use the tool: what time is it in Paris?"}]
    body.update(tools=[_TOOL], tool_choice="required")
    return await _ask("tools", client, options, "/v1/chat/completions", body, _judge_tools)


def _judge_json(answer: Answer) -> str | None:
    content = (_first_choice(answer.body).get("message") or {}).get("content") or ""
    try:
        return None if isinstance(orjson.loads(content), dict) else "JSON mode gave no object"
    except orjson.JSONDecodeError:
        return "JSON mode answered text that is not JSON"


async def json_mode(client: Client, options: ProbeOptions, model: str) -> TierResult:
    """JSON mode: ``response_format: json_object`` gives a JSON object."""
    body = chat_body(options, model)
    body["messages"] = [{"role": "user", "content": 'Answer in JSON: {"status": "ok"}'}]
    body["response_format"] = {"type": "json_object"}
    return await _ask("json", client, options, "/v1/chat/completions", body, _judge_json)


def _judge_messages(answer: Answer) -> str | None:
    content = answer.body.get("content") if isinstance(answer.body, dict) else None
    return None if isinstance(content, list) and content else "no content blocks"


async def messages(client: Client, options: ProbeOptions, model: str) -> TierResult:
    """The Anthropic Messages endpoint, translated for this model's provider."""
    body = {
        "model": model,
        "max_tokens": max(options.max_tokens, REASONING_MIN_TOKENS if is_reasoning(model) else 1),
        "messages": [{"role": "user", "content": options.test_message}],
    }
    return await _ask("messages", client, options, "/v1/messages", body, _judge_messages)


def _judge_responses(answer: Answer) -> str | None:
    output = answer.body.get("output") if isinstance(answer.body, dict) else None
    return None if isinstance(output, list) and output else "no output items"


async def responses(client: Client, options: ProbeOptions, model: str) -> TierResult:
    """The OpenAI Responses endpoint, translated for this model's provider."""
    body: dict[str, Any] = {"model": model, "input": options.test_message}
    if is_reasoning(model):
        body["max_output_tokens"] = max(options.max_tokens, REASONING_MIN_TOKENS)
    else:
        body["max_output_tokens"] = max(options.max_tokens, 16)  # OpenAI's minimum
    return await _ask("responses", client, options, "/v1/responses", body, _judge_responses)


async def embeddings(client: Client, options: ProbeOptions, model: str) -> TierResult:
    """An embedding; its dimensions go in the tier's detail."""
    dimensions: list[int] = []

    def judge(answer: Answer) -> str | None:
        data = answer.body.get("data") if isinstance(answer.body, dict) else None
        first = data[0] if isinstance(data, list) and data else {}
        vector = first.get("embedding") if isinstance(first, dict) else None
        if isinstance(vector, list) and vector:
            dimensions.append(len(vector))
            return None
        return "no embedding in data[0]"

    body = {"model": model, "input": options.test_message}
    result = await _ask("embeddings", client, options, "/v1/embeddings", body, judge)
    if dimensions:
        result.detail = f"{dimensions[0]} dimensions"
    return result


CHAT_TIERS: tuple[Tier, ...] = (chat,)
CAPABILITY_TIERS: tuple[Tier, ...] = (tools, json_mode, messages, responses)


def _tokens(answer: Answer) -> int:
    bodies = [answer.body, *answer.events]
    for body in reversed(bodies):
        usage = body.get("usage") if isinstance(body, dict) else None
        if isinstance(usage, dict):
            total = usage.get("total_tokens")
            if total is None:  # Anthropic's and the Responses API's usage
                total = (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0)
            return int(total) if isinstance(total, int | float) else 0
    return 0


def _cost(answer: Answer) -> int:
    """The gateway's ``x-llmrelay-cost-usd`` (non-streamed answers) in nano-dollars."""
    value = answer.headers.get("x-llmrelay-cost-usd")
    if not value:
        return 0
    try:
        return int(Decimal(value) * 10**9)
    except InvalidOperation:
        return 0


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None
