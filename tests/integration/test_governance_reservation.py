"""What calls reserve against a budget, and streams stopped at it, through real HTTP.

Prices are set in the config (input $1, output $2 per million tokens), so every
reservation and cost below is plain arithmetic. The mock upstream's behaviour is fixed
per provider through the ``x-mock-behaviour`` header the gateway sends.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest

from llmrelay.mock_upstream import MockUpstream
from tests.gateway_proc import GatewayProcess
from tests.services import REDIS_HOST, REDIS_PORT

Start = Callable[..., GatewayProcess]
PRICE = {"input_cost_per_token": "0.000001", "output_cost_per_token": "0.000002"}
#: 230 words of 30 characters (the mock's header limit allows ~8 KB): ~1,800 tokens at
#: $2/M = $0.0036, six times the budget below, whatever max_tokens says.
WORD = "x" * 30
LONG_REPLY = " ".join([WORD] * 230)
#: One word is one stream event: 31 characters, 8 tokens, 16,000 nano-dollars.
EVENT_NANOS = 16_000
#: The first reservation, the step a running stream is raised by: prompt estimate (4
#: tokens) + max_tokens 20, = 4 * 1,000 + 20 * 2,000 nano-dollars.
STEP_NANOS = 44_000
BUDGET = Decimal("0.0006")  # 300 output tokens


def _behaviour(**fields: Any) -> dict[str, str]:
    return {"x-mock-behaviour": orjson.dumps(fields).decode()}


def _config(upstream: MockUpstream) -> dict[str, Any]:
    def provider(name: str, **behaviour: Any) -> dict[str, Any]:
        return {
            "name": name,
            "type": "openai_compatible",
            "base_url": upstream.base_url,
            "api_key": "k",
            "headers": _behaviour(**behaviour),
        }

    return {
        "providers": [
            # Slow answers keep every call of a burst in flight at once.
            provider("slow", delay_ms=3000),
            # An upstream that ignores max_tokens and talks on.
            provider("long", reply=LONG_REPLY, chunk_delay_ms=5),
        ],
        "prices": {
            "slow/configured": PRICE,
            "slow/default": PRICE,
            "slow/learnt": PRICE,
            "long/m": PRICE,
        },
        "reserve_output_tokens": {"slow/config*": 10},
    }


@pytest.fixture(scope="module")
def gw(upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Any:
    gateway = GatewayProcess(tmp_path_factory.mktemp("reservation"), _config(upstream))
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def redis_gw(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory, redis_server: None
) -> Any:
    """The same gateway counting its budgets in Redis (the EXTEND script)."""
    config = {
        **_config(upstream),
        "redis_url": f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
        "redis_prefix": f"{{reservation-{uuid.uuid4().hex}}}:",
    }
    gateway = GatewayProcess(tmp_path_factory.mktemp("reservation-redis"), config)
    gateway.start()
    yield gateway
    gateway.stop()


def _chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello there"}], **extra}


def _burst(gw: GatewayProcess, key: str, body: dict[str, Any], n: int = 100) -> list[int]:
    """``n`` calls sent at once (clients made first, then released together)."""
    ready = threading.Barrier(n)

    def one(_: int) -> int:
        with httpx.Client(timeout=60) as client:
            ready.wait(60)
            r = client.post(
                gw.url + "/v1/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {key}"},
            )
        return r.status_code

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def _spent(gw: GatewayProcess, key_name: str, rows: int) -> int:
    kid = gw.db_query(f"SELECT id FROM api_keys WHERE name = '{key_name}'")[0][0]
    sql = f"SELECT COUNT(*), SUM(cost_nanos) FROM usage_records WHERE api_key_id = '{kid}'"
    deadline = time.monotonic() + 20
    while (found := gw.db_query(sql)[0])[0] < rows:
        assert time.monotonic() < deadline, f"{found[0]} of {rows} usage rows"
        time.sleep(0.05)
    return int(found[1])


def test_without_max_tokens_the_configured_estimate_is_reserved(gw: GatewayProcess) -> None:
    """100 concurrent calls without max_tokens on a $0.01 budget: the default reservation
    (1024 output tokens, $0.002) admits 5 of them; ``reserve_output_tokens`` of 10 for
    the model admits all 100."""
    default_key = gw.create_key("default-estimate", budget=Decimal("0.01"))
    statuses = _burst(gw, default_key, _chat("slow/default"))
    assert statuses.count(200) == 5 and statuses.count(402) == 95
    configured_key = gw.create_key("configured-estimate", budget=Decimal("0.01"))
    assert _burst(gw, configured_key, _chat("slow/configured")) == [200] * 100


def test_without_max_tokens_the_learnt_estimate_is_reserved(gw: GatewayProcess) -> None:
    """After 20 completions of a model (2 tokens each), its calls reserve their 95th
    percentile instead of 1024 tokens: 100 concurrent calls fit a $0.01 budget."""
    learner = gw.create_key("learner")  # no budget: its calls teach the estimate too
    assert post_ok(gw, learner, _chat("slow/learnt", max_tokens=5)) == 200  # capped: not learnt
    assert _burst(gw, learner, _chat("slow/learnt"), n=20) == [200] * 20
    small = gw.create_key("learnt-estimate", budget=Decimal("0.01"))
    assert _burst(gw, small, _chat("slow/learnt")) == [200] * 100


def post_ok(gw: GatewayProcess, key: str, body: dict[str, Any]) -> int:
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=60,
    )
    return r.status_code


@pytest.mark.parametrize("backend", ["local", pytest.param("redis", marks=pytest.mark.redis)])
def test_a_stream_that_outgrows_its_reservation_is_stopped_at_the_budget(
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    """An upstream ignoring max_tokens=20 streams ~$0.0036 into a $0.0006 budget: the stream
    ends with a budget_exceeded error event once the budget has no room for another
    reservation step, and the spend is the budget plus at most one step and two reads."""
    gw: GatewayProcess = request.getfixturevalue("gw" if backend == "local" else "redis_gw")
    key = gw.create_key("stopped", budget=BUDGET)
    with httpx.stream(
        "POST",
        gw.url + "/v1/chat/completions",
        timeout=60,
        json=_chat("long/m", max_tokens=20, stream=True),
        headers={"authorization": f"Bearer {key}"},
    ) as r:
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] != "data: [DONE]"
    error = orjson.loads(lines[-1].removeprefix("data: "))["error"]
    assert error["code"] == "budget_exceeded" and error["type"] == "insufficient_quota"
    assert "the stream was stopped there" in error["message"]
    spent = _spent(gw, "stopped", 1)
    budget = int(BUDGET * 10**9)
    # A read of this stream is one event (one word) unless the gateway fell behind on a
    # loaded machine: five events' worth for the two reads the bound allows.
    assert budget < spent <= budget + STEP_NANOS + 5 * EVENT_NANOS, spent
    assert spent < 2 * budget  # before: the whole answer, ~6x the budget
    refused = httpx.post(
        gw.url + "/v1/chat/completions",
        json=_chat("long/m", max_tokens=20),
        headers={"authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert refused.status_code == 402


def test_a_messages_stream_is_stopped_in_anthropics_error_shape(gw: GatewayProcess) -> None:
    """The same stop on /v1/messages: an Anthropic ``event: error`` (not an OpenAI body)."""
    key = gw.create_key("stopped-messages", budget=BUDGET)
    body = {
        "model": "long/m",
        "max_tokens": 20,
        "stream": True,
        "messages": [{"role": "user", "content": "hello there"}],
    }
    with httpx.stream(
        "POST", gw.url + "/v1/messages", json=body, timeout=60, headers={"x-api-key": key}
    ) as r:
        assert r.status_code == 200
        text = "".join(r.iter_text())
    last = text.strip().split("\n\n")[-1]
    assert last.startswith("event: error"), last
    assert '"budget_exceeded"' in last or "budget exceeded" in last
    spent = _spent(gw, "stopped-messages", 1)
    assert spent <= int(BUDGET * 10**9) + STEP_NANOS + 5 * EVENT_NANOS
