"""pgvector detection and SQL for the shared semantic questions (``cache/pgvector.py``).

The development machine's PostgreSQL (Debian) has no pgvector package, so the path
with the extension present is not run here: these tests run the detection on the real
server (absent: nothing changes, the schema stays the migrations'), the failure path of
a server-side search (counted, a miss), and check the SQL sent when it is present.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from llmrelay.cache import pgvector
from llmrelay.cache.embedder import normalised
from llmrelay.cache.semantic import SemanticIndex
from llmrelay.cache.shared_vectors import SharedVectors
from llmrelay.store import database


@pytest.mark.postgres
async def test_a_server_without_pgvector_keeps_the_polling_path(
    make_postgres_db: Callable[[], str],
) -> None:
    engine = database.create_engine(make_postgres_db())
    try:
        await database.migrate(engine)
        failures: list[int] = []
        shared = SharedVectors(engine, SemanticIndex(10), 1.0, 5.0, lambda: failures.append(1))
        await shared.prepare()
        assert shared.presence == "absent" and not shared.pgvector
        async with engine.connect() as conn:
            assert await pgvector.detect(conn) == "absent"
            columns = await conn.run_sync(
                lambda c: [col["name"] for col in sa.inspect(c).get_columns("cache_vectors")]
            )
        assert "embedding" not in columns  # added only when the extension is there
        vector = normalised([0.6, 0.8])
        await shared.add("ctx", vector, "key-1", ttl=60)  # the plain insert, no embedding
        assert not failures
        # Asked anyway (a server that lost the extension): a counted miss, not an error.
        assert await shared.search("ctx", vector, 0.5) is None
        assert failures == [1]
    finally:
        await engine.dispose()


async def test_other_databases_are_not_asked(tmp_path: Path) -> None:
    engine = database.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'v.db'}")
    try:
        shared = SharedVectors(engine, SemanticIndex(10), 1.0, 5.0, lambda: None)
        await shared.prepare()
        assert shared.presence is None and not shared.pgvector
    finally:
        await engine.dispose()


def test_the_sql_sent_when_pgvector_is_present() -> None:
    assert pgvector.literal([0.5, -0.25, 1.0]) == "[0.5,-0.25,1.0]"
    dialect = postgresql.dialect()
    search = str(pgvector.SEARCH.compile(dialect=dialect))
    # Cosine distance, best first, only this context's live rows of the query's width.
    assert "1 - (embedding <=> CAST(%(embedding)s AS vector)) AS similarity" in search
    assert "ORDER BY embedding <=> CAST(%(embedding)s AS vector) LIMIT 1" in search
    assert "context = %(context)s AND expires_at > %(now)s" in search
    assert "vector_dims(embedding) = %(dims)s" in search
    detect = str(pgvector.DETECT.compile(dialect=dialect))
    assert "pg_extension WHERE extname = 'vector'" in detect
    assert "pg_available_extensions WHERE name = 'vector'" in detect
    assert "IF NOT EXISTS embedding vector" in str(pgvector.ADD_COLUMN)
