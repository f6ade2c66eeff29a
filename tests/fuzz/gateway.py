"""A real gateway in this process, for fuzzing the HTTP surface at thousands of calls a
minute: the ASGI app runs on its own event loop in a thread (hypothesis tests are
synchronous) and is called through ``httpx.ASGITransport``, so requests take the very
path uvicorn would hand them, minus the socket.

Every provider's transport is wrapped to count the upstream calls each request makes
and the statuses they got: a request refused by the gateway must have cost nothing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from llmrelay.app import Gateway
from llmrelay.config import load_settings
from llmrelay.governance.keys import create_key
from llmrelay.mock_answers.bedrock_format import MOCK_ACCESS_KEY_ID, MOCK_SECRET_ACCESS_KEY
from llmrelay.mock_upstream import MockUpstream

#: Chat-shaped endpoints are tried against each of these models: the built-in mock
#: (OpenAI shape passed through) and three translating adapters.
CHAT_MODELS = [
    "mock/echo",
    "claude/claude-sonnet-4-5",
    "gemini/gemini-2.0-flash",
    "bedrock/anthropic.claude-3-haiku-20240307-v1:0",
]
#: The translating models again, on providers that drop what they cannot honour.
LAX_MODELS = [m.replace("/", "-lax/", 1) for m in CHAT_MODELS[1:]]
MAX_BODY = 256 * 1024


def translating_config(upstream: MockUpstream) -> dict[str, Any]:
    """The built-in mock plus Anthropic, Gemini and Bedrock in front of the mock server."""
    root = upstream.root_url
    providers: list[dict[str, Any]] = [
        {
            "name": "claude",
            "type": "anthropic",
            "base_url": upstream.base_url,
            "api_key": "sk-ant-fuzz",
        },
        {"name": "gemini", "type": "gemini", "base_url": root + "/v1beta", "api_key": "gm-fuzz"},
        {
            "name": "bedrock",
            "type": "bedrock",
            "base_url": root,
            "region": "us-east-1",
            "aws_access_key_id": MOCK_ACCESS_KEY_ID,
            "aws_secret_access_key": MOCK_SECRET_ACCESS_KEY,
        },
    ]
    # The same with drop_params: schema-valid bodies set fields a provider cannot honour
    # so often that without these, few would get past that check into the translation.
    lax = [{**p, "name": p["name"] + "-lax", "drop_params": True} for p in providers]
    return {"max_body_bytes": MAX_BODY, "providers": providers + lax}


@dataclass
class Reply:
    status: int
    headers: httpx.Headers
    body: bytes
    #: statuses of the upstream calls this request made, in order
    upstream: list[int] = field(default_factory=list)


class _Counting:
    """A provider transport that records the status of every call it sends."""

    def __init__(self, inner: Any, seen: list[int]) -> None:
        self._inner = inner
        self._seen = seen

    async def send(self, call: Any, **kw: Any) -> Any:
        if call.method == "GET":  # model-list refreshes run in the background
            return await self._inner.send(call, **kw)
        try:
            resp = await self._inner.send(call, **kw)
        except Exception:
            self._seen.append(-1)
            raise
        self._seen.append(resp.status)
        return resp

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class InProcessGateway:
    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        overrides = {
            "database_url": f"sqlite+aiosqlite:///{directory / 'fuzz.db'}",
            "log_file": "none",
            "auto_providers": False,
            **config,
        }
        self.gateway = Gateway(load_settings(env={}, overrides=overrides), env={})
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fuzz-gateway", daemon=True
        )
        self._seen: list[int] = []
        self._lock = threading.Lock()
        self.key = ""

    def _run(self, coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> InProcessGateway:
        self._thread.start()
        self._run(self.gateway.startup())
        for provider in self.gateway.services.registry:
            provider.transport = _Counting(provider.transport, self._seen)
        self.key, _ = self._run(create_key(self.gateway.services.sessions, "fuzz"))
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.gateway), base_url="http://gateway"
        )
        return self

    def stop(self) -> None:
        self._run(self._client.aclose())
        self._run(self.gateway.shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    def post(
        self, path: str, content: bytes, headers: Mapping[str, str | bytes] | None = None
    ) -> Reply:
        """One call with the fuzz key (unless ``headers`` bring their own auth)."""
        sent: dict[str, str | bytes] = {
            "authorization": f"Bearer {self.key}",
            "content-type": "application/json",
            **(headers or {}),
        }
        with self._lock:  # one request at a time, so its upstream calls are its own
            self._seen.clear()
            resp = self._run(self._client.post(path, content=content, headers=sent))
            return Reply(resp.status_code, resp.headers, resp.content, list(self._seen))


def assert_clean(path: str, reply: Reply) -> None:
    """What every reply must be, whatever was sent: a 2xx, or a 4xx in the endpoint's own
    error shape that cost nothing upstream."""
    assert reply.status < 500, (reply.status, reply.body[:500])
    if reply.status < 400:
        # A stream's errors are in-band: none may be a bug of ours either.
        assert b"internal error" not in reply.body, reply.body[-500:]
        return
    error = orjson.loads(reply.body)
    if path.startswith("/v1/messages"):
        assert error["type"] == "error", error
        assert set(error["error"]) == {"type", "message"}, error
        assert isinstance(error["error"]["message"], str)
    else:
        assert set(error) == {"error"}, error
        assert set(error["error"]) == {"message", "type", "param", "code"}, error
    # Refused by the gateway: no upstream call. Relayed from an upstream: it refused.
    assert all(400 <= s < 500 for s in reply.upstream) and (
        not reply.upstream or reply.status == reply.upstream[-1]
    ), reply
