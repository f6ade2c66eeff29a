"""Route factory for AWS Bedrock: Converse, ConverseStream, InvokeModel, foundation models.

Every request must carry a valid AWS Signature Version 4 for the mock's credentials
(:data:`.bedrock_format.CREDENTIALS`): the mock recomputes the signature with botocore
from the raw path, the signed headers and the body, and answers like AWS when it does
not match (403 ``InvalidSignatureException``, ``UnrecognizedClientException``,
``MissingAuthenticationTokenException``). ConverseStream answers in real AWS
event-stream frames; ``error_after_chunks`` ends it with an exception frame.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from llmrelay.mock_answers import bedrock_format as bf

from .script import Behaviour, send_event_stream
from .wire_handlers import WireHandlers, json_response

if TYPE_CHECKING:
    from .state import MockState

_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<headers>[^,]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
#: AWS refuses signatures more than five minutes away from its clock.
MAX_SKEW = 300


def _error(
    status: int,
    message: str | None = None,
    kind: str | None = None,
    extra: dict[str, str] | None = None,
) -> web.Response:
    code, body, headers = bf.error(status, message, kind)
    return json_response(body, status=code, headers={**headers, **(extra or {})})


def verify_sigv4(request: web.Request, body: bytes) -> web.Response | None:
    """None when the request is signed correctly for a known key, else AWS's error."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    header = request.headers.get("Authorization")
    if not header:
        return _error(403, "Missing Authentication Token", "MissingAuthenticationTokenException")
    match = _AUTH.match(header)
    if match is None:
        return _error(
            403,
            "Authorization header requires 'Credential', 'Signature' and "
            "'SignedHeaders' parameters.",
            "IncompleteSignatureException",
        )
    secret = bf.CREDENTIALS.get(match["key"])
    if secret is None:
        return _error(401)
    amz_date = request.headers.get("X-Amz-Date", "")
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return _error(403, "Missing or malformed X-Amz-Date", "IncompleteSignatureException")
    if abs((datetime.now(UTC) - signed_at).total_seconds()) > MAX_SKEW:
        return _error(403, "Signature expired: " + amz_date, "InvalidSignatureException")
    names = match["headers"].split(";")
    if "host" not in names or "x-amz-date" not in names:
        return _error(403, "host and x-amz-date must be signed", "IncompleteSignatureException")
    url = f"{request.scheme}://{request.host}{request.raw_path}"
    signed = AWSRequest(
        method=request.method,
        url=url,
        data=body,
        headers={n: request.headers.get(n, "") for n in names},
    )
    signed.context["timestamp"] = amz_date
    token = request.headers.get("X-Amz-Security-Token")
    auth = SigV4Auth(Credentials(match["key"], secret, token), match["service"], match["region"])
    expected = auth.signature(auth.string_to_sign(signed, auth.canonical_request(signed)), signed)
    if expected != match["signature"]:
        return _error(
            403,
            "The request signature we calculated does not match the signature "
            "you provided. Check your AWS Secret Access Key and signing method. "
            "Consult the service documentation for details.",
            "InvalidSignatureException",
        )
    return None


class _BedrockHandlers(WireHandlers):
    bad_json = "Malformed input request, please reformat your input and try again."
    not_an_object = "Malformed input request: expected a JSON object"

    def _error(
        self, status: int, behaviour: Behaviour | None = None, *, message: str | None = None
    ) -> web.Response:
        if behaviour is None:
            return _error(status, message)
        return _error(
            status, behaviour.error_message, behaviour.error_type, dict(behaviour.headers)
        )

    def _authenticate(self, request: web.Request, body: bytes) -> web.Response | None:
        return verify_sigv4(request, body)

    async def converse(
        self, request: web.Request, behaviour: Behaviour, body: dict[str, Any]
    ) -> web.StreamResponse:
        problem = bf.request_error(body)
        if problem is not None:
            return _error(400, problem)
        reply = bf.plan_reply(body, behaviour.reply)
        headers = {"x-amzn-RequestId": bf.new_request_id(), **behaviour.headers}
        if request.match_info["action"] == "converse":
            return json_response(bf.converse(reply, behaviour.usage), headers=headers)
        frames = bf.stream_frames(reply, behaviour.usage)
        if behaviour.error_after_chunks is not None:
            frames = [
                *itertools.islice(frames, behaviour.error_after_chunks),
                bf.exception_frame(
                    behaviour.error_type or "throttlingException",
                    behaviour.error_message
                    or "Too many requests, please wait before trying again.",
                ),
            ]
        return await send_event_stream(
            request,
            frames,
            behaviour,
            headers=headers,
            content_type="application/vnd.amazon.eventstream",
        )

    async def invoke(
        self, request: web.Request, behaviour: Behaviour, body: dict[str, Any]
    ) -> web.StreamResponse:
        answer = bf.invoke_embeddings(request.match_info["model"], body)
        if isinstance(answer, str):
            return _error(400, answer)
        return json_response(
            answer, headers={"x-amzn-RequestId": bf.new_request_id(), **behaviour.headers}
        )

    async def foundation_models(
        self, request: web.Request, behaviour: Behaviour, body: dict[str, Any]
    ) -> web.StreamResponse:
        match = _AUTH.match(request.headers.get("Authorization", ""))
        region = match["region"] if match else "us-east-1"
        return json_response(bf.foundation_models(region))


def bedrock_routes(state: MockState) -> list[web.RouteDef]:
    """Route factory for Bedrock's runtime (Converse, InvokeModel) and control plane."""
    h = _BedrockHandlers(state)
    return [
        web.post("/model/{model}/{action:converse|converse-stream}", h.scripted(h.converse)),
        web.post("/model/{model}/invoke", h.scripted(h.invoke)),
        web.get(
            "/foundation-models", h.scripted(h.foundation_models, use_queue=False), allow_head=False
        ),
    ]
