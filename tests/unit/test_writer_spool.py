"""The log writer in process: poison rows split out, the spool, replay exactly once."""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from llmrelay.config import ConfigError, load_settings
from llmrelay.governance.usage import write_usage
from llmrelay.providers.base import Usage
from llmrelay.store import database
from llmrelay.store import spool as spool_module
from llmrelay.store.bulk import Shared, Statement
from llmrelay.store.schema import MonthlyUsageSummary, RequestRow, ResponseRow, UsageRecord, new_id
from llmrelay.store.spool import BEGUN, ENDED, ROW, SegmentReader, Spool, encode, spool_dir
from llmrelay.store.writer import LogWriter
from llmrelay.telemetry.interaction import Interaction


def row(model: str = "gpt-4o-mini", key: str | None = "k" * 32) -> Interaction:
    return Interaction(
        id=new_id(),
        request_id="req_" + new_id(),
        created_at=datetime.now(UTC),
        route="/v1/chat/completions",
        method="POST",
        status=200,
        latency_ms=1.0,
        overhead_ms=0.1,
        model=model,
        provider="up",
        upstream_model=model,
        api_key_id=key,
        usage=Usage(10, 20, 30),
        cost_nanos=1000,
    )


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "postgres":
        make: Callable[[], str] = request.getfixturevalue("make_postgres_db")
        url = make()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    eng = database.create_engine(url)
    await database.migrate(eng)
    yield eng
    await eng.dispose()


def writer(engine: AsyncEngine, spool: Path, **kw: Any) -> LogWriter:
    opts: dict[str, Any] = {
        "queue_size": 1000,
        "batch_size": 50,
        "flush_interval": 0,
        "log_stream": None,
        "store_bodies": False,
        "spool_dir": spool,
        "spool_interval": 0.01,
        "db_timeout": 10.0,
    }
    opts.update(kw)
    w = LogWriter(engine, **opts)
    w.sinks.append(write_usage)
    return w


async def count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


async def wait_until(check: Callable[[], Any], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_a_row_the_database_refuses_is_split_out_and_dead_lettered(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """One refused row in a batch: the others are written, it is set aside with its reason."""

    async def refuse_poison(
        dialect: Dialect, batch: list[Interaction], shared: Shared
    ) -> list[Statement]:
        if any(it.model == "poison" for it in batch):
            return [Statement("SELECT * FROM no_such_table")]  # a database error
        return []

    w = writer(engine, tmp_path / "spool")
    w.sinks.append(refuse_poison)
    w.start()
    rows = [row() for _ in range(20)]
    rows[7] = row("poison")
    for it in rows:
        await w.submit(it)
    await w.close(timeout=60)
    assert await count(engine, RequestRow) == 19
    assert await count(engine, UsageRecord) == 19
    assert w.stats.dead_lettered == 1 and w.stats.dropped == 0
    lines = (tmp_path / "spool" / "dead-letter.jsonl").read_bytes().splitlines()
    entry = orjson.loads(lines[0])
    assert entry["id"] == rows[7].id and "no_such_table" in entry["reason"]
    assert entry["row"]["model"] == "poison"
    # Later rows are written as usual: the writer is not stuck on the poison row.
    w2 = writer(engine, tmp_path / "spool")
    w2.start()
    await w2.submit(row())
    await w2.close(timeout=60)
    assert await count(engine, RequestRow) == 20


async def test_hostile_values_pass_the_whole_writer(engine: AsyncEngine, tmp_path: Path) -> None:
    """Invalid text, NUL bytes, huge numbers: spooled, logged and written, bounded."""
    log = io.BytesIO()
    w = writer(engine, tmp_path / "spool", log_stream=log)
    w.start()
    bad = row("m\ud800\x00" + "m" * 10_000)
    bad.usage = Usage(10**40, 1, 10**40)
    bad.cost_nanos = 10**40
    bad.attempts = [{"error": "e\ud800", "n": 10**40}]
    await w.submit(bad)
    await w.submit(row())
    await w.close(timeout=60)
    assert await count(engine, RequestRow) == 2 and w.stats.dead_lettered == 0
    async with engine.connect() as conn:
        model = await conn.scalar(select(RequestRow.model).where(RequestRow.id == bad.id))
        tokens = await conn.scalar(
            select(UsageRecord.prompt_tokens).where(UsageRecord.id == bad.id)
        )
    assert model is not None and model.startswith("m?m") and len(model) == 300
    assert tokens == 2**31 - 1
    assert len(log.getvalue().splitlines()) == 2
    async with engine.connect() as conn:
        cost = await conn.scalar(select(MonthlyUsageSummary.total_cost_nanos))
        calls = await conn.scalar(select(MonthlyUsageSummary.total_requests))
    assert cost == 2**63 - 1 and calls == 2, "the summary saturates rather than refusing rows"


async def test_a_row_refused_once_is_retried_not_set_aside(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A transient refusal (a deadlock, a concurrent replay of the same id) costs no row."""
    refusals = {"left": 2}

    async def refuse_twice(
        dialect: Dialect, batch: list[Interaction], shared: Shared
    ) -> list[Statement]:
        if refusals["left"] and any(it.model == "flaky" for it in batch):
            refusals["left"] -= 1
            return [Statement("SELECT * FROM no_such_table")]
        return []

    w = writer(engine, tmp_path / "spool")
    w.sinks.append(refuse_twice)
    w.start()
    for it in [row(), row("flaky"), row()]:
        await w.submit(it)
    await w.close(timeout=60)
    assert await count(engine, RequestRow) == 3
    assert w.stats.dead_lettered == 0


async def test_database_away_spills_to_disk_with_bounded_memory_then_writes_all_in_order(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 8192)  # many segments, rotated
    w = writer(engine, tmp_path / "spool", queue_size=100, batch_size=7)
    away = True
    real_write = w._write

    async def flaky_write(batch: list[Interaction]) -> None:
        if away:
            raise ConnectionRefusedError("database down")
        await real_write(batch)

    async def reachable() -> bool:
        return not away

    monkeypatch.setattr(w, "_write", flaky_write)
    monkeypatch.setattr(w, "_reachable", reachable)
    w.start()
    rows = [row() for _ in range(600)]
    for i, it in enumerate(rows):
        await w.submit(it)
        if i % 5 == 0:
            await asyncio.sleep(0.005)
    await wait_until(lambda: _is(w.stats.spooled == 600))
    assert w.pending == 600
    assert w._backlog is not None
    assert w._backlog.in_memory <= 100, "rows beyond the queue stay on disk, not in memory"
    assert not w.stats_dict()["database_available"]
    away = False
    await wait_until(lambda: _is(w.pending == 0))
    await w.close(timeout=60)
    async with engine.connect() as conn:
        ids = (await conn.execute(select(RequestRow.id).order_by(RequestRow.id))).scalars().all()
    assert sorted(ids) == sorted(it.id for it in rows)
    assert w.stats.written == 600 and w.stats.dropped == 0
    assert not list((tmp_path / "spool").glob("*.seg")), "written spool files are removed"


async def _is(value: bool) -> bool:
    return value


def _orphan(
    spool_dir: Path, records: list[Interaction], torn: bool = False, kinds: list[int] | None = None
) -> None:
    """The files a process killed mid-write leaves behind (its lock released)."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    owner = "0000000000001-1-dead00"
    (spool_dir / f"{owner}.lock").touch()
    kinds = kinds or [ROW] * len(records)
    data = b"".join(encode(i, k, it) for i, (k, it) in enumerate(zip(kinds, records, strict=True)))
    if torn:
        data += encode(len(records), ROW, row())[:-5]  # the write SIGKILL cut short
    (spool_dir / f"{owner}-000000.seg").write_bytes(data)


async def test_replay_at_start_is_exactly_once_and_drops_a_torn_last_record(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A previous process's spool holds rows already written and rows not yet written."""
    spool_dir = tmp_path / "spool"
    already = [row() for _ in range(30)]
    first = writer(engine, tmp_path / "other")
    first.start()
    for it in already:
        await first.submit(it)
    await first.close(timeout=60)
    missing = [row() for _ in range(25)]
    _orphan(spool_dir, already + missing, torn=True)

    w = writer(engine, spool_dir)
    w.start()
    await wait_until(lambda: _is(w.stats.replayed == 55))
    await w.close(timeout=60)
    assert await count(engine, RequestRow) == 55
    assert await count(engine, ResponseRow) == 55
    assert await count(engine, UsageRecord) == 55
    async with engine.connect() as conn:
        requests = await conn.scalar(select(func.sum(MonthlyUsageSummary.total_requests)))
        tokens = await conn.scalar(select(func.sum(MonthlyUsageSummary.total_tokens)))
    assert requests == 55 and tokens == 55 * 30, "summaries count each call once"
    assert w.stats.duplicates == 30 and w.stats.torn_records == 1
    assert list(spool_dir.iterdir()) == [], "the replayed spool is removed"


async def test_calls_a_killed_process_never_finished_get_a_row_at_replay(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Begun + row: the row; begun + ended: nothing; begun alone: a gateway_stopped row."""
    answered, rejected, cut = row(), row(), row()
    cut.status = 0
    _orphan(
        tmp_path / "spool",
        [answered, rejected, cut, answered, rejected],
        kinds=[BEGUN, BEGUN, BEGUN, ROW, ENDED],
    )
    w = writer(engine, tmp_path / "spool")
    w.start()
    await wait_until(lambda: _is(w.stats.unfinished_calls == 1))
    await w.close(timeout=60)
    async with engine.connect() as conn:
        rows = dict((await conn.execute(select(RequestRow.id, RequestRow.status_code))).all())
        error = await conn.scalar(select(ResponseRow.error_type).where(ResponseRow.id == cut.id))
    assert rows == {answered.id: 200, cut.id: 503}
    assert error == "gateway_stopped"


async def test_a_long_call_survives_the_removal_of_the_segment_it_began_in(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Segments written in full are removed; a call still running is re-stubbed first."""
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 4096)
    spool = tmp_path / "spool"
    w = writer(engine, spool)
    w.start()
    long_call = row()
    w.begin(long_call)
    for i in range(200):
        await w.submit(row())
        if i % 10 == 0:
            await asyncio.sleep(0.02)
    await wait_until(lambda: _is(w.pending == 0))
    assert w._spool is not None
    first = spool / f"{w._spool.owner}-000000.seg"
    assert not first.exists(), "the segment the call began in was written and removed"
    for task in w._tasks:  # SIGKILL: nothing more runs, the files stay, the lock goes
        task.cancel()
    await asyncio.gather(*w._tasks, return_exceptions=True)
    os.close(w._spool._fd)
    os.close(w._spool._lock_fd)

    w2 = writer(engine, spool)
    w2.start()
    await wait_until(lambda: _is(w2.stats.unfinished_calls == 1))
    await w2.close(timeout=60)
    async with engine.connect() as conn:
        status = await conn.scalar(
            select(RequestRow.status_code).where(RequestRow.id == long_call.id)
        )
    assert status == 503
    assert await count(engine, RequestRow) == 201


def test_a_live_processs_spool_is_not_replayed_by_another(tmp_path: Path) -> None:
    live = Spool(tmp_path)
    other = Spool(tmp_path)
    assert [o.owner for o in other.orphans()] == []
    live.close(all_written=False)
    adopted = list(other.orphans())
    assert [o.owner for o in adopted] == [live.owner]
    for o in adopted:
        o.finish()
    other.close(all_written=True)
    assert list(tmp_path.iterdir()) == []


async def test_submit_never_waits_and_memory_is_bounded_when_the_spool_cannot_keep_up(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stuck disk: rows beyond the queue are dropped and counted, submit returns at once."""
    w = writer(engine, tmp_path / "spool", queue_size=20)
    gate = asyncio.Event()
    real = w._spool_fresh

    async def stuck() -> None:
        await gate.wait()
        await real()

    monkeypatch.setattr(w, "_spool_fresh", stuck)
    w.start()
    for _ in range(100):
        await asyncio.wait_for(w.submit(row()), 1.0)
    assert len(w._fresh) == 20 and w.stats.dropped == 80
    gate.set()
    await w.close(timeout=60)
    assert await count(engine, RequestRow) == 20


def test_the_spool_lives_beside_a_sqlite_file_or_where_configured(tmp_path: Path) -> None:
    db = tmp_path / "data" / "llmrelay.db"
    assert spool_dir("", f"sqlite+aiosqlite:///{db}") == Path(f"{db}.spool")
    assert spool_dir("", "postgresql+asyncpg://u@h/db") == Path("llmrelay-spool")
    assert spool_dir("/var/spool/x", "postgresql+asyncpg://u@h/db") == Path("/var/spool/x")


def test_spool_settings_are_checked() -> None:
    for bad in ({"log_spool_interval": 0}, {"log_db_timeout": -1}, {"log_spool_max_bytes": 0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            load_settings(env={}, overrides=bad)


async def test_an_unwritable_spool_directory_stops_the_start(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    w = writer(engine, blocker / "spool")
    with pytest.raises(ConfigError, match="log_spool_dir"):
        w.start()


def test_bodies_are_masked_before_they_reach_the_spool_file() -> None:
    secret = "sk-proj-" + "A1b2C3d4" * 6
    it = row()
    it.request_body = orjson.dumps({"messages": [{"role": "user", "content": "key " + secret}]})
    it.response_body = b'{"echo":"' + secret.encode() + b'"}'
    frame = encode(1, ROW, it)
    assert secret.encode() not in frame
    assert b"[redacted]" in frame
    assert it.request_body is not None and secret.encode() in it.request_body  # caller's copy kept


async def test_a_big_batch_is_spooled_in_slices_and_stays_pending(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """The spool step yields between slices of rows (no long event-loop stall), and the
    rows it holds meanwhile still count as pending (a drain or a caller waiting for
    ``pending == 0`` must not see them as written)."""
    w = writer(engine, tmp_path / "spool", spool_interval=0.05)
    w._slice_floor = 0.0  # yield after every part the idle loop lets it (no clock here)
    w.start()
    for _ in range(200):
        await w.submit(row())
    steps = 0
    pendings = []
    while w.stats.spooled < 200:
        await asyncio.sleep(0)  # one loop step: the spool task runs a slice at most
        steps += 1
        pendings.append(w.pending)
        assert steps < 100_000
    # Eight or more yields for 200 rows (slices of 16); never fewer pending than unwritten.
    assert steps >= 200 // 16
    assert set(pendings[:-1]) == {200}
    await wait_until(lambda: _count_is(engine, 200))
    await w.close()
    assert w.stats.dropped == 0


async def test_the_spool_keeps_up_with_a_busy_loop(engine: AsyncEngine, tmp_path: Path) -> None:
    """Many concurrent calls: each turn of the loop brings a row per call and holds the
    loop for all of their work. The spool step must take more rows per turn than arrive,
    or the queue fills and rows are dropped (a 16-row slice per turn dropped 43 % of the
    rows at c64 in bench/workers.sh). Here 32 rows arrive per 20 ms turn."""
    # Room for what arrives while an fsync is slow on a loaded machine; the old 16-row
    # slices fell 16 rows further behind every turn (2,400 by the end).
    w = writer(engine, tmp_path / "spool", queue_size=3000)
    w.start()
    most = 0
    for _ in range(150):
        for _ in range(32):
            await w.submit(row())
        until = time.perf_counter() + 0.02  # the turn's requests hold the loop
        while time.perf_counter() < until:
            pass
        most = max(most, len(w._fresh))
        await asyncio.sleep(0)
    assert w.stats.dropped == 0
    assert most < 1200, f"the spool fell behind: {most} rows waiting at one time"
    await w.close(timeout=60)
    assert await count(engine, RequestRow) == 150 * 32


async def test_the_database_stage_keeps_up_with_a_busy_loop(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Every statement of a batch is a round trip that costs the busy loop a turn or two
    whatever the batch's size, so a writer behind takes bigger batches (and SQLite gets
    many rows per INSERT). With fixed 500-row batches it wrote ~15 % of what arrived at
    32 rows per 20 ms turn, and the backlog grew for as long as the load lasted."""
    w = writer(engine, tmp_path / "spool", queue_size=20000, batch_size=500, flush_interval=0.2)
    w.start()
    marks: list[tuple[int, int]] = []
    started = time.perf_counter()
    for second in (3.0, 6.0):
        while time.perf_counter() - started < second:
            for _ in range(32):
                await w.submit(row())
            until = time.perf_counter() + 0.02
            while time.perf_counter() < until:
                pass
            await asyncio.sleep(0)
        marks.append((w.stats.submitted, w.stats.written))
    (_, wrote0), (sub1, wrote1) = marks
    # How far it gets depends on the machine's load (the driver's thread shares the
    # cores); that a writer behind takes bigger batches does not: with fixed batches
    # none is over batch_size, and in the quiet it wrote 0.28 of the arrivals (now ~1).
    assert w.stats.written / w.stats.batches > 500, (marks, w.stats.batches)
    assert wrote1 > wrote0, marks
    await w.close(timeout=60)
    assert w.stats.dropped == 0 and await count(engine, RequestRow) == sub1


async def test_a_catch_up_batch_too_slow_for_the_timeout_is_written_in_halves(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer behind takes up to 20x batch_size rows; if the database cannot write that
    many within db_timeout, retrying the same batch would never end. Here any write of
    more than 50 rows times out: 1,000 rows arrive at once and all are written once."""
    from llmrelay.store.dead_letter import DatabaseAway

    w = writer(engine, tmp_path / "spool", batch_size=50)
    assert w._splitter is None
    for _ in range(1000):
        await w.submit(row())
    w.start()
    assert w._splitter is not None
    real = w._splitter.write_or_split
    sizes: list[int] = []

    async def slow_for_big(rows: list[Any]) -> None:
        sizes.append(len(rows))
        if len(rows) > 50:
            raise DatabaseAway("TimeoutError: no answer within db_timeout")
        await real(rows)

    monkeypatch.setattr(w._splitter, "write_or_split", slow_for_big)
    await wait_until(lambda: _count_is(engine, 1000))
    await w.close()
    assert max(sizes) > 50 and w.stats.written == 1000 and w.stats.duplicates == 0


async def _count_is(engine: AsyncEngine, n: int) -> bool:
    return await count(engine, RequestRow) == n


async def test_replaying_shows_until_a_dead_spool_is_read_to_its_end(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A dead spool is replayed in batches: after the first, ``replayed`` is above zero
    and nothing is pending, yet rows are still unread; ``replaying`` says so."""
    rows = [row() for _ in range(40)]
    _orphan(tmp_path / "spool", rows)
    w = writer(engine, tmp_path / "spool", batch_size=7)
    seen: list[tuple[int, bool]] = []
    observed = w._commit

    async def commit(batch: list[Interaction]) -> None:
        await observed(batch)
        stats = w.stats_dict()
        seen.append((stats["replayed"], stats["replaying"]))

    w._commit = commit  # type: ignore[method-assign]
    w.start()
    await wait_until(lambda: _is(w.stats.replayed == 40 and not w.stats_dict()["replaying"]))
    await w.close(timeout=60)
    assert len(seen) >= 6 and all(replaying for _, replaying in seen[:5])
    assert await count(engine, RequestRow) == 40


async def test_a_call_that_ends_within_its_spool_interval_spools_no_stub(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Begun and answered in one batch: only the row is spooled (the stub could never be
    its only trace); begun in one batch and ended in a later one: the stub stays, and an
    end without a row is kept to cancel it."""
    w = writer(engine, tmp_path / "spool", spool_interval=0.05)
    w.start()
    quick, long_call, never_sent = row(), row(), row()
    w.begin(quick)
    w.begin(long_call)
    w.begin(never_sent)
    await w.submit(quick)
    await wait_until(lambda: _is(w.stats.spooled == 3))  # quick's row, two stubs
    await w.submit(long_call)
    w.end(never_sent.id)
    await wait_until(lambda: _is(w.stats.spooled == 5))
    assert w._spool is not None
    reader = SegmentReader(w._spool.active.path)
    spooled = [(kind, it.id) for _, kind, it in reader.read(100)]
    reader.close()
    assert spooled == [
        (BEGUN, long_call.id),
        (BEGUN, never_sent.id),
        (ROW, quick.id),
        (ROW, long_call.id),
        (ENDED, never_sent.id),
    ]
    await w.close(timeout=60)
    assert await count(engine, RequestRow) == 2
