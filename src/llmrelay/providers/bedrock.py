"""AWS Bedrock: the Converse / ConverseStream API, SigV4-signed by botocore.

Converse is Bedrock's one request shape for every chat model it hosts, so one
translation covers Claude, Llama, Mistral, Nova, ... on Bedrock. Signing is pure given
the credentials and the clock, so it happens here while the call is built; every
attempt (a retry, a fallback) is built, and so signed, afresh. ConverseStream answers
in AWS event-stream frames, not SSE: :meth:`BedrockAdapter.splitter` gives the
relay the frame splitter. Responses, streams, embeddings and errors are in
:mod:`llmrelay.providers.bedrock_response`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import orjson
from yarl import URL

from llmrelay.errors import InvalidRequest, UpstreamError
from llmrelay.providers import bedrock_response as out
from llmrelay.providers.aws_eventstream import EventStreamSplitter
from llmrelay.providers.base import AdapterBase, ChatResult, ProviderSpec, UpstreamCall
from llmrelay.providers.chat_input import (
    alternating_turns,
    assistant_text_blocks,
    check_params,
    image_url_of,
    json_arguments,
    max_tokens_of,
    number_of,
    parse_data_url,
    parts_of,
    stop_list,
    tool_calls_of,
    tool_choice_of,
    tool_result_value,
    tools_of,
    unsupported,
)

HANDLED = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "n",
    }
)
HINTS = {
    "seed": "Converse has no seed",
    "response_format": "Converse has no JSON mode; describe the format in the prompt or use a tool",
    "presence_penalty": "Converse has no penalties",
    "frequency_penalty": "Converse has no penalties",
    "reasoning_effort": "reasoning settings are model-specific on Bedrock",
    "top_k": "Converse has no top_k",
}
_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "text/plain": "txt",
    "text/html": "html",
    "text/markdown": "md",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}


# -- messages --------------------------------------------------------------------------


def _image_block(spec: ProviderSpec, part: dict[str, Any], param: str) -> dict[str, Any]:
    url = image_url_of(part, param)
    inline = parse_data_url(url, f"{param}.image_url.url")
    if inline is None:
        if url.startswith("s3://"):
            fmt = _IMAGE_FORMATS.get(out.mime_of_path(url) or "")
            if fmt:
                return {"image": {"format": fmt, "source": {"s3Location": {"uri": url}}}}
        raise InvalidRequest(
            f"{param}.image_url.url: provider {spec.name} does not fetch image URLs; send the "
            "image inline as a data URL (data:image/png;base64,...) or as an s3:// URI "
            "ending in .png/.jpeg/.gif/.webp",
            param=f"{param}.image_url",
        )
    fmt = _IMAGE_FORMATS.get(inline[0])
    if fmt is None:
        raise InvalidRequest(
            f"{param}: image type {inline[0]} is not supported by Bedrock (png, jpeg, gif, webp)",
            param=f"{param}.image_url",
        )
    return {"image": {"format": fmt, "source": {"bytes": inline[1]}}}


def _document_block(spec: ProviderSpec, part: dict[str, Any], param: str) -> dict[str, Any]:
    file = part.get("file")
    if not isinstance(file, dict):
        file = {}
    data = file.get("file_data")
    inline = parse_data_url(data, f"{param}.file.file_data") if isinstance(data, str) else None
    fmt = _DOCUMENT_FORMATS.get(inline[0]) if inline else None
    if inline is None or fmt is None:
        raise InvalidRequest(
            f"{param}.file: provider {spec.name} takes files as file_data "
            "data URLs of a document type (pdf, csv, txt, html, md, doc, "
            "docx, xls, xlsx)",
            param=f"{param}.file",
        )
    return {
        "document": {
            "format": fmt,
            "name": out.document_name(file.get("filename")),
            "source": {"bytes": inline[1]},
        }
    }


def _user_blocks(spec: ProviderSpec, content: Any, param: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(parts_of(content, param)):
        where = f"{param}[{j}]"
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):  # Converse rejects blank text blocks
                blocks.append({"text": str(part["text"])})
        elif kind == "image_url":
            blocks.append(_image_block(spec, part, where))
        elif kind == "file":
            blocks.append(_document_block(spec, part, where))
        else:
            raise InvalidRequest(
                f"{where}: content part type {kind!r} is not supported by provider {spec.name}",
                param=f"{where}.type",
            )
    return blocks


def _tool_result(message: dict[str, Any], param: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{param}.tool_call_id is required", param=f"{param}.tool_call_id")
    value = tool_result_value(message.get("content"), f"{param}.content")
    content = (
        [{"json": value}]
        if isinstance(value, dict)
        else [{"text": value if isinstance(value, str) else orjson.dumps(value).decode()}]
    )
    return {"toolResult": {"toolUseId": call_id, "content": content, "status": "success"}}


def build_messages(
    spec: ProviderSpec, messages: list[Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """``(system blocks, messages, uses tools)``; consecutive same-role turns merged,
    because Converse wants user and assistant turns to alternate."""

    def turn(
        i: int, role: Any, message: dict[str, Any], param: str
    ) -> tuple[str, list[dict[str, Any]]] | None:
        content = message.get("content")
        if role == "user":
            return "user", _user_blocks(spec, content, f"{param}.content")
        if role == "assistant":
            blocks = assistant_text_blocks(content, f"{param}.content")
            for j, call in enumerate(tool_calls_of(message, param)):
                function = call["function"]
                blocks.append(
                    {
                        "toolUse": {
                            "toolUseId": str(call.get("id") or f"call_{i}_{j}"),
                            "name": function["name"],
                            "input": json_arguments(
                                function.get("arguments"),
                                f"{param}.tool_calls[{j}].function.arguments",
                            ),
                        }
                    }
                )
            return "assistant", blocks
        if role == "tool":
            return "user", [_tool_result(message, param)]
        return None

    system, turns = alternating_turns(messages, turn, "content")
    tool_history = any(
        "toolUse" in block or "toolResult" in block for t in turns for block in t["content"]
    )
    return system, turns, tool_history


def _tool_config(spec: ProviderSpec, body: dict[str, Any], history: bool) -> dict[str, Any] | None:
    tools = [
        {
            "toolSpec": {
                "name": f["name"],
                **({"description": f["description"]} if f.get("description") else {}),
                "inputSchema": {
                    "json": f.get("parameters") or {"type": "object", "properties": {}}
                },
            }
        }
        for f in tools_of(body)
    ]
    if body.get("parallel_tool_calls") is False:
        unsupported(
            spec, "parallel_tool_calls", "Converse cannot be told to call at most one tool per turn"
        )
    if not tools:
        return None
    choice = tool_choice_of(body)
    config: dict[str, Any] = {"tools": tools}
    if choice is None or choice[0] == "auto":
        return config
    mode, name = choice
    if mode == "none":
        # Converse has no "none": leaving the tools out says it, unless the
        # conversation already used tools (then Converse demands the toolConfig).
        if not history:
            return None
        unsupported(
            spec,
            "tool_choice",
            "Converse has no tool_choice none once tools were used in the conversation",
        )
        return config
    config["toolChoice"] = {"any": {}} if mode == "required" else {"tool": {"name": name}}
    return config


def converse_body(spec: ProviderSpec, body: dict[str, Any]) -> dict[str, Any]:
    check_params(spec, body, HANDLED, HINTS)
    if body.get("n") not in (None, 1):
        unsupported(spec, "n", "Converse returns one choice")
    messages = body.get("messages")
    assert isinstance(messages, list)
    system, turns, history = build_messages(spec, messages)
    request: dict[str, Any] = {"messages": turns}
    if system:
        request["system"] = system
    inference: dict[str, Any] = {}
    max_tokens = max_tokens_of(body)
    if max_tokens is not None:
        inference["maxTokens"] = max_tokens
    for name, key in (("temperature", "temperature"), ("top_p", "topP")):
        value = number_of(body, name)
        if value is not None:
            inference[key] = value
    stop = stop_list(body)
    if stop:
        inference["stopSequences"] = stop
    if inference:
        request["inferenceConfig"] = inference
    tool_config = _tool_config(spec, body, history)
    if tool_config is not None:
        request["toolConfig"] = tool_config
    return request


# -- signing and the adapter -------------------------------------------------------------


def signed_call(
    spec: ProviderSpec, method: str, url: str, body: bytes, accept: str, service: str = "bedrock"
) -> UpstreamCall:
    """SigV4-sign one request with botocore (the host, date, body hash and token)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    # Sign the URL exactly as it will travel: aiohttp's yarl re-normalises paths
    # (``%3A`` -> ``:``), and AWS computes the signature over the path it receives.
    url = str(URL(url))
    headers = {"accept": accept}
    if body:
        headers["content-type"] = "application/json"
    headers.update(spec.headers)
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    credentials = Credentials(
        spec.aws_access_key_id or "", spec.aws_secret_access_key or "", spec.aws_session_token
    )
    SigV4Auth(credentials, service, spec.region or "").add_auth(request)
    return UpstreamCall(method, url, dict(request.headers.items()), body)


def _model_url(spec: ProviderSpec, model: str, action: str) -> str:
    # Model ids and ARNs hold ':' and '/', which must be percent-encoded in the path.
    return f"{spec.base_url.rstrip('/')}/model/{quote(model, safe='')}/{action}"


def control_plane_url(spec: ProviderSpec) -> str:
    """``bedrock.<region>`` for the default runtime host; a custom base_url as given."""
    base = spec.base_url.rstrip("/")
    parts = urlsplit(base)
    if parts.hostname and parts.hostname.startswith("bedrock-runtime."):
        return base.replace("://bedrock-runtime.", "://bedrock.", 1)
    return base


class BedrockAdapter(AdapterBase):
    """``type: bedrock``."""

    def chat_request(
        self, spec: ProviderSpec, body: dict[str, Any], model: str, stream: bool
    ) -> UpstreamCall:
        payload = orjson.dumps(converse_body(spec, body))
        if stream:
            return signed_call(
                spec,
                "POST",
                _model_url(spec, model, "converse-stream"),
                payload,
                "application/vnd.amazon.eventstream",
            )
        return signed_call(
            spec, "POST", _model_url(spec, model, "converse"), payload, "application/json"
        )

    def chat_response(self, spec: ProviderSpec, body: bytes, model: str) -> ChatResult:
        return out.chat_result(spec, body, model)

    def chat_stream(
        self, spec: ProviderSpec, model: str, client_wants_usage: bool
    ) -> out.BedrockStream:
        return out.BedrockStream(spec.name, model, client_wants_usage)

    def splitter(self, spec: ProviderSpec, max_event_bytes: int) -> EventStreamSplitter:
        return EventStreamSplitter(spec.name, max_event_bytes)

    def embeddings_request(
        self, spec: ProviderSpec, body: dict[str, Any], model: str
    ) -> UpstreamCall:
        payload = orjson.dumps(out.embeddings_body(spec, body, model))
        return signed_call(
            spec, "POST", _model_url(spec, model, "invoke"), payload, "application/json"
        )

    def embeddings_response(self, spec: ProviderSpec, body: bytes, model: str) -> ChatResult:
        return out.embeddings_result(spec, body, model)

    def models_request(self, spec: ProviderSpec) -> UpstreamCall | None:
        if not spec.lists_models:
            return None
        return signed_call(
            spec, "GET", control_plane_url(spec) + "/foundation-models", b"", "application/json"
        )

    def parse_models(self, body: bytes) -> list[str]:
        return out.parse_models(body)

    def error(
        self, spec: ProviderSpec, status: int, body: bytes, headers: dict[str, str]
    ) -> UpstreamError:
        return out.aws_error(spec.name, status, body, headers)
