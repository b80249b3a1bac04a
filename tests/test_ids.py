"""Ids: UUIDv7 and gateway slugs."""

from __future__ import annotations

import os
import uuid

from alicerce.ids import slug_for, uuid7


def test_uuid7_is_version_7_and_monotonic() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_slug_uses_last_four_hex_digits() -> None:
    assert slug_for("support-bot", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f50c3") == "support-bot:50c3"


def test_ids_stay_distinct_across_a_fork() -> None:
    """The random bits are read from os.urandom a batch at a time; a forked child must not
    reuse its parent's batch (a worker spawned by fork would repeat the parent's ids)."""
    uuid7()  # the parent holds a batch
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, "".join(str(uuid7()) for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = pipe.read()
    children = {child[i : i + 36][19:] for i in range(0, len(child), 36)}
    parents = {str(uuid7())[19:] for _ in range(50)}
    assert len(children) == 50 and not children & parents
