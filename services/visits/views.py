"""HTTP API of the visits service (mounted at ``/visits``). Thin: authorize, call the use cases, commit once."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse

from minsheng.platform.auth import Principal, Role, current_principal, require
from minsheng.platform.errors import Problem, conflict, not_found
from minsheng.platform.idempotency import IdempotencyKey, idempotent
from minsheng.platform.images import ImageLimits
from minsheng.platform.inputs import Day, Instant
from minsheng.platform.observability import current_request_id
from minsheng.platform.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from minsheng.platform.photos import photos_router
from minsheng.platform.privacy import FieldCipher, field_cipher
from minsheng.platform.service import Runtime, UoW
from minsheng.platform.uow import UnitOfWork
from services.visits import ledger, linking, places, policies, reports, residents, visiting, workers
from services.visits.access import Viewer, ensure_writes, require_worker_registered, viewer_of
from services.visits.config import quarter_start, today
from services.visits.models import (
    AssignmentCreate,
    AssignmentPublic,
    Attention,
    Bill,
    BuildingCreate,
    BuildingPublic,
    CareTag,
    CommunityCreate,
    CommunityPublic,
    CompoundCreate,
    CompoundPublic,
    Coverage,
    DoorCodeLink,
    DoorCodePublic,
    DueList,
    GridWorkerCreate,
    GridWorkerPublic,
    Handover,
    HandoverResult,
    HouseholdCreate,
    HouseholdPublic,
    HouseholdUpdate,
    IdNumberLookup,
    Mobility,
    NeedConfirm,
    NeedDetail,
    NeedEscalate,
    NeedNoteBody,
    NeedPublic,
    NeedRaise,
    NeedReason,
    NeedResolve,
    NeedStatus,
    NeedUpdate,
    Outcome,
    Photo,
    PiiAuditPublic,
    PolicyCreate,
    PolicyPublic,
    PolicyUpdate,
    Resident,
    ResidentCreate,
    ResidentPublic,
    ResidentStatus,
    ResidentUpdate,
    RevealedResident,
    RevealRequest,
    RoundCreate,
    RoundProgress,
    RoundPublic,
    StatusChange,
    TaskCancel,
    TaskCreate,
    TaskKind,
    TaskPublic,
    TaskStatus,
    VisitCreate,
    VisitPublic,
    VisitRecorded,
)

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=400)]
Code = Annotated[str | None, Query(max_length=40)]

STAFF = Depends(require(Role.staff))
FIELD = Depends(require(Role.staff, Role.grid_worker))
ADMIN = Depends(require(Role.admin))


async def _viewer(uow: UoW, principal: Principal = Depends(current_principal)) -> Viewer:
    viewer = await viewer_of(uow, principal)
    require_worker_registered(viewer)
    return viewer


Who = Annotated[Viewer, Depends(_viewer)]


def _cipher(runtime: Runtime) -> FieldCipher:
    return field_cipher(runtime.settings)


Cipher = Annotated[FieldCipher, Depends(_cipher)]


async def _commit(uow: UnitOfWork) -> None:
    try:
        await uow.commit()
    except sa.exc.IntegrityError as exc:
        await uow.rollback()
        raise conflict(
            "concurrent_change", "Someone else changed or created the same thing at the same time; reload and retry."
        ) from exc


def _page(page: Page, convert) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return {"items": [convert(x) for x in page.items], "next_cursor": page.next_cursor}


# --- places -------------------------------------------------------------------------------------------------


@router.post(
    "/communities",
    status_code=201,
    response_model=CommunityPublic,
    tags=["places"],
    dependencies=[ADMIN],
    summary="Register a community (社区); admin",
)
async def create_community(body: CommunityCreate, uow: UoW) -> CommunityPublic:
    community = await places.create_community(uow, body)
    await _commit(uow)
    return CommunityPublic(id=community.id, code=community.code, name=community.name)


@router.get(
    "/communities",
    response_model=Page[CommunityPublic],
    tags=["places"],
    dependencies=[FIELD],
    summary="Communities you cover, with compound and household counts",
)
async def list_communities(
    uow: UoW, who: Who, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[CommunityPublic]:
    return await places.list_communities(uow, who, limit=limit, cursor=cursor)


@router.post(
    "/compounds",
    status_code=201,
    response_model=CompoundPublic,
    tags=["places"],
    dependencies=[STAFF],
    summary="Register a residential compound (小区)",
)
async def create_compound(body: CompoundCreate, uow: UoW, who: Who) -> CompoundPublic:
    compound = await places.create_compound(uow, who, body)
    await _commit(uow)
    return CompoundPublic.model_validate(compound, from_attributes=True)


@router.get("/compounds", response_model=Page[CompoundPublic], tags=["places"], dependencies=[FIELD])
async def list_compounds(
    uow: UoW, who: Who, community: Code = None, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> dict:  # type: ignore[type-arg]
    page = await places.list_compounds(uow, who, community=community, limit=limit, cursor=cursor)
    return _page(page, lambda c: CompoundPublic.model_validate(c, from_attributes=True))


@router.get("/compounds/{code}", response_model=CompoundPublic, tags=["places"], dependencies=[FIELD])
async def get_compound(code: str, uow: UoW, who: Who) -> CompoundPublic:
    return CompoundPublic.model_validate(await places.get_compound(uow, who, code), from_attributes=True)


@router.post("/buildings", status_code=201, response_model=BuildingPublic, tags=["places"], dependencies=[STAFF])
async def create_building(body: BuildingCreate, uow: UoW, who: Who) -> BuildingPublic:
    building = await places.create_building(uow, who, body)
    await _commit(uow)
    return BuildingPublic.model_validate(building, from_attributes=True)


@router.get("/buildings", response_model=Page[BuildingPublic], tags=["places"], dependencies=[FIELD])
async def list_buildings(
    uow: UoW, who: Who, compound: Code = None, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> dict:  # type: ignore[type-arg]
    page = await places.list_buildings(uow, who, compound=compound, limit=limit, cursor=cursor)
    return _page(page, lambda b: BuildingPublic.model_validate(b, from_attributes=True))


@router.post(
    "/households",
    status_code=201,
    response_model=HouseholdPublic,
    tags=["households"],
    dependencies=[FIELD],
    summary="Register a household (a door) in a building",
)
async def create_household(body: HouseholdCreate, uow: UoW, who: Who) -> HouseholdPublic:
    household = await places.create_household(uow, who, body)
    await _commit(uow)
    return places.household_public(household)


@router.get(
    "/households",
    response_model=Page[HouseholdPublic],
    tags=["households"],
    dependencies=[FIELD],
    summary="Households you cover (grid workers: your assignments; staff: your communities)",
)
async def list_households(
    uow: UoW,
    who: Who,
    community: Code = None,
    compound: Code = None,
    building_id: UUID | None = None,
    tier: Code = None,
    attention: Attention | None = None,
    overdue: bool | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict:  # type: ignore[type-arg]
    page = await places.list_households(
        uow,
        who,
        limit=limit,
        cursor=cursor,
        community=community,
        compound=compound,
        building_id=building_id,
        tier=tier,
        attention=attention,
        overdue=overdue,
    )
    day = today()
    return _page(page, lambda h: places.household_public(h, day))


@router.get("/households/{household_id}", response_model=HouseholdPublic, tags=["households"])
async def get_household(household_id: UUID, uow: UoW, who: Who) -> HouseholdPublic:
    return places.household_public(await places.get_household(uow, who, household_id))


@router.patch("/households/{household_id}", response_model=HouseholdPublic, tags=["households"], dependencies=[FIELD])
async def update_household(household_id: UUID, body: HouseholdUpdate, uow: UoW, who: Who) -> HouseholdPublic:
    household = await places.get_household(uow, who, household_id, for_update=True)
    await places.update_household(uow, who, household, body)
    await _commit(uow)
    return places.household_public(household)


# --- residents ----------------------------------------------------------------------------------------------


@router.post(
    "/residents",
    status_code=201,
    response_model=ResidentPublic,
    tags=["residents"],
    dependencies=[FIELD],
    summary="Register a resident (ID number encrypted, phone and ID answered masked)",
)
async def create_resident(body: ResidentCreate, uow: UoW, who: Who, cipher: Cipher) -> ResidentPublic:
    resident = await residents.create_resident(uow, who, cipher, body)
    await _commit(uow)
    return residents.resident_public(resident)


@router.get(
    "/residents",
    response_model=Page[ResidentPublic],
    tags=["residents"],
    dependencies=[FIELD],
    summary="Residents you cover; filter by care tag, age, mobility, status",
)
async def list_residents(
    uow: UoW,
    who: Who,
    community: Code = None,
    compound: Code = None,
    household_id: UUID | None = None,
    care_tag: CareTag | None = None,
    min_age: Annotated[int | None, Query(ge=0, le=130)] = None,
    mobility: Mobility | None = None,
    status: ResidentStatus | None = ResidentStatus.active,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict:  # type: ignore[type-arg]
    page = await residents.list_residents(
        uow,
        who,
        limit=limit,
        cursor=cursor,
        community=community,
        compound=compound,
        household_id=household_id,
        care_tag=care_tag,
        min_age=min_age,
        mobility=mobility,
        status=status,
    )
    day = today()
    return _page(page, lambda r: residents.resident_public(r, day))


@router.post(
    "/residents/lookup",
    response_model=ResidentPublic,
    tags=["residents"],
    dependencies=[FIELD],
    summary="Find a resident by ID number (sent in the body, matched by keyed hash)",
)
async def lookup_resident(body: IdNumberLookup, uow: UoW, who: Who, cipher: Cipher) -> ResidentPublic:
    return residents.resident_public(await residents.lookup_by_id_number(uow, who, cipher, body.id_number))


@router.get("/residents/{resident_id}", response_model=ResidentPublic, tags=["residents"])
async def get_resident(resident_id: UUID, uow: UoW, who: Who) -> ResidentPublic:
    return residents.resident_public(await residents.get_resident(uow, who, resident_id))


@router.patch("/residents/{resident_id}", response_model=ResidentPublic, tags=["residents"], dependencies=[FIELD])
async def update_resident(
    resident_id: UUID, body: ResidentUpdate, uow: UoW, who: Who, cipher: Cipher
) -> ResidentPublic:
    resident = await residents.get_resident(uow, who, resident_id, for_update=True)
    await residents.update_resident(uow, who, cipher, resident, body)
    await _commit(uow)
    return residents.resident_public(resident)


@router.post(
    "/residents/{resident_id}/status",
    response_model=ResidentPublic,
    tags=["residents"],
    dependencies=[STAFF],
    summary="Moved away / deceased / back (emits ResidentStatusChanged)",
)
async def change_status(resident_id: UUID, body: StatusChange, uow: UoW, who: Who) -> ResidentPublic:
    resident = await residents.get_resident(uow, who, resident_id, for_update=True)
    await residents.change_status(uow, who, resident, body)
    await _commit(uow)
    return residents.resident_public(resident)


@router.post(
    "/residents/{resident_id}/reveal",
    response_model=RevealedResident,
    tags=["personal data"],
    summary="Phone, ID number or health notes in clear; needs `pii:reveal`, always audited",
)
async def reveal(resident_id: UUID, body: RevealRequest, uow: UoW, who: Who, cipher: Cipher) -> RevealedResident:
    resident = await residents.get_resident(uow, who, resident_id)
    out = await residents.reveal(uow, who, cipher, resident, body, current_request_id.get())
    await _commit(uow)
    return out


@router.get(
    "/pii-audit",
    response_model=Page[PiiAuditPublic],
    tags=["personal data"],
    summary="Who revealed whose personal data, when and why; needs `pii:audit`",
)
async def list_audit(
    uow: UoW,
    who: Who,
    resident_id: UUID | None = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict:  # type: ignore[type-arg]
    page = await residents.list_audit(uow, who, limit=limit, cursor=cursor, resident_id=resident_id, actor=actor)
    return _page(page, lambda a: PiiAuditPublic.model_validate(a, from_attributes=True))


# --- residents' own view ------------------------------------------------------------------------------------


def _me(who: Viewer) -> Resident:
    if who.resident is None:
        raise Problem(
            404,
            "account_not_linked",
            "Your account is not linked to a resident",
            "Ask your grid worker for a door code and link with POST /visits/me/link.",
        )
    return who.resident


@router.post(
    "/residents/{resident_id}/door-code",
    response_model=DoorCodePublic,
    tags=["residents"],
    dependencies=[FIELD],
    summary="A door code for this resident to link their app account (show it as a QR code)",
)
async def door_code(resident_id: UUID, uow: UoW, who: Who, runtime: Runtime) -> DoorCodePublic:
    resident = await residents.get_resident(uow, who, resident_id)
    if not who.may_write(resident.community, resident.compound, resident.building_id):
        raise not_found("resident", resident_id)
    code, expires_at = linking.issue(runtime.settings, resident.id)
    return DoorCodePublic(resident_id=resident.id, code=code, expires_at=expires_at)


@router.post(
    "/me/link",
    response_model=ResidentPublic,
    tags=["residents' app"],
    dependencies=[Depends(require(Role.resident))],
    summary="Link your app account to your resident record with the door code from your grid worker",
)
async def link(body: DoorCodeLink, uow: UoW, who: Who, runtime: Runtime) -> ResidentPublic:
    resident_id = linking.verify(runtime.settings, body.code)
    resident = await residents.link_by_door_code(uow, who.sub, resident_id)
    await _commit(uow)
    return residents.resident_public(resident)


@router.post("/me/bind", status_code=410, tags=["residents' app"], include_in_schema=False)
async def bind_retired() -> None:
    """Retired: an ID number and a phone are no proof (both leak widely)."""
    raise Problem(
        410,
        "binding_retired",
        "Linking by ID number and phone is retired",
        "Ask your grid worker for a door code and link with POST /visits/me/link.",
    )


@router.get(
    "/me", response_model=ResidentPublic, tags=["residents' app"], dependencies=[Depends(require(Role.resident))]
)
async def me(who: Who) -> ResidentPublic:
    return residents.resident_public(_me(who))


async def _my_bill(uow: UoW, who: Viewer, since: Day | None, until: Day | None) -> Bill:
    resident = _me(who)
    household = await places.get_household(uow, who, resident.household_id)
    return await reports.bill(uow, household, since=since, until=until)


@router.get(
    "/me/bill",
    response_model=Bill,
    tags=["happiness bill"],
    dependencies=[Depends(require(Role.resident))],
    summary="Your household's happiness bill (幸福账单)",
)
async def my_bill(uow: UoW, who: Who, since: Day | None = None, until: Day | None = None) -> Bill:
    return await _my_bill(uow, who, since, until)


@router.get(
    "/me/bill.html",
    response_class=HTMLResponse,
    tags=["happiness bill"],
    dependencies=[Depends(require(Role.resident))],
)
async def my_bill_html(uow: UoW, who: Who, since: Day | None = None, until: Day | None = None) -> HTMLResponse:
    return HTMLResponse(reports.bill_html(await _my_bill(uow, who, since, until)))


# --- the happiness bill -------------------------------------------------------------------------------------


async def _household_bill(uow: UoW, who: Viewer, household_id: UUID, since: Day | None, until: Day | None) -> Bill:
    household = await places.get_household(uow, who, household_id)
    return await reports.bill(uow, household, since=since, until=until)


async def _resident_bill(uow: UoW, who: Viewer, resident_id: UUID, since: Day | None, until: Day | None) -> Bill:
    resident = await residents.get_resident(uow, who, resident_id)
    household = await places.get_household(uow, who, resident.household_id)
    return await reports.bill(uow, household, resident=resident, since=since, until=until)


@router.get(
    "/households/{household_id}/bill",
    response_model=Bill,
    tags=["happiness bill"],
    summary="What the household raised and what was done, when and by whom",
)
async def household_bill(
    household_id: UUID, uow: UoW, who: Who, since: Day | None = None, until: Day | None = None
) -> Bill:
    return await _household_bill(uow, who, household_id, since, until)


@router.get(
    "/households/{household_id}/bill.html",
    response_class=HTMLResponse,
    tags=["happiness bill"],
    summary="The same, as a printable page",
)
async def household_bill_html(
    household_id: UUID, uow: UoW, who: Who, since: Day | None = None, until: Day | None = None
) -> HTMLResponse:
    return HTMLResponse(reports.bill_html(await _household_bill(uow, who, household_id, since, until)))


@router.get("/residents/{resident_id}/bill", response_model=Bill, tags=["happiness bill"])
async def resident_bill(
    resident_id: UUID, uow: UoW, who: Who, since: Day | None = None, until: Day | None = None
) -> Bill:
    return await _resident_bill(uow, who, resident_id, since, until)


@router.get("/residents/{resident_id}/bill.html", response_class=HTMLResponse, tags=["happiness bill"])
async def resident_bill_html(
    resident_id: UUID, uow: UoW, who: Who, since: Day | None = None, until: Day | None = None
) -> HTMLResponse:
    return HTMLResponse(reports.bill_html(await _resident_bill(uow, who, resident_id, since, until)))


# --- grid workers -------------------------------------------------------------------------------------------


@router.post(
    "/grid-workers",
    status_code=201,
    response_model=GridWorkerPublic,
    tags=["grid"],
    dependencies=[STAFF],
    summary="Register a grid worker (网格员) account",
)
async def create_worker(body: GridWorkerCreate, uow: UoW, who: Who, cipher: Cipher) -> GridWorkerPublic:
    worker = await workers.create_worker(uow, who, body, cipher)
    await _commit(uow)
    return GridWorkerPublic.model_validate(worker, from_attributes=True)


@router.get("/grid-workers", response_model=Page[GridWorkerPublic], tags=["grid"], dependencies=[STAFF])
async def list_workers(
    uow: UoW,
    who: Who,
    community: Code = None,
    active: bool | None = True,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict:  # type: ignore[type-arg]
    page = await workers.list_workers(uow, who, limit=limit, cursor=cursor, community=community, active=active)
    return _page(page, lambda w: GridWorkerPublic.model_validate(w, from_attributes=True))


@router.get(
    "/grid-workers/me",
    response_model=GridWorkerPublic,
    tags=["grid"],
    dependencies=[Depends(require(Role.grid_worker))],
)
async def my_worker(who: Who) -> GridWorkerPublic:
    if who.worker is None:
        raise Problem(
            404,
            "grid_worker_not_registered",
            "Not registered as a grid worker",
            "Ask community staff to register your account.",
        )
    return GridWorkerPublic.model_validate(who.worker, from_attributes=True)


@router.get("/grid-workers/{worker_id}", response_model=GridWorkerPublic, tags=["grid"], dependencies=[FIELD])
async def get_worker(worker_id: UUID, uow: UoW, who: Who) -> GridWorkerPublic:
    return GridWorkerPublic.model_validate(await workers.get_worker(uow, who, worker_id), from_attributes=True)


@router.get(
    "/grid-workers/{worker_id}/assignments", response_model=list[AssignmentPublic], tags=["grid"], dependencies=[FIELD]
)
async def list_assignments(worker_id: UUID, uow: UoW, who: Who, include_ended: bool = False) -> list[AssignmentPublic]:
    worker = await workers.get_worker(uow, who, worker_id)
    return [
        AssignmentPublic.model_validate(a, from_attributes=True)
        for a in await workers.list_assignments(uow, worker, include_ended=include_ended)
    ]


@router.post(
    "/grid-workers/{worker_id}/assignments",
    status_code=201,
    response_model=AssignmentPublic,
    tags=["grid"],
    dependencies=[STAFF],
    summary="Assign a compound (or one building) to a grid worker",
)
async def add_assignment(worker_id: UUID, body: AssignmentCreate, uow: UoW, who: Who) -> AssignmentPublic:
    worker = await workers.get_worker(uow, who, worker_id)
    assignment = await workers.add_assignment(uow, who, worker, body)
    await _commit(uow)
    return AssignmentPublic.model_validate(assignment, from_attributes=True)


@router.post("/assignments/{assignment_id}/end", response_model=AssignmentPublic, tags=["grid"], dependencies=[STAFF])
async def end_assignment(assignment_id: UUID, uow: UoW, who: Who) -> AssignmentPublic:
    assignment = await workers.end_assignment(uow, who, assignment_id)
    await _commit(uow)
    return AssignmentPublic.model_validate(assignment, from_attributes=True)


@router.post(
    "/grid-workers/{worker_id}/handover",
    response_model=HandoverResult,
    tags=["grid"],
    dependencies=[STAFF],
    summary="A worker leaves: places, open needs and tasks go to a successor",
)
async def handover(worker_id: UUID, body: Handover, uow: UoW, who: Who) -> HandoverResult:
    worker = await workers.get_worker(uow, who, worker_id)
    result = await workers.handover(uow, who, worker, body)
    await _commit(uow)
    return result


# --- policies and rounds ------------------------------------------------------------------------------------


@router.get(
    "/policies",
    response_model=list[PolicyPublic],
    tags=["policy"],
    dependencies=[FIELD],
    summary="Visiting tiers and their cadence / retry rules",
)
async def list_policies(uow: UoW) -> list[PolicyPublic]:
    return [PolicyPublic.model_validate(p, from_attributes=True) for p in await policies.list_policies(uow)]


@router.post(
    "/policies",
    status_code=201,
    response_model=PolicyPublic,
    tags=["policy"],
    dependencies=[ADMIN],
    summary="Add a tier; every household's schedule follows at once",
)
async def create_policy(body: PolicyCreate, uow: UoW) -> PolicyPublic:
    policy = await policies.create_policy(uow, body)
    await _commit(uow)
    return PolicyPublic.model_validate(policy, from_attributes=True)


@router.patch("/policies/{code}", response_model=PolicyPublic, tags=["policy"], dependencies=[ADMIN])
async def update_policy(code: str, body: PolicyUpdate, uow: UoW) -> PolicyPublic:
    policy = await policies.update_policy(uow, code, body)
    await _commit(uow)
    return PolicyPublic.model_validate(policy, from_attributes=True)


@router.post(
    "/rounds",
    status_code=201,
    response_model=RoundPublic,
    tags=["rounds"],
    dependencies=[STAFF],
    summary="Start a carpet-style round over a community (or, for admins, the district)",
)
async def create_round(body: RoundCreate, uow: UoW, who: Who) -> RoundPublic:
    rnd = await visiting.create_round(uow, who, body)
    await _commit(uow)
    return RoundPublic.model_validate(rnd, from_attributes=True)


@router.get("/rounds", response_model=Page[RoundPublic], tags=["rounds"], dependencies=[FIELD])
async def list_rounds(
    uow: UoW, who: Who, community: Code = None, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> dict:  # type: ignore[type-arg]
    page = await visiting.list_rounds(uow, who, limit=limit, cursor=cursor, community=community)
    return _page(page, lambda r: RoundPublic.model_validate(r, from_attributes=True))


@router.get(
    "/rounds/{round_id}/progress",
    response_model=RoundProgress,
    tags=["rounds"],
    dependencies=[FIELD],
    summary="Households reached / total, by compound and by worker",
)
async def round_progress(round_id: UUID, uow: UoW, who: Who) -> RoundProgress:
    rnd = await visiting.get_round(uow, who, round_id)
    return await reports.round_progress(uow, who, rnd)


# --- due lists and tasks ------------------------------------------------------------------------------------


@router.get(
    "/due",
    response_model=DueList,
    tags=["due"],
    dependencies=[FIELD],
    summary="Open visit tasks and the households due (overdue first); workers: theirs",
)
async def due(
    uow: UoW,
    who: Who,
    worker_id: UUID | None = None,
    within_days: Annotated[int, Query(ge=0, le=90)] = 0,
    overdue_only: bool = False,
    compound: Code = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> DueList:
    viewer = await visiting.viewer_for_worker(uow, who, worker_id) if worker_id else who
    tasks, page = await visiting.due_list(
        uow, viewer, limit=limit, cursor=cursor, within_days=within_days, overdue_only=overdue_only, compound=compound
    )
    day = today()
    return DueList(
        tasks=[visiting.task_public(t) for t in tasks],
        households=[places.household_public(h, day) for h in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/tasks", response_model=Page[TaskPublic], tags=["tasks"], dependencies=[FIELD])
async def list_tasks(
    uow: UoW,
    who: Who,
    status: TaskStatus | None = TaskStatus.open,
    kind: TaskKind | None = None,
    worker_id: UUID | None = None,
    community: Code = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict:  # type: ignore[type-arg]
    page = await visiting.list_tasks(
        uow, who, limit=limit, cursor=cursor, status=status, kind=kind, worker_id=worker_id, community=community
    )
    return _page(page, visiting.task_public)


@router.post(
    "/tasks",
    status_code=201,
    response_model=TaskPublic,
    tags=["tasks"],
    dependencies=[STAFF],
    summary="Ask for a follow-up visit to a household",
)
async def create_task(body: TaskCreate, uow: UoW, who: Who) -> TaskPublic:
    task = await visiting.create_task(uow, who, body)
    await _commit(uow)
    return visiting.task_public(task)


@router.get("/tasks/{task_id}", response_model=TaskPublic, tags=["tasks"], dependencies=[FIELD])
async def get_task(task_id: UUID, uow: UoW, who: Who) -> TaskPublic:
    return visiting.task_public(await visiting.get_task(uow, who, task_id))


@router.post("/tasks/{task_id}/cancel", response_model=TaskPublic, tags=["tasks"], dependencies=[STAFF])
async def cancel_task(task_id: UUID, body: TaskCancel, uow: UoW, who: Who) -> TaskPublic:
    task = await visiting.get_task(uow, who, task_id)
    await visiting.cancel_task(uow, who, task, body.reason)
    await _commit(uow)
    return visiting.task_public(task)


# --- visits -------------------------------------------------------------------------------------------------


@router.post(
    "/visits",
    status_code=201,
    response_model=VisitRecorded,
    tags=["visits"],
    dependencies=[FIELD],
    summary="Record a visit (or an attempt) with any needs heard at the door; retry-safe",
)
async def record_visit(
    body: VisitCreate, uow: UoW, who: Who, idempotency_key: str | None = IdempotencyKey
) -> JSONResponse:
    async def action() -> tuple[int, VisitRecorded]:
        visit, needs, done = await visiting.record_visit(uow, who, body)
        await uow.session.flush()
        return 201, VisitRecorded(
            **VisitPublic.model_validate(visit, from_attributes=True).model_dump(),
            needs=[ledger.need_public(n) for n in needs],
            tasks_completed=done,
        )

    return await idempotent(uow, key=idempotency_key, scope=f"{who.sub}:record-visit", body=body, action=action)


@router.get("/visits", response_model=Page[VisitPublic], tags=["visits"], dependencies=[FIELD])
async def list_visits(
    uow: UoW,
    who: Who,
    household_id: UUID | None = None,
    worker_id: UUID | None = None,
    community: Code = None,
    compound: Code = None,
    outcome: Outcome | None = None,
    since: Instant | None = None,
    until: Instant | None = None,
    far_from_home: bool | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict:  # type: ignore[type-arg]
    page = await visiting.list_visits(
        uow,
        who,
        limit=limit,
        cursor=cursor,
        household_id=household_id,
        worker_id=worker_id,
        community=community,
        compound=compound,
        outcome=outcome,
        since=since,
        until=until,
        far_from_home=far_from_home,
    )
    return _page(page, lambda v: VisitPublic.model_validate(v, from_attributes=True))


@router.get("/visits/{visit_id}", response_model=VisitRecorded, tags=["visits"], dependencies=[FIELD])
async def get_visit(visit_id: UUID, uow: UoW, who: Who) -> VisitRecorded:
    visit = await visiting.get_visit(uow, who, visit_id)
    needs = (await visiting.needs_of_visits(uow, [visit.id]))[visit.id]
    return VisitRecorded(
        **VisitPublic.model_validate(visit, from_attributes=True).model_dump(),
        needs=[ledger.need_public(n) for n in needs],
    )


# --- needs ledger -------------------------------------------------------------------------------------------


@router.post(
    "/needs",
    status_code=201,
    response_model=NeedPublic,
    tags=["needs ledger"],
    dependencies=[FIELD],
    summary="Write a need into the ledger outside a visit (a call, the office); retry-safe",
)
async def raise_need(body: NeedRaise, uow: UoW, who: Who, idempotency_key: str | None = IdempotencyKey) -> JSONResponse:
    household = await places.get_household(uow, who, body.household_id)
    ensure_writes(who, "household", household.id, household.community, household.compound, household.building_id)

    async def action() -> tuple[int, NeedPublic]:
        need = await ledger.raise_need(uow, who, household, body)
        await uow.session.flush()
        return 201, ledger.need_public(need)

    return await idempotent(uow, key=idempotency_key, scope=f"{who.sub}:raise-need", body=body, action=action)


@router.get(
    "/needs",
    response_model=Page[NeedPublic],
    tags=["needs ledger"],
    summary="The ledger: filter by status (repeatable), owner, place, household, overdue",
)
async def list_needs(
    uow: UoW,
    who: Who,
    status: Annotated[list[NeedStatus] | None, Query()] = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    mine: bool = False,
    community: Code = None,
    compound: Code = None,
    household_id: UUID | None = None,
    resident_id: UUID | None = None,
    category: Code = None,
    overdue: bool = False,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict:  # type: ignore[type-arg]
    page = await ledger.list_needs(
        uow,
        who,
        limit=limit,
        cursor=cursor,
        status=status,
        owner=owner,
        mine=mine,
        community=community,
        compound=compound,
        household_id=household_id,
        resident_id=resident_id,
        category=category,
        overdue=overdue,
    )
    return _page(page, ledger.need_public)


@router.get("/needs/{need_id}", response_model=NeedDetail, tags=["needs ledger"])
async def get_need(need_id: UUID, uow: UoW, who: Who) -> NeedDetail:
    return await ledger.detail(uow, await ledger.get_need(uow, who, need_id))


@router.patch(
    "/needs/{need_id}",
    response_model=NeedDetail,
    tags=["needs ledger"],
    dependencies=[STAFF],
    summary="Supervisor: change owner, due date or urgency",
)
async def update_need(need_id: UUID, body: NeedUpdate, uow: UoW, who: Who) -> NeedDetail:
    need = await ledger.get_need(uow, who, need_id, for_update=True)
    await ledger.update(uow, who, need, body)
    await _commit(uow)
    return await ledger.detail(uow, need)


Step = Literal["start", "resolve", "confirm", "reopen", "close", "escalate"]


async def _step(uow: UoW, who: Viewer, need_id: UUID, step: Step, body: object) -> NeedDetail:
    need = await ledger.get_need(uow, who, need_id, for_update=True)
    if step == "start":
        await ledger.start(uow, who, need, body.note if isinstance(body, NeedNoteBody) else None)
    elif step == "resolve" and isinstance(body, NeedResolve):
        await ledger.resolve(uow, who, need, body)
    elif step == "confirm":
        await ledger.confirm(uow, who, need, body if isinstance(body, NeedConfirm) else NeedConfirm())
    elif step == "reopen" and isinstance(body, NeedReason):
        await ledger.reopen(uow, who, need, body.reason)
    elif step == "close" and isinstance(body, NeedReason):
        await ledger.close(uow, who, need, body.reason)
    elif step == "escalate":
        await ledger.escalate(uow, who, need, body.note if isinstance(body, NeedEscalate) else None)
    await _commit(uow)
    return await ledger.detail(uow, need)


@router.post("/needs/{need_id}/start", response_model=NeedDetail, tags=["needs ledger"])
async def start_need(need_id: UUID, uow: UoW, who: Who, body: NeedNoteBody | None = None) -> NeedDetail:
    return await _step(uow, who, need_id, "start", body)


@router.post(
    "/needs/{need_id}/resolve",
    response_model=NeedDetail,
    tags=["needs ledger"],
    summary="Owner: done — say what was done",
)
async def resolve_need(need_id: UUID, body: NeedResolve, uow: UoW, who: Who) -> NeedDetail:
    return await _step(uow, who, need_id, "resolve", body)


@router.post(
    "/needs/{need_id}/confirm",
    response_model=NeedDetail,
    tags=["needs ledger"],
    summary="The resident confirms (in the app, or in person to the grid worker): 销号",
)
async def confirm_need(need_id: UUID, uow: UoW, who: Who, body: NeedConfirm | None = None) -> NeedDetail:
    return await _step(uow, who, need_id, "confirm", body)


@router.post(
    "/needs/{need_id}/reopen",
    response_model=NeedDetail,
    tags=["needs ledger"],
    summary="The resident says it is not done",
)
async def reopen_need(need_id: UUID, body: NeedReason, uow: UoW, who: Who) -> NeedDetail:
    return await _step(uow, who, need_id, "reopen", body)


@router.post(
    "/needs/{need_id}/close",
    response_model=NeedDetail,
    tags=["needs ledger"],
    dependencies=[STAFF],
    summary="Supervisor: close with a reason",
)
async def close_need(need_id: UUID, body: NeedReason, uow: UoW, who: Who) -> NeedDetail:
    return await _step(uow, who, need_id, "close", body)


@router.post(
    "/needs/{need_id}/escalate",
    response_model=NeedDetail,
    tags=["needs ledger"],
    dependencies=[FIELD],
    summary="Beyond the community: send to the issues service (NeedEscalated)",
)
async def escalate_need(need_id: UUID, uow: UoW, who: Who, body: NeedEscalate | None = None) -> NeedDetail:
    return await _step(uow, who, need_id, "escalate", body)


# --- coverage -----------------------------------------------------------------------------------------------


@router.get(
    "/coverage",
    response_model=Coverage,
    tags=["coverage"],
    dependencies=[FIELD],
    summary="Share of households visited, overdue visits, needs open/closed, median days to close",
)
async def coverage(
    uow: UoW,
    who: Who,
    by: Literal["community", "compound", "worker"] = "community",
    since: Day | None = None,
    until: Day | None = None,
    community: Code = None,
) -> Coverage:
    until = until or today()
    since = since or quarter_start(until)
    if since > until:
        raise Problem(
            422,
            "invalid_period",
            "The period ends before it starts",
            "Give since <= until.",
            errors=[{"field": "since", "message": "after until", "type": "value_error"}],
        )
    return await reports.coverage(uow, who, by=by, since=since, until=until, community=community)


# Photos grid workers take at the door (attached to a visit by id); field staff only.
router.include_router(
    photos_router("visits", Photo, lambda: ImageLimits(), lambda who: who.has(Role.staff, Role.grid_worker))
)
