"""A service's ``ServiceSpec`` read from the fixed layout every service package has (docs/platform.md), so
that its app.py states only what is its own.

The platform names no service: the package is the one the calling app.py belongs to."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from minsheng.platform.service import ServiceSpec


def service_spec(app_module: str, *, title: str, description: str, **own: Any) -> ServiceSpec:
    """The spec of the service whose ``app`` module is ``app_module`` (pass ``__name__``).

    From the layout: the name (the package's), ``models.metadata`` and ``models.platform_tables``,
    ``views.router``, ``handlers.HANDLERS``, ``jobs.JOBS``, ``demo.seed_demo`` where there is a ``demo``
    module, and the ``migrations`` folder beside them. ``own`` adds the optional fields (lifespan, sealed,
    …) or replaces a conventional one (``jobs=``)."""
    package = app_module.rpartition(".")[0]
    models = _part(package, "models")
    demo = _part(package, "demo", optional=True)
    conventional: dict[str, Any] = {
        "metadata": models.metadata,
        "tables": models.platform_tables,
        "router": _part(package, "views").router,
        "migrations_dir": Path(str(sys.modules[package].__file__)).parent / "migrations",
        "handlers": _part(package, "handlers").HANDLERS,
        "seed_demo": demo.seed_demo if demo else None,
    }
    if "jobs" not in own:
        conventional["jobs"] = _part(package, "jobs").JOBS
    name = package.rpartition(".")[2]
    return ServiceSpec(name=name, title=title, description=description, **(conventional | own))


def _part(package: str, module: str, *, optional: bool = False) -> Any:
    name = f"{package}.{module}"
    try:
        part: ModuleType = importlib.import_module(name)
    except ModuleNotFoundError as missing:
        if optional and missing.name == name:
            return None
        raise
    return part
