"""The encoded size of a JSON value from an admin body, or a 400 naming the field.

FastAPI parses bodies with the standard library, which takes integers of any size; the
database columns and orjson do not (64 bits at most). A value orjson cannot encode is
the client's mistake, refused with the field named, not a 500 (the schemathesis fuzz
test found ``{"x": 1e400-sized integers}`` in a route config doing exactly that).
"""

from __future__ import annotations

from typing import Any

import orjson

from llmrelay.errors import InvalidRequest


def encoded(value: Any, param: str, option: int = 0) -> bytes:
    try:
        return orjson.dumps(value, option=option)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        raise InvalidRequest(
            f"{param}: holds a value JSON here cannot carry (an integer beyond 64 bits?)",
            param=param,
        ) from None
