"""What real clients expect of the wire, through the official SDKs (issue 8, items 17-20).

* ``models.retrieve`` (openai) and ``models.list`` (anthropic, in Anthropic's shape);
* ``messages.parse`` structured outputs translated for an OpenAI-format upstream, and
  Anthropic-only fields refused with a message that says so;
* ``messages.count_tokens``: passed through to Anthropic, estimated for others;
  errors under ``/v1/messages/*`` in Anthropic's shape;
* translated streams without ``system_fingerprint: null``; ``Date``; the provider's
  request id passed on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import anthropic
import httpx
import openai
import pydantic
import pytest

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.gateway_proc import GatewayProcess


@pytest.fixture(scope="module")
def gw(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(
        tmp_path_factory.mktemp("e2e-fidelity"),
        {
            "providers": [
                {
                    "name": "claude",
                    "type": "anthropic",
                    "base_url": upstream.base_url,
                    "api_key": "sk-ant-upstream-1234",
                    "models": ["claude-sonnet-4-5"],
                },
                {
                    "name": "up",
                    "type": "openai_compatible",
                    "base_url": upstream.base_url,
                    "api_key": "sk-upstream-abcdefgh",
                },
            ],
            "models": [
                {"name": "claude-sonnet", "provider": "claude", "model": "claude-sonnet-4-5"}
            ],
        },
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def key(gw: GatewayProcess) -> str:
    key = gw.create_key("fidelity")
    # Tests turn background list refreshes off; fetch the provider lists once.
    httpx.get(
        gw.base_url + "/models?refresh=true", headers={"authorization": f"Bearer {key}"}, timeout=30
    ).raise_for_status()
    return key


@pytest.fixture(scope="module")
def oai(gw: GatewayProcess, key: str) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    yield client
    client.close()


@pytest.fixture(scope="module")
def claude(gw: GatewayProcess, key: str) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)
    yield client
    client.close()


HELLO: Any = [{"role": "user", "content": "hello there gateway"}]


# -- 17: GET /v1/models/{id} ---------------------------------------------------------------
def test_models_retrieve_finds_listed_models_by_any_name(oai: openai.OpenAI) -> None:
    listed = {m.id for m in oai.models.list()}
    assert {"up/gpt-4o", "claude-sonnet"} <= listed
    for model_id in ("up/gpt-4o", "claude-sonnet", "claude/claude-sonnet-4-5"):
        model = oai.models.retrieve(model_id)  # the SDK sends up%2Fgpt-4o
        assert (model.id, model.object) == (model_id, "model")
        assert model.owned_by in ("up", "claude", "llmrelay")
    with pytest.raises(openai.NotFoundError) as err:
        oai.models.retrieve("up/no-such-model")
    assert err.value.code == "model_not_found"


def test_models_retrieve_hides_models_the_key_may_not_use(gw: GatewayProcess) -> None:
    narrow = gw.create_key("fidelity-narrow", models=["up/gpt-4o-mini"])
    with openai.OpenAI(base_url=gw.base_url, api_key=narrow, max_retries=0) as client:
        assert client.models.retrieve("up/gpt-4o-mini").id == "up/gpt-4o-mini"
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("up/gpt-4o")


# -- 18: structured outputs on /v1/messages, translated ---------------------------------------
class Person(pydantic.BaseModel):
    name: str
    age: int


def test_messages_parse_structured_output_is_translated_to_response_format(
    claude: anthropic.Anthropic, mock: MockUpstream
) -> None:
    mock.script(Behaviour(reply='{"name": "Ada", "age": 36}'))
    parsed = claude.messages.parse(
        model="up/gpt-4o",
        max_tokens=100,
        messages=[{"role": "user", "content": "Who wrote the first program?"}],
        output_format=Person,
    )
    assert parsed.parsed_output == Person(name="Ada", age=36)
    sent = mock.requests[-1].body
    fmt = sent["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["properties"].keys() == {"name", "age"}
    assert "output_config" not in sent


def test_messages_parse_passes_through_to_anthropic(
    claude: anthropic.Anthropic, mock: MockUpstream
) -> None:
    parsed = claude.messages.parse(
        model="claude-sonnet",
        max_tokens=100,
        messages=[{"role": "user", "content": "Ada"}],
        output_format=Person,
    )
    assert parsed.parsed_output == Person(name="Ada", age=1)  # the mock fills the schema
    sent = mock.requests[-1].body
    assert sent["output_config"]["format"]["type"] == "json_schema"
    assert "response_format" not in sent


def test_output_config_effort_and_raw_format_are_translated(
    claude: anthropic.Anthropic, mock: MockUpstream
) -> None:
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    }
    mock.script(Behaviour(reply='{"ok": true}'))
    message = claude.messages.create(
        model="up/gpt-4o",
        max_tokens=50,
        messages=HELLO,
        output_config={"effort": "max", "format": {"type": "json_schema", "schema": schema}},
    )
    assert message.content[0].type == "text"
    assert json.loads(message.content[0].text) == {"ok": True}
    sent = mock.requests[-1].body
    assert sent["response_format"]["json_schema"]["schema"] == schema
    assert sent["reasoning_effort"] == "high"


def test_anthropic_only_fields_are_refused_with_a_reason(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        claude.messages.create(
            model="up/gpt-4o", max_tokens=50, messages=HELLO, extra_body={"thread": {"id": "thr_1"}}
        )
    assert "thread: only available when the model is served by Anthropic" in str(err.value)
    not_json_schema: Any = {"format": {"type": "xml"}}
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(
            model="up/gpt-4o", max_tokens=50, messages=HELLO, output_config=not_json_schema
        )
    assert "output_config.format.type" in str(bad.value)


# -- 19: count_tokens, Anthropic errors, Anthropic model list ---------------------------------
def test_count_tokens_passes_through_to_anthropic(
    claude: anthropic.Anthropic, mock: MockUpstream, gw: GatewayProcess, key: str
) -> None:
    counted = claude.messages.count_tokens(model="claude-sonnet", messages=HELLO, system="be brief")
    assert counted.input_tokens == 5  # the mock counts words: its own answer came back
    upstream = mock.requests[-1]
    assert upstream.path == "/v1/messages/count_tokens"
    assert upstream.body["model"] == "claude-sonnet-4-5"
    raw = httpx.post(
        gw.url + "/v1/messages/count_tokens",
        json={"model": "claude-sonnet", "messages": HELLO},
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
    )
    assert raw.headers["request-id"].startswith("req_")
    assert "x-llmrelay-token-count" not in raw.headers


def test_count_tokens_counts_against_the_keys_request_limit(gw: GatewayProcess) -> None:
    """A pass-through calls the provider: it must not be a way around the key's rpm."""
    limited = gw.create_key("fidelity-rpm", rpm=2)
    with anthropic.Anthropic(base_url=gw.url, api_key=limited, max_retries=0) as client:
        for _ in range(2):
            assert (
                client.messages.count_tokens(model="claude-sonnet", messages=HELLO).input_tokens
                == 3
            )
        with pytest.raises(anthropic.RateLimitError) as err:
            client.messages.count_tokens(model="claude-sonnet", messages=HELLO)
    assert err.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert err.value.response.headers["retry-after"]


def test_count_tokens_estimates_for_other_providers(
    claude: anthropic.Anthropic, mock: MockUpstream, gw: GatewayProcess, key: str
) -> None:
    """The bundled cl100k_base tokenizer: exact for its models, labelled an estimate."""
    before = len(mock.requests)
    # cl100k_base: "hello", " there", " gateway"; + role "user" + 3 per message + 3 priming
    counted = claude.messages.count_tokens(model="up/gpt-4o", messages=HELLO)
    assert counted.input_tokens == 3 + 1 + 3 + 3
    long_text = "word " * 400  # "word" + 399 x " word" + " "
    assert (
        claude.messages.count_tokens(
            model="up/gpt-4o", messages=[{"role": "user", "content": long_text}]
        ).input_tokens
        == 401 + 1 + 3 + 3
    )
    with_image = claude.messages.count_tokens(
        model="up/gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": "iVBORw0KGgo" * 1000,
                        },
                    },
                    {"type": "text", "text": "hello there gateway"},
                ],
            }
        ],
    )
    assert with_image.input_tokens == 765 + 3 + 1 + 3 + 3  # one tile, not the base64 text
    assert len(mock.requests) == before  # no upstream call
    raw = httpx.post(
        gw.url + "/v1/messages/count_tokens",
        json={"model": "up/gpt-4o", "messages": HELLO},
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
    )
    assert raw.headers["x-llmrelay-token-count"] == "estimate; cl100k_base"
    with pytest.raises(anthropic.BadRequestError) as err:  # what create would refuse
        claude.messages.count_tokens(
            model="up/gpt-4o", messages=HELLO, extra_body={"thread": {"id": "thr_1"}}
        )
    assert "only available when the model is served by Anthropic" in str(err.value)
    with pytest.raises(anthropic.BadRequestError) as capped:  # as Anthropic answers
        claude.messages.count_tokens(
            model="up/gpt-4o", messages=HELLO, extra_body={"max_tokens": 10}
        )
    assert "max_tokens: Extra inputs are not permitted" in str(capped.value)


def test_errors_under_v1_messages_are_in_anthropic_shape(
    claude: anthropic.Anthropic, gw: GatewayProcess
) -> None:
    with pytest.raises(anthropic.BadRequestError) as unknown:
        claude.messages.count_tokens(model="nowhere/x", messages=HELLO)
    assert unknown.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with (
        anthropic.Anthropic(base_url=gw.url, api_key="sk-wrong", max_retries=0) as bad,
        pytest.raises(anthropic.AuthenticationError) as err,
    ):
        bad.messages.count_tokens(model="claude-sonnet", messages=HELLO)
    assert err.value.body["type"] == "error"  # type: ignore[index]
    assert err.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    for method, path in (
        ("GET", "/v1/messages/batches"),
        ("GET", "/v1/messages/count_tokens"),
        ("PUT", "/v1/messages"),
    ):
        resp = httpx.request(method, gw.url + path)
        body = resp.json()
        assert resp.status_code in (404, 405), (method, path)
        assert body["type"] == "error" and body["error"]["message"], body


def test_models_list_in_anthropic_shape_for_the_anthropic_sdk(
    claude: anthropic.Anthropic, oai: openai.OpenAI
) -> None:
    page = claude.models.list()
    ids = [m.id for m in page.data]
    assert "claude-sonnet" in ids and "up/gpt-4o" in ids
    assert page.has_more is False and page.first_id == ids[0] and page.last_id == ids[-1]
    first = page.data[0]
    assert first.type == "model" and first.display_name and first.created_at.year >= 2024
    assert claude.models.retrieve("up/gpt-4o").id == "up/gpt-4o"
    assert [m.id for m in oai.models.list()] == ids  # the same models, OpenAI's shape


# -- 20: stream fields, Date, upstream request ids --------------------------------------------
def test_translated_stream_chunks_have_no_null_system_fingerprint(
    gw: GatewayProcess, key: str
) -> None:
    with httpx.stream(
        "POST",
        gw.base_url + "/chat/completions",
        json={
            "model": "claude-sonnet",
            "messages": HELLO,
            "stream": True,
            "max_tokens": 20,
            "stream_options": {"include_usage": True},
        },
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    ) as resp:
        assert resp.status_code == 200
        chunks = [json.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: {")]
    assert len(chunks) >= 3
    assert all("system_fingerprint" not in c for c in chunks), chunks[0]


def test_date_header_and_upstream_request_id(
    oai: openai.OpenAI, claude: anthropic.Anthropic, mock: MockUpstream
) -> None:
    mock.script(Behaviour(headers={"x-request-id": "req_openai_upstream_1"}))
    raw = oai.chat.completions.with_raw_response.create(model="up/gpt-4o", messages=HELLO)
    assert raw.headers["x-llmrelay-upstream-request-id"] == "req_openai_upstream_1"
    assert raw.headers["x-request-id"] != "req_openai_upstream_1"  # ours stays ours
    date = parsedate_to_datetime(raw.headers["date"])
    assert abs(date.timestamp() - time.time()) < 120

    # Anthropic pass-through: the SDK's own request-id header is Anthropic's.
    mock.script(Behaviour(headers={"request-id": "req_anthropic_upstream_2"}))
    message = claude.messages.with_raw_response.create(
        model="claude-sonnet", max_tokens=20, messages=HELLO
    )
    assert message.headers["request-id"] == "req_anthropic_upstream_2"
    assert message.headers["x-llmrelay-upstream-request-id"] == "req_anthropic_upstream_2"
    assert message.parse()._request_id == "req_anthropic_upstream_2"

    # Streams carry them too (headers are sent when the first chunk is in).
    mock.script(Behaviour(headers={"x-request-id": "req_openai_stream_3"}))
    with oai.chat.completions.with_streaming_response.create(
        model="up/gpt-4o", messages=HELLO, stream=True
    ) as stream:
        assert stream.headers["x-llmrelay-upstream-request-id"] == "req_openai_stream_3"
        assert "date" in stream.headers
        list(stream.iter_lines())

    # The provider's error answers carry its id too (what its support asks for).
    mock.script(Behaviour(status=400, headers={"x-request-id": "req_openai_error_4"}))
    with pytest.raises(openai.BadRequestError) as refused:
        oai.chat.completions.create(model="up/gpt-4o", messages=HELLO)
    assert refused.value.response.headers["x-llmrelay-upstream-request-id"] == "req_openai_error_4"

    # Errors of our own have a Date too, and no upstream id.
    with pytest.raises(openai.NotFoundError) as err:
        oai.models.retrieve("nope/nope")
    assert "date" in err.value.response.headers
    assert "x-llmrelay-upstream-request-id" not in err.value.response.headers
