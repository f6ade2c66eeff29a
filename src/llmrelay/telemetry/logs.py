"""Application logs as JSON lines on stderr, with secrets redacted.

Interaction records have their own stream (see the log writer); this module is for
what the process itself says: start-up, shutdown, errors. A line said while serving a
call carries the call's ``request_id`` and ``trace_id`` (seed 004 filters the logs by
``trace_id`` and ``level``): the pipeline puts the call in :data:`CURRENT_CALL`.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import Protocol

import orjson

from llmrelay.telemetry.interaction import redact


class _Traced(Protocol):
    request_id: str

    def trace_id(self) -> str: ...


#: The call being served by this task (set by the pipeline), for its log lines.
CURRENT_CALL: ContextVar[_Traced | None] = ContextVar("llmrelay_call", default=None)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        call = CURRENT_CALL.get()
        if call is not None:
            entry["request_id"] = call.request_id
            entry["trace_id"] = call.trace_id()
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # uvicorn's own info lines duplicate ours; keep its warnings and errors.
    logging.getLogger("uvicorn.error").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
