"""The edges' waiting: exponential backoff with a cap, and a sleep that a stop ends early."""

from __future__ import annotations

import asyncio

from collector.retry import backoff_s, sleep_or_stop


def test_backoff_doubles_from_the_first_wait_up_to_the_cap():
    assert [backoff_s(n, 1.0, 60.0) for n in range(0, 9)] == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert [backoff_s(n, 5.0, 30.0) for n in (1, 2, 3, 4)] == [5.0, 10.0, 20.0, 30.0]
    assert backoff_s(10_000, 1.0, 60.0) == 60.0  # no overflow after days of failures


def test_sleep_or_stop_sleeps_the_whole_time_without_a_stop():
    async def go():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        stopped = await sleep_or_stop(stop, 0.05)
        return stopped, loop.time() - t0

    stopped, slept = asyncio.run(go())
    assert stopped is False and slept >= 0.04  # (the loop may fire a timer a resolution early)


def test_sleep_or_stop_ends_at_the_stop_and_says_so():
    async def go():
        stop = asyncio.Event()
        asyncio.get_running_loop().call_soon(stop.set)
        return await sleep_or_stop(stop, 3600.0), await sleep_or_stop(stop, 3600.0)

    assert asyncio.run(go()) == (True, True)  # set meanwhile, then set already: no hour asleep
