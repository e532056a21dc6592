"""RFC 9457 problem details. Every error a client sees has a stable machine ``code``; nothing leaks a 500
with a stack trace, and a database outage is a 503 the client may retry."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, IntegrityError
from sqlmodel import SQLModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from minsheng.platform.db import broken_unique, is_transient_db_error
from minsheng.platform.i18n import (
    CONTENT_LANGUAGE,
    Message,
    Term,
    _t,
    load_catalogs,
    request_locale,
    translate,
    validation_message,
)
from minsheng.platform.sql import table_of

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


class Problem(Exception):
    """Raise from anywhere in a request to answer with problem+json. ``title`` and ``detail`` are English
    msgids (a plain literal, or ``_t("No {what} {id}", what=..., id=...)`` when values go in); the answer is
    in the language the request prefers (zh-CN by default, see ``minsheng.platform.i18n``)."""

    # Positional-only, so an extra member such as ``status=issue.status`` lands in ``extra`` instead of
    # colliding with the HTTP status.
    def __init__(
        self,
        status: int,
        code: str,
        title: Message,
        detail: Message | None = None,
        /,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{status} {code}: {detail or title}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = headers
        self.extra = extra


def not_found(what: str, ident: object) -> Problem:
    """``what`` names the thing (``issue_type``): the code is ``issue_type_not_found`` and the name itself is a
    msgid, so each language names the thing its own way."""
    thing = Term(what)
    return Problem(
        404,
        f"{what}_not_found",
        _t("{thing} not found", thing=thing),
        _t("No {thing} {id} (or it is outside your scope).", thing=thing, id=ident),
    )


def invalid(
    code: str,
    title: Message,
    detail: Message | None = None,
    /,
    *,
    field: str,
    message: str,
    error_type: str = "value_error",
) -> Problem:
    """A 422 about one input: ``errors`` names the field as the request validation's answers do (``field`` is
    its path, ``message`` says what is wrong with it, ``error_type`` is ``"missing"`` for an input optional in
    the schema that this request needs)."""
    return Problem(422, code, title, detail, errors=[{"field": field, "message": message, "type": error_type}])


def invalid_field(code: str, field: str, detail: Message, /) -> Problem:
    """A 422 about one input whose ``detail`` says all there is to say: the generic title, and the detail
    again as the field's ``message``."""
    return invalid(code, "The request is not valid", detail, field=field, message=str(detail))


def conflict(code: str, detail: Message, /, **extra: Any) -> Problem:
    return Problem(409, code, "Conflict with the current state", detail, **extra)


def wrong_status(
    code: str, detail: Message, /, *, current_status: str, allowed_from: Iterable[str] | None = None, **extra: Any
) -> Problem:
    """A 409 because the thing's status does not allow the step: every service names its members the same, so
    a client reads ``current_status`` (and ``allowed_from``, the statuses the step starts from) anywhere."""
    if allowed_from is not None:
        extra["allowed_from"] = sorted(allowed_from)
    return conflict(code, detail, current_status=current_status, **extra)


def too_many(code: str, title: Message, detail: str, /, *, wait: float) -> Problem:
    """A 429 after which the client may retry in ``wait`` seconds: rounded up (at least 1), they are the
    ``Retry-After`` header, the ``retry_after`` member and the ``{seconds}`` in the ``detail`` template."""
    seconds = max(1, math.ceil(wait))
    return Problem(
        429, code, title, _t(detail, seconds=seconds), headers={"Retry-After": str(seconds)}, retry_after=seconds
    )


class UniqueRule:
    """One answer for one unique rule of a table. The use case's check that finds the existing row and the
    constraint that stops a concurrent request (which passed the same check a moment before the winner
    committed) answer with the same code::

        COMMUNITY_EXISTS = UniqueRule(Community, ["code"], "community_exists", "A community with this code …")
        if await community_by_code(uow, data.code) is not None:
            raise COMMUNITY_EXISTS.problem(_t("A community with code {code!r} already exists.", code=data.code))

    The rule is kept in the table's metadata, so each service answers for its own tables only."""

    def __init__(self, model: type[SQLModel], columns: Sequence[str], code: str, detail: Message) -> None:
        table = table_of(model)
        missing = [name for name in columns if name not in table.c]
        if missing:
            raise ValueError(f"{table.name} has no column {', '.join(missing)}")
        self.table, self.columns, self.code, self.detail = table.name, frozenset(columns), code, detail
        rules = table.metadata.info.setdefault(_UNIQUE_RULES, {})
        known = rules.setdefault((self.table, self.columns), self)
        if known.code != code:
            raise ValueError(f"{table.name}{sorted(self.columns)} already answers {known.code}, not {code}")

    def problem(self, detail: Message | None = None, /, **extra: Any) -> Problem:
        """The 409, with a ``detail`` that can name the values (the constraint's own answer cannot)."""
        return conflict(self.code, detail or self.detail, **extra)


_UNIQUE_RULES = "minsheng.unique_rules"


def unique_rule_broken(exc: IntegrityError, metadata: sa.MetaData) -> UniqueRule | None:
    broken = broken_unique(exc)
    rule = metadata.info.get(_UNIQUE_RULES, {}).get(broken) if broken else None
    return rule if isinstance(rule, UniqueRule) else None


def integrity_problem(exc: IntegrityError, metadata: sa.MetaData | None = None) -> Problem:
    """A lost race on a unique constraint (two requests creating the same team name, the same code …) or a
    reference to a row that went away meanwhile: a 409 with a stable code, never a 500. A constraint with a
    :class:`UniqueRule` in ``metadata`` answers the rule's code, as the check the request raced past would
    have. Views that know better (``settlement_closed`` …) still catch the error themselves and say more."""
    if metadata is not None and (rule := unique_rule_broken(exc, metadata)) is not None:
        return rule.problem()
    orig = getattr(exc, "orig", None)
    sqlstate = str(getattr(orig, "sqlstate", "") or getattr(orig, "pgcode", "") or "")
    message = str(orig or exc).lower()
    if sqlstate == "23505" or "unique" in message or "duplicate key" in message:
        return conflict(
            "already_exists",
            "Something with the same unique value was created at the same time or "
            "exists already; reload and try again with another value.",
        )
    if sqlstate == "23503" or "foreign key" in message:
        return conflict(
            "reference_gone", "Something this request refers to was changed or removed meanwhile; reload and try again."
        )
    return conflict("integrity_conflict", "The change conflicts with the current state; reload and try again.")


def problem_response(
    request: Request,
    status: int,
    code: str,
    title: Message,
    detail: Message | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    locale = request_locale(request.headers)
    text = translate(title, locale) or code
    body: dict[str, Any] = {
        "type": f"https://minsheng.dev/problems/{code}",
        "title": text[:1].upper() + text[1:],
        "status": status,
        "code": code,
        "instance": request.url.path,
    }
    if detail:
        body["detail"] = translate(detail, locale)
    request_id = request.scope.get("state", {}).get("request_id")
    if request_id:
        body["request_id"] = request_id
    # Extension members never overwrite the standard ones: a clashing name gets a ``current_`` prefix.
    body.update({(f"current_{k}" if k in body else k): v for k, v in (extra or {}).items()})
    response = JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)
    response.headers["Content-Language"] = CONTENT_LANGUAGE[locale]
    response.headers.append("Vary", "Accept-Language")
    return response


def install_problem_handlers(
    app: FastAPI,
    foreign_formats: Sequence[tuple[str, Callable[[str, str], Any]]] = (),
    metadata: sa.MetaData | None = None,
) -> None:
    """problem+json for every error; on a path of ``foreign_formats`` (``ServiceSpec.foreign_error_formats``) a
    request the parameters' validation refuses answers in that path's own format instead. ``metadata``: the
    service's tables, whose :class:`UniqueRule` answer a lost unique race."""
    load_catalogs()

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc.status, exc.code, exc.title, exc.detail, exc.headers, exc.extra)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        log.info("integrity conflict on %s %s: %s", request.method, request.url.path, exc.orig)
        problem = integrity_problem(exc, metadata)
        return problem_response(request, problem.status, problem.code, problem.title, problem.detail)

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # A value the database refuses (out of range, a NUL byte in text): the client's input, not our fault.
        log.info("data refused on %s %s: %s", request.method, request.url.path, exc.orig)
        return problem_response(
            request,
            422,
            "invalid_value",
            "A value is out of range or not allowed",
            "A value in the request cannot be stored (out of range or not allowed characters).",
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        locale = request_locale(request.headers)
        errors = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p not in ("body",)) or "body",
                "message": validation_message(e, locale),
                "type": e.get("type", ""),
            }
            for e in exc.errors()
        ]
        for marker, render in foreign_formats:
            if marker in request.url.path:
                response: Response = render(
                    request.url.path, "; ".join(f"{e['field']}: {e['message']}" for e in errors)
                )
                return response
        fields = ", ".join(sorted({e["field"] for e in errors}))
        return problem_response(
            request,
            422,
            "validation_error",
            "The request is not valid",
            _t("Check: {fields}", fields=fields),
            extra={"errors": errors},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(exc.status_code, "http_error")
        # Starlette's details are the HTTP reason phrases ("Not Found" …), msgids in the catalog.
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(
            request,
            exc.status_code,
            code,
            detail or code.replace("_", " ").capitalize(),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_transient_db_error(exc):
            log.warning("database unavailable: %s", exc)
            return problem_response(
                request,
                503,
                "unavailable",
                "Service temporarily unavailable",
                "The database is not reachable; retry shortly.",
                headers={"Retry-After": "2"},
            )
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            request, 500, "internal_error", "Internal error", "Something went wrong on our side; it has been logged."
        )
