"""How the edges wait before trying again: an exponential backoff, and an asyncio sleep that ends
early when the service stops.

In collector/, the first package of the flow, because the Bluetooth collector, the sinks and the
service loop (stresswatch/) all use them."""

from __future__ import annotations

import asyncio


def backoff_s(attempt: int, first_s: float, max_s: float) -> float:
    """The wait before retry number `attempt` (1 = the first retry): `first_s` doubling with each
    failed attempt, capped at `max_s`, i.e. min(max_s, first_s * 2 ** (attempt - 1)); 0 before
    any failure (attempt <= 0). A caller that many clients share adds its own jitter."""
    if attempt <= 0:
        return 0.0
    return min(max_s, first_s * 2.0 ** min(attempt - 1, 64))  # 2 ** 64 s is past any cap


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep `seconds`, or less when `stop` is set meanwhile; True when it ended because of `stop`
    (also when `stop` was set already)."""
    if stop.is_set():
        return True
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
