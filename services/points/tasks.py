"""The governance task list (骑士参与治理事项清单): task types with points, daily caps and how completion is
verified; concrete tasks posted by staff or by other services that riders claim, complete with proof, and get
verified. Use cases: take a unit of work, never commit."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.contracts.base import Origin
from minsheng.contracts.canteen import DeliveryRequested
from minsheng.contracts.points import TaskClaimed, TaskCompleted
from minsheng.platform.access import ensure, ensure_visible, is_staff, outside_scope, visible_or_404
from minsheng.platform.auth import Principal
from minsheng.platform.errors import Problem, UniqueRule, conflict, invalid, not_found, wrong_status
from minsheng.platform.fields import apply_patch
from minsheng.platform.filters import where_given
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.points import config, ledger
from services.points.access import holds_task, places_in, sees_task, sees_task_address
from services.points.models import (
    Rider,
    Task,
    TaskCreate,
    TaskFilters,
    TaskProof,
    TaskPublic,
    TaskReject,
    TaskStatus,
    TaskType,
    TaskTypeCreate,
    TaskTypeUpdate,
    Verification,
)

TASK_TYPE_EXISTS = UniqueRule(TaskType, ["code"], "task_type_exists", "A task type with this code exists already.")

TASKS: sa.Table = table_of(Task)
ACTIVE = (TaskStatus.open.value, TaskStatus.claimed.value, TaskStatus.submitted.value)
MEAL_DELIVERY = "meal_delivery"


# --- task types -----------------------------------------------------------------------------------------------


async def list_types(uow: UnitOfWork, *, include_inactive: bool = False) -> list[TaskType]:
    query = select(TaskType).order_by(col(TaskType.code))
    if not include_inactive:
        query = query.where(col(TaskType.active).is_(True))
    return list((await uow.session.execute(query)).scalars())


async def get_type(uow: UnitOfWork, code: str) -> TaskType:
    task_type = await uow.session.get(TaskType, code)
    if task_type is None:
        raise not_found("task_type", code)
    return task_type


async def create_type(uow: UnitOfWork, data: TaskTypeCreate) -> TaskType:
    if await uow.session.get(TaskType, data.code) is not None:
        raise TASK_TYPE_EXISTS.problem(_t("Task type {code!r} exists already.", code=data.code))
    task_type = TaskType.model_validate(data)
    uow.session.add(task_type)
    return task_type


async def update_type(uow: UnitOfWork, code: str, data: TaskTypeUpdate) -> TaskType:
    task_type = await get_type(uow, code)
    apply_patch(task_type, data, exclude_none=True)
    task_type.updated_at = utcnow()
    return task_type


async def ensure_meal_delivery_type(uow: UnitOfWork) -> TaskType:
    """The canteen's deliveries need this type even before demo data is loaded."""
    task_type = await uow.session.get(TaskType, MEAL_DELIVERY)
    if task_type is None:
        task_type = TaskType(
            code=MEAL_DELIVERY,
            name="送餐上门 Meal delivery to an elder",
            description="Take a happiness-canteen meal to an elder who cannot walk there; photo at the door as proof.",
            points=5,
            daily_cap=6,
            verification=Verification.auto,
            proof_required=True,
        )
        uow.session.add(task_type)
        await uow.session.flush()
    return task_type


# --- posting tasks --------------------------------------------------------------------------------------------


async def post_task(uow: UnitOfWork, who: Principal, data: TaskCreate) -> Task:
    ensure(places_in(who, data.community, data.compound), outside_scope("You cannot post tasks in that community."))
    task_type = await get_type(uow, data.type_code)
    if not task_type.active:
        raise conflict("task_type_inactive", _t("Task type {code!r} is not active.", code=task_type.code))
    if data.due_at is not None and data.due_at <= utcnow():
        raise invalid(
            "validation_error",
            "The request is not valid",
            "due_at must be in the future",
            field="due_at",
            message="must be in the future",
        )
    task = Task(
        **data.model_dump(exclude={"points"}),
        points=task_type.points if data.points is None else data.points,
        created_by=who.sub,
    )
    uow.session.add(task)
    return task


async def post_delivery(uow: UnitOfWork, event: DeliveryRequested) -> Task | None:
    """A canteen delivery request becomes a ``meal_delivery`` task, once per order."""
    found = await uow.session.execute(
        select(Task.id).where(
            Task.origin_service == "canteen", Task.origin_kind == "order", Task.origin_id == str(event.order_id)
        )
    )
    if found.first() is not None:
        return None
    await ensure_meal_delivery_type(uow)
    task = Task(
        type_code=MEAL_DELIVERY,
        title=f"送餐 {event.canteen_name} · {event.meal_date.isoformat()} {event.slot}",
        description=f"Pick up at {event.canteen_name} and deliver before {event.deliver_by.isoformat()}.",
        community=event.community,
        compound=event.compound,
        address=event.delivery_address,
        pickup_address=event.pickup_address,
        points=event.points,
        due_at=event.deliver_by,
        origin_service="canteen",
        origin_kind="order",
        origin_id=str(event.order_id),
        created_by="canteen",
    )
    uow.session.add(task)
    return task


async def withdraw_by_origin(uow: UnitOfWork, service: str, kind: str, origin_id: str, reason: str) -> bool:
    """Withdraw the task a requester posted, unless it was already completed."""
    result = await uow.session.execute(
        sa.update(TASKS)
        .where(
            TASKS.c.origin_service == service,
            TASKS.c.origin_kind == kind,
            TASKS.c.origin_id == origin_id,
            TASKS.c.status.in_(ACTIVE),
        )
        .values(status=TaskStatus.withdrawn.value, closed_reason=reason[:500], updated_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def withdraw(uow: UnitOfWork, who: Principal, task: Task, reason: str) -> Task:
    if task.status not in ACTIVE:
        raise wrong_status(
            "task_closed",
            _t("The task is {status}; it cannot be withdrawn.", status=task.status),
            current_status=task.status,
            allowed_from=ACTIVE,
        )
    task.status = TaskStatus.withdrawn
    task.closed_reason = reason
    task.updated_at = utcnow()
    return task


async def expire_overdue(uow: UnitOfWork, *, now: datetime | None = None) -> int:
    """Open tasks past their due time nobody claimed are closed as expired (claimed ones stay with the rider)."""
    now = now or utcnow()
    result = await uow.session.execute(
        sa.update(TASKS)
        .where(TASKS.c.status == TaskStatus.open.value, TASKS.c.due_at.is_not(None), TASKS.c.due_at < now)
        .values(status=TaskStatus.expired.value, closed_reason="Nobody took it before it was due", updated_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# --- reading --------------------------------------------------------------------------------------------------


async def get_task(
    uow: UnitOfWork, who: Principal, task_id: UUID, rider: Rider | None = None, *, for_update: bool = False
) -> Task:
    task = await uow.session.get(Task, task_id, with_for_update=for_update and uow.db.is_postgres)
    return visible_or_404(task, lambda t: sees_task(who, t, rider), "task", task_id)


def present(task: Task, who: Principal, rider: Rider | None) -> TaskPublic:
    """The delivery address (an elder's door) is shown only to the rider who claimed the task, and staff."""
    view = TaskPublic.model_validate(task, from_attributes=True)
    if not sees_task_address(who, task, rider):
        view.address = None
        view.proof_photo_urls = []
        view.proof_note = None
    return view


async def list_tasks(
    uow: UnitOfWork,
    who: Principal,
    rider: Rider | None,
    *,
    page: PageRequest,
    filters: TaskFilters,
) -> Page[Task]:
    query = select(Task)
    status = filters.status
    if filters.mine or not is_staff(who):
        if rider is None:
            raise Problem(
                404, "rider_not_registered", "Not registered as a rider", "Register first with POST /points/riders."
            )
        if filters.mine:
            query = query.where(Task.claimed_by == rider.id)
        elif status in (None, TaskStatus.open):
            query = query.where(Task.status == TaskStatus.open.value)
            status = None
        else:
            query = query.where(Task.claimed_by == rider.id)
    elif not who.is_admin:
        query = query.where(
            sa.or_(
                col(Task.community).in_(who.scoped_values("community")),
                col(Task.compound).in_(who.scoped_values("compound")),
            )
        )
    query = where_given(query, (Task.community, filters.community), (Task.type_code, filters.type_code))
    if status is not None:
        query = query.where(Task.status == status.value)
    return await keyset_page(uow.session, query, Keyset((Task.created_at, Task.id)), page)


# --- the rider's side -----------------------------------------------------------------------------------------


def _origin(task: Task) -> Origin | None:
    if task.origin_service and task.origin_kind and task.origin_id:
        return Origin(service=task.origin_service, kind=task.origin_kind, id=task.origin_id)
    return None


async def claim(uow: UnitOfWork, rider: Rider, task_id: UUID) -> Task:
    """First come, first served: one conditional UPDATE, so two riders can never both hold a task."""
    now = utcnow()
    result = await uow.session.execute(
        sa.update(TASKS)
        .where(TASKS.c.id == task_id, TASKS.c.status == TaskStatus.open.value)
        .values(status=TaskStatus.claimed.value, claimed_by=rider.id, claimed_at=now, updated_at=now)
    )
    task = await uow.session.get(Task, task_id, populate_existing=True)
    if task is None:
        raise not_found("task", task_id)
    if not result.rowcount:  # type: ignore[attr-defined]
        if task.claimed_by == rider.id and task.status == TaskStatus.claimed:
            return task  # a retried claim
        raise wrong_status(
            "task_not_open",
            _t("The task is {status}; it can no longer be claimed.", status=task.status),
            current_status=task.status,
        )
    uow.emit(
        TaskClaimed(task_id=task.id, task_type=task.type_code, rider_id=rider.id, origin=_origin(task), claimed_at=now)
    )
    return task


def _held_by(task: Task, rider: Rider) -> None:
    ensure_visible(holds_task(rider, task), "task", task.id)


async def release(uow: UnitOfWork, rider: Rider, task: Task) -> Task:
    _held_by(task, rider)
    if task.status != TaskStatus.claimed:
        raise wrong_status(
            "task_not_claimed",
            _t("The task is {status}; only a claimed task can be released.", status=task.status),
            current_status=task.status,
        )
    task.status = TaskStatus.open
    task.claimed_by = None
    task.claimed_at = None
    task.updated_at = utcnow()
    return task


async def complete(uow: UnitOfWork, rider: Rider, task: Task, proof: TaskProof) -> Task:
    _held_by(task, rider)
    if task.status in (TaskStatus.submitted, TaskStatus.verified):
        return task  # a retried completion
    if task.status != TaskStatus.claimed:
        raise wrong_status(
            "task_not_claimed",
            _t("The task is {status}; it cannot be completed.", status=task.status),
            current_status=task.status,
        )
    task_type = await get_type(uow, task.type_code)
    if task_type.proof_required and not (proof.photo_urls or proof.note):
        raise invalid(
            "proof_required",
            "Proof required",
            "Send a photo or a note showing the task done.",
            field="photo_urls",
            message="a photo or a note is required",
        )
    now = utcnow()
    task.status = TaskStatus.submitted
    task.submitted_at = now
    task.proof_photo_urls = proof.photo_urls
    task.proof_note = proof.note
    task.updated_at = now
    if task_type.verification == Verification.auto:
        await _verified(uow, task, task_type, verifier="auto")
    return task


# --- the staff side -------------------------------------------------------------------------------------------


async def verify(uow: UnitOfWork, who: Principal, task: Task) -> Task:
    if task.status == TaskStatus.verified:
        return task
    if task.status != TaskStatus.submitted:
        raise wrong_status(
            "task_not_submitted",
            _t("The task is {status}; only a submitted task can be verified.", status=task.status),
            current_status=task.status,
        )
    await _verified(uow, task, await get_type(uow, task.type_code), verifier=who.sub)
    return task


async def reject(uow: UnitOfWork, who: Principal, task: Task, data: TaskReject) -> Task:
    if task.status != TaskStatus.submitted:
        raise wrong_status(
            "task_not_submitted",
            _t("The task is {status}; only a submitted task can be rejected.", status=task.status),
            current_status=task.status,
        )
    task.closed_reason = data.reason
    task.updated_at = utcnow()
    if data.reopen:
        task.status = TaskStatus.open
        task.claimed_by = None
        task.claimed_at = None
        task.submitted_at = None
        task.proof_photo_urls = []
        task.proof_note = None
    else:
        task.status = TaskStatus.rejected
    return task


async def _verified(uow: UnitOfWork, task: Task, task_type: TaskType, *, verifier: str) -> None:
    """Done and verified: tell the requester (TaskCompleted) and post the points, within the daily caps."""
    assert task.claimed_by is not None
    now = utcnow()
    task.status = TaskStatus.verified
    task.verified_at = now
    task.verified_by = verifier
    task.updated_at = now
    awarded, capped = 0, False
    if task.points > 0:
        if task_type.daily_cap and await _completions_today(uow, task) >= task_type.daily_cap:
            capped = True
        else:
            result = await ledger.earn(
                uow,
                rider_id=task.claimed_by,
                amount=task.points,
                cause_type="task",
                cause_id=str(task.id),
                event_id=None,
                note=f"Task: {task.title}"[:500],
            )
            awarded, capped = result.amount, result.capped
    task.points_awarded = awarded
    task.capped = capped
    uow.emit(
        TaskCompleted(
            task_id=task.id,
            task_type=task.type_code,
            rider_id=task.claimed_by,
            origin=_origin(task),
            completed_at=now,
            points=awarded,
        )
    )


async def _completions_today(uow: UnitOfWork, task: Task) -> int:
    """Tasks of this type the rider already got points for today (local day)."""
    day = config.get().day_start()
    return int(
        (
            await uow.session.execute(
                sa.select(sa.func.count())
                .select_from(TASKS)
                .where(
                    TASKS.c.claimed_by == task.claimed_by,
                    TASKS.c.type_code == task.type_code,
                    TASKS.c.status == TaskStatus.verified.value,
                    TASKS.c.verified_at >= day,
                    TASKS.c.points_awarded > 0,
                    TASKS.c.id != task.id,
                )
            )
        ).scalar_one()
    )
