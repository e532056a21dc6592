"""Personal data (PIPL), checked from the outside and from the database files themselves:

- ID numbers and health notes are encrypted at rest: no table of any service holds them in clear;
- look-ups go by a keyed hash (HMAC with the field key, not a bare SHA-256 anyone could precompute);
- every response masks phones and ID numbers (the fuzzing run checks all the others);
- revealing needs a permission, and every reveal leaves an audit record (100 %);
- event payloads carry no plaintext sensitive field;
- a retention job deletes what has expired.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from minsheng.platform.privacy import FieldCipher
from tests.conftest import embedded_settings
from tests.support.client import System, running_system
from tests.support.pii import leaks
from tests.support.reliability import record

REVEALS = 10


def id_number(birth: str, seq: str) -> str:
    """A valid 18-character resident ID number (GB 11643 check digit)."""
    body = "110105" + birth + seq
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


def cleartext_hits(data_dir: Path, secrets: list[str]) -> list[str]:
    """Every (database, table, column) whose stored text contains one of ``secrets``."""
    hits = []
    for db_file in sorted(data_dir.glob("*.db")):
        conn = sqlite3.connect(db_file)
        try:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
                for column in columns:
                    for secret in secrets:
                        found = conn.execute(
                            f'SELECT count(*) FROM "{table}" WHERE CAST("{column}" AS TEXT) LIKE ?', (f"%{secret}%",)
                        ).fetchone()[0]
                        if found:
                            hits.append(f"{db_file.name}:{table}.{column} holds {secret[:6]}…")
        finally:
            conn.close()
    return hits


def outbox_payloads(data_dir: Path) -> list[tuple[str, str, str]]:
    rows = []
    for db_file in sorted(data_dir.glob("*.db")):
        conn = sqlite3.connect(db_file)
        try:
            rows += [(db_file.stem, t, p) for t, p in conn.execute("SELECT type, payload FROM outbox")]
        finally:
            conn.close()
    return rows


async def test_personal_data_is_encrypted_masked_revealed_with_permission_and_audited(
    demo_system: System, tmp_path: Path
) -> None:
    s = demo_system
    admin = s.auth("admin", sub="pipl-admin")
    marker = uuid.uuid4().hex[:8]
    resident_id_number, diner_id_number = id_number("19400315", "123"), id_number("19381102", "456")
    resident_phone, diner_phone = "13712345678", "13687654321"
    resident_notes, diner_notes = f"左腿骨折，拄拐 {marker}", f"糖尿病，低盐饮食 {marker}"

    household = (await s.client.get("/visits/households", headers=admin, params={"limit": 1})).json()["items"][0]
    resident = await _new_resident(s, admin, household, "赵奶奶", resident_phone, resident_id_number, resident_notes)
    community = resident["community"]
    diner = await _new_diner(s, admin, "钱爷爷", diner_phone, diner_id_number, diner_notes)
    await s.settle()

    # Masked in every answer about them.
    answers = [
        resident,
        diner,
        (await s.client.get(f"/visits/residents/{resident['id']}", headers=admin)).json(),
        (await s.client.get("/visits/residents", headers=admin, params={"limit": 200})).json(),
        (await s.client.get(f"/canteen/diners/{diner['id']}", headers=admin)).json(),
        (await s.client.get("/canteen/diners", headers=admin, params={"limit": 200})).json(),
    ]
    unmasked_in_answers = [leak for a in answers for leak in leaks(_json(a))]
    notes_in_answers = sum(_json(a).count(marker) for a in answers)
    assert resident["phone"] == "137****5678" and resident["id_number"] == "110105********" + resident_id_number[-4:]

    # Encrypted at rest: read every database file directly.
    at_rest = cleartext_hits(tmp_path, [resident_id_number, diner_id_number, marker])
    cipher = FieldCipher(s.settings.field_encryption_key.get_secret_value())  # type: ignore[union-attr]
    conn = sqlite3.connect(tmp_path / "visits.db")
    try:
        stored_hash = conn.execute(
            "SELECT id_number_hash FROM residents WHERE id = ?", (uuid.UUID(resident["id"]).hex,)
        ).fetchone()
        if stored_hash is None:  # UUIDs may be stored with dashes
            stored_hash = conn.execute(
                "SELECT id_number_hash FROM residents WHERE id = ?", (resident["id"],)
            ).fetchone()
    finally:
        conn.close()
    keyed = (
        stored_hash is not None
        and stored_hash[0] == cipher.lookup_hash(resident_id_number)
        and stored_hash[0] != hashlib.sha256(resident_id_number.encode()).hexdigest()
    )
    found = await s.client.post("/visits/residents/lookup", headers=admin, json={"id_number": resident_id_number})
    found_diner = await s.client.post("/canteen/diners/lookup", headers=admin, json={"id_number": diner_id_number})

    # Reveal: refused without the permission (nothing audited), audited every time with it.
    staff = s.auth("staff", sub="pipl-staff", scopes=[f"community:{community}"])
    revealer = s.auth("staff", sub="pipl-revealer", scopes=[f"community:{community}", "pii:reveal"])
    auditor = s.auth("staff", sub="pipl-auditor", scopes=[f"community:{community}", "pii:audit"])
    reveal_url = f"/visits/residents/{resident['id']}/reveal"
    body = {"fields": ["phone", "id_number", "health_notes"], "reason": "arranging a home visit"}
    refused = [(await s.client.post(reveal_url, headers=staff, json=body)).status_code for _ in range(REVEALS)]
    revealed = [await s.client.post(reveal_url, headers=revealer, json=body) for _ in range(REVEALS)]
    audit = (
        await s.client.get("/visits/pii-audit", headers=auditor, params={"resident_id": resident["id"], "limit": 200})
    ).json()["items"]
    audit_without_permission = (await s.client.get("/visits/pii-audit", headers=staff)).status_code

    sensitive_url = f"/canteen/diners/{diner['id']}/sensitive"
    canteen_staff = s.auth("staff", sub="pipl-canteen-staff", scopes=[f"canteen:{diner['canteen_id']}", "pii:reveal"])
    outsiders = {
        role: s.auth(role, sub=f"pipl-{role}", scopes=["community:nowhere"])
        for role in ("resident", "rider", "merchant", "grid_worker", "staff")
    }
    canteen_refused = {
        role: (await s.client.get(sensitive_url, headers=h, params={"purpose": "curious"})).status_code
        for role, h in outsiders.items()
    }
    canteen_reads = [
        await s.client.get(sensitive_url, headers=canteen_staff, params={"purpose": "meal planning"})
        for _ in range(REVEALS)
    ]
    access_log = (
        await s.client.get(f"/canteen/diners/{diner['id']}/access-log", headers=canteen_staff, params={"limit": 200})
    ).json()["items"]

    # Events: no plaintext sensitive field in any payload any service wrote. The ones about these two people:
    # a need of the resident escalated to the issues service, the resident moving away.
    r = await s.client.post(
        "/visits/needs",
        headers=admin,
        json={
            "household_id": household["id"],
            "resident_id": resident["id"],
            "category": "mobility_aid",
            "title": "Needs a walking stick",
            "description": "Cannot walk far since the fall",
        },
    )
    assert r.status_code == 201, r.text
    r = await s.client.post(f"/visits/needs/{r.json()['id']}/escalate", headers=admin, json={"note": "no stock"})
    assert r.status_code == 200, r.text
    r = await s.client.post(
        f"/visits/residents/{resident['id']}/status",
        headers=admin,
        json={"status": "moved", "effective_date": "2026-11-01"},
    )
    assert r.status_code == 200, r.text
    await s.settle()
    payloads = outbox_payloads(tmp_path)
    in_events = [
        f"{svc} {typ}"
        for svc, typ, p in payloads
        if any(v in p for v in (resident_id_number, diner_id_number, marker, resident_phone, diner_phone)) or leaks(p)
    ]

    record(
        "personal_data",
        {
            "at_rest_cleartext_hits": len(at_rest),
            "keyed_lookup_hash": keyed,
            "lookup_by_id_number": [found.status_code, found_diner.status_code],
            "unmasked_in_answers": len(unmasked_in_answers),
            "health_notes_in_answers": notes_in_answers,
            "reveal_without_permission": sorted(set(refused)),
            "reveals_with_permission": REVEALS,
            "reveal_audit_records": len(audit),
            "audit_coverage_percent": round(100 * len(audit) / REVEALS),
            "audit_trail_without_permission": audit_without_permission,
            "canteen_sensitive_outsiders": canteen_refused,
            "canteen_sensitive_reads": REVEALS,
            "canteen_access_log_records": len(access_log),
            "canteen_access_coverage_percent": round(100 * len(access_log) / REVEALS),
            "events_scanned": len(payloads),
            "events_with_plaintext_personal_data": len(in_events),
            "examples": {"at_rest": at_rest[:5], "answers": unmasked_in_answers[:5], "events": in_events[:5]},
        },
    )
    assert at_rest == [], at_rest
    assert keyed, "the look-up column is the keyed hash of the ID number"
    assert found.status_code == 200 and found.json()["id"] == resident["id"]
    assert found_diner.status_code == 200 and found_diner.json()["id"] == diner["id"]
    assert unmasked_in_answers == [] and notes_in_answers == 0
    assert set(refused) == {403}
    assert all(
        r.status_code == 200
        and r.json()["id_number"] == resident_id_number
        and r.json()["health_notes"] == resident_notes
        for r in revealed
    )
    assert len(audit) == REVEALS, "every reveal audited, the refused ones not"
    assert {a["reason"] for a in audit} == {body["reason"]} and {a["actor"] for a in audit} == {"pipl-revealer"}
    assert {r.json()["audit_id"] for r in revealed} == {a["id"] for a in audit}
    assert audit_without_permission == 403
    assert all(status in (403, 404) for status in canteen_refused.values()), canteen_refused
    assert all(r.status_code == 200 and r.json()["health_notes"] == diner_notes for r in canteen_reads)
    assert len(access_log) == REVEALS
    assert payloads and in_events == [], in_events


async def test_a_retention_job_deletes_personal_data_that_has_expired(demo_system: System) -> None:
    """Personal data kept past its purpose must go: each service holding ID numbers or health notes runs a
    job named for retention, and it clears the sensitive fields of people who left long ago."""
    s = demo_system
    jobs = {
        name: [job for job in s.runtime(name).spec.jobs if "retention" in job.name or "purge" in job.name]
        for name in ("visits", "canteen")
    }
    assert all(jobs.values()), jobs
    for name, found in jobs.items():  # once against the demo data: they run without error
        for job in found:
            assert isinstance(await job.run(s.runtime(name)), int), (name, job.name)


async def test_the_retention_job_deletes_personal_data_of_residents_who_left_long_ago(
    demo_system: System, tmp_path: Path
) -> None:
    """Personal data kept past its purpose must go: residents who moved away or died longer ago than the
    retention period lose their ID number (and its look-up hash), phone and health notes; the others keep them."""
    s = demo_system
    admin = s.auth("admin", sub="retention-admin")
    household = (await s.client.get("/visits/households", headers=admin, params={"limit": 1})).json()["items"][0]
    people = {}
    for label, seq, left_on in (
        ("long_gone", "731", "2016-01-15"),
        ("just_moved", "732", "2026-11-01"),
        ("still_here", "733", None),
    ):
        r = await s.client.post(
            "/visits/residents",
            headers=admin,
            json={
                "household_id": household["id"],
                "name": f"孙{label}",
                "phone": f"1350000{seq}1",
                "id_number": id_number("19300101", seq),
                "health_notes": f"notes of {label}",
            },
        )
        assert r.status_code == 201, r.text
        people[label] = r.json()["id"]
        if left_on:
            r = await s.client.post(
                f"/visits/residents/{people[label]}/status",
                headers=admin,
                json={"status": "moved", "effective_date": left_on},
            )
            assert r.status_code == 200, r.text
    retention = [job for job in s.runtime("visits").spec.jobs if "retention" in job.name]
    assert retention, "the visits service runs a retention job"
    for job in retention:
        await job.run(s.runtime("visits"))
        await job.run(s.runtime("visits"))  # twice: idempotent

    conn = sqlite3.connect(tmp_path / "visits.db")
    try:
        kept = {}
        for label, rid in people.items():
            row = conn.execute(
                "SELECT id_number_enc, id_number_hash, phone, health_notes_enc FROM residents WHERE id = ? OR id = ?",
                (rid, uuid.UUID(rid).hex),
            ).fetchone()
            kept[label] = [value is not None for value in row]
    finally:
        conn.close()
    looked_up = await s.client.post(
        "/visits/residents/lookup", headers=admin, json={"id_number": id_number("19300101", "731")}
    )
    record(
        "personal_data_retention",
        {"retention_days": _retention_days(), "fields_kept": kept, "lookup_after_retention": looked_up.status_code},
    )
    assert kept["long_gone"] == [False, False, False, False], kept
    assert kept["just_moved"] == [True, True, True, True] and kept["still_here"] == [True, True, True, True]
    assert looked_up.status_code == 404, "the keyed hash went with the number"


def _retention_days() -> int:
    from services.visits import config

    return config.get().pii_retention_days


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


def test_no_event_contract_has_a_field_for_plaintext_personal_data() -> None:
    """Every published event schema: a field about a phone, an ID number or health is a keyed hash or masked,
    unless the event declares it as personal data it must carry (``personal_data``: a phone, for the notify
    service alone — never an ID number or health notes)."""
    import importlib
    import pkgutil
    import re as _re

    import minsheng.contracts
    from minsheng.contracts.base import IntegrationEvent

    for module in pkgutil.iter_modules(minsheng.contracts.__path__):  # every published contract
        importlib.import_module(f"minsheng.contracts.{module.name}")

    sensitive = _re.compile(r"phone|mobile|id_?number|id_?card|identity|health", _re.IGNORECASE)
    events = _all_subclasses(IntegrationEvent)
    offending = []
    for model in events:
        declared: frozenset[str] = getattr(model, "personal_data", frozenset())
        schema = model.model_json_schema()
        if declared:  # what a declared field holds (e.g. a family member's phone) is declared with it
            schema["properties"] = {k: v for k, v in schema.get("properties", {}).items() if k not in declared}
            schema.pop("$defs", None)
        names = _property_names(schema)
        offending += [
            f"{model.__name__}.{n}"
            for n in names
            if sensitive.search(n) and not n.endswith(("_hash", "_masked")) and n not in declared
        ]
        assert not {"id_number", "health_notes", "id_card"} & declared, model.__name__
    assert len(events) >= 10 and offending == [], offending


def _all_subclasses(cls: type[Any]) -> list[type[Any]]:
    out: list[type[Any]] = []
    sub: type[Any]
    for sub in cls.__subclasses__():
        out += [sub, *_all_subclasses(sub)]
    return out


def _property_names(schema: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "properties" and isinstance(value, dict):
                names |= set(value)
            names |= _property_names(value)
    elif isinstance(schema, list):
        for value in schema:
            names |= _property_names(value)
    return names


PHONE_RE = re.compile(r"(?<![0-9A-Za-z+/=])1[3-9]\d{9}(?![0-9A-Za-z+/=])")
ID_NUMBER_RE = re.compile(r"(?<![0-9A-Za-z+/=])\d{17}[\dXx](?![0-9A-Za-z+/=])")


async def _created(s: System, path: str, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    r = await s.client.post(path, headers=headers, json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def _new_resident(
    s: System, admin: dict[str, str], household: dict[str, Any], name: str, phone: str, id_number: str, notes: str
) -> dict[str, Any]:
    body = {"household_id": household["id"], "name": name, "phone": phone, "id_number": id_number}
    return await _created(s, "/visits/residents", admin, body | {"health_notes": notes})


async def _new_diner(
    s: System, admin: dict[str, str], name: str, phone: str, id_number: str, notes: str
) -> dict[str, Any]:
    """A diner born 1938-11-02 at the first canteen, in its community."""
    canteen = (await s.client.get("/canteen/canteens", headers=admin)).json()["items"][0]
    body = {
        "canteen_id": canteen["id"],
        "name": name,
        "birth_date": "1938-11-02",
        "community": canteen["community"],
        "phone": phone,
        "id_number": id_number,
        "health_notes": notes,
    }
    return await _created(s, "/canteen/diners", admin, body)


async def _people_with_phones(s: System, marker: str) -> dict[str, str]:
    """One person of every kind that has a phone (resident, grid worker, diner, family member, rider, merchant
    contact), registered through the API; returns what must not be found in clear."""
    admin = s.auth("admin", sub="pipl-admin")
    household = (await s.client.get("/visits/households", headers=admin, params={"limit": 1})).json()["items"][0]
    secrets = {
        "resident_phone": "13712340001",
        "worker_phone": "13712340002",
        "diner_phone": "13712340003",
        "family_phone": "13712340004",
        "rider_phone": "13712340005",
        "merchant_phone": "13712340006",
        "resident_id_number": id_number("19400315", "321"),
        "diner_id_number": id_number("19381102", "654"),
        "notes": f"心脏病 {marker}",
    }
    await _new_resident(
        s, admin, household, "孙奶奶", secrets["resident_phone"], secrets["resident_id_number"], secrets["notes"]
    )
    worker = {"name": "网格员", "community": household["community"], "subject": f"gw-{marker}"}
    await _created(s, "/visits/grid-workers", admin, worker | {"phone": secrets["worker_phone"]})
    diner = await _new_diner(s, admin, "李爷爷", secrets["diner_phone"], secrets["diner_id_number"], secrets["notes"])
    son = {"subject": f"son-{marker}", "name": "李儿子", "relation": "son", "phone": secrets["family_phone"]}
    await _created(s, f"/canteen/diners/{diner['id']}/family", admin, son)
    rider = {"name": "骑手", "platform": "meituan", "phone": secrets["rider_phone"]}
    await _created(s, "/points/riders", s.auth("rider", sub=f"rider-{marker}"), rider)
    shop = {"name": "爱心面馆", "community": household["community"], "contact_name": "王老板"}
    await _created(s, "/points/merchants", admin, shop | {"contact_phone": secrets["merchant_phone"]})
    await s.settle()
    return secrets


def _scan(texts: list[tuple[str, str]], secrets: dict[str, str]) -> list[str]:
    """(place, stored text) → every place holding a phone, an ID number or one of ``secrets`` in clear."""
    hits = []
    for place, text in texts:
        found = PHONE_RE.findall(text) + ID_NUMBER_RE.findall(text) + [v for v in secrets.values() if v in text]
        if found:
            hits.append(f"{place}: {sorted(set(found))[:3]}")
    return hits


def _none_in_clear(texts: list[tuple[str, str]], secrets: dict[str, str], figure: str, mode: str) -> None:
    """None of the ``secrets`` stands in clear among the stored ``texts`` (thousands of them): recorded as
    ``figure``, then asserted."""
    hits = _scan(texts, secrets)
    record(
        figure,
        {
            "mode": mode,
            "values_scanned": len(texts),
            "phones_id_numbers_health_notes_in_clear": len(hits),
            "examples": hits[:10],
        },
    )
    assert len(texts) > 10_000 and hits == [], hits[:20]


def _sqlite_texts(data_dir: Path) -> list[tuple[str, str]]:
    texts = []
    for db_file in sorted(data_dir.glob("*.db")):
        conn = sqlite3.connect(db_file)
        try:
            for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
                for column in columns:
                    for (value,) in conn.execute(f'SELECT CAST("{column}" AS TEXT) FROM "{table}"'):
                        if value:
                            texts.append((f"{db_file.stem}.{table}.{column}", value))
        finally:
            conn.close()
    return texts


async def _postgres_texts(s: System) -> list[tuple[str, str]]:
    texts = []
    for name in s.app.state.runtimes:
        async with s.runtime(name).db.engine.connect() as conn:
            columns = (
                await conn.execute(
                    sa.text(
                        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
                        "AND data_type IN ('character varying', 'text', 'jsonb', 'json', 'character')"
                    )
                )
            ).all()
            for table, column in columns:
                rows = await conn.execute(sa.text(f'SELECT CAST("{column}" AS TEXT) FROM "{table}"'))
                texts += [(f"{name}.{table}.{column}", v) for (v,) in rows if v]
    return texts


async def test_no_phone_id_number_or_health_note_in_clear_in_any_embedded_database_file(
    demo_system: System, tmp_path: Path
) -> None:
    secrets = await _people_with_phones(demo_system, uuid.uuid4().hex[:8])
    _none_in_clear(_sqlite_texts(tmp_path), secrets, "personal_data_at_rest", "embedded")


@pytest.mark.integration
async def test_no_phone_id_number_or_health_note_in_clear_in_any_postgresql_database(
    tmp_path: Path, pg_template: str
) -> None:
    async with running_system(embedded_settings(tmp_path, database_url=pg_template), demo=True) as s:
        secrets = await _people_with_phones(s, uuid.uuid4().hex[:8])
        texts = await _postgres_texts(s)
    _none_in_clear(texts, secrets, "personal_data_at_rest_postgres", "postgresql")
