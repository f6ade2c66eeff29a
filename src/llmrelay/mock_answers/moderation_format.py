"""OpenAI's ``/v1/moderations`` answer, made up deterministically for tests and demos.

A text scores high in a category when it holds one of that category's trigger words
(below), low otherwise, so a test can put a call above or below a guardrail's
threshold without any key: ``"I will kill the process"`` scores ``violence`` 0.92.
The shape is OpenAI's (``results[].flagged / categories / category_scores``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: category -> (trigger words, the score a text with one of them gets)
TRIGGERS: dict[str, tuple[tuple[str, ...], float]] = {
    "violence": (("kill", "murder", "stab"), 0.92),
    "hate": (("hateword",), 0.95),
    "harassment": (("idiot", "loser"), 0.85),
    "self-harm": (("selfharm",), 0.97),
    "sexual": (("nsfw",), 0.9),
    "illicit": (("borderline",), 0.6),
}
LOW = 0.001


def moderation_request_error(body: object) -> str | None:
    if not isinstance(body, Mapping):
        return "The request body must be a JSON object."
    value = body.get("input")
    if isinstance(value, str) or (
        isinstance(value, list) and value and all(isinstance(v, str) for v in value)
    ):
        return None
    return "input must be a string or a non-empty array of strings."


def _scores(text: str) -> dict[str, float]:
    lowered = text.lower()
    return {
        category: (score if any(w in lowered for w in words) else LOW)
        for category, (words, score) in TRIGGERS.items()
    }


def moderation_response(body: Mapping[str, Any]) -> dict[str, Any]:
    value = body["input"]
    texts = [value] if isinstance(value, str) else list(value)
    results = []
    for text in texts:
        scores = _scores(text)
        categories = {c: s >= 0.5 for c, s in scores.items()}
        results.append(
            {
                "flagged": any(categories.values()),
                "categories": categories,
                "category_scores": scores,
            }
        )
    return {
        "id": "modr-mock",
        "model": body.get("model") or "omni-moderation-latest",
        "results": results,
    }
