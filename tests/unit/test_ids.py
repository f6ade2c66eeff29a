"""Row ids: unique within a process and across forked workers."""

from __future__ import annotations

import os

from llmrelay.store.ids import new_id


def test_ids_are_unique_and_32_hex_digits() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_forked_child_draws_its_own_random_half() -> None:
    parent = new_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        try:
            os.write(write, new_id().encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 32
    assert child[:16] != parent[:16]  # the random half (the counter half may repeat)
    assert new_id()[:16] == parent[:16]  # the parent's own stays
