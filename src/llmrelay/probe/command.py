"""``llmrelay probe`` and ``llmrelay probe history``: flags, the run, the exit code.

Exit codes: 0 every model passed, 1 some model failed, 2 the probe itself could not run
(bad flags or settings, the gateway unreachable, the key refused when listing models,
a local gateway that would not start). Errors are one line on stderr, never a trace.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import orjson
from rich.console import Console

from llmrelay.config import Settings
from llmrelay.store import database
from llmrelay.store.ids import new_id

from . import history
from .args import COMMAND as COMMAND
from .args import add_parser as add_parser
from .config import ProbeConfigError, ProbeOptions, build_options
from .local import LocalGatewayError, local_gateway, temporary_key
from .render import LiveView, render_text
from .report import EXIT_UNUSABLE, ModelResult, Report
from .runner import run_all
from .targets import ListingError, Target, select
from .wire import Client, short


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_UNUSABLE


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """The subcommand's entry point (``llmrelay probe ...``)."""
    if getattr(args, "probe_command", None) == "history":
        return await _history(args, settings)
    try:
        options = build_options(settings.probe, vars(args), os.environ)
    except ProbeConfigError as exc:
        return _fail(str(exc))
    try:
        async with _gateway(options, args, settings) as (url, key):
            report = await _probe(options, url, key)
    except (ListingError, LocalGatewayError) as exc:
        return _fail(str(exc))
    except (OSError, aiohttp.ClientError, TimeoutError) as exc:
        # Anything else the network or the machine throws: one line, never a trace.
        return _fail(f"the probe could not run: {type(exc).__name__}: {short(str(exc))}")
    print(render_text(report), end="")
    if args.json_file:
        try:
            _write_json(args.json_file, report)
        except OSError as exc:
            return _fail(f"cannot write {args.json_file}: {exc.strerror or exc}")
    if not args.no_history:
        await _store(settings, report)
    return report.exit_code


def _write_json(path: str, report: Report) -> None:
    with open(path, "wb") as f:
        f.write(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2))


@contextlib.asynccontextmanager
async def _gateway(
    options: ProbeOptions, args: argparse.Namespace, settings: Settings
) -> AsyncIterator[tuple[str, str]]:
    """The gateway to probe and its key: ``--url`` as given, else a local one."""
    if options.url is not None:
        assert options.key is not None  # build_options refuses --url without a key
        yield options.url, options.key
        return
    async with local_gateway(args.config) as url:
        if options.key:
            yield url, options.key
            return
        async with temporary_key(settings) as key:
            yield url, key


async def _probe(options: ProbeOptions, url: str, key: str) -> Report:
    report = Report(new_id(), url, datetime.now(UTC), options=options.public())
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = Client(session, url, key)
        groups = await select(
            client,
            providers=options.providers,
            models=options.models,
            per_provider=options.max_models_per_gateway,
            timeout=options.timeout_seconds,
            embeddings=options.capabilities,
        )
        console = Console(stderr=True)
        if console.is_terminal:
            view = LiveView(console, groups)
            with view.shown():
                report.providers = await run_all(client, options, groups, view.update)
        else:
            report.providers = await run_all(client, options, groups, _quiet)
    report.finished_at = datetime.now(UTC)
    return report


def _quiet(target: Target, result: ModelResult | None) -> None:
    """No live view (not a terminal): the final table is all there is."""


async def _store(settings: Settings, report: Report) -> None:
    """Keep the run in the configured database; a failure there only warns."""
    engine = database.create_engine(settings.database_url)
    try:
        await database.migrate(engine)
        await history.save(engine, report)
    except Exception as exc:  # the probe's result stands whatever the database does
        print(
            f"warning: the run was not stored in the history ({type(exc).__name__})",
            file=sys.stderr,
        )
    finally:
        await engine.dispose()


async def _history(args: argparse.Namespace, settings: Settings) -> int:
    engine = database.create_engine(settings.database_url)
    try:
        await database.migrate(engine)
        rows = await history.model_history(
            engine,
            model=args.history_model,
            days=args.days,
            by_day=args.by_day or args.history_model is not None,
        )
    finally:
        await engine.dispose()
    if not rows:
        print(f"no probe runs in the last {args.days:g} days")
        return 0
    day_head = f"{'DAY':10} " if rows[0].day is not None else ""
    print(
        f"{'MODEL':40} {'PROVIDER':16} {day_head}{'RUNS':>5} {'OK %':>6} {'P50':>8} "
        f"{'P95':>8}  LAST"
    )
    for r in rows:
        p50 = f"{r.p50_ms / 1000:.2f}s" if r.p50_ms is not None else "-"
        p95 = f"{r.p95_ms / 1000:.2f}s" if r.p95_ms is not None else "-"
        last = f"{r.last_at:%Y-%m-%d %H:%M} {'OK' if r.last_ok else 'FAIL'}"
        day = f"{r.day:10} " if r.day is not None else ""
        print(
            f"{r.model:40} {r.provider:16} {day}{r.runs:>5} {r.success_rate:>5.1f}% "
            f"{p50:>8} {p95:>8}  {last}"
        )
    return 0
