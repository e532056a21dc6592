"""What the command groups share: the service argument, settings, a service runtime, a time option."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from minsheng import SERVICES
from minsheng.settings import Settings

ServiceArg = Annotated[str | None, typer.Argument(help=f"One of {', '.join(SERVICES)}; all when omitted.")]


def settings_from_env(**overrides: Any) -> Settings:
    return Settings(**overrides)


def service_names(name: str | None) -> list[str]:
    if name is None:
        return list(SERVICES)
    if name not in SERVICES:
        raise typer.BadParameter(f"unknown service {name!r}; choose from {', '.join(SERVICES)}")
    return [name]


def service_runtime(name: str, settings: Settings) -> Any:
    from minsheng.platform.bus.memory import InProcessBus
    from minsheng.platform.service import ServiceRuntime
    from minsheng.runner import load_spec

    return ServiceRuntime(load_spec(name), settings, InProcessBus())


def parse_since(value: str) -> datetime:
    """An ISO 8601 time (a time without offset is UTC) or an age such as ``90m``, ``6h``, ``2d``."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", value.strip())
    if m:
        seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return datetime.now(UTC) - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: give an ISO 8601 time (2026-12-06T03:00Z) or an age (90m, 6h, 2d)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
