"""The platform's own behaviour, on the embedded mode (SQLite + in-process bus)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import BaseModel, Field

from minsheng import SERVICES
from minsheng.contracts.points import HazardReported
from minsheng.platform.bus.base import Delivery
from minsheng.platform.envelope import CloudEvent, child_traceparent, new_traceparent
from minsheng.platform.idempotency import idempotent
from minsheng.platform.ids import uuid7
from minsheng.platform.privacy import FieldCipher, mask_id_number, mask_phone
from minsheng.platform.uow import UnitOfWork
from minsheng.settings import DEV_FIELD_KEY, Settings
from tests.support.client import System
from tests.unit.test_fire_flow import FIRE, register_rider

HAZARD = " WHERE topic = 'points.hazard'"  # a report's events (registering the rider writes one too)


def test_uuid7_is_time_ordered_and_versioned() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(i.version == 7 and i.variant == "specified in RFC 4122" for i in ids[:10])


def test_child_traceparent_keeps_the_trace_and_makes_a_new_span() -> None:
    parent = new_traceparent()
    child = child_traceparent(parent)
    assert child.split("-")[1] == parent.split("-")[1]
    assert child.split("-")[2] != parent.split("-")[2]
    assert len(child_traceparent("garbage").split("-")[1]) == 32


def test_masking_and_field_encryption() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_id_number("110105194912310021") == "110105********0021"
    cipher = FieldCipher(DEV_FIELD_KEY)
    sealed = cipher.encrypt("110105194912310021")
    assert sealed and "110105" not in sealed
    assert cipher.decrypt(sealed) == "110105194912310021"
    assert cipher.encrypt("x") != cipher.encrypt("x")  # random nonce
    assert cipher.lookup_hash("110105194912310021") == cipher.lookup_hash(" 110105194912310021 ")


async def test_landing_page_health_and_readiness(system: System) -> None:
    landing = await system.client.get("/")
    assert landing.status_code == 200
    for name in ("visits", "issues", "points", "canteen"):
        assert f'href="/{name}/docs"' in landing.text
        assert (await system.client.get(f"/{name}/openapi.json")).status_code == 200
        ready = await system.client.get(f"/{name}/readyz")
        assert ready.json()["status"] == "ready" and ready.json()["checks"] == {"database": True}
        assert ready.json()["bus"]["up"] is True  # shown, not required
    assert (await system.client.get("/readyz")).status_code == 200
    health = (await system.client.get("/healthz")).json()
    assert health["status"] == "ok" and health["bus"]["up"] is True


async def test_errors_are_problem_json_with_stable_codes(system: System) -> None:
    r = await system.client.post("/points/hazard-reports", json=FIRE)
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "unauthenticated"

    r = await system.client.post("/points/hazard-reports", json=FIRE, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"

    r = await system.client.post("/points/hazard-reports", json=FIRE, headers=system.auth("resident"))
    assert r.status_code == 403 and r.json()["code"] == "forbidden_role"

    rider = await register_rider(system)
    r = await system.client.post(
        "/points/hazard-reports", headers=rider, json={**FIRE, "category": "volcano", "latitude": 123}
    )
    body = r.json()
    assert r.status_code == 422 and body["code"] == "validation_error"
    assert {e["field"] for e in body["errors"]} == {"category", "latitude"}
    assert r.headers["x-request-id"] == body["request_id"]

    r = await system.client.get("/points/hazard-reports/not-a-uuid", headers=rider)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "path.report_id"
    r = await system.client.get(f"/points/hazard-reports/{uuid7()}", headers=rider)
    assert r.status_code == 404 and r.json()["code"] == "hazard_report_not_found"
    r = await system.client.get("/points/nowhere")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = await system.client.get("/points/hazard-reports?cursor=%%%", headers=rider)
    assert r.status_code == 422 and r.json()["code"] == "invalid_cursor"


async def test_idempotency_key_replays_the_first_response_and_refuses_another_body(system: System) -> None:
    rider = await register_rider(system)
    headers = {**rider, "Idempotency-Key": "report-42"}
    first = await system.client.post("/points/hazard-reports", headers=headers, json=FIRE)
    again = await system.client.post("/points/hazard-reports", headers=headers, json=FIRE)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    other = await system.client.post("/points/hazard-reports", headers=headers, json={**FIRE, "category": "road"})
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    reports = (await system.client.get("/points/hazard-reports", headers=rider)).json()["items"]
    assert len(reports) == 1
    async with system.runtime("points").db.engine.connect() as conn:
        outbox = (await conn.execute(sa.text("SELECT count(*) FROM outbox" + HAZARD))).scalar_one()
    assert outbox == 1  # one event, not one per attempt


async def test_idempotent_answers_alike_with_and_without_a_key(system: System) -> None:
    """Without a key the model is serialized in one pass (``model_dump_json``) and nothing is hashed; the body a
    client gets is the one a keyed request gets and replays: aliases, non-ASCII text and datetimes included."""

    class Out(BaseModel):
        model_config = {"populate_by_name": True}
        place_name: str = Field(alias="placeName")
        at: datetime
        score: float

    out = Out(place_name="云杏街 “东门”", at=datetime(2026, 12, 6, 23, 41, 5, 120, tzinfo=UTC), score=0.1)

    class Unhashable:  # a body that would fail the request hash: proves no hashing happens without a key
        pass

    async def action() -> tuple[int, Any]:
        return 201, out

    db = system.runtime("points").db
    answers = []
    for key, body in ((None, Unhashable()), ("k-1", {"a": 1}), ("k-1", {"a": 1})):
        async with UnitOfWork(db, "points") as uow:
            answers.append(await idempotent(uow, key=key, scope="test", body=body, action=action))
    plain, keyed, replayed = answers
    assert plain.status_code == keyed.status_code == replayed.status_code == 201
    plain_body, keyed_body, replayed_body = (json.loads(bytes(a.body)) for a in answers)
    assert plain_body == keyed_body == replayed_body
    assert plain_body["placeName"] == "云杏街 “东门”"
    assert plain.headers["content-type"] == keyed.headers["content-type"] == "application/json"
    assert "idempotent-replayed" not in keyed.headers and replayed.headers["idempotent-replayed"] == "true"


async def test_outbox_rows_are_cloudevents_with_trace_and_correlation(system: System) -> None:
    rider = await register_rider(system)
    r = await system.client.post(
        "/points/hazard-reports",
        json=FIRE,
        headers={**rider, "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "X-Request-ID": "req-123"},
    )
    assert r.status_code == 201
    async with system.runtime("points").db.engine.connect() as conn:
        row = (await conn.execute(sa.text("SELECT topic, key, payload, headers FROM outbox" + HAZARD))).one()
    event = json.loads(row.payload)
    assert row.topic == "points.hazard" and row.key == r.json()["id"]
    assert event["specversion"] == "1.0" and event["type"] == "minsheng.points.hazard.reported.v1"
    assert event["source"] == "/services/points" and event["partitionkey"] == r.json()["id"]
    assert event["traceparent"].split("-")[1] == "a" * 32
    assert event["correlationid"] == "req-123"
    headers = row.headers if isinstance(row.headers, dict) else json.loads(row.headers)
    assert headers["ce_type"] == event["type"] and headers["ce_id"] == event["id"]

    await system.settle()  # the issue created in reaction is caused by the report's event
    async with system.runtime("issues").db.engine.connect() as conn:
        created = json.loads((await conn.execute(sa.text("SELECT payload FROM outbox"))).scalar_one())
    assert created["causationid"] == event["id"] and created["correlationid"] == "req-123"
    assert created["traceparent"].split("-")[1] == "a" * 32


async def _hazard_delivery(system: System, **data: Any) -> Delivery:
    """A HazardReported event as the broker would deliver it: a real outbox row, made into a new event (own
    id, own report id) so it does not collide with the copy the relay delivers by itself."""
    rider = await register_rider(system)
    report = (await system.client.post("/points/hazard-reports", headers=rider, json=FIRE)).json()
    await system.settle()
    async with system.runtime("points").db.engine.connect() as conn:
        payload = (await conn.execute(sa.text("SELECT payload FROM outbox" + HAZARD))).scalar_one()
    envelope = json.loads(payload)
    assert envelope["data"]["report_id"] == report["id"]
    envelope["id"] = str(uuid7())
    # Far from the first report, so the issues service does not attach it to that issue as a duplicate.
    envelope["data"].update(report_id=str(uuid7()), latitude=FIRE["latitude"] + 1, **data)
    return Delivery("points.hazard", envelope["data"]["report_id"], json.dumps(envelope).encode(), [])


async def _issues_from_report(system: System, report_id: str) -> int:
    async with system.runtime("issues").db.engine.connect() as conn:
        count = await conn.execute(sa.text("SELECT count(*) FROM issues WHERE origin_id = :r"), {"r": report_id})
        return int(count.scalar_one())


async def test_the_same_event_twice_has_one_effect(system: System) -> None:
    delivery = await _hazard_delivery(system)
    report_id = json.loads(delivery.value)["data"]["report_id"]
    consumer = system.runtime("issues").consumer
    await system.settle()  # the background consumer shares these stats: let it finish the report's own event first
    before = consumer.stats.duplicates
    assert await consumer.handle(delivery) is True
    assert await consumer.handle(delivery) is False
    await consumer(delivery)
    assert consumer.stats.duplicates - before == 2
    assert await _issues_from_report(system, report_id) == 1


async def test_a_failing_handler_is_retried_then_dead_lettered_and_replayable(system: System) -> None:
    delivery = await _hazard_delivery(system)
    consumer = system.runtime("issues").consumer
    model, real = consumer.handlers[HazardReported.event_type]
    attempts: list[int] = []

    async def broken(event: Any, envelope: CloudEvent, uow: Any) -> None:
        attempts.append(1)
        raise ValueError("downstream bug")

    consumer.handlers[HazardReported.event_type] = (model, broken)
    await consumer(delivery)
    assert len(attempts) == system.settings.handler_max_attempts
    async with system.runtime("issues").db.engine.connect() as conn:
        dead = (await conn.execute(sa.text("SELECT attempts, error, replayed_at FROM dead_letters"))).one()
    assert dead.attempts == len(attempts) and "downstream bug" in dead.error and dead.replayed_at is None

    consumer.handlers[HazardReported.event_type] = (model, real)
    assert [o for _, o in await consumer.replay_dead_letters()] == ["handled"]
    assert [o for _, o in await consumer.replay_dead_letters()] == []
    assert await _issues_from_report(system, json.loads(delivery.value)["data"]["report_id"]) == 1


async def test_a_message_violating_its_contract_is_dead_lettered_at_once(system: System) -> None:
    delivery = await _hazard_delivery(system, category="volcano")
    consumer = system.runtime("issues").consumer
    await consumer(delivery)
    await consumer(Delivery("points.hazard", "k", b"not json at all", []))
    async with system.runtime("issues").db.engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT attempts, error FROM dead_letters ORDER BY created_at"))).all()
    assert [r.attempts for r in rows] == [1, 1]
    assert "violates its contract" in rows[0].error and "not a CloudEvent" in rows[1].error


async def test_housekeeping_purges_old_sent_outbox_rows_inbox_rows_and_keys(system: System) -> None:
    from datetime import timedelta

    from minsheng.platform.housekeeping import purge_platform_tables
    from minsheng.platform.ids import utcnow

    rider = await register_rider(system)
    await system.client.post("/points/hazard-reports", headers={**rider, "Idempotency-Key": "k1"}, json=FIRE)
    await system.client.post("/points/hazard-reports", headers=rider, json={**FIRE, "category": "road"})
    await system.settle()
    db = system.runtime("points").db
    async with db.engine.begin() as conn:  # one sent row is old, one unsent row is old: only the sent one goes
        old = utcnow() - timedelta(days=30)
        t = db.tables.outbox
        hazards = t.c.topic == "points.hazard"  # the two reports' events (the rider's registration has its own)
        first = (await conn.execute(sa.select(t.c.id).where(hazards).order_by(t.c.id).limit(1))).scalar_one()
        await conn.execute(sa.update(t).values(sent_at=old, created_at=old).where(t.c.id == first))
        await conn.execute(sa.update(t).values(sent_at=None, created_at=old).where(hazards, t.c.id != first))
        await conn.execute(sa.update(db.tables.idempotency_keys).values(created_at=old))
    purged = await purge_platform_tables(db, outbox_hours=72, inbox_days=14, idempotency_hours=48)
    assert purged == {"outbox": 1, "processed_events": 0, "idempotency_keys": 1}
    async with db.engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM outbox" + HAZARD))).scalar_one() == 1


async def test_problem_extension_members_never_clash_with_standard_ones(system: System) -> None:
    from minsheng.platform.errors import conflict

    problem = conflict("invalid_transition", "cannot", status="resolved", allowed_from=["submitted"])
    assert problem.status == 409 and problem.extra == {"status": "resolved", "allowed_from": ["submitted"]}
    staff = system.auth("staff", scopes=["*"])
    rider = await register_rider(system)
    await system.client.post("/points/hazard-reports", headers=rider, json=FIRE)
    await system.settle()
    issue = (await system.client.get("/issues/issues", headers=staff)).json()["items"][0]
    await system.client.post(f"/issues/issues/{issue['id']}/reject", headers=staff, json={"reason": "no"})
    r = await system.client.post(f"/issues/issues/{issue['id']}/verify", headers=staff)
    assert r.status_code == 409 and r.json()["status"] == 409 and r.json()["code"] == "invalid_transition"
    assert r.json()["current_status"] == r.json()["current"] == "rejected"
    assert r.json()["allowed_from"] == sorted(["submitted", "accepted", "assigned", "in_progress", "reopened"])


def test_a_status_conflict_names_the_current_status_and_where_the_step_starts() -> None:
    from minsheng.platform.errors import wrong_status

    problem = wrong_status("task_closed", "closed", current_status="verified", allowed_from={"open", "claimed"})
    assert problem.status == 409 and problem.code == "task_closed"
    assert problem.extra == {"current_status": "verified", "allowed_from": ["claimed", "open"]}
    assert wrong_status("diner_inactive", "gone", current_status="deceased").extra == {"current_status": "deceased"}


async def test_a_verified_token_is_remembered_until_it_expires_and_never_across_keys(monkeypatch: Any) -> None:
    import time

    from minsheng.platform import auth
    from minsheng.platform.errors import Problem
    from minsheng.platform.tokens import KeyRing

    settings = Settings(mode="embedded")
    ring, other = KeyRing.ephemeral(), KeyRing.ephemeral()
    verifier, other_verifier = auth.make_verifier(ring, settings), auth.make_verifier(other, settings)
    token = auth.mint_token(ring, settings, "rider-fan", ["rider"], ["community:yunxing"], ttl_seconds=60)
    first = await auth.decode_token(verifier, token)
    assert await auth.decode_token(verifier, token) is first  # remembered: no second signature check
    with pytest.raises(Problem) as forged:
        await auth.decode_token(other_verifier, token)  # another key ring does not know the key
    assert forged.value.code == "invalid_token"

    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 61 + settings.jwt_leeway_seconds)
    with pytest.raises(Problem) as expired:
        await auth.decode_token(verifier, token)
    assert expired.value.code == "invalid_token" and "expired" in str(expired.value.detail).lower()


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_one_migration_history(service: str) -> None:
    """Two branches that each add a migration with the next number give two heads: `migrate` would refuse."""
    from alembic.script import ScriptDirectory

    from minsheng.platform.migrations import alembic_config
    from minsheng.runner import load_spec

    spec = load_spec(service)
    heads = ScriptDirectory.from_config(alembic_config(spec.name, spec.migrations_dir)).get_heads()
    assert len(heads) == 1, f"{service} has migration heads {heads}: renumber one of them"


async def test_an_integrity_error_from_any_view_is_a_409_problem_with_a_stable_code(tmp_path: Any) -> None:
    """Issue 13, item 6, at the platform: the race test over HTTP often loses to the views' own pre-checks
    (``team_name_taken``), so this drives real SQLite integrity errors (and a PostgreSQL-shaped one, SQLSTATE
    only) through the handlers every service app installs."""
    import httpx
    from fastapi import FastAPI

    from minsheng.platform.errors import PROBLEM_JSON, install_problem_handlers

    engine = sa.create_engine(f"sqlite:///{tmp_path}/integrity.db")
    meta = sa.MetaData()
    parents = sa.Table("parents", meta, sa.Column("id", sa.Integer, primary_key=True))
    children = sa.Table(
        "children",
        meta,
        sa.Column("name", sa.String, unique=True),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("parents.id")),
    )
    meta.create_all(engine)

    @sa.event.listens_for(engine, "connect")
    def _foreign_keys(conn: Any, _: Any) -> None:
        conn.execute("PRAGMA foreign_keys = ON")

    engine.dispose()
    with engine.begin() as conn:
        conn.execute(sa.insert(parents), [{"id": 1}])
        conn.execute(sa.insert(children), [{"name": "taken", "parent_id": 1}])

    class _PostgresUnique(Exception):
        sqlstate = "23505"

    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/children/{name}/{parent}")
    def add(name: str, parent: int) -> dict[str, str]:
        with engine.begin() as conn:
            conn.execute(sa.insert(children), [{"name": name, "parent_id": parent}])
        return {"name": name}

    @app.post("/postgres")
    def postgres() -> None:
        raise sa.exc.IntegrityError("INSERT …", {}, _PostgresUnique("violates constraint"))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.post("/children/new/1")).status_code == 200
        for url, code in [
            ("/children/taken/1", "already_exists"),  # the lost race: the same unique value
            ("/children/orphan/2", "reference_gone"),  # what it refers to went away meanwhile
            ("/postgres", "already_exists"),
        ]:
            r = await client.post(url)
            assert r.status_code == 409, (url, r.status_code, r.text)
            assert r.headers["content-type"] == PROBLEM_JSON and r.json()["code"] == code, (url, r.text)
    engine.dispose()
