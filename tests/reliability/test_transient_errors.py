"""What counts as "the database is away" (503, retry; never dead-letter): the errors a PostgreSQL restart
produces, as SQLAlchemy hands them over — asyncpg's exception behind SQLAlchemy's adapted ``Error``."""

from __future__ import annotations

import asyncpg
import pytest
import sqlalchemy as sa

from minsheng.platform.db import is_transient_db_error


class AdaptedError(Exception):
    """Stands for ``AsyncAdapt_asyncpg_dbapi.Error``: carries the SQLSTATE, caused by asyncpg's exception."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.sqlstate = getattr(cause, "sqlstate", None)
        self.__cause__ = cause


def wrapped(cause: BaseException) -> sa.exc.DBAPIError:
    return sa.exc.DBAPIError("INSERT INTO hazard_reports ...", {}, AdaptedError(cause))


@pytest.mark.parametrize(
    "cause",
    [
        asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        ConnectionRefusedError(111, "Connect call failed"),
    ],
)
def test_database_restart_errors_are_transient(cause: BaseException) -> None:
    assert is_transient_db_error(wrapped(cause))


@pytest.mark.parametrize(
    "cause",
    [
        asyncpg.exceptions.UniqueViolationError("duplicate key value violates unique constraint"),
        asyncpg.exceptions.StringDataRightTruncationError("value too long for type character varying(50)"),
        asyncpg.exceptions.CheckViolationError("new row violates check constraint"),
    ],
)
def test_data_errors_are_not_transient(cause: BaseException) -> None:
    assert not is_transient_db_error(wrapped(cause))
    assert not is_transient_db_error(ValueError("a bug"))
