"""pgvector for the shared semantic questions, when the PostgreSQL server has it.

At start (``response_cache.shared_vectors`` on PostgreSQL) :func:`prepare` asks the
server: the ``vector`` extension installed (``pg_extension``) is used; available but not
installed (``pg_available_extensions``) is installed with ``CREATE EXTENSION IF NOT
EXISTS vector`` when the gateway's role may (else it is not used, and the log says how
to install it); absent, nothing changes. Only when it is there does the code add the
column ``cache_vectors.embedding vector`` (no dimension: questions of any model fit; so
no ANN index either, which needs a fixed one), so a database without pgvector keeps the
schema of the migrations.

What it adds: the shared table searched **by the server**, over every live question of
the context, when the in-process index has no match (an instance just started and not
caught up, a context beyond ``max_vectors_per_context``). That costs one round trip,
and only on a semantic miss. Hits found in the local index cost none, as before.

Not run against a real pgvector here: Debian's PostgreSQL on the development machine has
no pgvector package. The tests run the detection on a real server (absent) and check
the SQL this module sends; docs/cache.md says what was not run.
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa

Presence = Literal["installed", "available", "absent"]

DETECT = sa.text(
    "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector'),"
    " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')"
)
INSTALL = sa.text("CREATE EXTENSION IF NOT EXISTS vector")
ADD_COLUMN = sa.text("ALTER TABLE cache_vectors ADD COLUMN IF NOT EXISTS embedding vector")
SET_EMBEDDING = sa.text(
    "UPDATE cache_vectors SET embedding = CAST(:embedding AS vector)"
    " WHERE context = :context AND entry_key = :entry_key AND embedding IS NULL"
)
# <=> is pgvector's cosine distance: 1 - cosine similarity (the vectors are unit length).
SEARCH = sa.text(
    "SELECT entry_key, 1 - (embedding <=> CAST(:embedding AS vector)) AS similarity"
    " FROM cache_vectors"
    " WHERE context = :context AND expires_at > :now AND embedding IS NOT NULL"
    " AND vector_dims(embedding) = :dims"
    " ORDER BY embedding <=> CAST(:embedding AS vector) LIMIT 1"
)


def literal(vector: list[float]) -> str:
    """pgvector's text form, ``[0.1,0.2,...]`` (sent as a parameter, cast by the server)."""
    return "[" + ",".join(repr(float(v)) for v in vector) + "]"


async def detect(conn: Any) -> Presence:
    installed, available = (await conn.execute(DETECT)).one()
    if installed:
        return "installed"
    return "available" if available else "absent"


async def prepare(conn: Any) -> Presence:
    """Detect the extension, install it if allowed, add the column if it is there.

    ``conn`` is a connection inside a transaction; a refused ``CREATE EXTENSION`` is
    rolled back to a savepoint, so the caller's transaction goes on.
    """
    presence = await detect(conn)
    if presence == "available":
        try:
            async with conn.begin_nested():
                await conn.execute(INSTALL)
            presence = "installed"
        except sa.exc.DBAPIError:
            return "available"
    if presence == "installed":
        await conn.execute(ADD_COLUMN)
    return presence
