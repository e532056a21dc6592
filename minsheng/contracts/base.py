"""What an integration event contract is. One pydantic model per event type and version."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict


class IntegrationEvent(BaseModel):
    """A published fact another service may act on. Consumers ignore fields they do not know (additive
    changes keep the version); a breaking change is a new model with the next ``.vN`` type."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: ClassVar[str]  # minsheng.<service>.<aggregate>.<verb>.v<N>
    topic: ClassVar[str]  # <service>.<aggregate>
    key_field: ClassVar[str]  # the aggregate id: the Kafka key, so one aggregate's events stay ordered

    def partition_key(self) -> str:
        return str(getattr(self, self.key_field))


REGISTRY: dict[str, type[IntegrationEvent]] = {}

E = TypeVar("E", bound=type[IntegrationEvent])


def contract(cls: E) -> E:
    """Register an event model so the schema export, AsyncAPI document and consumers can find it."""
    if cls.event_type in REGISTRY:
        raise ValueError(f"duplicate event type {cls.event_type}")
    service, _ = cls.topic.split(".", 1)
    if not cls.event_type.startswith(f"minsheng.{service}."):
        raise ValueError(f"{cls.event_type} is not owned by the topic's service {service}")
    if cls.key_field not in cls.__pydantic_fields__:
        raise ValueError(f"{cls.__name__}.key_field {cls.key_field!r} is not a field")
    REGISTRY[cls.event_type] = cls
    return cls


def example(**fields: Any) -> ConfigDict:
    """An event's ``model_config`` with one example of it (the JSON schemas and the AsyncAPI document show it)."""
    return ConfigDict(json_schema_extra={"examples": [fields]})


class Origin(BaseModel):
    """Where something came from in another service, e.g. ``points / hazard_report / <id>``."""

    model_config = ConfigDict(frozen=True)

    service: str
    kind: str
    id: str
