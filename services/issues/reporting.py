"""Reporting through the API (``POST /issues``, Open311's ``POST /requests``): a resident, staff member, grid
worker or patrol volunteer reports a problem. Who may report as which channel, the checks on the report, then
``intake``. Never commits."""

from __future__ import annotations

import secrets

from minsheng.platform.access import ensure, outside_scope
from minsheng.platform.auth import Principal, Role
from minsheng.platform.errors import Problem, invalid
from minsheng.platform.i18n import _t
from minsheng.platform.ids import uuid7
from minsheng.platform.privacy import FieldCipher
from minsheng.platform.uow import UnitOfWork
from services.issues.access import IssueLike, is_staff, reports_within_reach, role_of
from services.issues.catalogue import require_category, resolve_community, validate_attributes
from services.issues.intake import Intake, intake
from services.issues.models import Category, Channel, IssueCreate
from services.issues.photos import photo_urls_of


def _channel_for(who: Principal, data: IssueCreate) -> Channel:
    wanted = data.channel
    if wanted == "patrol":
        if not (is_staff(who) or who.has(Role.grid_worker) or "team:patrol" in who.scopes):
            raise Problem(
                403,
                "not_a_patrol_member",
                "Not a patrol member",
                "Only patrol volunteers (scope team:patrol), grid workers and staff report as a patrol.",
            )
        return Channel.patrol
    if is_staff(who):
        return Channel.staff
    if who.has(Role.grid_worker):
        return Channel.grid_worker
    if wanted in ("staff", "grid_worker"):
        raise Problem(
            403, "channel_not_allowed", "Channel not allowed", _t("Your role cannot report as {wanted}.", wanted=wanted)
        )
    return Channel.resident


async def report_issue(
    uow: UnitOfWork,
    who: Principal,
    data: IssueCreate,
    *,
    cipher: FieldCipher,
    channel: Channel | None = None,
    open311_token: str | None = None,
    reporter: str | None = None,
) -> tuple[IssueLike, bool, Category]:
    """A resident, staff member, grid worker or patrol volunteer reports a problem through the API."""
    channel = channel or _channel_for(who, data)
    cat = await require_category(uow, data.category)
    attributes = validate_attributes(cat, data.attributes)
    if data.contact is not None and not is_staff(who) and channel != Channel.open311:
        raise Problem(
            403,
            "contact_staff_only",
            "Only staff report for someone else",
            "Leave out `contact`; your own account is the reporter.",
        )
    if data.latitude is None and not data.address and not data.community:
        raise invalid(
            "location_required",
            "Where is it?",
            "Give latitude/longitude, an address or a community.",
            field="latitude",
            message="a location is required",
            error_type="missing",
        )
    community = await resolve_community(uow, data.community, data.latitude, data.longitude)
    if channel == Channel.staff:
        ensure(
            reports_within_reach(who, community, data.compound),
            outside_scope(_t("You may only report within your communities.")),
        )
    # Open311's media_url (checked there: https on a public host) is the one way a URL still comes in.
    photos = [*data.photo_urls, *await photo_urls_of(uow, who, data.photo_ids)]
    contact = data.contact
    issue_id = uuid7()  # known before the insert: the contact details are sealed for this issue's row
    return (
        *await intake(
            uow,
            Intake(
                issue_id=issue_id,
                category=cat,
                title=data.title or cat.name_zh,
                description=data.description,
                channel=channel,
                reporter=reporter or who.sub,
                latitude=data.latitude,
                longitude=data.longitude,
                address=data.address,
                community=community,
                compound=data.compound,
                is_public=data.is_public,
                photo_urls=photos,
                attributes=attributes,
                intake=data.intake or ("app" if channel != Channel.staff else None),
                contact_name=cipher.seal(contact.name, "issues", "contact_name", issue_id)
                if contact and contact.name
                else None,
                contact_phone=cipher.seal(contact.phone, "issues", "contact_phone", issue_id)
                if contact and contact.phone
                else None,
                actor_role=role_of(who),
                open311_token=open311_token,
            ),
        ),
        cat,
    )


def new_token() -> str:
    return secrets.token_urlsafe(12)
