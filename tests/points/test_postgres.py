"""The points service's own flows again on real PostgreSQL (locks, CASE sums, keysets, JSONB, time zones
behave differently from SQLite)."""

from __future__ import annotations

import pytest

from tests.points import test_hazard_reports, test_ledger, test_redemption, test_riders_teams, test_tasks
from tests.support.client import System

pytestmark = pytest.mark.integration


async def test_hazard_flow_on_postgres(pg_points: System) -> None:
    await test_hazard_reports.test_verified_report_earns_once_and_progress_is_visible(pg_points)


async def test_false_reports_on_postgres(pg_points: System) -> None:
    await test_hazard_reports.test_false_reports_earn_nothing_take_back_and_flag_the_rider(pg_points)


async def test_tasks_and_caps_on_postgres(pg_points: System) -> None:
    await test_tasks.test_daily_cap_per_task_type(pg_points)


async def test_canteen_delivery_on_postgres(pg_points: System) -> None:
    await test_tasks.test_canteen_delivery_becomes_a_task_completion_tells_the_canteen(pg_points)


async def test_expiry_on_postgres(pg_points: System) -> None:
    await test_ledger.test_unspent_points_expire_first_in_first_out(pg_points)


async def test_leaderboards_on_postgres(pg_points: System) -> None:
    await test_ledger.test_monthly_leaderboards(pg_points)


async def test_statements_on_postgres(pg_points: System) -> None:
    await test_redemption.test_monthly_statement_json_and_csv(pg_points)


async def test_stock_and_limits_on_postgres(pg_points: System) -> None:
    await test_redemption.test_stock_and_per_rider_limit(pg_points)


async def test_teams_on_postgres(pg_points: System) -> None:
    await test_riders_teams.test_teams_are_led_by_red_riders(pg_points)


async def test_double_tapped_report_on_postgres(pg_points: System) -> None:
    """A phone sends the same report twice at once with one Idempotency-Key: one report, the same answer."""
    import asyncio

    from tests.points.helpers import FIRE, published, rider

    fan = await rider(pg_points)
    headers = {**fan.headers, "Idempotency-Key": "tap-1"}
    first, second = await asyncio.gather(
        *(pg_points.client.post("/points/hazard-reports", headers=headers, json=FIRE) for _ in range(2))
    )
    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    assert first.json()["id"] == second.json()["id"]
    assert len(await published(pg_points, "minsheng.points.hazard.reported.v1")) == 1


async def test_redemption_on_postgres(pg_points: System) -> None:
    """On PostgreSQL the ledger moves the balance and writes the entry in one statement (a data-modifying CTE)."""
    await test_redemption.test_redeem_debits_once_and_merchant_never_sees_the_rider(pg_points)


async def test_void_on_postgres(pg_points: System) -> None:
    await test_redemption.test_void_within_window_returns_points_and_stock_once(pg_points)


async def test_insufficient_points_on_postgres(pg_points: System) -> None:
    await test_redemption.test_insufficient_points_leaves_everything_untouched(pg_points)


async def test_suspended_rider_cannot_redeem_on_postgres(pg_points: System) -> None:
    await test_redemption.test_rider_suspended_after_getting_a_code_cannot_redeem(pg_points)


async def test_adjustments_on_postgres(pg_points: System) -> None:
    await test_ledger.test_adjustments_need_a_reason_never_overdraw_and_are_idempotent(pg_points)


async def test_code_checks_on_postgres(pg_points: System) -> None:
    """On PostgreSQL the code is consumed and the offer looked up in one statement."""
    await test_redemption.test_expired_code_and_other_merchants_offer(pg_points)


async def test_code_bound_to_an_offer_on_postgres(pg_points: System) -> None:
    await test_redemption.test_code_bound_to_an_offer_and_unverified_riders(pg_points)
