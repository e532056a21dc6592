"""What the issues routes share: who is calling, the catalogue managers, page sizes, the field cipher."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field

from minsheng.platform.auth import Principal, Role, current_principal, require
from minsheng.platform.errors import Problem
from minsheng.platform.inputs import Day
from minsheng.platform.pagination import PageRequest

S = TypeVar("S", bound=BaseModel)


class CataloguePage(PageRequest):
    """A page of a catalogue list: the whole catalogue usually fits in one."""

    limit: Annotated[int, Field(ge=1, le=500)] = 200


async def catalogue_manager(who: Principal = Depends(current_principal)) -> Principal:
    """The catalogue is county-wide: admins, or staff with the whole district (``*``) or ``catalogue:manage``."""
    if Role.admin in who.roles or (who.has(Role.staff) and ("*" in who.scopes or "catalogue:manage" in who.scopes)):
        return who
    raise Problem(
        403,
        "forbidden_role",
        "Not allowed for your role",
        "Managing the catalogue needs admin, or staff with scope * or catalogue:manage.",
    )


Caller = Annotated[Principal, Depends(current_principal)]
Staff = Annotated[Principal, Depends(require(Role.staff))]
Manager = Annotated[Principal, Depends(catalogue_manager)]
CataloguePageQuery = Annotated[CataloguePage, Query()]
FromQ = Annotated[Day | None, Query(alias="from", description="First local day (YYYY-MM-DD)")]
ToQ = Annotated[Day | None, Query(alias="to", description="Last local day, inclusive")]
