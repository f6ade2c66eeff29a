"""PII detectors: where each entity type occurs in a text (offsets only, never kept values).

Each detector finds candidates with a cheap regex and keeps only those a validator
accepts, so a timestamp, an order number or a version string is not reported as a
card, a phone or an address:

=========  =====================================================================
EMAIL      local@domain.tld
PHONE      ``phonenumbers``' matcher at leniency VALID, per configured region
CARD       13..19 digits passing Luhn (``stdnum.luhn``) AND an issuer's prefix and
           length (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay)
IBAN       ``stdnum.iban`` (country length + mod-97)
SSN        US, ``stdnum.us.ssn`` (area / group / serial rules); 9 bare digits only
           after the word SSN
CMND       Vietnam's 9-digit identity card number, after a context word (CMND, CMT,
           chứng minh ...); CCCD: the 12-digit citizen id, province code checked,
           after a context word or on its own when its province code is valid
IP         IPv4 / IPv6 validated by :mod:`ipaddress` (``v1.2.3.4`` is a version)
SECRET     the key shapes of :mod:`llmrelay.redaction` plus GitHub, Slack and JWTs
NAME       a heuristic for Vietnamese names (a common surname followed by capitalised
           syllables, or an honorific such as "Nhân viên", "Ông", "Bà" before
           capitalised words); with ``names: ner`` (the optional extra, :mod:`.ner`)
           also spaCy's PERSON entities. Without it, other names are not claimed as
           detected.
=========  =====================================================================

``phonenumbers`` and ``stdnum`` are imported by the detector that uses them, on the
first scan: every gateway imports this module, few configure a PII guardrail, and the
two cost ~90 ms of start-up.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmrelay.redaction import SECRET_SHAPES

if TYPE_CHECKING:
    from llmrelay.guardrails.config import PiiGuardrail
    from llmrelay.guardrails.ner import NameModel


#: The longest text each entity can span, in characters: a stream holds back this much
#: (the longest of the enabled types) so an entity split across chunks is still seen
#: whole. Emails are capped at a realistic 100 (RFC 5321 allows 254), secrets at 200
#: (API keys, JWTs of ordinary size; a PEM block is longer: see docs/guardrails.md).
MAX_CHARS = {
    "EMAIL": 100,
    "PHONE": 32,
    "CARD": 23,
    "IBAN": 42,
    "SSN": 11,
    "CMND": 9,
    "CCCD": 12,
    "IP": 45,
    "SECRET": 200,
    "NAME": 48,
}
CUSTOM_MAX_CHARS = 100
#: Text before a chunk that context words (``CMND``, ``SSN``) are looked for in.
CONTEXT_CHARS = 40


@dataclass(frozen=True, slots=True)
class Finding:
    entity: str
    start: int
    end: int


_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
    r"(?![\w-])"
)
_CARD = re.compile(r"(?<![\d.-])\d(?:[ -]?\d){12,18}(?![\d])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,32}")
_SSN = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])")
_DIGITS9 = re.compile(r"(?<![\d.,-])\d{9}(?![\d.,-])")
_DIGITS12 = re.compile(r"(?<![\d.,-])\d{12}(?![\d.,-])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|"
    r"(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])"
)
_SECRET_MORE = re.compile(
    r"gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}"
)
_CMND_CONTEXT = re.compile(
    r"(?i)(?:cmnd|cmt|ch[uứ]ng minh(?: nh[aâ]n d[aâ]n)?|id card|"
    r"identity card)\W{0,20}$"
)
_CCCD_CONTEXT = re.compile(
    r"(?i)(?:cccd|c[aă]n c[uư][oớ]c(?: c[oô]ng d[aâ]n)?|citizen id)"
    r"\W{0,20}$"
)
_SSN_CONTEXT = re.compile(r"(?i)(?:ssn|social security(?: number)?)\W{0,20}$")
#: Not after a hyphen: ``ORD-0413247965`` and a UUID's ``-0413-3898`` are ids, not numbers.
_PHONE_CANDIDATE = re.compile(r"(?<![\w+:/.-])\+?\(?\d[\d \t().-]{5,24}\d(?![\w:/]|\.\d)")
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
_PHONE_CONTEXT = re.compile(
    r"(?i)(?:phone|mobile|cell|tel|call|fax|whatsapp|zalo|"
    r"s[oố] đi[eệ]n tho[aạ]i|sđt|sdt|g[oọ]i)\W{0,20}$"
)
_VERSION_BEFORE = re.compile(r"(?i)(?:v|version\s?|ver\.?\s?)$")
#: Common Vietnamese surnames (about 90% of the population carry one of them).
_SURNAMES = (
    "Nguyễn|Trần|Lê|Phạm|Hoàng|Huỳnh|Phan|Vũ|Võ|Đặng|Bùi|Đỗ|Hồ|Ngô|Dương|Lý|"
    "Đinh|Trương|Đoàn|Lương|Trịnh|Mai|Cao|Lâm|Tô|Hà|Tạ|Chu"
)
_WORD = r"[^\W\d_]+"
_LETTERS = re.compile(_WORD)
_NAME = re.compile(rf"(?<![\w])(?:{_SURNAMES})(?:[ \t]+{_WORD}){{1,3}}")
_TITLES = r"(?:Nhân viên|Ông|Bà|Anh|Chị|Mr\.|Mrs\.|Ms\.|Dr\.)"
_HONORIFIC = re.compile(rf"{_TITLES}[ \t]+({_WORD}(?:[ \t]+{_WORD}){{0,3}})")
#: What the English model takes for a person but is only (part of) a title ("Nhân").
_TITLE_ONLY = re.compile(rf"{_TITLES}[ \t]*")
#: Issuer prefixes and the lengths each allows (ISO/IEC 7812 assignments in use).
_ISSUERS: tuple[tuple[tuple[int, int], int, frozenset[int]], ...] = (
    ((4, 4), 1, frozenset({13, 16, 19})),  # Visa
    ((51, 55), 2, frozenset({16})),  # Mastercard
    ((2221, 2720), 4, frozenset({16})),  # Mastercard 2-series
    ((34, 34), 2, frozenset({15})),
    ((37, 37), 2, frozenset({15})),  # Amex
    ((6011, 6011), 4, frozenset(range(16, 20))),  # Discover
    ((644, 649), 3, frozenset(range(16, 20))),
    ((65, 65), 2, frozenset(range(16, 20))),
    ((3528, 3589), 4, frozenset(range(16, 20))),  # JCB
    ((300, 305), 3, frozenset(range(14, 20))),
    ((36, 36), 2, frozenset(range(14, 20))),
    ((38, 39), 2, frozenset(range(16, 20))),  # Diners
    ((62, 62), 2, frozenset(range(16, 20))),  # UnionPay
)
#: Vietnam's province / city codes that open a CCCD number (Circular 07/2016/TT-BCA).
_VN_PROVINCES = frozenset(
    {
        1,
        2,
        4,
        6,
        8,
        10,
        11,
        12,
        14,
        15,
        17,
        19,
        20,
        22,
        24,
        25,
        26,
        27,
        30,
        31,
        33,
        34,
        35,
        36,
        37,
        38,
        40,
        42,
        44,
        45,
        46,
        48,
        49,
        51,
        52,
        54,
        56,
        58,
        60,
        62,
        64,
        66,
        67,
        68,
        70,
        72,
        74,
        75,
        77,
        79,
        80,
        82,
        83,
        84,
        86,
        87,
        89,
        91,
        92,
        93,
        94,
        95,
        96,
    }
)


def card_issuer_ok(digits: str) -> bool:
    for (low, high), width, lengths in _ISSUERS:
        if len(digits) in lengths and low <= int(digits[:width]) <= high:
            return True
    return False


def _cards(text: str) -> Iterator[Finding]:
    from stdnum import ean, luhn  # imported by the first scan, not at start (module docstring)

    for m in _CARD.finditer(text):
        raw = m.group(0)
        if " " in raw and "-" in raw:
            continue  # mixed separators: not how a card number is written
        digits = raw.replace(" ", "").replace("-", "")
        if len(raw) == 13 and ean.is_valid(raw):
            # 13 bare digits with a valid EAN-13 check digit: a barcode (one in ten
            # passes Luhn too, and 4... is Visa's prefix); 13-digit Visa cards are retired.
            continue
        if card_issuer_ok(digits) and luhn.is_valid(digits):
            yield Finding("CARD", m.start(), m.end())


def _ibans(text: str) -> Iterator[Finding]:
    from stdnum import iban  # imported by the first scan, not at start (see the module docstring)

    for m in _IBAN.finditer(text):
        raw = m.group(0)
        # The regex may run into following upper-case words: take the longest valid prefix.
        for end in range(len(raw), 14, -1):
            if raw[end - 1] != " " and iban.is_valid(raw[:end]):
                yield Finding("IBAN", m.start(), m.start() + end)
                break


def _ssns(text: str) -> Iterator[Finding]:
    from stdnum.us import ssn  # imported by the first scan, not at start (see the module docstring)

    for m in _SSN.finditer(text):
        if ssn.is_valid(m.group(1) + m.group(3) + m.group(4)):
            yield Finding("SSN", m.start(), m.end())
    for m in _DIGITS9.finditer(text):
        if _SSN_CONTEXT.search(text, max(0, m.start() - CONTEXT_CHARS), m.start()) and ssn.is_valid(
            m.group(0)
        ):
            yield Finding("SSN", m.start(), m.end())


def _context(pattern: re.Pattern[str], text: str, start: int) -> bool:
    return pattern.search(text[max(0, start - CONTEXT_CHARS) : start]) is not None


def _vietnam(text: str, wanted: frozenset[str]) -> Iterator[Finding]:
    if "CMND" in wanted:
        for m in _DIGITS9.finditer(text):
            if _context(_CMND_CONTEXT, text, m.start()):
                yield Finding("CMND", m.start(), m.end())
    if "CCCD" in wanted:
        for m in _DIGITS12.finditer(text):
            digits = m.group(0)
            if _context(_CCCD_CONTEXT, text, m.start()) or (
                int(digits[:3]) in _VN_PROVINCES
                and digits[3] in "0123"
                and _context(_CMND_CONTEXT, text, m.start())
            ):
                yield Finding("CCCD", m.start(), m.end())


def _ips(text: str) -> Iterator[Finding]:
    for m in _IPV4.finditer(text):
        if _VERSION_BEFORE.search(text[max(0, m.start() - 9) : m.start()]):
            continue
        try:
            ipaddress.IPv4Address(m.group(0))
        except ValueError:
            continue
        yield Finding("IP", m.start(), m.end())
    for m in _IPV6.finditer(text):
        raw = m.group(0)
        if sum(c in "0123456789abcdefABCDEF" for c in raw) < 2:
            continue
        try:
            ipaddress.IPv6Address(raw)
        except ValueError:
            continue
        yield Finding("IP", m.start(), m.end())


def _phones(text: str, regions: tuple[str, ...]) -> Iterator[Finding]:
    """libphonenumber on the digit runs only (the matcher is the costliest detector by
    far over prose); a bare run of digits, with no ``+``, separator or leading trunk
    ``0``, is taken only after a phone word: otherwise every 9- to 13-digit account
    number or millisecond timestamp is some region's valid number."""
    import phonenumbers  # imported by the first scan, not at start (see the module docstring)

    for m in _PHONE_CANDIDATE.finditer(text):
        raw = m.group(0)
        # 13 bare digits or more are an EAN-13, an ISBN or a ms timestamp, not a
        # national number written with its trunk 0 (those have 12 digits at most).
        if (
            raw.isdigit()
            and (not raw.startswith("0") or len(raw) >= 13)
            and not _context(_PHONE_CONTEXT, text, m.start())
        ):
            continue
        if _DATE.match(raw):
            continue
        # An international number parses the same in every region: one pass is enough;
        # a national one is taken in the first region it is valid in.
        for region in regions[:1] if raw.startswith("+") else regions:
            found = [
                Finding("PHONE", m.start() + f.start, m.start() + f.end)
                for f in phonenumbers.PhoneNumberMatcher(
                    raw, region, leniency=phonenumbers.Leniency.VALID
                )
            ]
            if found:
                yield from found
                break


def _capitalised(text: str, start: int, end: int, first: int) -> int:
    """Where the run of capitalised words in ``text[start:end]`` ends (the first
    ``first`` words are taken as they are); ``start`` when there is none."""
    stop = start
    for n, word in enumerate(_LETTERS.finditer(text, start, end)):
        if n >= first and not word.group(0)[0].isupper():
            break
        stop = word.end()
    return stop


def _names(text: str) -> Iterator[Finding]:
    for m in _NAME.finditer(text):
        stop = _capitalised(text, m.start(), m.end(), 1)
        if (
            _LETTERS.search(text, m.start(), stop) is not None
            and len(_LETTERS.findall(text, m.start(), stop)) >= 2
        ):
            yield Finding("NAME", m.start(), stop)
    for m in _HONORIFIC.finditer(text):
        stop = _capitalised(text, m.start(1), m.end(1), 0)
        if stop > m.start(1):
            yield Finding("NAME", m.start(1), stop)


def _regex(pattern: re.Pattern[str], entity: str, text: str) -> Iterator[Finding]:
    for m in pattern.finditer(text):
        if m.end() > m.start():
            yield Finding(entity, m.start(), m.end())


class NoNameModel(RuntimeError):
    """``names: ner`` with no model handed to :func:`detect`."""


def _ner_names(
    text: str, guardrail: PiiGuardrail, model: NameModel | None, heuristic: list[Finding]
) -> Iterator[Finding]:
    """The model's person names, less those overlapping a heuristic one (which knows
    where a Vietnamese name ends better than an English model does)."""
    if model is None:
        raise NoNameModel("names: ner, but the gateway has no NER model")
    for start, end in model.names(text, guardrail.ner_max_chars):
        title = _TITLE_ONLY.match(text, start)
        if title is not None and title.end() >= end:
            continue  # "Nhân" of "Nhân viên": a title, or part of one
        if not any(h.start < end and start < h.end for h in heuristic):
            yield Finding("NAME", start, end)


def detect(text: str, guardrail: PiiGuardrail, model: NameModel | None = None) -> list[Finding]:
    """The entities of ``guardrail`` in ``text``: sorted, never overlapping (at one place
    the earliest, then the longest, match wins). ``model`` finds the names of a
    ``names: ner`` guardrail (blocking: run on the model's thread)."""
    if not text:
        return []
    wanted = guardrail.entities
    found: list[Finding] = []
    if "SECRET" in wanted:
        found += _regex(SECRET_SHAPES, "SECRET", text)
        found += _regex(_SECRET_MORE, "SECRET", text)
    if "EMAIL" in wanted and "@" in text:
        found += _regex(_EMAIL, "EMAIL", text)
    if "CARD" in wanted:
        found += _cards(text)
    if "IBAN" in wanted:
        found += _ibans(text)
    if "SSN" in wanted:
        found += _ssns(text)
    if "VN" in guardrail.countries:
        found += _vietnam(text, wanted)
    if "IP" in wanted:
        found += _ips(text)
    if "PHONE" in wanted:
        found += _phones(text, guardrail.regions)
    if "NAME" in wanted:
        heuristic = list(_names(text))
        found += heuristic
        if guardrail.uses_ner:
            found += _ner_names(text, guardrail, model, heuristic)
    for custom in guardrail.custom:
        found += _regex(custom.pattern, custom.name, text)
    return _resolve(found)


def _resolve(found: list[Finding]) -> list[Finding]:
    found.sort(key=lambda f: (f.start, f.start - f.end))
    out: list[Finding] = []
    end = -1
    for f in found:
        if f.start >= end:
            out.append(f)
            end = f.end
    return out


def window(guardrail: PiiGuardrail) -> int:
    """The longest entity ``guardrail`` matches: what a stream must hold back."""
    sizes = [MAX_CHARS[e] for e in guardrail.entities if e in MAX_CHARS]
    sizes += [CUSTOM_MAX_CHARS for _ in guardrail.custom]
    return max(sizes, default=0)
