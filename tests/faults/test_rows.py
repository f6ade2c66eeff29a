"""Rows under faults: hostile values, PostgreSQL away or hung, SIGKILL and SIGTERM.

Each test drives real ``llmrelay serve`` processes through ``mock/echo`` and counts the
``requests`` rows against the calls that got a 200 (each call sends its own
``x-request-id``, which the row keeps). The spool directory is set explicitly so a
second process started on it replays what the first left.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.gateway_proc import GatewayProcess
from tests.private_services import PrivatePostgres

#: Generous for a loaded two-core machine.
SETTLE = 90.0


def chat(
    client: httpx.Client, gw: GatewayProcess, key: str, rid: str, model: str = "mock/echo"
) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "row please"}]}
    return client.post(
        gw.base_url + "/chat/completions",
        content=orjson.dumps(body),
        headers={"authorization": f"Bearer {key}", "x-request-id": rid},
        timeout=30,
    )


def request_ids(gw: GatewayProcess) -> set[str]:
    return {r[0] for r in gw.db_query("SELECT request_id FROM requests")}


def exits_within(gw: GatewayProcess, guard: float, why: str) -> None:
    """A hang guard, not a timing: a shutdown blocked on the database would never end
    (the writer's own bounds end it within seconds); waiting ``guard`` s is the limit."""
    assert gw.proc is not None
    try:
        gw.proc.wait(guard)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the gateway did not exit {why}") from None


def wait_for_rows(gw: GatewayProcess, expected: set[str], timeout: float = SETTLE) -> set[str]:
    """Poll until every expected request id has a row; returns the ids present."""
    deadline = time.monotonic() + timeout
    while True:
        present = request_ids(gw)
        if expected <= present or time.monotonic() > deadline:
            return present
        time.sleep(0.3)


def writer_stats(gw: GatewayProcess) -> dict[str, Any]:
    r = httpx.get(gw.url + "/api/db-stats", timeout=30)
    assert r.status_code == 200, r.text
    stats: dict[str, Any] = r.json()["writer"]
    return stats


def metric(gw: GatewayProcess, name: str) -> float:
    """One unlabelled sample from ``/metrics`` (it answers with the database away)."""
    r = httpx.get(gw.url + "/metrics", timeout=30)
    assert r.status_code == 200, r.text
    for line in r.text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def rss_kb(gw: GatewayProcess) -> int:
    assert gw.proc is not None
    for line in Path(f"/proc/{gw.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Load:
    """Steady calls from a few threads; remembers the request ids answered 200."""

    def __init__(self, gw: GatewayProcess, key: str, threads: int = 4, pause: float = 0.01) -> None:
        self.gw, self.key, self.pause = gw, key, pause
        self.ok: set[str] = set()
        self.failed = 0
        self.other_status: list[int] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, n: int) -> None:
        with httpx.Client() as client:
            i = 0
            while not self._stop.is_set():
                rid = f"load-{n}-{i}"
                i += 1
                try:
                    r = chat(client, self.gw, self.key, rid)
                except httpx.HTTPError:
                    with self._lock:
                        self.failed += 1
                    time.sleep(0.05)
                    continue
                with self._lock:
                    if r.status_code == 200:
                        self.ok.add(rid)
                    else:
                        self.other_status.append(r.status_code)
                time.sleep(self.pause)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def test_model_name_longer_than_its_column_on_postgres(
    start_gateway: Callable[..., GatewayProcess], make_postgres_db: Callable[[], str]
) -> None:
    """10,000-char model name via mock/ on PostgreSQL -> its row bounded, every later row written

    Before, the value failed its batch and every later batch with it, for good.
    """
    gw = start_gateway({"database_url": make_postgres_db()})
    key = gw.create_key("rows")
    long_model = "mock/" + "m" * 10_000
    with httpx.Client() as client:
        r = chat(client, gw, key, "long-model", model=long_model)
        assert r.status_code == 200, r.text
        normal = {f"normal-{i}" for i in range(20)}
        for rid in sorted(normal):
            assert chat(client, gw, key, rid).status_code == 200
    present = wait_for_rows(gw, normal | {"long-model"})
    assert normal | {"long-model"} <= present
    [(model,)] = gw.db_query("SELECT model FROM requests WHERE request_id = 'long-model'")
    assert len(model) == 300 and model.startswith("mock/mmm") and model.endswith("…")
    [(usage_rows,)] = gw.db_query("SELECT count(*) FROM usage_records")
    assert usage_rows == 21
    stats = writer_stats(gw)
    assert stats["dead_lettered"] == 0 and stats["dropped"] == 0
    assert stats["failed_batches"] == 0, "the bounded value never reached the database raw"


def test_postgres_stopped_under_load(
    start_gateway: Callable[..., GatewayProcess],
    private_postgres: PrivatePostgres,
    tmp_path: Path,
) -> None:
    """PostgreSQL stopped under load -> calls 200, rows spooled, RSS bounded, all rows after start()

    A queue of 50 rows in memory: the rest of the outage's rows wait on disk only.
    """
    gw = start_gateway(
        {
            "database_url": private_postgres.url,
            "key_cache_ttl": 0.2,
            "key_stale_ttl": 300,
            "database_timeout": 1.0,
            "log_db_timeout": 2.0,
            "log_queue_size": 50,
            "log_spool_dir": str(tmp_path / "spool"),
        }
    )
    key = gw.create_key("outage")
    with httpx.Client() as client:
        assert chat(client, gw, key, "before").status_code == 200
    wait_for_rows(gw, {"before"})
    rss_before = rss_kb(gw)
    private_postgres.stop()
    with Load(gw, key) as load:
        deadline = time.monotonic() + 60
        while len(load.ok) < 400 and time.monotonic() < deadline:
            time.sleep(0.2)
    assert len(load.ok) >= 400, (len(load.ok), load.failed, load.other_status[:5])
    assert load.other_status == [] and load.failed == 0
    assert metric(gw, "llmrelay_log_database_available") == 0
    assert metric(gw, "llmrelay_log_queue_rows") >= len(load.ok) - 10
    assert metric(gw, "llmrelay_log_spool_bytes") > 0
    assert metric(gw, "llmrelay_log_rows_dropped_total") == 0
    grown_mb = (rss_kb(gw) - rss_before) / 1024
    assert grown_mb < 60, f"RSS grew {grown_mb:.0f} MB during the outage"
    private_postgres.start()
    present = wait_for_rows(gw, load.ok)
    missing = load.ok - present
    assert not missing, f"{len(missing)} rows missing after recovery"
    deadline = time.monotonic() + SETTLE
    while writer_stats(gw)["pending"] and time.monotonic() < deadline:
        time.sleep(0.3)
    stats = writer_stats(gw)
    assert stats["pending"] == 0 and stats["database_available"] is True
    [(count,)] = gw.db_query("SELECT count(*) FROM requests")
    assert count == len(load.ok) + 1, "each row exactly once"


def test_sigkill_under_steady_load(
    start_gateway: Callable[..., GatewayProcess], tmp_path: Path
) -> None:
    """SIGKILL under steady load -> spool replayed at start, at most the last fsync interval lost

    Database batches every 1 s (so the old in-memory queue lost about a second of rows);
    the spool is appended every 50 ms.
    """
    gw = start_gateway(
        {
            "log_flush_interval": 1.0,
            "log_spool_interval": 0.05,
            "log_spool_dir": str(tmp_path / "spool"),
        }
    )
    key = gw.create_key("kill")
    with Load(gw, key, threads=4, pause=0.005) as load:
        time.sleep(4.0)
        started = len(load.ok)
        t0 = time.monotonic()
        time.sleep(1.0)
        rate = (len(load.ok) - started) / (time.monotonic() - t0)
        gw.stop(signal.SIGKILL)
        time.sleep(0.5)
    assert len(load.ok) > 100, len(load.ok)
    gw.start()
    deadline = time.monotonic() + SETTLE
    while True:
        stats = writer_stats(gw)
        # The dead spool is replayed in batches: done when none is being read any more.
        done = stats["replayed"] and not stats["replaying"] and not stats["pending"]
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert stats["replayed"] > 0, stats
    missing = load.ok - request_ids(gw)
    print(
        f"SIGKILL: {len(missing)} of {len(load.ok)} answered calls without a row, "
        f"{rate:.0f} calls/s, {stats['replayed']} rows replayed, {stats['duplicates']} "
        "already written"
    )
    # The last 50 ms of rows (plus those whose 200 went out just before their submit).
    bound = max(8, int(rate * 0.2))
    assert len(missing) <= bound, (
        f"{len(missing)} of {len(load.ok)} answered calls have no row (bound {bound}, "
        f"{rate:.0f} calls/s)"
    )


def test_sigterm_with_postgres_down(
    start_gateway: Callable[..., GatewayProcess],
    private_postgres: PrivatePostgres,
    tmp_path: Path,
) -> None:
    """SIGTERM with PostgreSQL down -> prompt exit, rows kept in the spool, replayed at next start

    None is dropped: the next process (same spool directory) writes every row.
    """
    config = {
        "database_url": private_postgres.url,
        "key_cache_ttl": 0.2,
        "key_stale_ttl": 300,
        "database_timeout": 1.0,
        "log_db_timeout": 2.0,
        "log_spool_dir": str(tmp_path / "spool"),
    }
    gw = start_gateway(config)
    key = gw.create_key("term")
    with httpx.Client() as client:
        assert chat(client, gw, key, "before").status_code == 200
    wait_for_rows(gw, {"before"})
    private_postgres.stop()
    with httpx.Client() as client:
        ids = {f"down-{i}" for i in range(40)}
        for rid in sorted(ids):
            assert chat(client, gw, key, rid).status_code == 200
    assert gw.proc is not None
    gw.proc.send_signal(signal.SIGTERM)
    exits_within(gw, 30, "with the database down")
    assert "stay in the spool" in gw.logs()
    gw.stop()
    assert list((tmp_path / "spool").glob("*.seg"))
    private_postgres.start()
    gw2 = start_gateway(config)
    present = wait_for_rows(gw2, ids | {"before"})
    assert ids <= present, f"{len(ids - present)} rows lost"
    [(count,)] = gw2.db_query("SELECT count(*) FROM requests")
    assert count == len(ids) + 1


def test_postgres_hung_then_sigterm(
    start_gateway: Callable[..., GatewayProcess],
    private_postgres: PrivatePostgres,
    tmp_path: Path,
) -> None:
    """PostgreSQL hung (SIGSTOP) then SIGTERM -> writer times out, exit in time, rows replayed later

    Every database operation of the writer has a timeout, so a server that accepts and
    never answers holds up neither the rows nor the exit.
    """
    config = {
        "database_url": private_postgres.url,
        "key_cache_ttl": 0.2,
        "key_stale_ttl": 300,
        "database_timeout": 1.0,
        "log_db_timeout": 1.0,
        "log_spool_dir": str(tmp_path / "spool"),
    }
    gw = start_gateway(config)
    key = gw.create_key("hung")
    with httpx.Client() as client:
        assert chat(client, gw, key, "before").status_code == 200
    wait_for_rows(gw, {"before"})
    private_postgres.pause()
    try:
        with httpx.Client() as client:
            ids = {f"hung-{i}" for i in range(20)}
            for rid in sorted(ids):
                assert chat(client, gw, key, rid).status_code == 200
        deadline = time.monotonic() + 30
        while metric(gw, "llmrelay_log_database_available") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert metric(gw, "llmrelay_log_database_available") == 0
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGTERM)
        exits_within(gw, 30, "with the database hung")
        gw.stop()
    finally:
        private_postgres.resume()
    gw2 = start_gateway(config)
    present = wait_for_rows(gw2, ids)
    assert ids <= present, f"{len(ids - present)} rows lost"


def test_sigkill_with_calls_in_flight(
    start_gateway: Callable[..., GatewayProcess],
    upstream: MockUpstream,
    mock: MockUpstream,
    tmp_path: Path,
) -> None:
    """SIGKILL, 5 calls waiting on the upstream -> each has a row at next start (gateway_stopped)

    Before, a call cut by SIGKILL left no trace although the provider may bill it.
    """
    gw = start_gateway(
        {
            "providers": [
                {
                    "name": "up",
                    "type": "openai_compatible",
                    "base_url": upstream.base_url,
                    "api_key": "k",
                }
            ],
            "log_spool_dir": str(tmp_path / "spool"),
        }
    )
    key = gw.create_key("inflight")
    body = orjson.dumps({"model": "up/m", "messages": [{"role": "user", "content": "wait"}]})
    threads = []
    for i in range(5):
        mock.script(Behaviour(delay_ms=60_000))
        seen = len(mock.requests)

        def call(rid: str = f"inflight-{i}") -> None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(
                    gw.base_url + "/chat/completions",
                    content=body,
                    timeout=90,
                    headers={"authorization": f"Bearer {key}", "x-request-id": rid},
                )

        t = threading.Thread(target=call, daemon=True)
        t.start()
        threads.append(t)
        deadline = time.monotonic() + 30
        while len(mock.requests) <= seen:
            assert time.monotonic() < deadline, "the call did not reach the upstream"
            time.sleep(0.05)
    time.sleep(0.3)  # past one spool interval
    gw.stop(signal.SIGKILL)
    for t in threads:
        t.join(30)
    gw.start()
    ids = {f"inflight-{i}" for i in range(5)}
    present = wait_for_rows(gw, ids)
    assert ids <= present, f"{len(ids - present)} in-flight calls left no row"
    rows = gw.db_query(
        "SELECT r.status_code, s.error_type FROM requests r JOIN responses s ON s.request_id = r.id"
    )
    assert rows == [(503, "gateway_stopped")] * 5
    assert writer_stats(gw)["unfinished_calls"] == 5


def test_postgres_hung_then_resumed(
    start_gateway: Callable[..., GatewayProcess],
    private_postgres: PrivatePostgres,
    tmp_path: Path,
) -> None:
    """PostgreSQL hung (SIGSTOP) then resumed -> calls 200 meanwhile, the same process writes all

    The writes abandoned to their timeout do not keep the writer away once it answers.
    """
    gw = start_gateway(
        {
            "database_url": private_postgres.url,
            "key_cache_ttl": 0.2,
            "key_stale_ttl": 300,
            "database_timeout": 1.0,
            "log_db_timeout": 1.0,
            "log_spool_dir": str(tmp_path / "spool"),
        }
    )
    key = gw.create_key("hung-resumed")
    with httpx.Client() as client:
        assert chat(client, gw, key, "before").status_code == 200
    wait_for_rows(gw, {"before"})
    private_postgres.pause()
    try:
        ids = set()
        with httpx.Client() as client:
            deadline = time.monotonic() + 30
            i = 0
            # Calls until the writer has given up on the hung server a few times.
            while metric(gw, "llmrelay_log_write_failures_total") < 3:
                assert time.monotonic() < deadline, "the writer never timed out"
                rid = f"hung-{i}"
                i += 1
                assert chat(client, gw, key, rid).status_code == 200
                ids.add(rid)
                time.sleep(0.2)
        assert metric(gw, "llmrelay_log_database_available") == 0
    finally:
        private_postgres.resume()
    present = wait_for_rows(gw, ids)
    assert ids <= present, f"{len(ids - present)} rows not written after the resume"
    deadline = time.monotonic() + SETTLE
    while metric(gw, "llmrelay_log_database_available") != 1:
        assert time.monotonic() < deadline
        time.sleep(0.3)
