"""The spool: an append-only local file of rows not yet known to be in the database.

Every row the writer takes is appended here first (one ``write`` per flush, ``fsync``'d
in a thread), so a database that is away or slow, or a SIGKILL, costs no row: what is on
disk is written to the database later, in order, by whichever process owns it.

Layout of ``spool_dir``::

    <owner>.lock            held (flock) by the live process that owns <owner>'s files
    <owner>-<n>.seg         segments of framed records, oldest n first
    dead-letter.jsonl       rows the database refused even after bounding (see writer)

``owner`` starts with the start time in milliseconds, so names sort oldest first. A
process that died leaves its lock file unlocked: the next writer to find it (at start,
then periodically) takes the lock and replays the segments (see
:meth:`Spool.orphans`). Several worker processes can share one directory.

A record is ``length (4 bytes, big-endian) · crc32 (4) · msgpack [seq, kind, Interaction]``:
a finished call's row (:data:`ROW`), or a call that reached its upstream and is still
running (:data:`BEGUN`, a stub) and its end without a row (:data:`ENDED`). A replay
turns a ``BEGUN`` with neither a row nor an end into a row of a call the dead process
never finished, so a SIGKILL does not erase the calls it cut.
A torn last record (the process died inside ``write``) fails its length or CRC check
and ends the segment's replay; it is counted, never half-read.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import msgspec
import orjson
from sqlalchemy.engine import make_url

from llmrelay.providers.base import Usage
from llmrelay.redaction import redact
from llmrelay.store.bounds import INT64, TEXT_LIMIT, clean_int, clean_json, clean_text
from llmrelay.telemetry.interaction import Interaction

_HEADER = struct.Struct(">II")
#: A record larger than this is corruption, not a row (bodies are bounded far below).
_MAX_RECORD = 256 * 1024 * 1024
#: A segment is closed and a new one begun past this size, so written ones can go (and
#: a restart after SIGKILL re-reads at most about this much that was already written).
SEGMENT_BYTES = 1024 * 1024

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(tuple[int, int, Interaction])

#: Record kinds.
ROW, BEGUN, ENDED = 0, 1, 2

Record = tuple[int, int, Interaction]


def _scrubbed(it: Interaction) -> Interaction:
    """A copy of ``it`` that msgpack can encode (clean text, 64-bit ints, plain JSON)."""
    changes: dict[str, Any] = {}
    for name in it.__slots__:
        value = getattr(it, name)
        if isinstance(value, str):
            changes[name] = clean_text(value, TEXT_LIMIT)
        elif isinstance(value, int) and not isinstance(value, bool):
            changes[name] = clean_int(value, INT64)
    changes["attempts"] = clean_json(it.attempts) or []
    if not isinstance(changes["attempts"], list):
        changes["attempts"] = [changes["attempts"]]
    if it.usage is not None:
        u = it.usage
        changes["usage"] = Usage(*(clean_int(getattr(u, f), INT64) for f in u.__slots__))
    return replace(it, **changes)


def _bodies_redacted(it: Interaction) -> Interaction:
    """Bodies (kept only with ``log_bodies``) masked before they touch the disk.

    Rows mask key-shaped strings in bodies when they are built; the spool is storage
    too, and a secret a client pasted into a prompt must not sit in a spool file the
    database never saw. Done here, in the spool task, so the hot path pays nothing.
    """
    if it.request_body is None and it.response_body is None:
        return it
    return replace(
        it, request_body=_masked(it.request_body), response_body=_masked(it.response_body)
    )


def _masked(body: bytes | None) -> bytes | None:
    if body is None:
        return None
    return redact(body.decode("utf-8", "replace")).encode()


def encode(seq: int, kind: int, it: Interaction) -> bytes:
    """One framed record; raises ``ValueError`` for an interaction nothing can encode."""
    it = _bodies_redacted(it)
    try:
        payload = _encoder.encode((seq, kind, it))
    except (UnicodeEncodeError, OverflowError, TypeError):
        try:
            payload = _encoder.encode((seq, kind, _scrubbed(it)))
        except Exception as exc:
            raise ValueError(f"row cannot be encoded: {exc}") from exc
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def without_settled_stubs(
    batch: list[tuple[int, Interaction]],
) -> list[tuple[int, Interaction]]:
    """``batch`` without the stubs of calls that also end in it.

    A stub (``BEGUN``) is the trace of a call for a process killed before the call's row
    is spooled; when the row (or the ``ENDED`` of a call without one) is in the same
    batch, both go into the spool in the same ``write``, so the stub can never be the
    only trace and is left out. An ``ENDED`` is kept: the stub left out may be a copy
    (a rotation stubs running calls again) whose original, in an older segment, it
    cancels. A sequential call of ~1 ms ends within its 50 ms spool interval: this
    halves the records spooled per call (encoding, spool bytes, backlog entries).
    """
    begun = {it.id for kind, it in batch if kind == BEGUN}
    if not begun:
        return batch
    ended = {it.id for kind, it in batch if kind != BEGUN and it.id in begun}
    if not ended:
        return batch
    return [entry for entry in batch if entry[0] != BEGUN or entry[1].id not in ended]


@dataclass(slots=True)
class Segment:
    path: Path
    #: Highest sequence number appended to it (-1: none yet).
    last_seq: int = -1
    size: int = 0
    #: Its size after its first append, which holds the stubs of the calls still open
    #: when it began (the writer carries them over at each rotation); -1: none yet.
    carried: int = -1


class SegmentReader:
    """Reads one segment's records from an offset; stops at its end or a torn record."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self.torn = False
        self._file: IO[bytes] | None = None

    def read(self, limit: int) -> list[Record]:
        """Up to ``limit`` records after the last one read (fewer at the current end)."""
        out: list[Record] = []
        if self.torn:
            return out
        if self._file is None:
            try:
                self._file = open(self.path, "rb")  # noqa: SIM115 - kept open across reads
            except FileNotFoundError:
                return out
        f = self._file
        f.seek(self.offset)
        while len(out) < limit:
            header = f.read(_HEADER.size)
            if len(header) < _HEADER.size:
                self.torn = bool(header) and self._at_end(f)
                break
            length, crc = _HEADER.unpack(header)
            payload = f.read(length) if length <= _MAX_RECORD else b""
            if len(payload) < length or zlib.crc32(payload) != crc:
                self.torn = True
                break
            try:
                out.append(_decoder.decode(payload))
            except msgspec.DecodeError:
                self.torn = True
                break
            self.offset += _HEADER.size + length
        return out

    @staticmethod
    def _at_end(f: IO[bytes]) -> bool:
        return not f.read(1)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _lock(path: Path) -> int | None:
    """An exclusive flock on ``path`` (created if missing), or None if someone holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


class Spool:
    """This process's segments in ``directory``, and the orphans of dead processes."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.owner = f"{int(time.time() * 1000):013d}-{os.getpid()}-{os.urandom(3).hex()}"
        # Locked under a name no orphan scan looks at, then renamed: another process
        # must never see this lock file unlocked and adopt a live owner.
        locking = self.dir / f".{self.owner}.locking"
        fd = _lock(locking)
        assert fd is not None, "a fresh file cannot be locked by anyone else"
        locking.rename(self.dir / f"{self.owner}.lock")
        self._lock_fd = fd
        self.segments: list[Segment] = []
        self._fd = -1
        self._counter = 0
        self._open_segment()

    @property
    def active(self) -> Segment:
        return self.segments[-1]

    def _open_segment(self) -> None:
        path = self.dir / f"{self.owner}-{self._counter:06d}.seg"
        self._counter += 1
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.segments.append(Segment(path))

    def append(self, frames: list[bytes], last_seq: int) -> None:
        """Append records in one ``write`` (no ``fsync``; see :meth:`sync`)."""
        seg = self.active
        data = memoryview(b"".join(frames))
        try:
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
        except OSError:  # disk full: cut the partial record, or it would end the segment
            os.ftruncate(self._fd, seg.size)
            raise
        seg.last_seq = last_seq
        seg.size += sum(len(f) for f in frames)
        if seg.carried < 0:
            seg.carried = seg.size

    def sync(self) -> None:
        """``fsync`` the active segment (run in a thread: it may take long)."""
        os.fsync(self._fd)

    def rotate_if_full(self) -> bool:
        """Begin a new segment once :data:`SEGMENT_BYTES` were appended past what it
        carried over (call right after :meth:`sync`).

        A new segment starts with the stubs of every call still open, written again so
        that removing the old one does not forget them. Counted against the segment's
        size, 5,000 open streams' stubs (~1 MB) filled each new segment at once: it
        rotated on every spool step and re-encoded all 5,000 each time, ~40 % of the
        core (bench/streams.sh with a py-spy profile). The carried part is left out.
        """
        seg = self.active
        if seg.size - max(seg.carried, 0) < SEGMENT_BYTES:
            return False
        os.close(self._fd)
        self._open_segment()
        return True

    def release(self, done_seq: int) -> None:
        """Delete closed segments whose every record is in the database (or set aside)."""
        while len(self.segments) > 1 and self.segments[0].last_seq <= done_seq:
            with contextlib.suppress(FileNotFoundError):
                self.segments.pop(0).path.unlink()

    @property
    def bytes(self) -> int:
        return sum(s.size for s in self.segments)

    def close(self, *, all_written: bool) -> None:
        """Close the files; remove them when every row reached the database."""
        with contextlib.suppress(OSError):
            os.fsync(self._fd)
        os.close(self._fd)
        if all_written:
            for seg in self.segments:
                with contextlib.suppress(FileNotFoundError):
                    seg.path.unlink()
            with contextlib.suppress(FileNotFoundError):
                (self.dir / f"{self.owner}.lock").unlink()
        os.close(self._lock_fd)

    # -- orphans: segments of processes that died ---------------------------------------
    def orphans(self) -> Iterator[Orphan]:
        """Adopt, oldest first, each dead owner's segments (taking its lock)."""
        for lock in sorted(self.dir.glob("*.lock")):
            owner = lock.name.removesuffix(".lock")
            if owner == self.owner:
                continue
            fd = _lock(lock)
            if fd is None:
                continue  # alive, or being replayed by another worker
            yield Orphan(self.dir, owner, fd)

    def dead_letter(self, entries: list[dict[str, Any]]) -> None:
        """Append rows the database refused, one JSON line each, and ``fsync``."""
        path = self.dir / "dead-letter.jsonl"
        data = b"".join(orjson.dumps(e, default=repr) + b"\n" for e in entries)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


class Orphan:
    """The segments of one dead owner, read in order, deleted once all are written."""

    def __init__(self, directory: Path, owner: str, lock_fd: int) -> None:
        self.owner = owner
        self._dir = directory
        self._lock_fd = lock_fd
        self._paths = sorted(directory.glob(f"{owner}-*.seg"))
        self._reader: SegmentReader | None = None
        self.torn = 0

    def read(self, limit: int) -> list[Record]:
        """The next records (empty when every segment has been read)."""
        while True:
            if self._reader is None:
                if not self._paths:
                    return []
                self._reader = SegmentReader(self._paths[0])
            records = self._reader.read(limit)
            if records:
                return records
            self.torn += self._reader.torn
            self._reader.close()
            self._reader = None
            self._paths.pop(0).unlink(missing_ok=True)

    def finish(self) -> None:
        """Every record is written: remove the owner's lock file and release it."""
        if self._reader is not None:
            self._reader.close()
        for path in self._paths:
            path.unlink(missing_ok=True)
        (self._dir / f"{self.owner}.lock").unlink(missing_ok=True)
        os.close(self._lock_fd)

    def abandon(self) -> None:
        """Stop (shutting down): keep the remaining files for the next process."""
        if self._reader is not None:
            self._reader.close()
        os.close(self._lock_fd)


def spool_dir(configured: str, database_url: str) -> Path:
    """``log_spool_dir``, or its default: beside a SQLite file, else in the working dir."""
    if configured:
        return Path(configured)
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database + ".spool")
    return Path("llmrelay-spool")
