from bench.profile_top import frame_name, owner, shares


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
