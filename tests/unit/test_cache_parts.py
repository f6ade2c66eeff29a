"""The response cache's pure parts: options, the stored form <-> the other form, the LRU
bound, the semantic split and index."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import orjson
import pytest

from llmrelay.cache.backends import MemoryBackend
from llmrelay.cache.embedder import normalised
from llmrelay.cache.entry import Entry, decode, encode
from llmrelay.cache.options import CacheOptionsError, parse_cache_options
from llmrelay.cache.replay import chunks_of, completion_of
from llmrelay.cache.semantic import QUESTION, SemanticIndex, split
from llmrelay.providers.base import Usage
from llmrelay.sse import DONE, event_data

COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 7,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "thinking aloud",
                    "reasoning_content": "hmm",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a": 1}'},
                        }
                    ],
                },
            },
            {
                "index": 1,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "second"},
            },
        ],
    }
)
USAGE = Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7, reasoning_tokens=1)


def test_a_completion_round_trips_through_its_chunks() -> None:
    events = chunks_of(COMPLETION, USAGE, include_usage=True)
    assert events[-1] == DONE
    usage_chunk = orjson.loads(event_data(events[-2]) or b"")
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["total_tokens"] == 7
    back = orjson.loads(completion_of(events, USAGE) or b"")
    original = orjson.loads(COMPLETION)
    for got, want in zip(back["choices"], original["choices"], strict=True):
        assert got["message"] == want["message"]
        assert got["finish_reason"] == want["finish_reason"]
    assert back["usage"]["completion_tokens"] == 4 and back["id"] == "chatcmpl-1"


def test_no_usage_chunk_unless_asked_and_non_chunks_are_not_assembled() -> None:
    events = chunks_of(COMPLETION, USAGE, include_usage=False)
    assert not any(b'"usage"' in e for e in events)
    assert (
        completion_of([b'event: message_start\ndata: {"type":"message_start"}\n\n'], None) is None
    )
    assert completion_of([DONE], None) is None


def test_entries_round_trip_and_foreign_bytes_are_no_entry() -> None:
    entry = Entry(
        created=1.0,
        provider="p",
        model="m",
        body=b"{}",
        usage=USAGE,
        finish_reason="stop",
        cost_nanos=5,
    )
    assert decode(encode(entry)) == entry
    assert decode(b"not msgpack at all") is None


def test_the_memory_backend_stays_within_its_bytes_and_drops_the_oldest() -> None:
    async def run() -> None:
        store = MemoryBackend(max_bytes=1000)
        for i in range(20):
            await store.set(f"k{i:02d}", b"x" * 96, ttl=60)  # 100 bytes each with the key
        assert store.bytes <= 1000 and store.evicted == 10
        assert await store.get(["k00", "k19"]) == [None, b"x" * 96]
        await store.set("big", b"x" * 2000, ttl=60)  # larger than the whole store: skipped
        assert await store.get(["big"]) == [None]
        await store.set("short", b"y", ttl=0.000001)
        await asyncio.sleep(0.01)
        assert await store.get(["short"]) == [None]

    asyncio.run(run())


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"mode": "fuzzy"}, "cache.mode"),
        ({"scope": "everyone"}, "cache.scope"),
        ({"ttl": 0}, "cache.ttl"),
        ({"ttl": "1h"}, "cache.ttl"),
        ({"threshold": 1.5}, "cache.threshold"),
        ({"embedding_model": "nomodel"}, "cache.embedding_model"),
        ({"colour": 1}, "cache.colour"),
        ({"namespace": "x\n"}, "cache.namespace"),
        ({"store_truncated": "yes"}, "cache.store_truncated"),
    ],
)
def test_bad_options_name_their_field(raw: dict[str, object], path: str) -> None:
    with pytest.raises(CacheOptionsError) as info:
        parse_cache_options(raw)
    assert info.value.path == path


def test_the_semantic_split_keeps_everything_but_the_last_user_turn() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "second"}]},
        ],
    }
    context, text = split("/v1/chat/completions", body) or ({}, "")
    assert text == "second"
    assert context["messages"][3]["content"] == QUESTION
    assert context["messages"][1]["content"] == "first"
    image = {
        "model": "m",
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}
        ],
    }
    assert split("/v1/chat/completions", image) is None  # nothing to match words on
    assert split("/v1/responses", {"input": "hi"}) == ({"input": QUESTION}, "hi")
    assert split("/v1/embeddings", {"input": "hi"}) is None


@pytest.mark.parametrize("vectorised", [True, False], ids=["numpy", "python"])
def test_the_index_finds_the_best_match_above_the_threshold_per_context(
    vectorised: bool,
) -> None:
    index = SemanticIndex(max_vectors=3, vectorised=vectorised)
    a, b = normalised([1.0, 0.0]), normalised([0.8, 0.6])
    index.add("ctx", a, "key-a", ttl=60)
    index.add("ctx", b, "key-b", ttl=60)
    assert index.search("ctx", normalised([0.9, 0.1]), 0.9) == (
        "key-a",
        pytest.approx(0.9939, abs=1e-4),
    )
    assert index.search("ctx", normalised([0.0, 1.0]), 0.9) is None
    assert index.search("other", a, 0.5) is None
    index.add("ctx2", a, "key-c", ttl=60)
    index.add("ctx2", b, "key-d", ttl=60)  # over max_vectors: the oldest goes
    assert index.count == 3 and index.search("ctx", a, 0.99) is None


def test_the_numpy_index_answers_what_the_python_scan_answers() -> None:
    # Random adds, refreshes, expiries and evictions (per context and overall) applied to
    # both: every search must find the same entry with the same score.
    rng = random.Random(11)
    fast = SemanticIndex(max_vectors=60, max_per_context=25, vectorised=True)
    slow = SemanticIndex(max_vectors=60, max_per_context=25, vectorised=False)
    assert fast._rows is not None

    def vector(dims: int = 8) -> list[float]:
        return normalised([rng.gauss(0, 1) for _ in range(dims)])

    for step in range(1500):
        context = f"ctx{rng.randrange(4)}"
        if rng.random() < 0.6:
            v, key = vector(), f"k{rng.randrange(80)}"
            ttl = -1.0 if rng.random() < 0.05 else 60.0  # some are born expired
            fast.add(context, v, key, ttl)
            slow.add(context, v, key, ttl)
        else:
            query = vector(8 if step % 50 else 4)  # now and then a query of another width
            threshold = rng.choice([-1.0, 0.0, 0.5])
            got, want = (
                fast.search(context, query, threshold),
                slow.search(context, query, threshold),
            )
            if want is None:
                assert got is None
            else:
                assert got is not None and got[0] == want[0]
                assert got[1] == pytest.approx(want[1], abs=1e-5)
        assert fast.count == slow.count
    assert fast.status() == slow.status()


MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "let me see", "signature": "sig=="},
        {
            "type": "text",
            "text": "It is sunny.",
            "citations": [{"type": "char_location", "cited_text": "sunny"}],
        },
        {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {"q": "x"}},
        {
            "type": "tool_use",
            "id": "toolu_1",
            "name": "get_weather",
            "input": {"city": "Paris", "days": [1, 2]},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 34, "cache_read_input_tokens": 5},
}


def test_an_anthropic_message_round_trips_through_its_events() -> None:
    from llmrelay.cache.replay_messages import events_of_message, message_of_events

    events = events_of_message(orjson.dumps(MESSAGE))
    assert events is not None
    assert events[0].startswith(b"event: message_start\n")
    assert events[-1].startswith(b"event: message_stop\n")
    assert orjson.loads(message_of_events(events) or b"") == MESSAGE
    assert message_of_events(events[:-1]) is None  # no message_stop: not a whole answer
    assert events_of_message(b'{"object": "chat.completion"}') is None


RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1,
    "status": "completed",
    "model": "gpt-4o",
    "incomplete_details": None,
    "output": [
        {
            "id": "rs_1",
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "thought"}],
        },
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "hello", "annotations": []}],
        },
        {
            "id": "fc_1",
            "type": "function_call",
            "status": "completed",
            "call_id": "c1",
            "name": "f",
            "arguments": '{"a":1}',
        },
        {"id": "ws_1", "type": "web_search_call", "status": "completed"},
    ],
    "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
}


def test_a_responses_answer_round_trips_through_its_events() -> None:
    from llmrelay.cache.replay_responses import events_of_response, response_of_events

    events = events_of_response(orjson.dumps(RESPONSE))
    assert events is not None
    data = [orjson.loads(event_data(e) or b"") for e in events]
    assert [d["sequence_number"] for d in data] == list(range(len(data)))
    assert data[0]["type"] == "response.created" and data[-1]["type"] == "response.completed"
    deltas = "".join(d["delta"] for d in data if d["type"] == "response.output_text.delta")
    assert deltas == "hello"
    assert orjson.loads(response_of_events(events) or b"") == RESPONSE
    assert response_of_events(events[:-1]) is None
    assert events_of_response(orjson.dumps({**RESPONSE, "status": "failed"})) is None


def test_shared_vectors_reach_another_index_through_the_database(tmp_path: Path) -> None:
    from llmrelay.cache.shared_vectors import SharedVectors
    from llmrelay.store import database

    async def run() -> None:
        engine = database.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'v.db'}")
        await database.migrate(engine)
        failures: list[int] = []
        mine, theirs = SemanticIndex(100), SemanticIndex(100)
        writer = SharedVectors(engine, mine, 1.0, 2.0, lambda: failures.append(1))
        reader = SharedVectors(engine, theirs, 1.0, 2.0, lambda: failures.append(1))
        vector = normalised([0.6, 0.8])
        await writer.add("ctx", vector, "key-1", ttl=60)
        await writer.add("ctx", vector, "gone", ttl=-1)  # already expired: never read
        assert await reader.poll() == 1
        assert theirs.search("ctx", vector, 0.99) == ("key-1", pytest.approx(1.0))
        await reader.poll()  # the overlap re-reads the row; the index holds it once
        assert theirs.count == 1 and not failures
        await engine.dispose()

    asyncio.run(run())
