"""Ids: UUIDv7 and gateway slugs."""

from __future__ import annotations

import uuid

from alicerce.ids import slug_for, uuid7


def test_uuid7_is_version_7_and_monotonic() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_slug_uses_last_four_hex_digits() -> None:
    assert slug_for("support-bot", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f50c3") == "support-bot:50c3"
