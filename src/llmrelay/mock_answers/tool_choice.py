"""Which tool a mock reply calls: one rule for every wire format.

Each format spells the choice its own way (OpenAI chat ``"required"`` / ``{"type":
"function", "function": {"name": ...}}``, Responses ``{"type": "function", "name": ...}``,
Anthropic ``{"type": "any"}`` / ``{"type": "tool", "name": ...}``); its builder maps it to
a :data:`Mode` and asks :func:`pick_tool`. The rule, deterministic in the conversation:

* ``none``, or no tools offered: a text reply.
* ``named``: that tool, always (the structured-output clients force one and read it).
* ``required``: some tool -- one whose name the user's text mentions, else the first --
  preferring tools not called yet in the conversation, so an agent forced to call a tool
  (pydantic-ai's output tool) reaches its final tool instead of looping on the first.
* ``auto``: after tool results, a text reply reporting them (so tool loops end);
  otherwise a call only when the text says the word "tool", to the tool it names if any.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Literal

Mode = Literal["none", "auto", "required", "named"]

_TOOL_WORD = re.compile(r"\btool\b", re.IGNORECASE)


def pick_tool(
    names: Sequence[str],
    *,
    mode: Mode,
    text: str,
    forced: str | None = None,
    called: Collection[str] = (),
    after_results: bool = False,
) -> int | None:
    """Index in ``names`` of the tool to call, or ``None`` for a text reply."""
    if not names or mode == "none":
        return None
    if mode == "named":
        return names.index(forced) if forced in names else 0
    if mode == "auto" and (after_results or not _TOOL_WORD.search(text)):
        return None
    fresh = [i for i, name in enumerate(names) if name not in called] if mode == "required" else []
    pool = fresh or list(range(len(names)))
    mentioned = [i for i in pool if _mentions(text, names[i])]
    return (mentioned or pool)[0]


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None
