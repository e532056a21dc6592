"""Background loops end when they are cancelled, even when the cancellation meets the event they wait for."""

from __future__ import annotations

import asyncio
import contextlib

from minsheng.platform.tasks import cancel_all, within


async def _wake_loop(wake: asyncio.Event, rounds: list[int]) -> None:
    while True:
        rounds.append(1)
        with contextlib.suppress(TimeoutError):
            await within(30, wake.wait())
        wake.clear()


async def test_a_cancellation_that_arrives_with_the_wake_up_is_not_lost() -> None:
    # The case asyncio.wait_for gets wrong on 3.11 (gh-86296): the event is set and the task cancelled in the
    # same loop iteration. A loop built on wait_for goes round again and waits forever; this one ends.
    for _ in range(20):
        wake, rounds = asyncio.Event(), list[int]()
        task = asyncio.create_task(_wake_loop(wake, rounds))
        await asyncio.sleep(0)
        wake.set()
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2)
        assert task in done and task.cancelled()


async def test_within_gives_the_result_or_a_timeout() -> None:
    assert await within(1, asyncio.sleep(0, result=7)) == 7
    try:
        await within(0.01, asyncio.sleep(5))
    except TimeoutError:
        pass
    else:  # pragma: no cover - the assertion below says what went wrong
        raise AssertionError("within did not time out")


async def test_cancel_all_leaves_a_task_that_ignores_its_cancellation_behind_in_bounded_time() -> None:
    released = asyncio.Event()

    async def stubborn() -> None:
        while not released.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await released.wait()

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    await cancel_all([task], grace=0.2)
    assert asyncio.get_running_loop().time() - started < 2
    assert not task.done()
    released.set()
    await asyncio.wait([task], timeout=2)
    assert task.done()
