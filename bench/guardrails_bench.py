"""Guardrails: added latency per call, stream hold-back, detection quality.

    .venv/bin/python bench/guardrails_bench.py

1. Latency: one input ``redact`` with every detector on, over 1 KB, 10 KB and 100 KB
   of mixed prose (English and Vietnamese, some PII, numbers, dates, ids), median of
   repeated runs, CPU time of the scan alone (the HTTP path adds nothing else: the
   body is walked once and re-serialised once).
2. Streams: what the hold-back window costs. The first character of a stream goes out
   once ``window`` characters have arrived; at a model's ~4 characters per token that
   is ``window / 4`` tokens of time to first byte. Also the CPU per delta of checking
   a stream in 4-character deltas (the window is re-scanned each delta).
3. Quality: a labelled corpus generated here (seeded: the same corpus every run) from
   name, domain and number generators across locales (US, VN, GB, DE, FR), with decoys
   (timestamps, order ids, UUIDs, version strings, Luhn-valid numbers with no issuer,
   prices, 9 digits with no context word). Precision and recall per entity type; a
   detection counts when its type matches and it overlaps a labelled span.

No Faker: it is not a dependency, so the generators are small and in this file.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import string
import tempfile
import time
import uuid
from typing import Any

import httpx
import orjson
import phonenumbers
from stdnum import iban, luhn

from llmrelay.app import Gateway
from llmrelay.config import load_settings
from llmrelay.governance.keys import create_key
from llmrelay.guardrails.config import parse_guardrails
from llmrelay.guardrails.entities import detect
from llmrelay.guardrails.scan import GuardState, StreamScan, scan_text

CONFIG = parse_guardrails(
    {
        "input": [{"type": "pii_detection", "action": "redact"}],
        "output": [{"type": "pii_detection", "action": "redact"}],
    }
)
PII = CONFIG.input[0]
rng = random.Random(11)

FIRST = ["James", "Mary", "Oliver", "Amelia", "Lukas", "Mia", "Léa", "Hugo", "Minh", "Lan"]
LAST = ["Smith", "Jones", "Müller", "Schmidt", "Martin", "Bernard", "Taylor", "Brown"]
VN_SUR = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Phan", "Vũ", "Đặng", "Bùi", "Đỗ"]
VN_MID = ["Văn", "Thị", "Hữu", "Đức", "Ngọc", "Minh", "Thu", "Quang"]
VN_GIVEN = ["An", "Bình", "Cường", "Dũng", "Hà", "Hương", "Lan", "Nam", "Phúc", "Trang"]
DOMAINS = ["example.com", "mail.example.vn", "corp.example.co.uk", "example.de", "ex.fr"]
FILLER = (
    "the meeting moved to the afternoon and the report is attached; please check "
    "the figures before Friday. Cuộc họp dời sang buổi chiều, báo cáo đính kèm. "
)


def email() -> str:
    user = rng.choice(
        [
            f"{rng.choice(FIRST)}.{rng.choice(LAST)}",
            f"user{rng.randint(1, 999)}",
            f"{rng.choice(FIRST)}_{rng.randint(10, 99)}",
        ]
    )
    user = user.lower().replace("ü", "u").replace("é", "e")
    return f"{user}@{rng.choice(DOMAINS)}"


def phone() -> str:
    region = rng.choice(["US", "VN", "GB", "DE", "FR"])
    while True:
        example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
        assert example is not None
        national = str(example.national_number)
        digits = national[:3] + "".join(rng.choice(string.digits) for _ in national[3:])
        number = phonenumbers.parse(digits, region)
        if phonenumbers.is_valid_number(number):
            style = rng.choice(
                [
                    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                    phonenumbers.PhoneNumberFormat.NATIONAL,
                ]
            )
            return phonenumbers.format_number(number, style)


def _luhn_complete(prefix: str, length: int) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return body + luhn.calc_check_digit(body)


def card() -> str:
    prefix, length = rng.choice(
        [
            ("4", 16),
            ("51", 16),
            ("55", 16),
            ("2221", 16),
            ("34", 15),
            ("37", 15),
            ("6011", 16),
            ("3530", 16),
            ("62", 16),
        ]
    )
    digits = _luhn_complete(prefix, length)
    if rng.random() < 0.5:
        return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
    return digits


def iban_number() -> str:
    country, length = rng.choice([("DE", 18), ("FR", 23), ("GB", 18)])
    if country == "GB":
        bban = "WEST" + "".join(rng.choice(string.digits) for _ in range(14))
    else:
        bban = "".join(rng.choice(string.digits) for _ in range(length))
    check = iban.calc_check_digits(country + "00" + bban)
    number = country + check + bban
    return iban.format(number) if rng.random() < 0.5 else number


def ssn() -> str:
    return f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def ip() -> str:
    if rng.random() < 0.7:
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    return f"2001:db8:{rng.randint(0, 0xFFFF):x}::{rng.randint(1, 0xFFFF):x}"


def secret() -> str:
    alnum = string.ascii_letters + string.digits
    return rng.choice(
        [
            "sk-proj-" + "".join(rng.choices(alnum, k=40)),
            "sk-ant-api03-" + "".join(rng.choices(alnum, k=40)),
            "AKIA" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=16)),
            "ghp_" + "".join(rng.choices(alnum, k=36)),
            "xoxb-"
            + "".join(rng.choices(string.digits, k=12))
            + "-"
            + "".join(rng.choices(alnum, k=24)),
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI"
            + "".join(rng.choices(alnum, k=20))
            + "."
            + "".join(rng.choices(alnum, k=30)),
        ]
    )


def vn_name() -> str:
    return f"{rng.choice(VN_SUR)} {rng.choice(VN_MID)} {rng.choice(VN_GIVEN)}"


#: entity -> (generator, sentence templates with {} for the value)
LABELLED = {
    "EMAIL": (email, ["mail {} today", "contact: {}.", "cc {} please"]),
    "PHONE": (phone, ["call {} now", "số điện thoại {} nhé", "tel. {}"]),
    "CARD": (card, ["card {} exp 12/29", "paid with {}."]),
    "IBAN": (iban_number, ["wire to {} now", "IBAN: {}"]),
    "SSN": (ssn, ["SSN {} on file", "social security {}"]),
    "CMND": (lambda: "".join(rng.choices(string.digits, k=9)), ["CMND {}", "số CMND: {}"]),
    "CCCD": (
        lambda: (
            f"0{rng.choice(['01', '79', '48'])}{rng.randint(0, 3)}"
            f"{rng.randint(0, 99):02d}{rng.randint(0, 999999):06d}"
        ),
        ["CCCD {}", "căn cước công dân: {}"],
    ),
    "IP": (ip, ["from {} at noon", "host {} is down"]),
    "SECRET": (secret, ["key {} leaked", "token={}"]),
    "NAME": (vn_name, ["Nhân viên {}, phòng kế toán", "gặp anh {} hôm qua", "{} đã ký"]),
}


#: Outside what the detectors claim (docs/guardrails.md): measured to show the limits.
HARD = {
    "NAME": (lambda: f"{rng.choice(FIRST)} {rng.choice(LAST)}", ["signed by {} today"]),
    "PHONE": (
        lambda: f"{rng.choice(['415', '212', '646'])}{rng.randint(2000000, 9999999)}",
        ["ref {} ok"],
    ),
    "CMND": (lambda: "".join(rng.choices(string.digits, k=9)), ["số {} đã nhận"]),
}


def decoy() -> str:
    return rng.choice(
        [
            f"at 2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
            f"ts {rng.randint(1_600_000_000_000, 1_800_000_000_000)}",
            f"order #{rng.randint(10**9, 10**12)}",
            f"order {_luhn_complete('9', 16)}",
            f"id {uuid.UUID(int=rng.getrandbits(128))}",
            f"version {rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}",
            f"v{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}",
            f"price {rng.randint(1, 999)},{rng.randint(100, 999)},000 VND",
            f"account {rng.randint(10**8, 10**9 - 1)}",
            f"ratio {rng.randint(1, 9)}:{rng.randint(1, 9)}:{rng.randint(1, 9)}",
        ]
    )


def corpus(
    n: int, table: dict[str, Any] = LABELLED
) -> list[tuple[str, list[tuple[str, int, int]]]]:
    docs = []
    for _ in range(n):
        parts: list[str] = []
        labels: list[tuple[str, int, int]] = []
        at = 0
        for _ in range(6):
            if rng.random() < 0.4:
                piece = decoy() + ". "
            else:
                entity = rng.choice(list(table))
                make, templates = table[entity]
                value = make()
                template = rng.choice(templates)
                start = at + template.index("{}")
                labels.append((entity, start, start + len(value)))
                piece = template.format(value) + " "
            parts.append(piece)
            at += len(piece)
        docs.append(("".join(parts), labels))
    return docs


def quality(table: dict[str, Any]) -> None:
    tp: dict[str, int] = dict.fromkeys(table, 0)
    fp: dict[str, int] = dict.fromkeys(table, 0)
    fn: dict[str, int] = dict.fromkeys(table, 0)
    for text, labels in corpus(2000, table):
        found = detect(text, PII)
        matched: set[int] = set()
        for f in found:
            hit = next(
                (
                    i
                    for i, (e, s, t) in enumerate(labels)
                    if e == f.entity and f.start < t and s < f.end
                ),
                None,
            )
            if hit is None:
                fp[f.entity] = fp.get(f.entity, 0) + 1
            else:
                matched.add(hit)
        for i, (entity, _, _) in enumerate(labels):
            if i in matched:
                tp[entity] += 1
            else:
                fn[entity] += 1
    print("| entity | labelled | precision | recall |")
    print("| --- | ---: | ---: | ---: |")
    for entity in table:
        p = tp[entity] / max(1, tp[entity] + fp.get(entity, 0))
        r = tp[entity] / max(1, tp[entity] + fn[entity])
        print(f"| {entity} | {tp[entity] + fn[entity]} | {p:.3f} | {r:.3f} |")


def prose(size: int) -> str:
    out: list[str] = []
    total = 0
    while total < size:
        piece = rng.choice(
            [
                FILLER,
                FILLER,
                decoy() + ". ",
                f"mail {email()} ",
                f"call {phone()} ",
                "Nhân viên " + vn_name() + ", ",
            ]
        )
        out.append(piece)
        total += len(piece)
    return "".join(out)[:size]


def latency() -> None:
    print("| text | median ms | findings |")
    print("| --- | ---: | ---: |")
    for size in (1_000, 10_000, 100_000):
        text = prose(size)
        runs = []
        state = GuardState(CONFIG)
        for _ in range(max(3, 200_000 // size)):
            state = GuardState(CONFIG)
            started = time.process_time()
            scan_text("input", CONFIG.input, text, state)
            runs.append(time.process_time() - started)
        print(
            f"| {size // 1000} KB | {statistics.median(runs) * 1000:.2f} | "
            f"{sum(state.counts.values())} |"
        )


async def _http_overhead() -> None:
    """The gateway's own time per call (``x-llmrelay-overhead-ms``) with and without an
    input redact over the whole message, in process against the built-in mock."""
    directory = tempfile.mkdtemp()
    settings = load_settings(
        env={},
        overrides={
            "database_url": f"sqlite+aiosqlite:///{directory}/bench.db",
            "log_file": "none",
            "auto_providers": False,
            "provider_reload_interval": 0,
        },
    )
    gateway = Gateway(settings, env={})
    await gateway.startup()
    key, _ = await create_key(gateway.services.sessions, "bench")
    # The same route config but for the guardrails: the difference is theirs alone.
    plain = orjson.dumps({"retry": {"attempts": 1}}).decode()
    guard = orjson.dumps(
        {
            "retry": {"attempts": 1},
            "guardrails": {"input": [{"type": "pii_detection", "action": "redact"}]},
        }
    ).decode()
    print(
        "| text | overhead ms, no guardrails | with input redact | added | of which "
        "x-llmrelay-guardrails-ms |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway), base_url="http://gateway"
    ) as client:
        for size in (1_000, 10_000, 100_000):
            body = {"model": "mock/echo", "messages": [{"role": "user", "content": prose(size)}]}
            medians = []
            own: list[float] = []
            for config in (plain, guard):
                headers = {"authorization": f"Bearer {key}", "x-llmrelay-config": config}
                runs = []
                for _ in range(max(5, 100_000 // size)):
                    resp = await client.post("/v1/chat/completions", json=body, headers=headers)
                    assert resp.status_code == 200, resp.text
                    runs.append(float(resp.headers["x-llmrelay-overhead-ms"]))
                    if config is guard:
                        own.append(float(resp.headers["x-llmrelay-guardrails-ms"]))
                medians.append(statistics.median(runs))
            print(
                f"| {size // 1000} KB | {medians[0]:.2f} | {medians[1]:.2f} | "
                f"{medians[1] - medians[0]:.2f} | {statistics.median(own):.2f} |"
            )
    await gateway.shutdown()


def streams() -> None:
    text = prose(4_000)
    scan = StreamScan(CONFIG.output, GuardState(CONFIG))
    first = None
    started = time.process_time()
    for i in range(0, len(text), 4):
        if scan.feed(text[i : i + 4]) and first is None:
            first = i + 4
    scan.flush()
    per_delta = (time.process_time() - started) / (len(text) / 4)
    assert first is not None
    print(
        f"window {scan.window} chars: first output after {first} chars "
        f"(~{first / 4:.0f} tokens at 4 chars/token); CPU per 4-char delta "
        f"{per_delta * 1e6:.0f} µs"
    )


if __name__ == "__main__":
    print("## Added latency (input redact, every detector on)\n")
    latency()
    print("\n## Added latency per call through the gateway (in process, mock upstream)\n")
    asyncio.run(_http_overhead())
    print("\n## Streams\n")
    streams()
    print("\n## Detection quality (2000 generated documents)\n")
    quality(LABELLED)
    print(
        "\n## Outside the detectors' claims (English names, bare national phone numbers, "
        "CMND with no context word)\n"
    )
    quality(HARD)
