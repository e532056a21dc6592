"""Routes under ``/canteen/me``: the caller's own diners and linking as family."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from minsheng.platform.auth import Role, require
from minsheng.platform.routes import Cipher
from minsheng.platform.service import UoW
from services.canteen import diners, linking
from services.canteen.models import DinerPublic, FamilyCodeRedeem
from services.canteen.views.deps import Caller, commit

router = APIRouter(tags=["diners"])


@router.get("/me/diners", summary="The diners you are, or are family of")
async def my_diners(uow: UoW, who: Caller) -> list[DinerPublic]:
    mine = await diners.my_diners(uow, who)
    family = await diners.family_of(uow, [d.id for d in mine])
    return [diners.diner_public(d, family[d.id]) for d in mine]


@router.post(
    "/me/family-links",
    dependencies=[Depends(require(Role.resident))],
    summary="Link your app account to a diner as family, with the code canteen staff or the grid worker gave you",
)
async def redeem_family_code(body: FamilyCodeRedeem, uow: UoW, who: Caller, cipher: Cipher) -> DinerPublic:
    diner = await linking.redeem(uow, who, body.code, cipher)
    await commit(uow)
    return diners.diner_public(diner, (await diners.family_of(uow, [diner.id]))[diner.id])
