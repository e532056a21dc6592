"""The notify API: the caller's inbox, the WeChat subscriptions the mini-program records, preferences, and
the staff view of deliveries (masked, no bodies)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from minsheng.platform.auth import Principal, Role, current_principal, require
from minsheng.platform.idempotency import IdempotencyKey, idempotent
from minsheng.platform.inputs import text
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.service import UoW
from services.notify import deliveries as delivery_log
from services.notify import inboxes, preferences, roster, subscriptions
from services.notify.models import (
    DeliveryFilters,
    DeliveryPublic,
    DutyShiftCreate,
    DutyShiftPublic,
    InboxPage,
    MessagePublic,
    PreferencePublic,
    SubscriptionPublic,
    SubscriptionRecord,
)
from services.notify.rules import Rule, rulebook

router = APIRouter()
Caller = Annotated[Principal, Depends(current_principal)]
Staff = Annotated[Principal, Depends(require(Role.staff))]


# --- inbox ---------------------------------------------------------------------------------------------------


@router.get("/inbox", tags=["inbox"], summary="The caller's messages, newest first")
async def inbox(uow: UoW, who: Caller, page: PageQuery, unread_only: bool = False) -> InboxPage:
    return await inboxes.inbox_page(uow, who.sub, page, unread_only=unread_only)


class MarkRead(BaseModel):
    ids: list[UUID] | None = None  # None: all of the caller's messages


@router.post("/inbox/read", tags=["inbox"], summary="Mark the caller's messages read (the given ones, or all)")
async def mark_read(uow: UoW, who: Caller, body: MarkRead) -> dict[str, int]:
    marked = await inboxes.mark_read(uow, who.sub, body.ids)
    await uow.commit()
    return {"marked": marked, "unread": await inboxes.unread(uow, who.sub)}


@router.post("/inbox/{message_id}/read", tags=["inbox"])
async def mark_one_read(uow: UoW, who: Caller, message_id: UUID) -> MessagePublic:
    out = await inboxes.mark_one_read(uow, who.sub, message_id)
    await uow.commit()
    return out


# --- WeChat one-time subscriptions -------------------------------------------------------------------------------


@router.post(
    "/subscriptions",
    response_model=list[SubscriptionPublic],
    tags=["subscriptions"],
    summary="Record what the user accepted in wx.requestSubscribeMessage (each accept = one send)",
)
async def record_subscriptions(
    uow: UoW, who: Caller, body: SubscriptionRecord, idempotency_key: str | None = IdempotencyKey
) -> JSONResponse:
    async def action() -> tuple[int, list[SubscriptionPublic]]:
        await subscriptions.record_subscriptions(uow, who.sub, body.results)
        return 200, await subscriptions.subscriptions_of(uow, who.sub)

    return await idempotent(uow, key=idempotency_key, scope=f"{who.sub}:notify-subscriptions", body=body, action=action)


@router.get("/subscriptions", tags=["subscriptions"])
async def my_subscriptions(uow: UoW, who: Caller) -> list[SubscriptionPublic]:
    return await subscriptions.subscriptions_of(uow, who.sub)


# --- preferences ---------------------------------------------------------------------------------------------------


@router.get("/preferences", tags=["preferences"])
async def my_preferences(uow: UoW, who: Caller) -> PreferencePublic:
    return await preferences.preferences_of(uow, who.sub)


class PreferenceUpdate(BaseModel):
    channels_off: list[Literal["wechat", "sms"]] = []
    rules_off: list[Annotated[str, text(60)]] = Field(default=[], max_length=100)


@router.put(
    "/preferences",
    tags=["preferences"],
    summary="Opt out of channels or rules (urgent messages still come: in the inbox and where allowed)",
)
async def set_preferences(uow: UoW, who: Caller, body: PreferenceUpdate) -> PreferencePublic:
    out = await preferences.set_preferences(uow, who.sub, list(body.channels_off), body.rules_off)
    await uow.commit()
    return out


# --- staff ---------------------------------------------------------------------------------------------------


@router.get(
    "/deliveries", tags=["operations"], summary="Deliveries, newest first (masked addresses, no message bodies)"
)
async def deliveries(
    uow: UoW,
    who: Staff,
    page: PageQuery,
    filters: Annotated[DeliveryFilters, Query()],
) -> Page[DeliveryPublic]:
    return await delivery_log.deliveries_page(uow, page, filters)


class DeliverySummary(BaseModel):
    by_channel_status: dict[str, dict[str, int]]


@router.get("/deliveries/summary", tags=["operations"])
async def summary(uow: UoW, who: Staff) -> DeliverySummary:
    return DeliverySummary(by_channel_status=await delivery_log.counts_by_channel_and_status(uow))


@router.get("/rules", tags=["operations"], summary="What is sent to whom (rules.json)")
async def rules(who: Staff) -> list[Rule]:
    return rulebook().rules


# --- the duty roster (staff on duty for urgent issues) ---------------------------------------------------------


@router.post(
    "/duty-roster",
    status_code=201,
    tags=["duty roster"],
    summary="Put a staff member on duty for a community (or the district, *): urgent issues reach them at once",
)
async def add_duty_shift(uow: UoW, who: Staff, body: DutyShiftCreate) -> DutyShiftPublic:
    shift = await roster.add_shift(uow, who, body)
    await uow.commit()
    return roster.public(shift)


@router.get(
    "/duty-roster",
    tags=["duty roster"],
    summary="Duty shifts of the caller's communities and the district, newest first (phones masked)",
)
async def duty_roster(
    uow: UoW,
    who: Staff,
    page: PageQuery,
    community: Annotated[str | None, text(40)] = None,
    on_duty: bool | None = Query(default=None, description="true: on duty now; false: past or future shifts"),
) -> Page[DutyShiftPublic]:
    return await roster.shifts_page(uow, who, page, community=community, on_duty=on_duty)


@router.delete("/duty-roster/{shift_id}", status_code=204, tags=["duty roster"], summary="Remove a duty shift")
async def remove_duty_shift(uow: UoW, who: Staff, shift_id: UUID) -> None:
    await roster.remove_shift(uow, who, shift_id)
    await uow.commit()
