"""A string that matches a JSON Schema ``pattern``: the mocks' answer to constrained strings.

A schema's ``pattern`` (an ECMA-262 regex, searched anywhere in the string) is common in
pydantic models (``constr(pattern=...)``: postcodes, ids, phone numbers). The user's text
is answered when it already matches; otherwise a string is built from the pattern itself
by a small parser of the usual subset -- literals, escapes (``\\d \\w \\s``...), classes
with ranges and negation, groups, alternation (first branch), quantifiers and anchors --
taking each quantifier's minimum, then more repetitions until the length bounds are met.
Lookarounds and back-references are read as empty, so patterns using them may not match;
the candidate is always checked with :mod:`re` before it is returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Characters a negated class or a wildcard may pick, most readable first.
_POOL = "aA0b1 -_.xyz"
_ESCAPES = {
    "d": "0",
    "w": "a",
    "s": " ",
    "D": "a",
    "W": "-",
    "S": "a",
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "f": "\f",
    "v": "\v",
    "0": "\0",
}
_EMPTY_ESCAPES = frozenset("bBAZzG")
#: ECMA-262 (and pydantic's Rust regex) spell a named group ``(?<name>``; Python ``(?P<``.
_ECMA_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z_])")
_CLASS_ESCAPES = {
    "d": "0123456789",
    "w": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_",
    "s": " \t\n\r\f\v",
}


def sample_matching(pattern: str, text: str, low: int = 0, high: int | None = None) -> str:
    """A string ``re.search``-matching ``pattern`` within ``[low, high]`` characters.

    Falls back to ``text`` fitted to the bounds when nothing found matches (an invalid or
    unsupported pattern): the answer is then not schema-valid, as documented.
    """
    fitted = _fit(text, low, high)
    pattern = _ECMA_NAMED_GROUP.sub("(?P<", pattern)
    try:
        compiled = re.compile(pattern)
    except re.error:
        return fitted
    candidates = [text, fitted]
    try:
        tree = _Parser(pattern).parse()
    except ValueError:
        tree = None
    if tree is not None:
        candidates += [tree.render(extra) for extra in (0, 1, 2, 4, 8, low)]
    for candidate in candidates:
        fits = len(candidate) >= low and (high is None or len(candidate) <= high)
        if fits and compiled.search(candidate):
            return candidate
    return fitted


def _fit(text: str, low: int, high: int | None) -> str:
    text = text + "x" * max(0, low - len(text))
    return text if high is None else text[:high]


@dataclass(frozen=True, slots=True)
class _Node:
    """One parsed piece: literal text, alternatives (first taken), or a repetition."""

    text: str = ""
    parts: tuple[_Node, ...] = ()
    choices: tuple[_Node, ...] = ()
    minimum: int = 1
    maximum: int | None = 1

    def render(self, extra: int) -> str:
        """The piece with each quantifier at its minimum plus ``extra`` (within its max)."""
        if self.choices:
            body = self.choices[0].render(extra)
        else:
            body = self.text + "".join(part.render(extra) for part in self.parts)
        if (self.minimum, self.maximum) == (1, 1):
            return body
        count = self.minimum + extra
        if self.maximum is not None:
            count = min(count, self.maximum)
        return body * count


class _Parser:
    """Recursive descent over the pattern: ``alt := seq ('|' seq)*``."""

    def __init__(self, pattern: str) -> None:
        self._p = pattern
        self._i = 0

    def parse(self) -> _Node:
        node = self._alternation()
        if self._i != len(self._p):
            raise ValueError("unbalanced parenthesis")
        return node

    def _peek(self) -> str:
        return self._p[self._i] if self._i < len(self._p) else ""

    def _take(self) -> str:
        if self._i >= len(self._p):
            raise ValueError("pattern ends early")
        char = self._p[self._i]
        self._i += 1
        return char

    def _alternation(self) -> _Node:
        branches = [self._sequence()]
        while self._peek() == "|":
            self._i += 1
            branches.append(self._sequence())
        return branches[0] if len(branches) == 1 else _Node(choices=tuple(branches))

    def _sequence(self) -> _Node:
        parts: list[_Node] = []
        while self._peek() not in ("", "|", ")"):
            parts.append(self._quantified(self._atom()))
        return _Node(parts=tuple(parts))

    def _atom(self) -> _Node:
        char = self._take()
        if char == "(":
            lookaround = False
            if self._peek() == "?":
                self._i += 1
                kind = self._take()
                if kind in "=!" or (kind == "<" and self._peek() in "=!"):
                    lookaround = True
                elif kind in "<P":
                    while self._take() != ">":
                        pass
                elif kind != ":":
                    raise ValueError("unsupported group")
            inner = self._alternation()
            if self._take() != ")":
                raise ValueError("unbalanced parenthesis")
            return _Node() if lookaround else inner
        if char == "[":
            return _Node(text=self._class())
        if char == "\\":
            escaped = self._take()
            if escaped in _EMPTY_ESCAPES:
                return _Node()
            if escaped.isdigit() and escaped != "0":
                raise ValueError("back-references are not supported")
            return _Node(text=self._escape(escaped))
        if char in "^$":
            return _Node()
        if char == ".":
            return _Node(text="a")
        return _Node(text=char)

    def _escape(self, escaped: str) -> str:
        if escaped in "xu":
            digits = 2 if escaped == "x" else 4
            code = self._p[self._i : self._i + digits]
            self._i += digits
            return chr(int(code, 16))
        return _ESCAPES.get(escaped, escaped)

    def _class(self) -> str:
        """One character of the class opened by ``[`` (consumed up to its ``]``)."""
        negated = self._peek() == "^"
        if negated:
            self._i += 1
        members: list[str] = []
        first = True
        while True:
            char = self._take()
            if char == "]" and not first:
                break
            first = False
            if char == "\\":
                escaped = self._take()
                members.append(_CLASS_ESCAPES.get(escaped) or self._escape(escaped))
                continue
            if self._peek() == "-" and self._p[self._i + 1 : self._i + 2] not in ("]", ""):
                self._i += 1
                end = self._take()
                if end == "\\":
                    end = self._escape(self._take())
                members.append("".join(chr(c) for c in range(ord(char), ord(end) + 1)))
                continue
            members.append(char)
        allowed = "".join(members)
        if negated:
            pick = next((c for c in _POOL if c not in allowed), None)
        else:
            pick = next((c for c in _POOL if c in allowed), allowed[:1] or None)
        if pick is None:
            raise ValueError("empty character class")
        return pick

    def _quantified(self, node: _Node) -> _Node:
        char = self._peek()
        if char in ("*", "+", "?"):
            self._i += 1
            low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
        elif char == "{" and re.match(r"\{\d*(,\d*)?\}", self._p[self._i :]):
            close = self._p.index("}", self._i)
            spec = self._p[self._i + 1 : close]
            self._i = close + 1
            first, _, second = spec.partition(",")
            low = int(first or 0)
            high = low if "," not in spec else int(second) if second else None
        else:
            return node
        if self._peek() in ("?", "+"):  # lazy or possessive: the same strings match
            self._i += 1
        return _Node(parts=(node,), minimum=low, maximum=high)
