"""The local broker launcher's own logic (no broker started here)."""

from __future__ import annotations

import uuid

import pytest

from minsheng.localinfra import kafka


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 encodes to "-" in URL-safe base64: the storage tool would read "-t -…" as two options.
    drawn = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x01" + bytes(15))])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(drawn))
    cluster_id = kafka._cluster_id()
    assert not cluster_id.startswith("-")
    assert cluster_id == "AQAAAAAAAAAAAAAAAAAAAA"
