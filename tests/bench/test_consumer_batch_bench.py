"""``bench.consumer_batch`` at a tiny size on SQLite: both ways handle every event, none through the fallback."""

from __future__ import annotations

from pathlib import Path

from bench.consumer_batch import hazard_deliveries, run


def test_the_generated_events_are_distinct_and_far_apart() -> None:
    deliveries = hazard_deliveries(150, north=20)
    assert len({d.key for d in deliveries}) == 150
    assert len({d.value for d in deliveries}) == 150


async def test_the_intake_bench_runs_both_ways(tmp_path: Path) -> None:
    result = await run(30, 10, "", tmp_path)
    assert result["database"] == "sqlite" and result["fallbacks"] == 0
    for way in ("one_by_one", "batched"):
        assert result[way]["cpu_ms_per_event"] > 0 and result[way]["events_per_second"] > 0
