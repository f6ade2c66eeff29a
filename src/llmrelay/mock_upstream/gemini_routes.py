"""Route factory for Google's wire format: the Gemini API, Vertex AI and a token endpoint.

* Gemini API (``/v1beta/models/{model}:generateContent`` ...): an API key in
  ``x-goog-api-key`` or ``?key=``; with the mock's ``api_key`` set, a wrong key gets
  Google's 400 ``API_KEY_INVALID``.
* Vertex AI (``/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:...``):
  ``Authorization: Bearer`` with a token this mock issued.
* ``POST /token``: a stand-in for ``oauth2.googleapis.com/token``. It checks the
  service-account JWT (RS256 signature, ``iss``, ``scope``, ``aud``, expiry) against
  public keys registered with ``POST /_mock/google/keys`` (``{"kid": PEM}``), so a
  test proves that google-auth really signed with the service account's key.

Scripted by :class:`~.script.Behaviour` like the other formats; a 429's
``retry-after`` header becomes Google's ``RetryInfo`` detail, and
``error_after_chunks`` ends a stream with Google's in-stream error object.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import secrets
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from llmrelay.mock_answers import gemini_format as gf
from llmrelay.mock_answers import openai_format as oa

from .script import Behaviour, send_event_stream
from .wire_handlers import WireHandlers, json_response

if TYPE_CHECKING:
    from .state import MockState

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
#: The audience Google demands in the assertion, whatever URL the token request used.
AUDIENCE = "https://oauth2.googleapis.com/token"
TOKEN_LIFETIME = 3599


def _json(obj: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(
        obj, status=status, headers=headers, content_type="application/json; charset=UTF-8"
    )


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


class _GoogleHandlers(WireHandlers):
    bad_json = "Invalid JSON payload received."
    not_an_object = "Invalid JSON payload received. Expected an object."

    def __init__(self, state: MockState) -> None:
        super().__init__(state)
        self._public_keys: dict[str, Any] = {}
        self._tokens: set[str] = set()

    # -- shared ----------------------------------------------------------------------

    def _error(
        self,
        status: int,
        behaviour: Behaviour | None = None,
        *,
        message: str | None = None,
        reason: str | None = None,
    ) -> web.Response:
        b = behaviour or Behaviour()
        headers = {k: v for k, v in b.headers.items() if k.lower() != "retry-after"}
        retry = b.headers.get("retry-after") or b.headers.get("Retry-After")
        body = gf.error_body(
            status,
            message or b.error_message,
            google_status=b.error_type,
            retry_seconds=retry,
            reason=reason,
        )
        return _json(body, status, headers)

    def _key_auth(self, request: web.Request, body: bytes) -> web.Response | None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return self._error(
                403,
                message="Method doesn't allow unregistered callers "
                "(callers without established identity). Please use API Key "
                "or other form of API consumer identity to call this API.",
            )
        expected = self._state.api_key
        if expected is not None and key != expected:
            return self._error(
                400,
                message="API key not valid. Please pass a valid API key.",
                reason="API_KEY_INVALID",
            )
        return None

    def _vertex_auth(self, request: web.Request, body: bytes) -> web.Response | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self._tokens:
            return self._error(401)
        return None

    # -- generateContent ---------------------------------------------------------------

    async def _model_call(self, request: web.Request, *, vertex: bool) -> web.StreamResponse:
        model, _, method = request.match_info["model_action"].partition(":")
        if method not in (
            "generateContent",
            "streamGenerateContent",
            "embedContent",
            "batchEmbedContents",
            "predict",
        ):
            return self._error(404, message=f"Method {method!r} not found.")
        begun = await self._begin(
            request, authenticate=self._vertex_auth if vertex else self._key_auth
        )
        if isinstance(begun, web.StreamResponse):
            return begun
        behaviour, body = begun
        if method in ("embedContent", "batchEmbedContents", "predict"):
            return self._embed(method, body, behaviour)
        problem = gf.request_error(body)
        if problem is not None:
            return self._error(400, message=problem)
        reply = gf.plan_reply(body, behaviour.reply)
        response_id = gf.new_response_id()
        if method == "generateContent":
            count = (body.get("generationConfig") or {}).get("candidateCount") or 1
            return _json(
                gf.generate_content(reply, model, response_id, int(count), behaviour.usage),
                headers=dict(behaviour.headers),
            )
        if request.query.get("alt") != "sse":
            return self._error(400, message="this mock streams with ?alt=sse only")
        events = [
            gf.encode_sse(c) for c in gf.stream_chunks(reply, model, response_id, behaviour.usage)
        ]
        if behaviour.error_after_chunks is not None:
            status = 503 if behaviour.error_type is None else 500
            events = [
                *itertools.islice(events, behaviour.error_after_chunks),
                gf.encode_sse(
                    gf.error_body(
                        status, behaviour.error_message, google_status=behaviour.error_type
                    )
                ),
            ]
        return await send_event_stream(request, events, behaviour, headers=dict(behaviour.headers))

    def _embed(self, method: str, body: dict[str, Any], behaviour: Behaviour) -> web.Response:
        if method == "embedContent":
            values = gf.embed_values(
                gf.content_text(body.get("content")), body.get("outputDimensionality")
            )
            return _json({"embedding": {"values": values}})
        if method == "batchEmbedContents":
            requests = body.get("requests")
            if not isinstance(requests, list) or not requests:
                return self._error(
                    400, message="* BatchEmbedContentsRequest.requests: requests must not be empty"
                )
            return _json(
                {
                    "embeddings": [
                        {
                            "values": gf.embed_values(
                                gf.content_text(r.get("content")), r.get("outputDimensionality")
                            )
                        }
                        for r in requests
                    ]
                }
            )
        dims = (body.get("parameters") or {}).get("outputDimensionality")
        predictions = []
        for instance in body.get("instances") or ():
            text = str(instance.get("content", ""))
            predictions.append(
                {
                    "embeddings": {
                        "values": gf.embed_values(text, dims),
                        "statistics": {"token_count": oa.count_words(text), "truncated": False},
                    }
                }
            )
        return _json(
            {
                "predictions": predictions,
                "metadata": {
                    "billableCharacterCount": sum(
                        len(str(i.get("content", ""))) for i in body.get("instances") or ()
                    )
                },
            }
        )

    async def gemini(self, request: web.Request) -> web.StreamResponse:
        return await self._model_call(request, vertex=False)

    async def vertex(self, request: web.Request) -> web.StreamResponse:
        return await self._model_call(request, vertex=True)

    async def gemini_models(
        self, request: web.Request, behaviour: Behaviour, body: dict[str, Any]
    ) -> web.StreamResponse:
        return _json(gf.models_list(self._google_models()))

    async def vertex_models(
        self, request: web.Request, behaviour: Behaviour, body: dict[str, Any]
    ) -> web.StreamResponse:
        return _json(gf.publisher_models(self._google_models()))

    def _google_models(self) -> tuple[str, ...]:
        models = tuple(m for m in self._state.models if "gemini" in m or "embedding-0" in m)
        return models or gf.DEFAULT_MODELS

    # -- the OAuth2 token endpoint ---------------------------------------------------------

    async def register_keys(self, request: web.Request) -> web.StreamResponse:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        keys = orjson.loads(await request.read())
        for kid, pem in keys.items():
            self._public_keys[kid] = load_pem_public_key(pem.encode())
        return _json({"registered": len(self._public_keys)})

    async def token(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return _json(
                {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}, 400
            )
        problem = self._check_assertion(str(form.get("assertion", "")))
        if problem is not None:
            return _json({"error": "invalid_grant", "error_description": problem}, 400)
        token = "ya29.mock-" + secrets.token_urlsafe(24)
        self._tokens.add(token)
        return _json({"access_token": token, "expires_in": TOKEN_LIFETIME, "token_type": "Bearer"})

    def _check_assertion(self, assertion: str) -> str | None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            head_b64, claims_b64, sig_b64 = assertion.split(".")
            header = orjson.loads(_b64url(head_b64))
            claims = orjson.loads(_b64url(claims_b64))
            signature = _b64url(sig_b64)
        except (ValueError, binascii.Error, orjson.JSONDecodeError):
            return "Invalid JWT: malformed assertion."
        key = self._public_keys.get(header.get("kid"))
        if header.get("alg") != "RS256" or key is None:
            return "Invalid JWT Signature."
        try:
            key.verify(
                signature, f"{head_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            return "Invalid JWT Signature."
        now = time.time()
        if not claims.get("iss") or claims.get("aud") != AUDIENCE:
            return "Invalid JWT: Failed audience check."
        if SCOPE not in str(claims.get("scope", "")).split():
            return "Invalid JWT: no cloud-platform scope."
        if not (claims.get("iat", 0) - 300 <= now < claims.get("exp", 0)):
            return (
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe."
            )
        return None


def gemini_routes(state: MockState) -> list[web.RouteDef]:
    """Route factory for the Gemini API, Vertex AI and Google's token endpoint."""
    h = _GoogleHandlers(state)
    vertex = "/v1/projects/{project}/locations/{location}/publishers/google/models/"
    return [
        web.post("/v1beta/models/{model_action}", h.gemini),
        web.get(
            "/v1beta/models",
            h.scripted(h.gemini_models, use_queue=False, authenticate=h._key_auth),
            allow_head=False,
        ),
        web.post(vertex + "{model_action}", h.vertex),
        web.get(
            "/v1beta1/publishers/google/models",
            h.scripted(h.vertex_models, use_queue=False, authenticate=h._vertex_auth),
            allow_head=False,
        ),
        web.post("/token", h.token),
        web.post("/_mock/google/keys", h.register_keys),
    ]
