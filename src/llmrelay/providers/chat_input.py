"""Reading an OpenAI chat request for a translating adapter (Gemini, Bedrock, ...).

Translating adapters must refuse what they cannot honour (a 400 naming the parameter)
instead of silently answering a different question; :func:`check_params` is that gate.
The helpers below read the parts of a message every translation needs: text, images
(data URLs), tool-call arguments and tool results.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
import secrets
import string
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from llmrelay.errors import InvalidRequest, UnsupportedParameter
from llmrelay.json_limits import loads_nested
from llmrelay.providers.base import ProviderSpec

#: Request fields every translating adapter may ignore: routing, transport and
#: bookkeeping fields that do not change what the model generates.
IGNORED_PARAMS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
    }
)

_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)(?:;[\w=.+-]+)*;base64,", re.ASCII)
_ALNUM = string.ascii_letters + string.digits


def present(body: Mapping[str, Any], name: str) -> bool:
    """Whether the client set ``name`` (``null`` counts as not set, as in the SDKs)."""
    return body.get(name) is not None


def check_params(
    spec: ProviderSpec,
    body: Mapping[str, Any],
    handled: Iterable[str],
    hints: Mapping[str, str] | None = None,
) -> None:
    """Raise :class:`UnsupportedParameter` for the first set field nobody translates.

    With ``drop_params`` on the provider the field is ignored instead; the adapter
    builds its request from the fields it handles, so ignoring is dropping.
    """
    if spec.drop_params:
        return
    known = IGNORED_PARAMS.union(handled)
    for name, value in body.items():
        if value is not None and name not in known:
            raise UnsupportedParameter(name, spec.name, (hints or {}).get(name, ""))


def unsupported(spec: ProviderSpec, param: str, hint: str = "") -> bool:
    """A set parameter value the provider cannot honour: raise, or True to drop it."""
    if spec.drop_params:
        return True
    raise UnsupportedParameter(param, spec.name, hint)


def text_of(content: Any, param: str) -> str:
    """The text of a message whose content may only be text (system, tool, ...)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise InvalidRequest(
                    f"{param}[{j}] must be a text part here", param=f"{param}[{j}]"
                )
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise InvalidRequest(f"{param} must be a string or an array of parts", param=param)


def parts_of(content: Any, param: str) -> list[dict[str, Any]]:
    """Message content as a list of part objects (a string becomes one text part)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return content
    raise InvalidRequest(f"{param} must be a string or an array of parts", param=param)


def assistant_text_blocks(content: Any, param: str) -> list[dict[str, Any]]:
    """An assistant message's text as one ``{"text": ...}`` block (none when empty).

    Refusal parts are the model's own earlier refusals: they are left out, not sent back
    as text the model would then read as its own answer.
    """
    text = text_of([p for p in parts_of(content, param) if p.get("type") != "refusal"], param)
    return [{"text": text}] if text else []


#: ``(index, role, message, "messages[i]") -> (turn role, blocks)``, None for a role the
#: API has no turn for.
TurnTranslator = Callable[[int, Any, dict[str, Any], str], tuple[str, list[dict[str, Any]]] | None]


def alternating_turns(
    messages: list[Any], translate: TurnTranslator, blocks_key: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(system text blocks, turns)`` for APIs whose user and model turns alternate.

    System and developer messages leave the conversation for the API's separate system
    field; ``translate`` turns every other message into blocks of a turn; consecutive
    turns of one role are merged (their blocks under ``blocks_key``), empty ones dropped.
    """
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        param = f"messages[{i}]"
        if role in ("system", "developer"):
            text = text_of(message.get("content"), f"{param}.content")
            if text:
                system.append({"text": text})
            continue
        translated = translate(i, role, message, param)
        if translated is None:
            raise InvalidRequest(f"{param}.role: unknown role {role!r}", param=f"{param}.role")
        turn, blocks = translated
        if not blocks:
            continue
        if turns and turns[-1]["role"] == turn:
            turns[-1][blocks_key].extend(blocks)
        else:
            turns.append({"role": turn, blocks_key: blocks})
    if not turns:
        raise InvalidRequest(
            "messages must hold at least one user or assistant message with content",
            param="messages",
        )
    return system, turns


def image_url_of(part: Mapping[str, Any], param: str) -> str:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise InvalidRequest(
            f"{param}.image_url.url must be a non-empty string", param=f"{param}.image_url"
        )
    return url


def parse_data_url(url: str, param: str) -> tuple[str, str] | None:
    """``(mime type, base64 data)`` of a ``data:...;base64,`` URL, None for other URLs."""
    match = _DATA_URL.match(url)
    if match is None:
        if url.startswith("data:"):
            raise InvalidRequest(
                f"{param}: a data URL must be base64 encoded (data:<mime>;base64,<data>)",
                param=param,
            )
        return None
    data = url[match.end() :]
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"{param}: the data URL is not valid base64", param=param) from exc
    return match.group(1).lower(), data


def guess_mime(url: str) -> str | None:
    path = url.split("?", 1)[0]
    mime, _ = mimetypes.guess_type(path)
    return mime


def json_arguments(arguments: Any, param: str) -> dict[str, Any]:
    """Tool-call arguments (a JSON object in a string) as a dict."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str):
        raise InvalidRequest(f"{param} must be a JSON object encoded as a string", param=param)
    try:
        value = loads_nested(arguments, param, param=param)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"{param} is not valid JSON", param=param) from exc
    if not isinstance(value, dict):
        raise InvalidRequest(f"{param} must be a JSON object", param=param)
    return value


def tool_calls_of(message: Mapping[str, Any], param: str) -> list[dict[str, Any]]:
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise InvalidRequest(f"{param}.tool_calls must be an array", param=f"{param}.tool_calls")
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(
                f"{param}.tool_calls[{j}] needs function.name", param=f"{param}.tool_calls[{j}]"
            )
    return calls


def tool_names(messages: list[Any]) -> dict[str, str]:
    """tool_call id -> function name, from the assistant turns of the conversation."""
    names: dict[str, str] = {}
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "assistant":
            for call in message.get("tool_calls") or ():
                if isinstance(call, dict) and isinstance(call.get("function"), dict):
                    names[str(call.get("id"))] = str(call["function"].get("name"))
    return names


def tools_of(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The function definitions of ``tools`` (validated)."""
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be an array", param="tools")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise InvalidRequest(
                f"tools[{i}]: only function tools are supported", param=f"tools[{i}].type"
            )
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(
                f"tools[{i}].function.name is required", param=f"tools[{i}].function"
            )
        out.append(function)
    return out


def tool_choice_of(body: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """``(mode, function name)``: mode is none / auto / required / function."""
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if choice in ("none", "auto", "required"):
        return str(choice), None
    if isinstance(choice, dict):
        function = choice.get("function")
        if (
            choice.get("type") == "function"
            and isinstance(function, dict)
            and isinstance(function.get("name"), str)
        ):
            return "function", function["name"]
    raise InvalidRequest(
        "tool_choice must be none, auto, required or {type: function, function: {name}}",
        param="tool_choice",
    )


def response_format_of(body: Mapping[str, Any]) -> tuple[str, dict[str, Any] | None] | None:
    """``(type, json schema)`` of ``response_format``; type is text / json_object /
    json_schema."""
    fmt = body.get("response_format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("text", "json_object"):
        return str(kind), None
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidRequest(
                "response_format.json_schema.schema must be an object", param="response_format"
            )
        return "json_schema", schema
    raise InvalidRequest(
        "response_format.type must be text, json_object or json_schema", param="response_format"
    )


def stop_list(body: Mapping[str, Any]) -> list[str] | None:
    stop = body.get("stop")
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return stop
    raise InvalidRequest("stop must be a string or an array of strings", param="stop")


def number_of(body: Mapping[str, Any], name: str) -> float | None:
    """A numeric sampling parameter (``temperature``, ``top_p``, ...), None when not set."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{name} must be a number", param=name)
    return value


def max_tokens_of(body: Mapping[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidRequest(f"{name} must be a positive integer", param=name)
            return value
    return None


def tool_result_value(content: Any, param: str) -> Any:
    """A tool message's content: parsed JSON when it is JSON, else the text."""
    text = text_of(content, param)
    try:
        return loads_nested(text, param)
    except (orjson.JSONDecodeError, InvalidRequest):  # not JSON, or too deep to re-encode
        return text


def new_call_id() -> str:
    """An OpenAI-style tool call id for providers whose calls carry none."""
    return "call_" + "".join(secrets.choice(_ALNUM) for _ in range(24))


def new_completion_id() -> str:
    return "chatcmpl-" + "".join(secrets.choice(_ALNUM) for _ in range(29))
