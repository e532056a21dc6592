"""Demo data (idempotent): the four happiness canteens of Zuoyun county — Yunxing Street (open) and the three
opening now (Dongyan Road, Yuntaiyuan, Yunheyuan) — with meal slots, a week of "10 yuan for four dishes and a
soup" menus, the county's subsidy rules and a few diners."""

from __future__ import annotations

from datetime import date, time, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.ids import utcnow
from minsheng.platform.privacy import field_cipher, mask_id_number, seal_phone_on
from minsheng.platform.service import ServiceRuntime
from minsheng.platform.uow import UnitOfWork
from services.canteen import config, orders, subsidy
from services.canteen.demo_data import BREAKFAST, CANTEENS, DINERS, DINNER, FAMILY, RULES, SLOTS, lunch_sets
from services.canteen.diners import new_code
from services.canteen.models import (
    Canteen,
    Diner,
    FamilyMember,
    Fulfilment,
    MealSlotRow,
    Menu,
    Order,
    SetMeal,
    SubsidyRule,
)


async def seed(uow: UnitOfWork, runtime: ServiceRuntime) -> None:
    today = config.today()
    canteens: dict[str, Canteen] = {}
    for spec in CANTEENS:
        found = (await uow.session.execute(select(Canteen).where(Canteen.code == spec["code"]))).scalar_one_or_none()
        if found is None:
            found = Canteen(**spec)
            uow.session.add(found)
            await uow.session.flush()
            for slot, times in SLOTS.items():
                uow.session.add(MealSlotRow(canteen_id=found.id, slot=slot, **times))
        canteens[spec["code"]] = found
    await uow.session.flush()

    for canteen in canteens.values():
        for offset in range(7):
            day = today + timedelta(days=offset)
            for slot, meals in (("breakfast", BREAKFAST), ("lunch", lunch_sets(day.toordinal())), ("dinner", DINNER)):
                exists = (
                    await uow.session.execute(
                        select(Menu.id).where(Menu.canteen_id == canteen.id, Menu.meal_date == day, Menu.slot == slot)
                    )
                ).first()
                if exists is not None:
                    continue
                published = canteen.status == "open"
                menu = Menu(
                    canteen_id=canteen.id,
                    meal_date=day,
                    slot=slot,
                    capacity=SLOTS[slot]["capacity"],
                    status="published" if published else "draft",
                    published_at=utcnow() if published else None,
                )
                uow.session.add(menu)
                await uow.session.flush()
                uow.session.add_all(SetMeal(menu_id=menu.id, position=i, **m) for i, m in enumerate(meals))

    start = date(today.year - 1, 1, 1)
    for spec in RULES:
        exists = (await uow.session.execute(select(SubsidyRule.id).where(SubsidyRule.key == spec["key"]))).first()
        if exists is None:
            uow.session.add(
                SubsidyRule(
                    **{"funder": "county_civil_affairs", **spec}, version=1, effective_from=start, created_by="demo"
                )
            )

    fc = field_cipher(runtime.settings)
    for spec in DINERS:
        id_hash = fc.lookup_hash(spec["id_number"])
        exists = (await uow.session.execute(select(Diner.id).where(Diner.id_number_hash == id_hash))).first()
        if exists is not None:
            continue
        data = {k: v for k, v in spec.items() if k not in {"canteen", "id_number", "health_notes"}}
        diner = Diner(
            **data,
            canteen_id=canteens[spec["canteen"]].id,
            id_number_hash=id_hash,
            id_number_masked=mask_id_number(spec["id_number"]),
            card_code=new_code(),
        )
        diner.id_number_enc = fc.seal(spec["id_number"], "diners", "id_number_enc", diner.id)
        diner.health_notes_enc = fc.seal(spec.get("health_notes"), "diners", "health_notes_enc", diner.id)
        seal_phone_on(diner, fc)
        uow.session.add(diner)
    await uow.session.flush()
    for diner_name, members in FAMILY.items():
        elder = (await uow.session.execute(select(Diner).where(Diner.name == diner_name))).scalars().first()
        if elder is None:
            continue
        for member in members:
            exists = (
                await uow.session.execute(
                    select(FamilyMember.id).where(
                        FamilyMember.diner_id == elder.id, FamilyMember.subject == member["subject"]
                    )
                )
            ).first()
            if exists is None:
                relative = FamilyMember(diner_id=elder.id, **member)
                seal_phone_on(relative, fc)
                uow.session.add(relative)


async def seed_history(uow: UnitOfWork, canteen: Canteen, days: int = 35) -> int:
    """Past lunches at an open canteen, so the settlement and the care signals have something to show: every
    diner ate most days; 赵 came every day until four days ago (she hurt her leg) — a welfare check is due."""
    if (await uow.session.execute(select(Order.id).where(Order.canteen_id == canteen.id).limit(1))).first():
        return 0
    today = config.today()
    diners = list(
        (
            await uow.session.execute(select(Diner).where(Diner.canteen_id == canteen.id).order_by(col(Diner.name)))
        ).scalars()
    )
    served = 0
    for offset in range(days, 0, -1):
        day = today - timedelta(days=offset)
        menu = Menu(
            canteen_id=canteen.id,
            meal_date=day,
            slot="lunch",
            capacity=SLOTS["lunch"]["capacity"],
            status="published",
            published_at=utcnow(),
        )
        meal = SetMeal(menu_id=menu.id, position=0, **lunch_sets(day.toordinal())[0])
        uow.session.add(menu)
        await uow.session.flush()
        uow.session.add(meal)
        await uow.session.flush()
        eaters = [
            d
            for i, d in enumerate(diners)
            if (d.name == "赵桂香" and offset > 4) or (d.name != "赵桂香" and (offset + i) % 5 != 0)
        ]
        for diner in eaters:
            computed = await subsidy.quote(uow, diner, menu, meal, Fulfilment.dine_in)
            order = Order(
                canteen_id=canteen.id,
                diner_id=diner.id,
                menu_id=menu.id,
                set_meal_id=meal.id,
                set_meal_name=meal.name,
                meal_date=day,
                slot="lunch",
                fulfilment="dine_in",
                status="served",
                channel="walk_in",
                price_fen=computed.price_fen,
                subsidy_fen=computed.subsidy_fen,
                elder_pays_fen=computed.elder_pays_fen,
                payer="diner",
                booked_by="demo",
                pickup_code=new_code(8),
                community=diner.community,
                compound=diner.compound,
                dietary=list(diner.dietary),
                checked_in_at=config.local_instant(day, time(11, 20)),
                checked_in_by="demo",
            )
            await uow.session.execute(sa.insert(orders.ORDERS).values(**order.model_dump()))
            lines = computed.line_rows(order_id=order.id, diner_id=diner.id, canteen_id=canteen.id, meal_date=day)
            if lines:
                await uow.session.execute(sa.insert(orders.LINES), lines)
            menu.booked += 1
            served += 1
    return served


async def seed_demo(runtime: ServiceRuntime) -> None:
    async with runtime.uow() as uow:
        await seed(uow, runtime)
        await uow.commit()
    async with runtime.uow() as uow:
        canteen = (await uow.session.execute(select(Canteen).where(Canteen.code == "yunxing-street"))).scalar_one()
        await seed_history(uow, canteen)
        await uow.commit()
