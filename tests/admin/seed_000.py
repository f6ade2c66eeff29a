"""Seed 000 (``tests/data/seeds/000_testing_guide.md``, kept verbatim) read as data:
its SQL statements and its curl requests, extracted from the file rather than copied
into the tests, so the tests run what the seed says."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

SEED = Path(__file__).parents[1] / "data" / "seeds" / "000_testing_guide.md"


def text() -> str:
    return SEED.read_text()


def sections(source: str) -> dict[str, str]:
    """The seed's ``###`` sections by title (their text up to the next heading)."""
    parts = re.split(r"^#{2,3} (.+)$", source, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def sql_statements(section: str) -> list[str]:
    """The SQL statements of a section's ```sql blocks, in order.

    A line starting with ``psql `` is the shell command that opens the connection (the
    test's own connection stands for it), not SQL, and is left out.
    """
    out: list[str] = []
    for block in re.findall(r"```sql\n(.*?)```", section, flags=re.S):
        lines = [line for line in block.splitlines() if not line.startswith("psql ")]
        for statement in re.split(r";[ \t]*$", "\n".join(lines), flags=re.M):
            body = "\n".join(ln for ln in statement.splitlines() if not ln.strip().startswith("--"))
            if body.strip():
                out.append(statement.strip())
    return out


@dataclass
class Curl:
    """One curl request of the seed."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    #: Header arguments that are not ``Name: value`` (a typo in the seed), kept to report.
    broken_headers: list[str] = field(default_factory=list)
    #: How many times the seed sends it (``for i in {1..N}``).
    repeat: int = 1


def curl_requests(section: str) -> list[Curl]:
    """The curl requests of a section's ```bash blocks."""
    found: list[Curl] = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        for command in re.findall(r"curl .*?(?=\n\s*curl |\Z)", block, flags=re.S):
            url = re.search(r"http://localhost:8080([^\s\"']*)", command)
            if url is None:
                continue
            method = re.search(r"-X (\w+)", command)
            curl = Curl(method.group(1) if method else "GET", url.group(1).rstrip("\"'"))
            for header in re.findall(r'-H "([^"]*)"', command):
                name, sep, value = header.partition(":")
                if sep:
                    curl.headers[name.strip().lower()] = value.strip()
                else:
                    curl.broken_headers.append(header)
            data = re.search(r"-d '(.*?)'", command, flags=re.S)
            if data is not None:
                curl.body = orjson.loads(data.group(1))
            loop = re.search(r"\{1\.\.(\d+)\}", block)
            if loop is not None:
                curl.repeat = int(loop.group(1))
            found.append(curl)
    return found
