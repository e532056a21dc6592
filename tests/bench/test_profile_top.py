from bench import flamegraph
from bench.profile_top import by_owner, frame_name, owner, shares
from bench.report import _cpu_by_owner


def test_shares_count_a_function_once_per_stack_and_its_own_time_on_top() -> None:
    lines = [
        "main (app.py:1);handle (app.py:10);query (db.py:5) 6",
        "main (app.py:1);handle (app.py:10);handle (app.py:12) 3",  # recursion: counted once
        "main (app.py:1);respond (app.py:20) 1",
        "garbage line",
    ]
    total, inclusive, own = shares(lines)
    assert total == 10
    assert inclusive["main (app.py)"] == 10
    assert inclusive["handle (app.py)"] == 9
    assert own["query (db.py)"] == 6 and own["handle (app.py)"] == 3
    assert frame_name("<module> (x/y.py:7)") == "<module> (x/y.py)"
    assert frame_name("process_idle") == "process_idle"


def test_each_frame_is_owned_by_the_package_its_file_is_in() -> None:
    assert owner("get_issue (services/issues/views/issues.py)") == "minsheng"
    assert owner("fetch (asyncpg/connection.py)") == "database driver (asyncpg)"
    assert owner("solve_dependencies (fastapi/dependencies/utils.py)") == "web framework (FastAPI, Starlette)"
    assert owner("run (asyncio/runners.py)") == "event loop, stdlib and other"


def test_the_report_shows_each_owners_share_of_the_cpu_per_request() -> None:
    shares_ = by_owner(["main (uvicorn/main.py:1);handle (fastapi/routing.py:2) 3", "main (uvicorn/main.py:1) 1"])
    assert shares_ == {"web framework (FastAPI, Starlette)": 0.75, "HTTP server (uvicorn, httptools)": 0.25}
    figure = {"subject": {"server_cpu_us_per_request": 800.0}, "extra": {"cpu_by_owner": shares_}}
    assert _cpu_by_owner(figure) == (
        "server CPU by whose code it is: web framework (FastAPI, Starlette) 600 µs, "
        "HTTP server (uvicorn, httptools) 200 µs"
    )


def test_the_baselines_split_stands_beside_the_subjects() -> None:
    figure = {
        "subject": {"server_cpu_us_per_request": 1000.0},
        "baseline": {"server_cpu_us_per_request": 400.0},
        "extra": {
            "cpu_by_owner": {"minsheng": 0.2, "database driver (asyncpg)": 0.8},
            "cpu_by_owner_baseline": {"database driver (asyncpg)": 1.0},
        },
    }
    assert _cpu_by_owner(figure) == (
        "server CPU by whose code it is: minsheng 200 µs (baseline 0 µs), "
        "database driver (asyncpg) 800 µs (baseline 400 µs)"
    )


def test_the_flame_graph_draws_each_function_as_wide_as_its_share() -> None:
    svg = flamegraph.render(
        ["main (uvicorn/main.py:1);handle (fastapi/routing.py:2) 3", "main (uvicorn/main.py:1) 1"], "a figure"
    )
    assert svg.startswith("<svg") and "a figure (4 samples)" in svg
    assert 'width="1200.0"' in svg and 'width="900.0"' in svg  # main: all samples; handle: three quarters
    assert "handle (fastapi/routing.py) — 3 samples, 75.0 %" in svg
    assert "{y" not in svg and "{t" not in svg


def test_each_missed_target_gets_its_cpu_split_and_the_ratio_with_minshengs_own_code_free() -> None:
    from bench.report import missed_targets

    write = {
        "id": "write.x",
        "group": "writes",
        "title": "A write",
        "status": "ok",
        "met": False,
        "ratio": 0.25,
        "subject": {"server_cpu_us_per_request": 2000.0},
        "baseline": {"server_cpu_us_per_request": 500.0},
        "extra": {
            "cpu_by_owner": {"minsheng": 0.25, "web framework (FastAPI, Starlette)": 0.5, "logging": 0.005},
            "cpu_by_owner_baseline": {"web framework (FastAPI, Starlette)": 0.4},
        },
    }
    relay = {
        "id": "relay.publish",
        "group": "relay",
        "title": "Relay",
        "status": "ok",
        "met": False,
        "ratio": 0.6,
        "subject": {"cpu_us_per_message": 11, "postgres_cpu_us_per_message": 21, "broker_cpu_us_per_message": 19},
        "baseline": {"cpu_us_per_message": 4, "postgres_cpu_us_per_message": 0, "broker_cpu_us_per_message": 21},
        "extra": {},
    }
    met = {**write, "id": "write.y", "title": "Met", "met": True}
    lines = missed_targets({"figures": [write, relay, met]})
    row = next(line for line in lines if line.startswith("| A write"))
    # Minsheng's 500 µs of 2,000 free: 1,500 µs a request, so 25 % × 2,000 / 1,500 = 33 %; FastAPI 1,000 − 200
    assert row == "| A write | 25% | 2,000 (500) µs | 500 µs | 33% | web framework (FastAPI, Starlette) +800 |"
    assert any("11 + 21 + 19 µs, the raw producer's 4 + 0 + 21 µs" in line for line in lines)
    assert not any("Met" in line for line in lines)
    assert missed_targets({"figures": [met]}) == []
