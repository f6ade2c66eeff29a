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
3. Quality: a labelled corpus generated with Faker (seeded: the same corpus every run)
   in five locales (en_US, vi_VN, en_GB, de_DE, fr_FR): each locale's names, e-mail
   addresses, phone numbers, IBANs, cards; US SSNs; IPv4 / IPv6; plus what Faker has no
   generator for (API keys, Vietnam's CMND / CCCD), and decoys (ISO and millisecond
   timestamps, order ids, UUIDs, version strings, EAN-13 / ISBN-13, Luhn-valid numbers
   with no issuer, prices, 9 digits with no context word). Precision and recall per
   entity type, with the NAME heuristic alone and with ``names: ner`` (the optional
   extra, spaCy's en_core_web_sm); a detection counts when its type matches and it
   overlaps a labelled span. NAME's recall is also given per locale.

   Two choices in the corpus: Faker's ``phone_number()`` writes many numbers no
   network assigns (``555`` exchanges, extensions, short national forms), so a number
   is kept only when libphonenumber says it is valid in the locale's region; and
   Faker's vi_VN ``name()`` puts the given name first, so Vietnamese names are built
   surname, middle, given, as they are written.
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
from faker import Faker
from stdnum import iban, luhn

from llmrelay.app import Gateway
from llmrelay.config import load_settings
from llmrelay.governance.keys import create_key
from llmrelay.guardrails.config import parse_guardrails
from llmrelay.guardrails.entities import detect
from llmrelay.guardrails.ner import NameModel
from llmrelay.guardrails.scan import GuardState, StreamScan, scan_text

CONFIG = parse_guardrails(
    {
        "input": [{"type": "pii_detection", "action": "redact"}],
        "output": [{"type": "pii_detection", "action": "redact"}],
    }
)
PII = CONFIG.input[0]
NER_CONFIG = parse_guardrails(
    {
        "input": [{"type": "pii_detection", "action": "redact", "names": "ner"}],
        "output": [{"type": "pii_detection", "action": "redact", "names": "ner"}],
    }
)
NER_PII = NER_CONFIG.input[0]
rng = random.Random(11)
LOCALES = {"en_US": "US", "vi_VN": "VN", "en_GB": "GB", "de_DE": "DE", "fr_FR": "FR"}
FAKERS = {locale: Faker(locale) for locale in LOCALES}


def reseed() -> None:
    """The same corpus every run, whatever the sections before it drew."""
    rng.seed(11)
    for n, fake in enumerate(FAKERS.values()):
        fake.seed_instance(11 + n)


reseed()
#: Card types Faker makes that the detector claims (docs/guardrails.md: Maestro is not).
CARD_TYPES = ["visa16", "visa13", "visa19", "mastercard", "amex", "discover", "jcb16", "diners"]

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


def _locale() -> tuple[str, Faker]:
    locale = rng.choice(list(FAKERS))
    return locale, FAKERS[locale]


def fake_email() -> str:
    return _locale()[1].email()


def fake_phone() -> str:
    locale, fake = _locale()
    while True:
        raw = fake.phone_number()
        try:
            number = phonenumbers.parse(raw, LOCALES[locale])
        except phonenumbers.NumberParseException:
            continue
        if "x" not in raw and phonenumbers.is_valid_number(number):
            return str(raw)


def fake_card() -> str:
    digits = FAKERS["en_US"].credit_card_number(card_type=rng.choice(CARD_TYPES))
    if rng.random() < 0.5:
        return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
    return str(digits)


def fake_iban() -> str:
    locale, fake = _locale()
    number = fake.iban() if locale != "vi_VN" else FAKERS["de_DE"].iban()
    return iban.format(number) if rng.random() < 0.5 else str(number)


def fake_ip() -> str:
    fake = FAKERS["en_US"]
    return str(fake.ipv4_public() if rng.random() < 0.7 else fake.ipv6())


def fake_name(locale: str) -> str:
    fake = FAKERS[locale]
    if locale == "vi_VN":
        return f"{fake.last_name()} {fake.middle_name()} {fake.first_name()}"
    return f"{fake.first_name()} {fake.last_name()}"


#: The name sentences a locale's names go in (English ones for the Western locales).
NAME_TEMPLATES = {
    "vi_VN": ["Nhân viên {}, phòng kế toán", "gặp anh {} hôm qua", "{} đã ký"],
    "other": ["signed by {} today", "Please forward this to {} before Friday.", "{} called."],
}


def name_of(locale: str) -> tuple[str, list[str]]:
    return fake_name(locale), NAME_TEMPLATES["vi_VN" if locale == "vi_VN" else "other"]


#: entity -> (generator, sentence templates with {} for the value)
LABELLED = {
    "EMAIL": (fake_email, ["mail {} today", "contact: {}.", "cc {} please"]),
    "PHONE": (fake_phone, ["call {} now", "số điện thoại {} nhé", "tel. {}"]),
    "CARD": (fake_card, ["card {} exp 12/29", "paid with {}."]),
    "IBAN": (fake_iban, ["wire to {} now", "IBAN: {}"]),
    "SSN": (lambda: FAKERS["en_US"].ssn(), ["SSN {} on file", "social security {}"]),
    "CMND": (lambda: "".join(rng.choices(string.digits, k=9)), ["CMND {}", "số CMND: {}"]),
    "CCCD": (
        lambda: (
            f"0{rng.choice(['01', '79', '48'])}{rng.randint(0, 3)}"
            f"{rng.randint(0, 99):02d}{rng.randint(0, 999999):06d}"
        ),
        ["CCCD {}", "căn cước công dân: {}"],
    ),
    "IP": (fake_ip, ["from {} at noon", "host {} is down"]),
    "SECRET": (secret, ["key {} leaked", "token={}"]),
    # One entry per locale so each gets its share; all are labelled NAME.
    **{f"NAME {locale}": (locale, None) for locale in LOCALES},
}


#: Outside what the detectors claim (docs/guardrails.md): measured to show the limits.
HARD = {
    "PHONE": (
        lambda: f"{rng.choice(['415', '212', '646'])}{rng.randint(2000000, 9999999)}",
        ["ref {} ok"],
    ),
    "CMND": (lambda: "".join(rng.choices(string.digits, k=9)), ["số {} đã nhận"]),
}


def decoy() -> str:
    fake = FAKERS["en_US"]
    return rng.choice(
        [
            f"at {fake.date_time().isoformat()}",
            f"updated {fake.iso8601()}Z",
            f"ref ORD-{fake.numerify('##########')}",
            f"id {fake.uuid4()}",
            f"EAN {fake.ean13()}",
            f"ISBN {fake.isbn13()}",
            f"total {fake.pricetag()}",
            f"release {fake.numerify('#.##.#')}",
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


Labels = list[tuple[str, int, int]]


def corpus(n: int, table: dict[str, Any] = LABELLED) -> list[tuple[str, Labels]]:
    """``n`` documents of six pieces (40 % decoys): the text and its labels, each
    ``(row, start, end)``; a row is an entity type, or ``NAME <locale>``."""
    docs = []
    for _ in range(n):
        parts: list[str] = []
        labels: Labels = []
        at = 0
        for _ in range(6):
            if rng.random() < 0.4:
                piece = decoy() + ". "
            else:
                entity = rng.choice(list(table))
                make, templates = table[entity]
                if entity.startswith("NAME "):
                    value, templates = name_of(make)
                else:
                    value = make()
                template = rng.choice(templates)
                start = at + template.index("{}")
                labels.append((entity, start, start + len(value)))
                piece = template.format(value) + " "
            parts.append(piece)
            at += len(piece)
        docs.append(("".join(parts), labels))
    return docs


def _entity(row: str) -> str:
    return row.split(" ")[0]


def _scores(
    docs: list[tuple[str, Labels]], guard: Any, model: NameModel | None
) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """True positives and misses per row, false positives per entity type."""
    tp: dict[str, int] = {}
    fn: dict[str, int] = {}
    fp: dict[str, int] = {}
    for text, labels in docs:
        matched: set[int] = set()
        for f in detect(text, guard, model):
            hit = next(
                (
                    i
                    for i, (row, s, t) in enumerate(labels)
                    if _entity(row) == f.entity and f.start < t and s < f.end
                ),
                None,
            )
            if hit is None:
                fp[f.entity] = fp.get(f.entity, 0) + 1
            else:
                matched.add(hit)
        for i, (row, _, _) in enumerate(labels):
            bucket = tp if i in matched else fn
            bucket[row] = bucket.get(row, 0) + 1
    return tp, fn, fp


def quality(table: dict[str, Any], n: int, model: NameModel | None = None) -> None:
    """Precision and recall per entity type; NAME's recall also per locale. With a
    model, NAME is measured twice: the heuristic alone, and ``names: ner``."""
    reseed()
    docs = corpus(n, table)
    runs = [("", PII, None)]
    if model is not None:
        runs.append((" (ner)", NER_PII, model))
    rows: dict[str, list[str]] = {}
    for suffix, guard, with_model in runs:
        tp, fn, fp = _scores(docs, guard, with_model)
        entities = dict.fromkeys(_entity(row) for row in table)
        for entity in entities:
            if suffix and entity != "NAME":
                continue  # the model finds names only: the other rows are the same
            hits = sum(v for r, v in tp.items() if _entity(r) == entity)
            misses = sum(v for r, v in fn.items() if _entity(r) == entity)
            p = hits / max(1, hits + fp.get(entity, 0))
            r = hits / max(1, hits + misses)
            rows[entity + suffix] = [str(hits + misses), f"{p:.3f}", f"{r:.3f}"]
            if entity == "NAME":
                for row in table:
                    if row.startswith("NAME "):
                        n_row = tp.get(row, 0) + fn.get(row, 0)
                        recall = tp.get(row, 0) / max(1, n_row)
                        rows[f"{row}{suffix}"] = [str(n_row), "", f"{recall:.3f}"]
    print("| entity | labelled | precision | recall |")
    print("| --- | ---: | ---: | ---: |")
    for row, (count, p, r) in rows.items():
        print(f"| {row} | {count} | {p} | {r} |")


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


def latency(model: NameModel | None) -> None:
    """CPU time of one input redact, every detector on; with ``model``, also with
    ``names: ner`` (the model's time included: it is CPU on its own thread)."""
    configs = [("", CONFIG)] + ([(" (ner)", NER_CONFIG)] if model is not None else [])
    texts = {size: prose(size) for size in (1_000, 10_000, 100_000)}  # the same for both
    print("| text | median ms | findings |")
    print("| --- | ---: | ---: |")
    for suffix, config in configs:
        for size, text in texts.items():
            runs = []
            state = GuardState(config, ner=model)
            for _ in range(max(3, (200_000 if not suffix else 20_000) // size)):
                state = GuardState(config, ner=model)
                started = time.process_time()
                scan_text("input", config.input, text, state)
                runs.append(time.process_time() - started)
            print(
                f"| {size // 1000} KB{suffix} | {statistics.median(runs) * 1000:.2f} | "
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


def streams(model: NameModel | None) -> None:
    """First output and CPU per delta of an output guardrail over a stream of 4-char
    deltas; with ``model`` also ``names: ner`` (scanned once per segment)."""
    configs = [("", CONFIG)] + ([(" (ner)", NER_CONFIG)] if model is not None else [])
    print("| guardrail | hold-back chars | first output after | ~tokens | CPU per delta µs |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for suffix, config in configs:
        text = prose(4_000)
        scan = StreamScan(config.output, GuardState(config, ner=model))
        first = None
        started = time.process_time()
        for i in range(0, len(text), 4):
            if scan.feed(text[i : i + 4]) and first is None:
                first = i + 4
        scan.flush()
        per_delta = (time.process_time() - started) / (len(text) / 4)
        assert first is not None
        print(
            f"| every detector{suffix} | {scan.window + scan.step} | {first} chars | "
            f"{first / 4:.0f} | {per_delta * 1e6:.0f} |"
        )


def main() -> None:
    model = NameModel()
    started = time.perf_counter()
    model.load()
    print(f"NER model (import and load): {time.perf_counter() - started:.2f} s\n")
    print("## Added latency (input redact, every detector on)\n")
    latency(model)
    print("\n## Added latency per call through the gateway (in process, mock upstream)\n")
    asyncio.run(_http_overhead())
    print("\n## Streams\n")
    streams(model)
    print("\n## Detection quality (1000 generated documents, Faker, 5 locales)\n")
    quality(LABELLED, 1000, model)
    print(
        "\n## Outside the detectors' claims (bare national phone numbers, CMND with no "
        "context word)\n"
    )
    quality(HARD, 500)
    model.close()


if __name__ == "__main__":
    main()
