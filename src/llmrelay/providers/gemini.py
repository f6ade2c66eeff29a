"""Google Gemini (Generative Language API) and Vertex AI: one wire format, two hosts.

Both speak ``generateContent`` / ``streamGenerateContent?alt=sse`` with the same JSON;
they differ in URL and credentials only. Gemini takes an API key (sent in the
``x-goog-api-key`` header so it never lands in a URL or an access log); Vertex takes
an OAuth2 access token minted from service-account credentials, which the transport
side adds (:mod:`llmrelay.providers.google_auth`) so this module stays pure.

Request translation is here; responses, streams and errors are in
:mod:`llmrelay.providers.gemini_response`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from llmrelay.errors import InvalidRequest, UpstreamError
from llmrelay.providers import gemini_response as out
from llmrelay.providers.base import AdapterBase, ChatResult, ProviderSpec, UpstreamCall
from llmrelay.providers.chat_input import (
    alternating_turns,
    assistant_text_blocks,
    check_params,
    guess_mime,
    image_url_of,
    json_arguments,
    max_tokens_of,
    number_of,
    parse_data_url,
    parts_of,
    response_format_of,
    stop_list,
    tool_calls_of,
    tool_choice_of,
    tool_names,
    tool_result_value,
    tools_of,
    unsupported,
)
from llmrelay.providers.gemini_schema import to_gemini_schema

#: OpenAI chat fields this adapter translates (everything else set is refused).
HANDLED = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning_effort",
        "top_k",
    }
)
HINTS = {
    "logprobs": "Gemini's logprobs are not translated",
    "logit_bias": "Gemini has no logit bias",
}
#: reasoning_effort -> thinkingConfig.thinkingBudget (tokens), after Google's guidance.
THINKING_BUDGETS = {"none": 0, "minimal": 0, "low": 1024, "medium": 8192, "high": 24576}
#: Gemini Files API URIs and Cloud Storage URIs are fetched by Google itself.
_FETCHABLE = ("gs://", "https://generativelanguage.googleapis.com/")
_AUDIO_MIME = {
    "wav": "audio/wav",
    "mp3": "audio/mp3",
    "flac": "audio/flac",
    "aac": "audio/aac",
    "ogg": "audio/ogg",
    "pcm16": "audio/pcm",
}


# -- messages ------------------------------------------------------------------------


def _image_part(spec: ProviderSpec, part: dict[str, Any], param: str) -> dict[str, Any]:
    url = image_url_of(part, param)
    inline = parse_data_url(url, f"{param}.image_url.url")
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    if url.startswith(_FETCHABLE):
        file_data: dict[str, Any] = {"fileUri": url}
        mime = guess_mime(url)
        if mime:
            file_data["mimeType"] = mime
        return {"fileData": file_data}
    raise InvalidRequest(
        f"{param}.image_url.url: provider {spec.name} does not fetch image URLs; send the "
        "image inline as a data URL (data:image/png;base64,...) or as a gs:// URI",
        param=f"{param}.image_url",
    )


def _user_parts(spec: ProviderSpec, content: Any, param: str) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(parts_of(content, param)):
        where = f"{param}[{j}]"
        kind = part.get("type")
        if kind == "text":
            parts.append({"text": str(part.get("text", ""))})
        elif kind == "image_url":
            parts.append(_image_part(spec, part, where))
        elif kind == "input_audio":
            audio = part.get("input_audio")
            if not isinstance(audio, dict):
                audio = {}
            mime = _AUDIO_MIME.get(str(audio.get("format")))
            if mime is None or not isinstance(audio.get("data"), str):
                raise InvalidRequest(
                    f"{where}.input_audio needs data and a known format",
                    param=f"{where}.input_audio",
                )
            parts.append({"inlineData": {"mimeType": mime, "data": audio["data"]}})
        elif kind == "file":
            file = part.get("file")
            data = file.get("file_data") if isinstance(file, dict) else None
            inline = (
                parse_data_url(data, f"{where}.file.file_data") if isinstance(data, str) else None
            )
            if inline is None:
                raise InvalidRequest(
                    f"{where}.file: provider {spec.name} takes files as file_data data URLs only",
                    param=f"{where}.file",
                )
            parts.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}})
        else:
            raise InvalidRequest(
                f"{where}: content part type {kind!r} is not supported by provider {spec.name}",
                param=f"{where}.type",
            )
    return parts


def _function_call_part(call: dict[str, Any], param: str) -> dict[str, Any]:
    function = call["function"]
    part: dict[str, Any] = {
        "functionCall": {
            "name": function["name"],
            "args": json_arguments(function.get("arguments"), f"{param}.function.arguments"),
        }
    }
    signature = out.signature_of(str(call.get("id") or ""))
    if signature:
        part["thoughtSignature"] = signature
    return part


def _function_response(value: Any, name: str) -> dict[str, Any]:
    # ``response`` must be a JSON object; Google's examples wrap text results in one.
    response = value if isinstance(value, dict) else {"name": name, "content": value}
    return {"functionResponse": {"name": name, "response": response}}


def build_contents(
    spec: ProviderSpec, messages: list[Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(systemInstruction parts, contents)``; consecutive same-role turns merged."""
    names = tool_names(messages)

    def turn(
        i: int, role: Any, message: dict[str, Any], param: str
    ) -> tuple[str, list[dict[str, Any]]] | None:
        content = message.get("content")
        if role == "user":
            return "user", _user_parts(spec, content, f"{param}.content")
        if role == "assistant":
            parts = assistant_text_blocks(content, f"{param}.content")
            parts.extend(
                _function_call_part(call, f"{param}.tool_calls[{j}]")
                for j, call in enumerate(tool_calls_of(message, param))
            )
            return "model", parts
        if role in ("tool", "function"):
            call_id = str(message.get("tool_call_id") or "")
            name = names.get(call_id) if role == "tool" else message.get("name")
            if not name:
                raise InvalidRequest(
                    f"{param}.tool_call_id {call_id!r} matches no tool call of an earlier "
                    "assistant message",
                    param=f"{param}.tool_call_id",
                )
            value = tool_result_value(content, f"{param}.content")
            return "user", [_function_response(value, str(name))]
        return None

    return alternating_turns(messages, turn, "parts")


# -- generation config and tools -------------------------------------------------------


def generation_config(spec: ProviderSpec, body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name, key in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        value = number_of(body, name)
        if value is not None:
            config[key] = value
    max_tokens = max_tokens_of(body)
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = stop_list(body)
    if stop:
        config["stopSequences"] = stop
    seed = body.get("seed")
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InvalidRequest("seed must be an integer", param="seed")
        config["seed"] = seed
    n = body.get("n")
    if n is not None and n != 1:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InvalidRequest("n must be a positive integer", param="n")
        config["candidateCount"] = n
    fmt = response_format_of(body)
    if fmt is not None and fmt[0] != "text":
        config["responseMimeType"] = "application/json"
        if fmt[1] is not None:
            config["responseSchema"] = to_gemini_schema(
                fmt[1], "response_format.json_schema.schema"
            )
    effort = body.get("reasoning_effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in THINKING_BUDGETS:
            raise InvalidRequest(
                f"reasoning_effort must be one of {', '.join(THINKING_BUDGETS)}",
                param="reasoning_effort",
            )
        config["thinkingConfig"] = {"thinkingBudget": THINKING_BUDGETS[effort]}
    return config


def tool_fields(spec: ProviderSpec, body: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    declarations = []
    for i, function in enumerate(tools_of(body)):
        declaration: dict[str, Any] = {"name": function["name"]}
        if function.get("description"):
            declaration["description"] = function["description"]
        params = function.get("parameters")
        # Gemini refuses an OBJECT schema without properties: a no-argument function
        # is declared without ``parameters``.
        if isinstance(params, dict) and params.get("properties"):
            declaration["parameters"] = to_gemini_schema(params, f"tools[{i}].function.parameters")
        declarations.append(declaration)
    if declarations:
        fields["tools"] = [{"functionDeclarations": declarations}]
    choice = tool_choice_of(body)
    if choice is not None and declarations:
        mode, name = choice
        config: dict[str, Any] = {
            "mode": {"none": "NONE", "auto": "AUTO", "required": "ANY", "function": "ANY"}[mode]
        }
        if name is not None:
            config["allowedFunctionNames"] = [name]
        fields["toolConfig"] = {"functionCallingConfig": config}
    if body.get("parallel_tool_calls") is False:
        unsupported(
            spec,
            "parallel_tool_calls",
            "Gemini cannot be told to call at most one function per turn",
        )
    return fields


def chat_body(spec: ProviderSpec, body: dict[str, Any]) -> dict[str, Any]:
    """The ``generateContent`` request for an OpenAI chat request."""
    check_params(spec, body, HANDLED, HINTS)
    messages = body.get("messages")
    assert isinstance(messages, list)
    system, contents = build_contents(spec, messages)
    request: dict[str, Any] = {"contents": contents}
    if system:
        request["systemInstruction"] = {"parts": system}
    request.update(tool_fields(spec, body))
    config = generation_config(spec, body)
    if config:
        request["generationConfig"] = config
    return request


# -- the adapter ---------------------------------------------------------------------


def _model_path(model: str) -> str:
    """``models/NAME`` for a bare name; tuned models (``tunedModels/x``) as given."""
    return model if "/" in model else "models/" + quote(model, safe="-._")


class GeminiAdapter(AdapterBase):
    """``type: gemini``: the Generative Language API with an API key."""

    vertex = False

    def _headers(self, spec: ProviderSpec) -> dict[str, str]:
        return spec.json_headers("x-goog-api-key")

    def _model_url(self, spec: ProviderSpec, model: str, method: str) -> str:
        return f"{spec.base_url.rstrip('/')}/{_model_path(model)}:{method}"

    def chat_request(
        self, spec: ProviderSpec, body: dict[str, Any], model: str, stream: bool
    ) -> UpstreamCall:
        url = self._model_url(
            spec, model, "streamGenerateContent?alt=sse" if stream else "generateContent"
        )
        return UpstreamCall("POST", url, self._headers(spec), orjson.dumps(chat_body(spec, body)))

    def chat_response(self, spec: ProviderSpec, body: bytes, model: str) -> ChatResult:
        return out.chat_result(spec, body, model)

    def chat_stream(
        self, spec: ProviderSpec, model: str, client_wants_usage: bool
    ) -> out.GeminiStream:
        return out.GeminiStream(spec.name, model, client_wants_usage)

    def embeddings_request(
        self, spec: ProviderSpec, body: dict[str, Any], model: str
    ) -> UpstreamCall:
        texts, dims = out.embedding_inputs(spec, body)
        if isinstance(body.get("input"), str):
            single: dict[str, Any] = {"content": {"parts": [{"text": texts[0]}]}}
            if dims:
                single["outputDimensionality"] = dims
            url = self._model_url(spec, model, "embedContent")
            return UpstreamCall("POST", url, self._headers(spec), orjson.dumps(single))
        requests = []
        for text in texts:
            item: dict[str, Any] = {
                "model": _model_path(model),
                "content": {"parts": [{"text": text}]},
            }
            if dims:
                item["outputDimensionality"] = dims
            requests.append(item)
        url = self._model_url(spec, model, "batchEmbedContents")
        return UpstreamCall("POST", url, self._headers(spec), orjson.dumps({"requests": requests}))

    def embeddings_response(self, spec: ProviderSpec, body: bytes, model: str) -> ChatResult:
        return out.embeddings_result(spec, body, model)

    def models_request(self, spec: ProviderSpec) -> UpstreamCall | None:
        if not spec.lists_models:
            return None
        headers = self._headers(spec)
        headers.pop("content-type", None)
        return UpstreamCall("GET", f"{spec.base_url.rstrip('/')}/models?pageSize=1000", headers)

    def parse_models(self, body: bytes) -> list[str]:
        return out.parse_models(body)

    def error(
        self, spec: ProviderSpec, status: int, body: bytes, headers: dict[str, str]
    ) -> UpstreamError:
        return out.google_error(spec.name, status, body, headers)


class VertexAdapter(GeminiAdapter):
    """``type: vertex``: Gemini on Vertex AI; the bearer token is added by the transport."""

    vertex = True

    def _headers(self, spec: ProviderSpec) -> dict[str, str]:
        return spec.json_headers(None)

    def _model_url(self, spec: ProviderSpec, model: str, method: str) -> str:
        resource = (
            model if "/" in model else "publishers/google/models/" + quote(model, safe="-._@")
        )
        return (
            f"{spec.base_url.rstrip('/')}/projects/{spec.project}/locations/"
            f"{spec.location}/{resource}:{method}"
        )

    def embeddings_request(
        self, spec: ProviderSpec, body: dict[str, Any], model: str
    ) -> UpstreamCall:
        texts, dims = out.embedding_inputs(spec, body)
        request: dict[str, Any] = {"instances": [{"content": text} for text in texts]}
        if dims:
            request["parameters"] = {"outputDimensionality": dims}
        return UpstreamCall(
            "POST",
            self._model_url(spec, model, "predict"),
            self._headers(spec),
            orjson.dumps(request),
        )

    def models_request(self, spec: ProviderSpec) -> UpstreamCall | None:
        if not spec.lists_models:
            return None
        # The publisher model list lives only in v1beta1.
        base = spec.base_url.rstrip("/").removesuffix("/v1") + "/v1beta1"
        headers = self._headers(spec)
        headers.pop("content-type", None)
        return UpstreamCall("GET", f"{base}/publishers/google/models?pageSize=1000", headers)
