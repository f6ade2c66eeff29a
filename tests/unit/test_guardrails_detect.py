"""PII detectors: real values found, look-alikes (timestamps, order ids, UUIDs, version
strings) left alone; redaction and restore, whole and split at every position."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.errors import InvalidRequest
from llmrelay.guardrails.config import GuardrailConfigError, parse_guardrails
from llmrelay.guardrails.entities import card_issuer_ok, detect
from llmrelay.guardrails.plugin import Guardrails
from llmrelay.guardrails.scan import GuardState, StreamScan, scan_text
from llmrelay.guardrails.vault import StreamRestore, Vault
from llmrelay.routing.config import RouteConfigError, parse_route_config

ALL = parse_guardrails({"input": [{"type": "pii_detection", "action": "redact"}]})
PII = ALL.input[0]


def _found(text: str) -> list[tuple[str, str]]:
    return [(f.entity, text[f.start : f.end]) for f in detect(text, PII)]


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("mail bob.smith+x@mail.example.co.uk now", "EMAIL", "bob.smith+x@mail.example.co.uk"),
        ("call +1 415-555-0132 today", "PHONE", "+1 415-555-0132"),
        ("gọi 0912 345 678 nhé", "PHONE", "0912 345 678"),
        ("visa 4111 1111 1111 1111.", "CARD", "4111 1111 1111 1111"),
        ("amex 378282246310005", "CARD", "378282246310005"),
        ("mc 5555-5555-5555-4444", "CARD", "5555-5555-5555-4444"),
        ("iban DE89 3704 0044 0532 0130 00 OK", "IBAN", "DE89 3704 0044 0532 0130 00"),
        ("iban GB82WEST12345698765432", "IBAN", "GB82WEST12345698765432"),
        ("ssn 536-90-4399", "SSN", "536-90-4399"),
        ("SSN: 536904399", "SSN", "536904399"),
        ("CMND 123456789", "CMND", "123456789"),
        ("số chứng minh nhân dân: 023456789", "CMND", "023456789"),
        ("CCCD 001099012345", "CCCD", "001099012345"),
        ("from 192.168.10.20 and", "IP", "192.168.10.20"),
        ("v6 2001:db8::8a2e:370:7334 here", "IP", "2001:db8::8a2e:370:7334"),
        ("key sk-proj-abcdefghijklmnop1234", "SECRET", "sk-proj-abcdefghijklmnop1234"),
        ("gh ghp_" + "a" * 36, "SECRET", "ghp_" + "a" * 36),
        ("aws AKIAIOSFODNN7EXAMPLE", "SECRET", "AKIAIOSFODNN7EXAMPLE"),
        ("slack xoxb-1234567890-abcdefghij", "SECRET", "xoxb-1234567890-abcdefghij"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijklmnop",
            "SECRET",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijklmnop",
        ),
        ("Nhân viên Nguyễn Văn A, CMND", "NAME", "Nguyễn Văn A"),
        ("gặp bà Trần Thị Bích hôm nay", "NAME", "Trần Thị Bích"),
    ],
)
def test_each_entity_is_found(text: str, entity: str, value: str) -> None:
    assert (entity, value) in _found(text)


@pytest.mark.parametrize(
    "decoy",
    [
        "at 2024-05-01 12:30:45 UTC",
        "timestamp 1714566645123 ms",
        "order #1234567890123456",  # Luhn-invalid, and no issuer length
        "order 4111111111111112",  # Visa prefix, Luhn fails
        "invoice 9999999999999995",  # Luhn ok, no issuer
        "id 550e8400-e29b-41d4-a716-446655440000",
        "version 1.2.3.4 and v10.0.0.1",
        "build 2.14.1, python 3.11.9",
        "time 12:30:45, ratio 3:2:1",
        "ssn-like 000-12-3456 and 666-12-3456",  # area 000 and 666 are never issued
        "account 123456789 without context",
        "price 1,234,567,890 VND",
        "Lê is a pear, the word Nguyễn alone",
        "ref ORD-0413247965",  # an id after a hyphen, trunk 0 or not
        "id 065310ee-0413-3898-8fb4-9c1d3e0b2a11",
        "EAN 0534535340725, ISBN 9780646774602",  # 13 bare digits: not a national number
        "EAN 4299687629307",  # Luhn-valid with Visa's prefix, but a valid EAN-13
    ],
)
def test_decoys_are_not_pii(decoy: str) -> None:
    assert _found(decoy) == []


def test_card_needs_an_issuer_prefix_and_length() -> None:
    assert card_issuer_ok("4111111111111111") and card_issuer_ok("378282246310005")
    assert not card_issuer_ok("37828224631000")  # Amex is 15 digits
    assert not card_issuer_ok("9111111111111111")


def test_custom_patterns_and_entity_subsets() -> None:
    config = parse_guardrails(
        {
            "input": [
                {
                    "type": "pii_detection",
                    "entities": ["email"],
                    "custom": [{"name": "TICKET", "pattern": r"TCK-\d{4}"}],
                }
            ]
        }
    )
    state = GuardState(config)
    text = "TCK-1234 from a@b.io, card 4111 1111 1111 1111"
    assert (
        scan_text("input", config.input, text, state)
        == "[TICKET_1] from [EMAIL_1], card 4111 1111 1111 1111"
    )


def test_numbered_placeholders_repeat_for_the_same_value() -> None:
    state = GuardState(ALL)
    out = scan_text("input", ALL.input, "a@b.io, c@d.io, a@b.io", state)
    assert out == "[EMAIL_1], [EMAIL_2], [EMAIL_1]"
    assert state.vault.restore(out) == out  # this guardrail does not restore
    assert state.header() == "input.redact.EMAIL=3"


TEXT = (
    "Dear Nguyễn Văn Bình, your card 4111 1111 1111 1111 and mail binh@example.vn; "
    "call +84 912 345 678. CMND 123456789. Build v1.2.3.4 at 2024-05-01 12:30:45."
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(TEXT)), max_size=12))
def test_stream_scan_matches_the_whole_text_at_any_split(cuts: list[int]) -> None:
    output = parse_guardrails({"output": [{"type": "pii_detection", "action": "redact"}]})
    whole = scan_text("output", output.output, TEXT, GuardState(output))
    scan = StreamScan(output.output, GuardState(output))
    points = [0, *sorted(cuts), len(TEXT)]
    out = "".join(scan.feed(TEXT[a:b]) for a, b in itertools.pairwise(points))
    assert out + scan.flush() == whole


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), max_size=10))
def test_stream_restore_at_any_split(cuts: list[int]) -> None:
    vault = Vault()
    a = vault.placeholder("EMAIL", "a@b.io", "numbered", restore=True)
    b = vault.placeholder("CMND", "123456789", "numbered", restore=True)
    text = f"to {a} [x] {b}[EMAIL_9] end["
    restore = StreamRestore(vault)
    points = [0, *sorted(c for c in cuts if c <= len(text)), len(text)]
    out = "".join(restore.feed(text[x:y]) for x, y in itertools.pairwise(points))
    assert out + restore.flush() == "to a@b.io [x] 123456789[EMAIL_9] end["


def test_the_stream_holds_back_no_more_than_the_window() -> None:
    output = parse_guardrails({"output": [{"type": "pii_detection", "entities": ["EMAIL"]}]})
    scan = StreamScan(output.output, GuardState(output))
    assert scan.window == 100
    released = scan.feed("x" * 250)
    assert len(released) == 150


@pytest.mark.parametrize(
    ("block", "path"),
    [
        ({"input": [{"type": "pii_detection", "acton": "deny"}]}, "guardrails.input[0].acton"),
        ({"input": [{"type": "pii_detection", "action": "block"}]}, "guardrails.input[0].action"),
        ({"output": [{"type": "pii_detection", "restore": True}]}, "guardrails.output[0].restore"),
        (
            {"input": [{"type": "pii_detection", "restore": True, "placeholder": "redacted"}]},
            "guardrails.input[0].placeholder",
        ),
        (
            {"input": [{"type": "pii_detection", "entities": ["DNA"]}]},
            "guardrails.input[0].entities[0]",
        ),
        (
            {"input": [{"type": "pii_detection", "custom": [{"name": "X", "pattern": "("}]}]},
            "guardrails.input[0].custom[0].pattern",
        ),
        (
            {"input": [{"type": "pii_detection", "countries": ["FR"]}]},
            "guardrails.input[0].countries[0]",
        ),
        (
            {"output": [{"type": "content_safety", "threshold": 1.5}]},
            "guardrails.output[0].threshold",
        ),
        (
            {
                "output": [
                    {
                        "type": "content_safety",
                        "threshold": 0.8,
                        "provider": "oai",
                        "webhook": "https://x",
                    }
                ]
            },
            "guardrails.output[0].webhook",
        ),
        ({"output": [{"type": "moderation"}]}, "guardrails.output[0].type"),
        ({"inputs": []}, "guardrails.inputs"),
        ({}, "guardrails"),
    ],
)
def test_bad_blocks_name_the_field(block: dict[str, object], path: str) -> None:
    with pytest.raises(GuardrailConfigError) as bad:
        parse_guardrails(block)
    assert bad.value.path == path
    with pytest.raises(RouteConfigError) as routed:
        parse_route_config({"guardrails": block})
    assert routed.value.path == path


def test_seed_004_block_parses_with_content_safety() -> None:
    config = parse_guardrails(
        {
            "input": [{"type": "pii_detection", "action": "redact"}],
            "output": [
                {"type": "pii_detection", "action": "deny"},
                {"type": "content_safety", "threshold": 0.8},
            ],
        }
    )
    assert [g.action for g in config.output] == ["deny"]
    assert config.output_safety[0].threshold == 0.8
    assert config.output_safety[0].provider == "openai"


def test_route_configs_carry_the_block_at_the_top_level_only() -> None:
    block = {"input": [{"type": "pii_detection", "action": "redact"}]}
    assert parse_route_config({"guardrails": block}).guardrails == block
    group = parse_route_config(
        {"strategy": "fallback", "guardrails": block, "targets": [{"model": "a"}, {"model": "b"}]}
    )
    assert group.guardrails == block
    with pytest.raises(RouteConfigError) as nested:
        parse_route_config(
            {"strategy": "fallback", "targets": [{"model": "a", "guardrails": block}]}
        )
    assert nested.value.path == "targets[0].guardrails"


def test_only_input_values_meant_to_be_restored_come_back() -> None:
    config = parse_guardrails(
        {
            "input": [{"type": "pii_detection", "action": "redact", "restore": True}],
            "output": [{"type": "pii_detection", "action": "redact"}],
        }
    )
    state = GuardState(config)
    sent = scan_text("input", config.input, "mine: a@b.io", state)
    answer = scan_text("output", config.output, f"{sent}; theirs: x@y.io", state)
    assert answer == "mine: [EMAIL_1]; theirs: [EMAIL_2]"
    assert state.vault.restore(answer) == "mine: a@b.io; theirs: [EMAIL_2]"


def test_a_bad_block_in_plugin_options_is_a_400_naming_the_field() -> None:
    with pytest.raises(InvalidRequest) as bad:
        Guardrails.from_options({"output": [{"type": "pii_detection", "action": "drop"}]})
    assert bad.value.code == "invalid_guardrails"
    assert bad.value.param == "guardrails.output[0].action"


@pytest.mark.parametrize(
    "chunk",
    [
        b'{"choices": [1, "mail a@b.io"]}',
        b'{"choices": {"0": "mail a@b.io"}}',
        b'["choices", "mail a@b.io"]',
        b'{"choices": [{"index": [1], "delta": {"content": "mail a@b.io"}}]}',
        b'{"choices": [{"index": 10000000000, "delta": {"content": "x"}}]}',
        b'{"choices": [{"delta": {"content": 5, "tool_calls": 5}, "finish_reason": "stop"}]}',
        b'{"choices": [{"delta": {"tool_calls": [{"index": {}, "function": {"arguments": '
        b'"a@b.io"}}]}, "finish_reason": "stop"}]}',
        b'{"choices": not json a@b.io',
    ],
)
def test_an_output_guardrail_takes_chunks_of_any_shape(chunk: bytes) -> None:
    """A hostile upstream's chunk neither breaks the stream (an exception here cut it with
    no end) nor passes the guardrail with its text unscanned."""
    from llmrelay.guardrails.plugin import _ChunkGuard

    config = parse_guardrails({"output": [{"type": "pii_detection", "action": "redact"}]})
    guard = _ChunkGuard(config, GuardState(config), restoring=False)
    good = b'{"choices": [{"index": 0, "delta": {"content": "hi "}}]}'
    out = guard.events([b"data: " + good + b"\n\n", b"data: " + chunk + b"\n\n"])
    out += guard.finish([b"data: [DONE]\n\n"])
    text = b"".join(out)
    assert b"a@b.io" not in text
    assert text.endswith(b"data: [DONE]\n\n")
