"""Messages as columns (the relay's PostgreSQL claim): each message gets exactly its own headers back."""

from __future__ import annotations

from minsheng.platform.bus.base import OutgoingColumns, OutgoingMessage


def test_columns_give_each_message_its_own_headers_in_order() -> None:
    columns = OutgoingColumns(
        topics=["a.t", "a.t", "b.t"],
        keys=[b"k1", "云".encode(), b"k3"],
        values=[b"v1", b"v2", b"v3"],
        headers_json=['{"ce_id": "1", "ce_type": "x"}', "{}", '{"ce_id": "3", "n": 7}'],
    )
    assert len(columns) == 3
    assert columns.headers() == [[("ce_id", b"1"), ("ce_type", b"x")], [], [("ce_id", b"3"), ("n", b"7")]]
    assert columns.messages() == [
        OutgoingMessage("a.t", "k1", b"v1", [("ce_id", b"1"), ("ce_type", b"x")]),
        OutgoingMessage("a.t", "云", b"v2", []),
        OutgoingMessage("b.t", "k3", b"v3", [("ce_id", b"3"), ("n", b"7")]),
    ]
