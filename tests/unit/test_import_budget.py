"""Import time is a budget (docs/STYLE rule 10): what ``import llmrelay.app`` and a
gateway's start must not import, checked by module names in a fresh interpreter, not by
timing (the machine's load would decide a timed test).

Each entry below is paid only by the gateways that use it: the PII detectors' number
libraries on the first scan, numpy on the first semantic-cache question, the probe
client on a detailed readiness check, FastAPI with the admin plane's first request,
Alembic when the schema is not current, the mock upstream's web server when it is run,
aiohttp's client with the first upstream call the lean client cannot serve (a base URL
with credentials in it).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

#: Top-level packages that neither the import of the app nor a default start may load.
NOT_AT_START = {
    "aiohttp",
    "alembic",
    "fastapi",
    "numpy",
    "phonenumbers",
    "pydantic",
    "starlette",
    "stdnum",
    "yaml",
}
#: Modules of our own (and aiohttp's server side) that are only for other commands; the
#: ORM and SQLAlchemy's asyncio extension (whose package imports the ORM) are the admin
#: plane's and the CLI's: the start and the request path use Core (``store/tables.py``,
#: ``store/database.py``'s ``Database``).
NOT_AT_START_MODULES = {
    "llmrelay.probe",
    "llmrelay.mock_upstream",
    "aiohttp.web",
    "llmrelay.admin.routes_keys",
    "llmrelay.store.schema",
    "sqlalchemy.orm",
    "sqlalchemy.ext.asyncio",
}


def _loaded(code: str, cwd: Path | None = None) -> set[str]:
    script = textwrap.dedent(code) + textwrap.dedent(
        """
        import sys
        print("\\n".join(sorted(sys.modules)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, cwd=cwd
    ).stdout
    return set(out.split())


def _offenders(modules: set[str]) -> list[str]:
    return sorted(
        m
        for m in modules
        if m.split(".")[0] in NOT_AT_START
        or any(m == p or m.startswith(p + ".") for p in NOT_AT_START_MODULES)
    )


def test_the_tables_need_no_orm() -> None:
    """``store/tables.py`` and the ``Database`` access are Core only."""
    loaded = _loaded("import llmrelay.store.tables, llmrelay.store.database")
    assert _offenders(loaded) == []


def test_row_ids_need_no_sqlalchemy() -> None:
    """``new_id`` is on every call's path; it must not bring SQLAlchemy (or its ORM) in."""
    assert not {m for m in _loaded("import llmrelay.store.ids") if m.startswith("sqlalchemy")}


#: What ``import llmrelay.app`` alone does not load either: the services (storage on
#: SQLAlchemy, credentials, metrics, Redis) come with the first gateway built.
NOT_AT_IMPORT = {"sqlalchemy", "cryptography", "prometheus_client", "redis", "aiosqlite"}


def test_import_app_leaves_the_heavy_modules_alone() -> None:
    loaded = _loaded("import llmrelay.app")
    assert _offenders(loaded) == []
    assert sorted(m for m in loaded if m.split(".")[0] in NOT_AT_IMPORT) == []


def test_the_command_line_leaves_them_alone() -> None:
    """``llmrelay serve`` imports the CLI, which builds every command's parser: the
    commands themselves (the probe's aiohttp and rich, the admin plane's ORM) load only
    when run."""
    loaded = _loaded("import llmrelay.cli")
    commands = {"llmrelay.probe.command", "llmrelay.admin.auth", "rich"}
    assert (
        sorted(
            m
            for m in loaded
            if m.split(".")[0] in NOT_AT_START
            or any(
                m == p or m.startswith(p + ".") for p in NOT_AT_START_MODULES - {"llmrelay.probe"}
            )
            or any(m == p or m.startswith(p + ".") for p in commands)
        )
        == []
    )


@pytest.mark.timeout(90)
def test_a_default_start_leaves_them_alone(tmp_path: Path) -> None:
    """A start on the embedded default (SQLite in the working directory), the schema
    already current: the first start creates and migrates the database."""
    code = """
        import asyncio
        from llmrelay.app import create_app
        from llmrelay.config import load_settings

        async def main():
            gateway = create_app(load_settings(None))
            await gateway.startup()
            await gateway.shutdown()

        asyncio.run(main())
    """
    first = _loaded(code, cwd=tmp_path)
    assert "alembic" in first  # it did migrate: the check below is about a second start
    assert _offenders(_loaded(code, cwd=tmp_path)) == []


def test_the_start_up_heap_is_frozen_once_started(tmp_path: Path) -> None:
    """The server's lifespan freezes what start-up allocated (``gc_tuning.py``)."""
    code = """
        import asyncio, gc, sys
        from llmrelay.app import create_app
        from llmrelay.config import load_settings

        async def main():
            gateway = create_app(load_settings(None))
            sent = []
            messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

            async def receive():
                return next(messages)

            async def send(message):
                sent.append(message["type"])
                if message["type"] == "lifespan.startup.complete":
                    print("frozen", gc.get_freeze_count())

            await gateway({"type": "lifespan"}, receive, send)

        asyncio.run(main())
    """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout
    assert int(out.split("frozen")[1].split()[0]) > 100_000
