"""Votes on community matters (事项投票): staff open a vote for a community or compound; each eligible
household or resident votes once (a unique key in the database); results are published at close; the voter
list is never public (voters are stored only as keyed hashes and no endpoint lists ballots)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.contracts.issues import VoteClosed, VoteOpened, VoteOptionResult
from minsheng.platform.access import ensure, ensure_visible, outside_scope, visible_or_404
from minsheng.platform.auth import Principal, Role
from minsheng.platform.errors import Problem, invalid, wrong_status
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.uow import UnitOfWork
from services.issues.access import manages_vote, may_vote, sees_vote
from services.issues.models import (
    Ballot,
    Eligibility,
    OptionResult,
    Vote,
    VoteCreate,
    VotePublic,
)

_NEWEST_FIRST = Keyset((Vote.created_at, Vote.id))


def status_of(vote: Vote, now: datetime | None = None) -> str:
    now = now or utcnow()
    if vote.closed_early_at is not None or now >= vote.closes_at:
        return "closed"
    return "open" if now >= vote.opens_at else "scheduled"


def voter_key(who: Principal, vote: Vote) -> str:
    """Who the "one vote" belongs to: the household (from the token's ``household:<id>`` scope) or the resident."""
    if vote.eligibility == Eligibility.household:
        households = sorted(who.scoped_values("household"))
        if not households:
            raise Problem(
                403,
                "household_unknown",
                "Your household is not known",
                "This vote is one per household; your account is not linked to a household.",
            )
        return f"household:{households[0]}"
    return f"resident:{who.sub}"


def voter_hash(secret: str, vote: Vote, key: str) -> str:
    return hmac.new(secret.encode(), f"{vote.id}:{key}".encode(), hashlib.sha256).hexdigest()


async def tallies(uow: UnitOfWork, vote_id: UUID) -> dict[str, int]:
    rows = await uow.session.execute(
        select(Ballot.option, sa.func.count()).where(Ballot.vote_id == vote_id).group_by(Ballot.option)
    )
    return {option: count for option, count in rows.tuples()}


async def view(uow: UnitOfWork, who: Principal, vote: Vote, secret: str) -> VotePublic:
    return (await views(uow, who, [vote], secret))[0]


async def views(uow: UnitOfWork, who: Principal, found: Sequence[Vote], secret: str) -> list[VotePublic]:
    """What ``who`` sees of each vote: results once closed (staff of the vote's place see them while it runs),
    and whether they voted. Two queries for the whole list, not two per vote."""
    counted = [v.id for v in found if status_of(v) == "closed" or _staff_of(who, v)]
    counts: dict[UUID, dict[str, int]] = {vote_id: {} for vote_id in counted}
    if counted:
        rows = await uow.session.execute(
            select(Ballot.vote_id, Ballot.option, sa.func.count())
            .where(col(Ballot.vote_id).in_(counted))
            .group_by(col(Ballot.vote_id), col(Ballot.option))
        )
        for vote_id, option, n in rows.tuples():
            counts[vote_id][option] = n
    hashes = {v.id: voter_hash(secret, v, key) for v in found if (key := _own_key(who, v)) is not None}
    choices: dict[UUID, str] = {}
    if hashes:
        ballots = await uow.session.execute(
            select(Ballot.vote_id, Ballot.voter_hash, Ballot.option).where(
                col(Ballot.vote_id).in_(list(hashes)), col(Ballot.voter_hash).in_(list(hashes.values()))
            )
        )
        choices = {vote_id: option for vote_id, hashed, option in ballots.tuples() if hashes[vote_id] == hashed}
    return [_public(who, v, counts.get(v.id), v.id in hashes, choices.get(v.id)) for v in found]


def _staff_of(who: Principal, vote: Vote) -> bool:
    return who.has(Role.staff, Role.admin) and sees_vote(who, vote)


def _own_key(who: Principal, vote: Vote) -> str | None:
    """The caller's voter key when they may vote on ``vote`` (none for a household vote without a household)."""
    if not may_vote(who, vote):
        return None
    try:
        return voter_key(who, vote)
    except Problem:
        return None


def _public(
    who: Principal, vote: Vote, counts: dict[str, int] | None, eligible: bool, choice: str | None
) -> VotePublic:
    status = status_of(vote)
    total = sum(counts.values()) if counts is not None else None
    published = status == "closed"
    options = [
        OptionResult(
            key=o["key"],
            label=o["label"],
            votes=counts.get(o["key"], 0) if published and counts is not None else None,
            share=round(counts.get(o["key"], 0) / total, 4)
            if published and counts and total
            else (0.0 if published else None),
        )
        for o in vote.options
    ]
    return VotePublic(
        id=vote.id,
        community=vote.community,
        compound=vote.compound,
        question=vote.question,
        description=vote.description,
        options=options,
        eligibility=Eligibility(vote.eligibility),
        opens_at=vote.opens_at,
        closes_at=vote.closed_early_at or vote.closes_at,
        status=status,  # type: ignore[arg-type]
        results_published=published,
        ballots_cast=total if (published or _staff_of(who, vote)) else None,
        you_voted=(choice is not None) if eligible else None,
        # A household's members all see that their household voted; only the choice of "one per resident"
        # votes is shown back (the household's choice may not be yours).
        your_choice=choice if vote.eligibility == Eligibility.resident else None,
        created_at=vote.created_at,
    )


def _vote_fact(vote: Vote) -> dict[str, Any]:
    return {
        "vote_id": vote.id,
        "community": vote.community,
        "compound": vote.compound,
        "question": vote.question,
        "eligibility": vote.eligibility,
        "opens_at": vote.opens_at,
        "closes_at": vote.closes_at,
    }


def announce_open(uow: UnitOfWork, vote: Vote, now: datetime) -> None:
    vote.open_announced_at = now
    uow.emit(VoteOpened(**_vote_fact(vote), options=[o["label"] for o in vote.options]))


async def announce_close(uow: UnitOfWork, vote: Vote, now: datetime) -> None:
    """The results, public once closed (counts per option, never voters)."""
    counts = await tallies(uow, vote.id)
    results = [VoteOptionResult(key=o["key"], label=o["label"], votes=counts.get(o["key"], 0)) for o in vote.options]
    top = max((r.votes for r in results), default=0)
    winners = [r.label for r in results if r.votes == top]
    vote.close_announced_at = now
    vote.open_announced_at = vote.open_announced_at or now
    uow.emit(
        VoteClosed(
            **_vote_fact(vote),
            closed_at=vote.closed_early_at or vote.closes_at,
            early=vote.closed_early_at is not None,
            turnout=sum(r.votes for r in results),
            results=results,
            outcome=winners[0] if top and len(winners) == 1 else None,
        )
    )


async def announce_due(uow: UnitOfWork, now: datetime, *, batch: int = 200) -> int:
    """Scheduled votes that have opened, and votes whose time ran out, are announced once (run by a job)."""
    closed = sa.or_(col(Vote.closes_at) <= now, col(Vote.closed_early_at).is_not(None))
    query = (
        select(Vote)
        .where(
            sa.or_(
                sa.and_(col(Vote.open_announced_at).is_(None), col(Vote.opens_at) <= now),
                sa.and_(col(Vote.close_announced_at).is_(None), closed),
            )
        )
        .order_by(col(Vote.opens_at))
        .limit(batch)
    )
    if uow.db.is_postgres:
        query = query.with_for_update(skip_locked=True)
    votes = list((await uow.session.execute(query)).scalars())
    for vote in votes:
        if status_of(vote, now) == "closed":
            await announce_close(uow, vote, now)  # closed before anyone said it opened: just the results
        else:
            announce_open(uow, vote, now)
    return len(votes)


async def visible_vote(uow: UnitOfWork, who: Principal, vote_id: UUID, *, for_update: bool = False) -> Vote:
    vote = await uow.session.get(Vote, vote_id, with_for_update=for_update and uow.db.is_postgres)
    return visible_or_404(vote, lambda v: sees_vote(who, v), "vote", vote_id)


def open_vote(uow: UnitOfWork, who: Principal, body: VoteCreate) -> Vote:
    ensure(manages_vote(who, body), outside_scope("Open votes only for your communities."))
    now = utcnow()
    opens_at = body.opens_at or now
    if body.closes_at <= max(opens_at, now):
        raise invalid(
            "validation_error",
            "The request is not valid",
            "closes_at must be in the future and after opens_at",
            field="closes_at",
            message="too early",
        )
    vote = Vote(
        community=body.community,
        compound=body.compound,
        question=body.question,
        description=body.description,
        eligibility=body.eligibility,
        opens_at=opens_at,
        closes_at=body.closes_at,
        created_by=who.sub,
        options=[{"key": str(i + 1), "label": label} for i, label in enumerate(body.options)],
    )
    uow.session.add(vote)
    if opens_at <= now:
        announce_open(uow, vote, now)
    return vote


async def list_votes(
    uow: UnitOfWork, who: Principal, page: PageRequest, community: str | None, status: str | None
) -> Page[Vote]:
    """The votes ``who`` may see, newest first."""
    query = select(Vote)
    if not who.is_admin:
        ors: list[Any] = [col(Vote.community).in_(who.scoped_values("community"))]
        if who.scoped_values("compound"):
            ors.append(col(Vote.compound).in_(who.scoped_values("compound")))
        query = query.where(sa.or_(*ors))
    if community:
        query = query.where(Vote.community == community)
    now = utcnow()
    if status == "open":
        query = query.where(col(Vote.opens_at) <= now, col(Vote.closes_at) > now, col(Vote.closed_early_at).is_(None))
    elif status == "closed":
        query = query.where(sa.or_(col(Vote.closes_at) <= now, col(Vote.closed_early_at).is_not(None)))
    elif status == "scheduled":
        query = query.where(col(Vote.opens_at) > now, col(Vote.closed_early_at).is_(None))
    return await keyset_page(uow.session, query, _NEWEST_FIRST, page)


def cast(uow: UnitOfWork, who: Principal, vote: Vote, option: str, secret: str) -> None:
    """Add the ballot; the commit's unique key decides a second one (see ``views/votes.py``)."""
    state = status_of(vote)
    if state != "open":
        raise wrong_status(
            "vote_not_open", _t("This vote is {state}.", state=state), current_status=state, current=state
        )
    if not may_vote(who, vote):
        raise Problem(
            403,
            "not_eligible",
            "Not eligible for this vote",
            "Only residents of the vote's compound vote."
            if vote.compound
            else "Only residents of the vote's community vote.",
        )
    if option not in {o["key"] for o in vote.options}:
        raise invalid(
            "unknown_option",
            "Unknown option",
            "Choose one of the vote's option keys.",
            field="option",
            message="unknown option",
        )
    key = voter_key(who, vote)
    uow.session.add(Ballot(vote_id=vote.id, voter_hash=voter_hash(secret, vote, key), option=option))


async def close_early(uow: UnitOfWork, who: Principal, vote: Vote) -> None:
    ensure_visible(manages_vote(who, vote), "vote", vote.id)
    if status_of(vote) == "closed":
        raise wrong_status("vote_closed", "This vote is already closed.", current_status="closed")
    vote.closed_early_at = utcnow()
    await announce_close(uow, vote, vote.closed_early_at)
