"""Placeholders: one call's redacted values, how they are written, and how they come back.

A :class:`Vault` lives on one call (never shared, never logged): the first e-mail
address becomes ``[EMAIL_1]``, the same address again is ``[EMAIL_1]`` too, the next
one ``[EMAIL_2]``, so the model can still tell values apart and refer to them, and
:meth:`Vault.restore` can put the originals back in what the client reads.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

#: What a placeholder looks like (also the typed ``[EMAIL_REDACTED]`` style).
PLACEHOLDER = re.compile(r"\[([A-Z][A-Z0-9_]*?)_(\d+|REDACTED)\]")
#: A text's end that may be the start of a placeholder still arriving: ``[EM``, ``[EMAIL_``.
_PARTIAL = re.compile(r"\[(?:[A-Z][A-Z0-9_]*)?(?:_\d*)?$")


@dataclass(slots=True)
class Vault:
    #: original value -> its placeholder.
    by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    #: placeholder -> original, for the values to restore only (an input guardrail's
    #: with ``restore``): what an output guardrail redacted stays redacted.
    by_placeholder: dict[str, str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def placeholder(self, entity: str, value: str, style: str, restore: bool = False) -> str:
        if style == "redacted":
            return f"[{entity}_REDACTED]"
        key = (entity, value)
        found = self.by_value.get(key)
        if found is None:
            self.counts[entity] += 1
            found = f"[{entity}_{self.counts[entity]}]"
            self.by_value[key] = found
        if restore:
            self.by_placeholder[found] = value
        return found

    @property
    def longest(self) -> int:
        return max((len(p) for p in self.by_placeholder), default=0)

    def restore(self, text: str) -> str:
        """``text`` with every placeholder of this call replaced by its original."""
        if not self.by_placeholder or "[" not in text:
            return text
        return PLACEHOLDER.sub(lambda m: self.by_placeholder.get(m.group(0), m.group(0)), text)


class StreamRestore:
    """Restores placeholders in one stream of text deltas (one choice's content, one
    tool call's arguments) as they arrive: a delta ending in what may be the start of a
    placeholder (``… [EMA``) is held back, at most the longest placeholder of the call,
    until the next delta says what it is."""

    __slots__ = ("held", "vault")

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.held = ""

    def feed(self, delta: str) -> str:
        text = self.held + delta
        self.held = ""
        cut = text.rfind("[")
        if cut != -1 and len(text) - cut < self.vault.longest and _PARTIAL.search(text, cut):
            text, self.held = text[:cut], text[cut:]
        return self.vault.restore(text)

    def flush(self) -> str:
        text, self.held = self.held, ""
        return self.vault.restore(text)
