"""JSON Schema per event and an AsyncAPI 3.0 document for the bus, generated from the contract models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from minsheng.contracts import REGISTRY

SCHEMAS_DIR = Path(__file__).parent / "schemas"


def event_schema(event_type: str) -> dict[str, Any]:
    model = REGISTRY[event_type]
    schema = model.model_json_schema()
    schema["$id"] = f"https://minsheng.dev/schemas/{event_type}.json"
    schema["x-topic"] = model.topic
    schema["x-key"] = model.key_field
    return schema


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type, model in sorted(REGISTRY.items()):
        name = event_type.removeprefix("minsheng.").replace(".", "_")
        messages[name] = {
            "name": event_type,
            "title": model.__name__,
            "summary": (model.__doc__ or "").strip().split("\n")[0],
            "contentType": "application/cloudevents+json",
            "payload": {"$ref": f"./{event_type}.json"},
            "bindings": {"kafka": {"key": {"type": "string", "description": f"the {model.key_field}"}}},
        }
        channel = channels.setdefault(model.topic.replace(".", "_"), {"address": model.topic, "messages": {}})
        channel["messages"][name] = {"$ref": f"#/components/messages/{name}"}
    for channel_name, channel in channels.items():
        operations[f"publish_{channel_name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_name}"},
            "messages": [{"$ref": f"#/channels/{channel_name}/messages/{m}"} for m in channel["messages"]],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Minsheng integration events",
            "version": "1.0.0",
            "description": "CloudEvents 1.0, structured mode. One topic per owning aggregate; key = "
            "aggregate id; consumer group = consuming service; dead letters on "
            "<service>.dlq.",
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def render_all() -> dict[str, str]:
    files = {f"{t}.json": json.dumps(event_schema(t), indent=2, ensure_ascii=False) + "\n" for t in REGISTRY}
    files["asyncapi.json"] = json.dumps(asyncapi(), indent=2, ensure_ascii=False) + "\n"
    return files


def write_all(out: Path = SCHEMAS_DIR) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
