"""``/issues/…``: reporting, reading and the workflow of issues, and the staff's CSV export."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.types import DecoratedCallable

from minsheng.platform import csvfile
from minsheng.platform.access import ensure
from minsheng.platform.auth import Principal, Role
from minsheng.platform.coords import CoordSystemQuery, reproject
from minsheng.platform.errors import Problem, invalid
from minsheng.platform.idempotency import IdempotencyKey, idempotent
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.photos import refuse_photo_urls
from minsheng.platform.privacy import FieldCipher
from minsheng.platform.routes import Cipher
from minsheng.platform.service import Runtime, UoW, WriteUoW
from minsheng.platform.uow import UnitOfWork
from services.issues import access, config, figures, queries, reporting, timeline, workflow
from services.issues.models import (
    Assignment,
    CatalogueCode,
    CloseUnresolved,
    CommentCreate,
    Confirmation,
    ContactRevealed,
    Issue,
    IssueCreate,
    IssueDetail,
    IssueFilters,
    IssuePublic,
    IssueReceipt,
    IssueStatus,
    MergeRequest,
    PlaceCode,
    Redirect,
    Rejection,
    Reopening,
    Resolution,
    SplitRequest,
    StaffNote,
    TimelineEntryPublic,
)
from services.issues.views.deps import Caller, FromQ, Staff, ToQ

router = APIRouter()
B = TypeVar("B")


async def _detail(uow: UnitOfWork, who: Principal, issue: Issue, cipher: FieldCipher) -> IssueDetail:
    return _assemble(issue, await queries.timeline(uow, who, issue), who, cipher)


def _assemble(
    issue: access.IssueLike, entries: list[TimelineEntryPublic], who: Principal, cipher: FieldCipher
) -> IssueDetail:
    public = queries.public_view(issue, who, cipher)
    # Both parts are validated already: assemble them without validating the whole issue a second time.
    return IssueDetail.model_construct(**dict(public), timeline=entries)


def _json(model: IssueDetail | Page[IssuePublic]) -> Response:
    """Serialise a validated answer once (returned as a model, FastAPI would dump it and validate it again)."""
    return Response(model.model_dump_json(), media_type="application/json")


@router.post(
    "/issues",
    status_code=201,
    response_model=IssueReceipt,
    tags=["issues"],
    summary="Report a problem (residents, staff for a resident, grid workers, patrols)",
    responses={200: {"description": "Joined an open issue reporting the same problem nearby", "model": IssueReceipt}},
)
async def report_issue(
    body: IssueCreate, uow: UoW, who: Caller, cipher: Cipher, idempotency_key: str | None = IdempotencyKey
) -> JSONResponse:
    if who.has(Role.merchant) and not who.has(Role.resident, Role.staff, Role.grid_worker, Role.admin):
        raise Problem(403, "forbidden_role", "Not allowed for your role", "Merchants do not report issues.")
    refuse_photo_urls(body.photo_urls, "issues")

    async def action() -> tuple[int, dict[str, Any]]:
        issue, attached, cat = await reporting.report_issue(uow, who, body, cipher=cipher)
        public = queries.public_view(issue, who, cipher)
        receipt = {
            **public.model_dump(mode="json"),
            "attached": attached,
            "emergency_guidance": cat.emergency_guidance,
            "service_notice": cat.service_notice,
        }
        return (200 if attached else 201), receipt

    return await idempotent(uow, key=idempotency_key, scope=f"{who.sub}:report-issue", body=body, action=action)


@router.get(
    "/issues",
    tags=["issues"],
    summary="Issues you may see: staff their scope, departments their assignments, residents their own "
    "and public ones (newest first)",
)
async def list_issues(
    uow: UoW, who: Caller, cipher: Cipher, page: PageQuery, filters: Annotated[IssueFilters, Query()]
) -> Page[IssuePublic]:
    """``coord_system`` applies both ways: the ``lat``/``lng`` of the search and the positions answered."""
    if (filters.lat is None) != (filters.lng is None):
        missing = "lng" if filters.lng is None else "lat"
        raise invalid(
            "validation_error",
            "The request is not valid",
            "lat and lng go together",
            field=missing,
            message="lat and lng go together",
        )
    found = await queries.list_issues(uow, who, page, filters=filters)
    items = [reproject(item, filters.coord_system) for item in queries.public_rows(found.items, who, cipher)]
    return _json(found.with_items(items))  # type: ignore[return-value]


# Ahead of `/issues/{issue_id}`: `export.csv` must not be read as an issue id.
@router.get(
    "/issues/export.csv",
    tags=["figures", "issues"],  # as when it was among the figures' routes
    response_class=StreamingResponse,
    summary="Staff: the issues in your scope as CSV (newest first, at most 100,000 rows)",
)
async def export_issues(
    runtime: Runtime,
    who: Staff,
    start: FromQ = None,
    end: ToQ = None,
    community: PlaceCode | None = None,
    category: CatalogueCode | None = None,
    status: Annotated[list[IssueStatus] | None, Query()] = None,
) -> StreamingResponse:
    figures.check_period(start, end)
    lo, hi = figures.bounds(start, end, config.get().utc_offset_hours)
    # Built from checked parameters: the period's bounds may lie a time zone beyond the range a client may send.
    filters = IssueFilters.model_construct(
        status=status, community=community, category=category, created_from=lo, created_to=hi
    )
    now = utcnow()

    async def rows() -> AsyncIterator[str]:
        # Its own unit of work: the response streams after the request's dependencies have closed.
        async with runtime.uow() as uow:
            async for chunk in figures.export_rows(uow, who, filters, now):
                yield chunk

    # Everything that can be refused is refused before the first byte: the parameters above, and the first
    # batch (header + up to 1,000 rows) is read here, so a failing query answers a problem, not a cut 200.
    stream = rows()
    first = await anext(stream)

    async def body() -> AsyncIterator[str]:
        yield first
        async for chunk in stream:
            yield chunk

    return StreamingResponse(
        body(), media_type=csvfile.MEDIA_TYPE, headers={"Content-Disposition": 'attachment; filename="issues.csv"'}
    )


@router.get("/issues/{issue_id}", tags=["issues"])
async def get_issue(
    issue_id: UUID, uow: UoW, who: Caller, cipher: Cipher, coord_system: CoordSystemQuery = None
) -> IssueDetail:
    issue, entries = await queries.read_issue(uow, who, issue_id)
    return _json(reproject(_assemble(issue, entries, who, cipher), coord_system))  # type: ignore[return-value]


@router.get(
    "/issues/{issue_id}/contact",
    tags=["issues"],
    summary="Staff: the resident's contact in clear (the read is recorded on the timeline)",
)
async def reveal_contact(issue_id: UUID, uow: WriteUoW, who: Staff, cipher: Cipher) -> ContactRevealed:
    issue = await queries.get_issue(uow, who, issue_id)
    ensure(access.works_on(who, issue), access.not_allowed("Only staff handling the issue."))
    timeline.record(uow, issue, "contact_viewed", who, internal=True, at=utcnow())
    await uow.commit()
    return ContactRevealed(
        name=cipher.open(issue.contact_name, "issues", "contact_name", issue.id),
        phone=cipher.open(issue.contact_phone, "issues", "contact_phone", issue.id),
    )


def _step_route(path: str, tag: str, **route: Any) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """``POST /issues/{issue_id}/<step>`` (``path``): a step of the workflow, answered with the issue and its
    timeline."""
    return router.post(path, response_model=IssueDetail, tags=[tag], **route)


async def _act(
    uow: UnitOfWork,
    who: Principal,
    cipher: FieldCipher,
    issue_id: UUID,
    fn: Callable[[UnitOfWork, Principal, Issue, B], Awaitable[Any]],
    body: B,
) -> IssueDetail:
    issue = await queries.get_issue(uow, who, issue_id, for_update=True)
    result = await fn(uow, who, issue, body)
    await uow.commit()
    shown = result if isinstance(result, Issue) else issue
    return await _detail(uow, who, shown, cipher)


@_step_route("/issues/{issue_id}/accept", "workflow", summary="Staff: take the issue on (first response)")
async def accept(issue_id: UUID, uow: UoW, who: Staff, cipher: Cipher, body: StaffNote | None = None) -> IssueDetail:
    return await _act(uow, who, cipher, issue_id, workflow.accept, body)


@_step_route("/issues/{issue_id}/verify", "workflow", summary="Staff confirmed the problem on site")
async def verify(issue_id: UUID, uow: UoW, who: Staff, cipher: Cipher, body: StaffNote | None = None) -> IssueDetail:
    return await _act(uow, who, cipher, issue_id, workflow.verify, body)


@_step_route(
    "/issues/{issue_id}/assign", "workflow", summary="Staff: dispatch to departments (the first leads) and an officer"
)
async def assign(issue_id: UUID, body: Assignment, uow: UoW, who: Staff, cipher: Cipher) -> IssueDetail:
    return await _act(uow, who, cipher, issue_id, workflow.assign, body)


@_step_route("/issues/{issue_id}/start", "workflow", summary="The department starts work")
async def start(issue_id: UUID, uow: UoW, who: Staff, cipher: Cipher, body: StaffNote | None = None) -> IssueDetail:
    return await _act(uow, who, cipher, issue_id, workflow.start, body)


@_step_route(
    "/issues/{issue_id}/resolve",
    "workflow",
    summary="Staff: the problem is fixed (note, photos); the reporter confirms or reopens",
)
async def resolve(issue_id: UUID, uow: UoW, who: Staff, cipher: Cipher, body: Resolution | None = None) -> IssueDetail:
    return await _act(uow, who, cipher, issue_id, workflow.resolve, body)


@_step_route("/issues/{issue_id}/reject", "workflow")
async def reject(issue_id: UUID, body: Rejection, uow: UoW, who: Staff, cipher: Cipher) -> IssueDetail:
    return await _act(uow, who, cipher, issue_id, workflow.reject, body)


@_step_route(
    "/issues/{issue_id}/redirect", "workflow", summary="Staff: not ours — tell the resident where to go instead"
)
async def redirect(issue_id: UUID, body: Redirect, uow: UoW, who: Staff, cipher: Cipher) -> IssueDetail:
    return await _act(uow, who, cipher, issue_id, workflow.redirect, body)


@_step_route(
    "/issues/{issue_id}/close-unresolved",
    "workflow",
    summary="Staff: closed without a fix (its own outcome in the figures)",
)
async def close_unresolved(issue_id: UUID, body: CloseUnresolved, uow: UoW, who: Staff, cipher: Cipher) -> IssueDetail:
    return await _act(uow, who, cipher, issue_id, workflow.close_unresolved, body)


@_step_route(
    "/issues/{issue_id}/merge",
    "workflow",
    summary="Staff: merge this duplicate into another issue (returns the issue that stays)",
)
async def merge(issue_id: UUID, body: MergeRequest, uow: UoW, who: Staff, cipher: Cipher) -> IssueDetail:
    return await _act(uow, who, cipher, issue_id, workflow.merge, body)


@_step_route(
    "/issues/{issue_id}/split",
    "workflow",
    status_code=201,
    summary="Staff: a report attached by mistake becomes its own issue (returns the new issue)",
)
async def split(issue_id: UUID, body: SplitRequest, uow: UoW, who: Staff, cipher: Cipher) -> IssueDetail:
    return await _act(uow, who, cipher, issue_id, workflow.split, body)


@_step_route("/issues/{issue_id}/confirm", "residents", summary="Reporter: confirm the fix with a 1–5 rating")
async def confirm(issue_id: UUID, body: Confirmation, uow: UoW, who: Caller, cipher: Cipher) -> IssueDetail:
    return await _act(uow, who, cipher, issue_id, workflow.confirm, body)


@_step_route("/issues/{issue_id}/reopen", "residents", summary="Reporter (within the window) or staff: it is not fixed")
async def reopen(issue_id: UUID, body: Reopening, uow: UoW, who: Caller, cipher: Cipher) -> IssueDetail:
    return await _act(uow, who, cipher, issue_id, workflow.reopen, body)


@_step_route("/issues/{issue_id}/follow", "residents", summary="Follow a public issue (get its updates, comment on it)")
async def follow(issue_id: UUID, uow: UoW, who: Caller, cipher: Cipher) -> IssueDetail:
    async def fn(uow: UnitOfWork, who: Principal, issue: Issue, _: None) -> Issue:
        await workflow.follow(uow, who, issue)
        return issue

    return await _act(uow, who, cipher, issue_id, fn, None)


@router.post(
    "/issues/{issue_id}/comments",
    status_code=201,
    response_model=TimelineEntryPublic,
    tags=["residents"],
    summary="Comment (reporters, followers, staff; staff may add internal notes)",
)
async def add_comment(
    issue_id: UUID, body: CommentCreate, uow: UoW, who: Caller, idempotency_key: str | None = IdempotencyKey
) -> JSONResponse:
    issue = await queries.get_issue(uow, who, issue_id, for_update=True)

    async def action() -> tuple[int, TimelineEntryPublic]:
        entry = await workflow.comment(uow, who, issue, body.body, body.internal)
        await uow.session.flush()
        return 201, TimelineEntryPublic.model_validate(entry, from_attributes=True)

    # The issue is part of the scope: the same key on another issue is another comment.
    scope = f"{who.sub}:comment:{issue_id}"
    return await idempotent(uow, key=idempotency_key, scope=scope, body=body, action=action)
