"""A fetched batch is handled in one transaction with one bulk inbox insert; redeliveries are skipped by the
inbox; a poison event in the middle costs the batch its fast path, never another event."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from minsheng.contracts.points import HazardReported
from minsheng.platform.bus.base import Delivery
from minsheng.platform.envelope import CloudEvent
from minsheng.platform.ids import uuid7
from tests.support.client import System
from tests.unit.test_platform import _hazard_delivery


def _copies(template: Delivery, count: int, *, north: float = 0) -> list[Delivery]:
    """``count`` distinct hazard events (own event and report ids, far apart so none is a duplicate report)."""
    envelope = json.loads(template.value)
    out = []
    for i in range(count):
        envelope = {**envelope, "id": str(uuid7())}
        envelope["data"] = {**envelope["data"], "report_id": str(uuid7()), "latitude": 20 + north + i * 0.5}
        out.append(Delivery("points.hazard", envelope["data"]["report_id"], json.dumps(envelope).encode(), [], 0, i))
    return out


def _report_id(delivery: Delivery) -> str:
    return str(json.loads(delivery.value)["data"]["report_id"])


async def _issue_count(system: System, deliveries: list[Delivery]) -> int:
    async with system.runtime("issues").db.engine.connect() as conn:
        found = await conn.execute(
            sa.text("SELECT count(*) FROM issues WHERE origin_id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"ids": [_report_id(d) for d in deliveries]},
        )
        return int(found.scalar_one())


async def _dead_letters(system: System) -> list[Any]:
    async with system.runtime("issues").db.engine.connect() as conn:
        return list((await conn.execute(sa.text("SELECT event_id, attempts, error FROM dead_letters"))).all())


@contextmanager
def _failing_on(system: System, bad_report: str) -> Iterator[list[str]]:
    """Within the block the issues service's hazard handler fails on one report (the others are handled as
    usual); yields the report ids it is called with, in order."""
    consumer = system.runtime("issues").consumer
    model, real = consumer.handlers[HazardReported.event_type]
    calls: list[str] = []

    async def flaky(event: Any, envelope: CloudEvent, uow: Any) -> None:
        calls.append(str(event.report_id))
        if str(event.report_id) == bad_report:
            raise ValueError("downstream bug")
        await real(event, envelope, uow)

    consumer.handlers[HazardReported.event_type] = (model, flaky)
    try:
        yield calls
    finally:
        consumer.handlers[HazardReported.event_type] = (model, real)


@contextmanager
def _statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_a_batch_is_one_transaction_with_one_inbox_insert(system: System) -> None:
    batch = _copies(await _hazard_delivery(system), 12)
    consumer = system.runtime("issues").consumer
    before = consumer.stats.handled
    with _statements(system.runtime("issues").db.engine) as statements:
        await consumer.handle_batch(batch)
    assert consumer.stats.handled - before == 12 and consumer.stats.batch_fallbacks == 0
    assert await _issue_count(system, batch) == 12
    inbox_writes = [s for s in statements if s.startswith("INSERT INTO processed_events")]
    inbox_reads = [s for s in statements if s.startswith("SELECT") and "FROM processed_events" in s]
    assert len(inbox_writes) == 1 and len(inbox_reads) == 1
    assert sum(1 for s in statements if s == "COMMIT") <= 1  # SQLite shows it as a statement


async def test_a_redelivered_batch_and_repeats_inside_one_are_skipped_by_the_inbox(system: System) -> None:
    first = _copies(await _hazard_delivery(system), 5)
    consumer = system.runtime("issues").consumer
    await consumer.handle_batch(first)
    duplicates = consumer.stats.duplicates
    await consumer.handle_batch(first)  # the broker delivers the same batch again (a crash before the commit)
    assert consumer.stats.duplicates - duplicates == 5
    new = _copies(first[0], 3, north=10)
    handled = consumer.stats.handled
    await consumer.handle_batch([first[1], new[0], new[1], new[0], first[2], new[2]])
    assert consumer.stats.handled - handled == 3 and consumer.stats.duplicates - duplicates == 5 + 3
    assert await _issue_count(system, first + new) == 8 and consumer.stats.batch_fallbacks == 0


async def test_a_poison_event_in_the_middle_is_dead_lettered_and_the_others_handled(system: System) -> None:
    template = await _hazard_delivery(system)
    good = _copies(template, 6)
    poison = json.loads(good[3].value)
    poison["data"]["category"] = "volcano"  # violates the contract
    batch = [*good[:3], Delivery("points.hazard", "k", json.dumps(poison).encode(), [], 0, 3), *good[4:]]
    consumer = system.runtime("issues").consumer
    await consumer.handle_batch(batch)
    assert consumer.stats.batch_fallbacks == 1
    assert await _issue_count(system, good[:3] + good[4:]) == 5
    dead = await _dead_letters(system)
    assert [(d.event_id, d.attempts) for d in dead] == [(poison["id"], 1)] and "violates its contract" in dead[0].error


async def test_a_handler_failing_on_one_event_rolls_back_the_batch_then_only_that_one_is_dead_lettered(
    system: System,
) -> None:
    batch = _copies(await _hazard_delivery(system), 5)
    bad_report = _report_id(batch[2])
    consumer = system.runtime("issues").consumer
    with _failing_on(system, bad_report) as calls:
        await consumer.handle_batch(batch)
    # The batch ran up to the bad event, rolled back, then every event ran on its own (the bad one until it
    # was dead-lettered, its run in the batch counted as the first attempt): the two before it ran twice, and
    # nothing it wrote in the batch survived.
    assert calls[:3] == [_report_id(d) for d in batch[:3]]
    assert calls.count(bad_report) == system.settings.handler_max_attempts
    assert await _issue_count(system, batch) == 4
    dead = await _dead_letters(system)
    assert [(d.event_id, d.attempts) for d in dead] == [
        (json.loads(batch[2].value)["id"], system.settings.handler_max_attempts)
    ]
    assert [o for _, o in await consumer.replay_dead_letters()] == ["handled"]
    assert await _issue_count(system, batch) == 5


async def test_the_in_process_bus_hands_over_what_is_queued_as_one_batch(system: System) -> None:
    batch = _copies(await _hazard_delivery(system), 8)
    consumer = system.runtime("issues").consumer
    batches = consumer.stats.batches
    from minsheng.platform.bus.base import OutgoingMessage

    await system.bus.publish([OutgoingMessage(d.topic, d.key or "", d.value) for d in batch])
    await system.settle()
    assert await _issue_count(system, batch) == 8
    assert consumer.stats.batches - batches == 1


async def test_with_one_attempt_an_event_failing_in_its_batch_is_dead_lettered_with_its_own_error(
    system: System,
) -> None:
    batch = _copies(await _hazard_delivery(system), 3, north=30)
    bad_report = _report_id(batch[1])
    consumer = system.runtime("issues").consumer
    consumer.max_attempts = 1
    with _failing_on(system, bad_report) as calls:
        await consumer.handle_batch(batch)
    assert calls.count(bad_report) == 1  # its run in the batch was its one attempt
    assert await _issue_count(system, batch) == 2
    dead = await _dead_letters(system)
    assert [(d.event_id, d.attempts) for d in dead] == [(json.loads(batch[1].value)["id"], 1)]
    assert "downstream bug" in dead[0].error
