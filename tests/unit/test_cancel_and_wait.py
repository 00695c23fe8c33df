"""cancel_and_wait: a stop ends its tasks even when a cancellation is lost on the way, as asyncio.wait_for before
Python 3.12 can lose one (the task then runs on as if never cancelled)."""

from __future__ import annotations

import asyncio

import pytest

from tempyral.common.tasks import cancel_and_wait

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def test_a_task_that_swallows_one_cancellation_is_cancelled_again() -> None:
    swallowed = 0

    async def loop_that_loses_a_cancel() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # as a lost cancellation: the loop goes on

    task = asyncio.get_running_loop().create_task(loop_that_loses_a_cancel())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([task]), 30)
    assert task.cancelled() and swallowed == 1


async def test_failed_finished_and_missing_tasks() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    failed = asyncio.get_running_loop().create_task(fails())
    done = asyncio.get_running_loop().create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    await cancel_and_wait([failed, done, None])  # their outcomes are dropped, none raises here
    assert isinstance(failed.exception(), RuntimeError) and done.done()
