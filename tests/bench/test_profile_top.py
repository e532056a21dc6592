from bench.profile_top import frame_name, shares


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
