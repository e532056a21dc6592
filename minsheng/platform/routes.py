"""Small helpers for the shapes every service's routes repeat: commit once (a lost race is a 409, never a 500),
convert a row to its public schema (``page.map(from_row(TeamPublic))``), and the field cipher as a dependency."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
from fastapi import Depends
from pydantic import BaseModel

from minsheng.platform.errors import conflict, unique_rule_broken
from minsheng.platform.i18n import Message
from minsheng.platform.privacy import FieldCipher, field_cipher
from minsheng.platform.service import Runtime
from minsheng.platform.uow import UnitOfWork

M = TypeVar("M", bound=BaseModel)


async def commit_or_conflict(uow: UnitOfWork, detail: Message, metadata: sa.MetaData) -> None:
    """Commit once. A unique constraint lost to a concurrent request answers the 409 of its
    :class:`~minsheng.platform.errors.UniqueRule` in ``metadata`` (the code the request's own check gives), and
    any other one 409 ``concurrent_change`` with ``detail``."""
    try:
        await uow.commit()
    except sa.exc.IntegrityError as exc:
        await uow.rollback()
        rule = unique_rule_broken(exc, metadata)
        raise (rule.problem() if rule else conflict("concurrent_change", detail)) from exc


def from_row(model: type[M]) -> Callable[[Any], M]:
    """The converter from an ORM row (or any object with the attributes) to ``model``."""
    return lambda row: model.model_validate(row, from_attributes=True)


async def _cipher(runtime: Runtime) -> FieldCipher:
    # async: FastAPI runs a plain `def` dependency in its thread pool (a hand-off per request, costlier than
    # the work).
    return field_cipher(runtime.settings)


# The service's field cipher (personal-data columns), as a route parameter: ``cipher: Cipher``.
Cipher = Annotated[FieldCipher, Depends(_cipher)]
