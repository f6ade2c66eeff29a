"""The model list in Anthropic's shape, for the ``anthropic`` SDK's ``models.list()``.

Both SDKs call ``GET /v1/models``; only the Anthropic one sends ``anthropic-version``
(on every request, https://docs.anthropic.com/en/api/versioning), so that header picks
the shape. Anthropic pages with ``has_more`` / ``first_id`` / ``last_id``; llmrelay's
list is in memory and small, so it is always one page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from llmrelay.asgi import Request


def is_anthropic_client(request: Request) -> bool:
    """The caller speaks Anthropic's API (its SDK sends ``anthropic-version`` always)."""
    return request.header("anthropic-version") is not None


def anthropic_model(model: dict[str, Any]) -> dict[str, Any]:
    """One OpenAI ``model`` object (``id``, ``created``, ``owned_by``) as a ``ModelInfo``."""
    created = datetime.fromtimestamp(int(model["created"]), UTC)
    return {
        "type": "model",
        "id": model["id"],
        "display_name": model["id"],
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lifecycle": "active",
    }


def anthropic_model_list(models: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole list as one Anthropic page."""
    data = [anthropic_model(m) for m in models]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
