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
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from minsheng.platform.privacy import FieldCipher
from tests.support.client import System
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
                            f'SELECT count(*) FROM "{table}" WHERE CAST("{column}" AS TEXT) LIKE ?',
                            (f"%{secret}%",)).fetchone()[0]
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
    r = await s.client.post("/visits/residents", headers=admin, json={
        "household_id": household["id"], "name": "赵奶奶", "phone": resident_phone, "id_number": resident_id_number,
        "health_notes": resident_notes})
    assert r.status_code == 201, r.text
    resident = r.json()
    community = resident["community"]
    canteen = (await s.client.get("/canteen/canteens", headers=admin)).json()["items"][0]
    r = await s.client.post("/canteen/diners", headers=admin, json={
        "canteen_id": canteen["id"], "name": "钱爷爷", "birth_date": "1938-11-02", "community": canteen["community"],
        "phone": diner_phone, "id_number": diner_id_number, "health_notes": diner_notes})
    assert r.status_code == 201, r.text
    diner = r.json()
    await s.settle()

    # Masked in every answer about them.
    answers = [resident, diner,
               (await s.client.get(f"/visits/residents/{resident['id']}", headers=admin)).json(),
               (await s.client.get("/visits/residents", headers=admin, params={"limit": 200})).json(),
               (await s.client.get(f"/canteen/diners/{diner['id']}", headers=admin)).json(),
               (await s.client.get("/canteen/diners", headers=admin, params={"limit": 200})).json()]
    unmasked_in_answers = [leak for a in answers for leak in leaks(_json(a))]
    notes_in_answers = sum(_json(a).count(marker) for a in answers)
    assert resident["phone"] == "137****5678" and resident["id_number"] == "110105********" + resident_id_number[-4:]

    # Encrypted at rest: read every database file directly.
    at_rest = cleartext_hits(tmp_path, [resident_id_number, diner_id_number, marker])
    cipher = FieldCipher(s.settings.field_encryption_key.get_secret_value())  # type: ignore[union-attr]
    conn = sqlite3.connect(tmp_path / "visits.db")
    try:
        stored_hash = conn.execute("SELECT id_number_hash FROM residents WHERE id = ?",
                                   (uuid.UUID(resident["id"]).hex,)).fetchone()
        if stored_hash is None:  # UUIDs may be stored with dashes
            stored_hash = conn.execute("SELECT id_number_hash FROM residents WHERE id = ?",
                                       (resident["id"],)).fetchone()
    finally:
        conn.close()
    keyed = stored_hash is not None and stored_hash[0] == cipher.lookup_hash(resident_id_number) \
        and stored_hash[0] != hashlib.sha256(resident_id_number.encode()).hexdigest()
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
    audit = (await s.client.get("/visits/pii-audit", headers=auditor,
                                params={"resident_id": resident["id"], "limit": 200})).json()["items"]
    audit_without_permission = (await s.client.get("/visits/pii-audit", headers=staff)).status_code

    sensitive_url = f"/canteen/diners/{diner['id']}/sensitive"
    canteen_staff = s.auth("staff", sub="pipl-canteen-staff", scopes=[f"canteen:{canteen['id']}", "pii:reveal"])
    outsiders = {role: s.auth(role, sub=f"pipl-{role}", scopes=["community:nowhere"])
                 for role in ("resident", "rider", "merchant", "grid_worker", "staff")}
    canteen_refused = {role: (await s.client.get(sensitive_url, headers=h, params={"purpose": "curious"})).status_code
                       for role, h in outsiders.items()}
    canteen_reads = [await s.client.get(sensitive_url, headers=canteen_staff, params={"purpose": "meal planning"})
                     for _ in range(REVEALS)]
    access_log = (await s.client.get(f"/canteen/diners/{diner['id']}/access-log", headers=canteen_staff,
                                     params={"limit": 200})).json()["items"]

    # Events: no plaintext sensitive field in any payload any service wrote. The ones about these two people:
    # a need of the resident escalated to the issues service, the resident moving away.
    r = await s.client.post("/visits/needs", headers=admin, json={
        "household_id": household["id"], "resident_id": resident["id"], "category": "mobility_aid",
        "title": "Needs a walking stick", "description": "Cannot walk far since the fall"})
    assert r.status_code == 201, r.text
    r = await s.client.post(f"/visits/needs/{r.json()['id']}/escalate", headers=admin, json={"note": "no stock"})
    assert r.status_code == 200, r.text
    r = await s.client.post(f"/visits/residents/{resident['id']}/status", headers=admin,
                            json={"status": "moved", "effective_date": "2026-11-01"})
    assert r.status_code == 200, r.text
    await s.settle()
    payloads = outbox_payloads(tmp_path)
    in_events = [f"{svc} {typ}" for svc, typ, p in payloads
                 if any(v in p for v in (resident_id_number, diner_id_number, marker, resident_phone, diner_phone))
                 or leaks(p)]

    record("personal_data", {
        "at_rest_cleartext_hits": len(at_rest), "keyed_lookup_hash": keyed,
        "lookup_by_id_number": [found.status_code, found_diner.status_code],
        "unmasked_in_answers": len(unmasked_in_answers), "health_notes_in_answers": notes_in_answers,
        "reveal_without_permission": sorted(set(refused)), "reveals_with_permission": REVEALS,
        "reveal_audit_records": len(audit), "audit_coverage_percent": round(100 * len(audit) / REVEALS),
        "audit_trail_without_permission": audit_without_permission,
        "canteen_sensitive_outsiders": canteen_refused, "canteen_sensitive_reads": REVEALS,
        "canteen_access_log_records": len(access_log),
        "canteen_access_coverage_percent": round(100 * len(access_log) / REVEALS),
        "events_scanned": len(payloads), "events_with_plaintext_personal_data": len(in_events),
        "examples": {"at_rest": at_rest[:5], "answers": unmasked_in_answers[:5], "events": in_events[:5]},
    })
    assert at_rest == [], at_rest
    assert keyed, "the look-up column is the keyed hash of the ID number"
    assert found.status_code == 200 and found.json()["id"] == resident["id"]
    assert found_diner.status_code == 200 and found_diner.json()["id"] == diner["id"]
    assert unmasked_in_answers == [] and notes_in_answers == 0
    assert set(refused) == {403}
    assert all(r.status_code == 200 and r.json()["id_number"] == resident_id_number
               and r.json()["health_notes"] == resident_notes for r in revealed)
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
    jobs = {name: [job for job in s.runtime(name).spec.jobs if "retention" in job.name or "purge" in job.name]
            for name in ("visits", "canteen")}
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
    for label, seq, left_on in (("long_gone", "731", "2016-01-15"), ("just_moved", "732", "2026-11-01"),
                                ("still_here", "733", None)):
        r = await s.client.post("/visits/residents", headers=admin, json={
            "household_id": household["id"], "name": f"孙{label}", "phone": f"1350000{seq}1",
            "id_number": id_number("19300101", seq), "health_notes": f"notes of {label}"})
        assert r.status_code == 201, r.text
        people[label] = r.json()["id"]
        if left_on:
            r = await s.client.post(f"/visits/residents/{people[label]}/status", headers=admin,
                                    json={"status": "moved", "effective_date": left_on})
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
            row = conn.execute("SELECT id_number_enc, id_number_hash, phone, health_notes_enc FROM residents "
                               "WHERE id = ? OR id = ?", (rid, uuid.UUID(rid).hex)).fetchone()
            kept[label] = [value is not None for value in row]
    finally:
        conn.close()
    looked_up = await s.client.post("/visits/residents/lookup", headers=admin,
                                    json={"id_number": id_number("19300101", "731")})
    record("personal_data_retention", {"retention_days": _retention_days(), "fields_kept": kept,
                                       "lookup_after_retention": looked_up.status_code})
    assert kept["long_gone"] == [False, False, False, False], kept
    assert kept["just_moved"] == [True, True, True, True] and kept["still_here"] == [True, True, True, True]
    assert looked_up.status_code == 404, "the keyed hash went with the number"


def _retention_days() -> int:
    from services.visits.config import visits_settings

    return visits_settings().pii_retention_days


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
        offending += [f"{model.__name__}.{n}" for n in names
                      if sensitive.search(n) and not n.endswith(("_hash", "_masked")) and n not in declared]
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
