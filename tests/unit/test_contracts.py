"""Event contracts: committed schemas match the models, every example validates, topics follow the rules."""

from __future__ import annotations

import json

import jsonschema
import pytest

from minsheng.contracts import REGISTRY
from minsheng.contracts.export import SCHEMAS_DIR, event_schema, render_all


def test_committed_schemas_match_the_models() -> None:
    for name, text in render_all().items():
        path = SCHEMAS_DIR / name
        assert path.exists(), f"{name} missing: run `minsheng contracts export`"
        assert path.read_text(encoding="utf-8") == text, f"{name} is stale: run `minsheng contracts export`"


@pytest.mark.parametrize("event_type", sorted(REGISTRY))
def test_examples_validate_against_schema_and_model(event_type: str) -> None:
    model = REGISTRY[event_type]
    schema = event_schema(event_type)
    examples = schema.get("examples") or []
    assert examples, f"{event_type} needs an example"
    for example in examples:
        jsonschema.validate(example, schema)
        event = model.model_validate(example)
        assert event.partition_key() == str(example[model.key_field])
        assert json.loads(event.model_dump_json()) is not None


@pytest.mark.parametrize("event_type", sorted(REGISTRY))
def test_naming_rules(event_type: str) -> None:
    model = REGISTRY[event_type]
    service, aggregate = model.topic.split(".")
    assert event_type.startswith(f"minsheng.{service}.") and event_type.rsplit(".", 1)[1].startswith("v")
    assert service in {"visits", "issues", "points", "canteen", "identity", "notify"} and aggregate


def test_sensitive_fields_never_travel_in_events() -> None:
    """Only an event that declares its personal data (the identity contact event, read by notify alone) may
    carry a phone; ID numbers and health notes never travel."""
    forbidden = {"phone", "id_number", "health_notes", "id_card"}
    for event_type, model in REGISTRY.items():
        declared: frozenset[str] = getattr(model, "personal_data", frozenset())
        assert not (forbidden - declared) & set(model.model_fields), event_type
        assert not {"id_number", "health_notes", "id_card"} & declared, event_type
