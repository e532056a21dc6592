"""Routes under ``/visits/me``: the residents' app — linking the account (door code or verified phone), the
resident's own record and happiness bill."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from minsheng.platform.errors import Problem
from minsheng.platform.inputs import Day
from minsheng.platform.routes import Cipher
from minsheng.platform.service import Runtime, UoW
from services.visits import bill, linking, places, residents
from services.visits.access import Viewer
from services.visits.models import Bill, DoorCodeLink, LinkRequestPublic, Resident, ResidentPublic
from services.visits.views.deps import RESIDENT, Who, commit

router = APIRouter()


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
    "/me/link",
    tags=["residents' app"],
    dependencies=[RESIDENT],
    summary="Link your app account to your resident record with the door code from your grid worker",
)
async def link(body: DoorCodeLink, uow: UoW, who: Who, runtime: Runtime) -> ResidentPublic:
    resident_id = linking.verify(runtime.settings, body.code)
    resident = await residents.link_by_door_code(uow, who.sub, resident_id)
    await commit(uow)
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


@router.get("/me", tags=["residents' app"], dependencies=[RESIDENT])
async def me(who: Who) -> ResidentPublic:
    return residents.resident_public(_me(who))


async def _my_bill(uow: UoW, who: Viewer, since: Day | None, until: Day | None) -> Bill:
    resident = _me(who)
    household = await places.get_household(uow, who, resident.household_id)
    return await bill.bill(uow, household, since=since, until=until)


@router.get(
    "/me/bill", tags=["happiness bill"], dependencies=[RESIDENT], summary="Your household's happiness bill (幸福账单)"
)
async def my_bill(uow: UoW, who: Who, since: Day | None = None, until: Day | None = None) -> Bill:
    return await _my_bill(uow, who, since, until)


@router.get(
    "/me/bill.html",
    response_class=HTMLResponse,
    tags=["happiness bill"],
    dependencies=[RESIDENT],
)
async def my_bill_html(uow: UoW, who: Who, since: Day | None = None, until: Day | None = None) -> HTMLResponse:
    return HTMLResponse(bill.bill_html(await _my_bill(uow, who, since, until)))


@router.post(
    "/me/link-requests",
    tags=["residents' app"],
    dependencies=[RESIDENT],
    summary="Ask to be linked to the resident whose phone is your WeChat-verified phone (your grid worker confirms)",
)
async def request_link(uow: UoW, who: Who, cipher: Cipher) -> list[LinkRequestPublic]:
    requests = await linking.request_by_phone(uow, who, cipher)
    await commit(uow)
    return [LinkRequestPublic.model_validate(r, from_attributes=True) for r in requests]


@router.get(
    "/me/link-requests",
    tags=["residents' app"],
    dependencies=[RESIDENT],
    summary="Your link requests and what became of them",
)
async def my_link_requests(uow: UoW, who: Who) -> list[LinkRequestPublic]:
    return [LinkRequestPublic.model_validate(r, from_attributes=True) for r in await linking.my_requests(uow, who)]
