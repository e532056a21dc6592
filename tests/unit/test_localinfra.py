"""The local launchers' own logic (no broker or server started here)."""

from __future__ import annotations

import uuid

import pytest

from minsheng.localinfra import kafka, ports


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 encodes to "-" in URL-safe base64: the storage tool would read "-t -…" as two options.
    drawn = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x01" + bytes(15))])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(drawn))
    cluster_id = kafka._cluster_id()
    assert not cluster_id.startswith("-")
    assert cluster_id == "AQAAAAAAAAAAAAAAAAAAAA"


def test_a_port_is_handed_out_once_and_never_a_claimed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dev cluster's gateway port is claimed before PostgreSQL, Kafka and the services are given theirs; the
    operating system may offer a port again once its probe socket is closed, so the same one must not go to two
    parts (a service given the gateway's port would answer in its place while nginx could not start)."""
    offered = iter([40001, 40002, 40002, 40001, 40003])

    class Probe:
        def __init__(self) -> None:
            self.port = next(offered)

        def __enter__(self) -> Probe:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def bind(self, address: tuple[str, int]) -> None:
            pass

        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", self.port)

    monkeypatch.setattr(ports, "_CLAIMED", set())
    monkeypatch.setattr(ports.socket, "socket", Probe)
    ports.claim_port(40001)
    assert [ports.free_port(), ports.free_port()] == [40002, 40003]
