"""Beat timing from notifications: no drift, no overlap, duplicates and losses detected."""

from __future__ import annotations

import numpy as np

from collector.beat_timing import BeatTimer
from collector.events import Beat, Gap
from collector.heart_rate import parse


def notify(rr_raw: list[int], contact: bool | None = True) -> bytes:
    flags = 0x10 | (0x06 if contact else 0x04 if contact is False else 0)
    body = b"".join(r.to_bytes(2, "little") for r in rr_raw)
    return bytes([flags, 70]) + body


def strap(beats_raw: list[int], start: float = 1000.0, clock_ppm: float = 0.0, latency: float = 0.25):
    """(arrival, payload) pairs as a strap would send: about once a second, each with the RR
    intervals that ended since the previous notification, arriving `latency` s after the
    newest beat; the host clock runs `clock_ppm` faster than the strap's."""
    out, pending, t, next_send = [], [], start, start + 1.0
    for r in beats_raw:
        t += r / 1024.0
        pending.append(r)
        if t >= next_send:
            out.append((start + (t - start) * (1 + clock_ppm * 1e-6) + latency, notify(pending)))
            pending, next_send = [], t + 1.0
    return out


def run(timer, notes):
    events = []
    for arrival, payload in notes:
        events += timer.notification(arrival, parse(payload))
    return events


def test_a_day_of_beats_neither_drifts_nor_overlaps():
    rng = np.random.default_rng(0)
    raw = [int(x) for x in rng.normal(820, 40, 100_000)]  # ~23 h
    notes = strap(raw, clock_ppm=50)  # the host clock gains 4 s a day on the strap
    timer = BeatTimer("p", "d")
    events = run(timer, notes)
    beats = [e for e in events if isinstance(e, Beat)]
    assert len(beats) == len(raw) and not any(isinstance(e, Gap) for e in events)
    times = np.array([b.t for b in beats])
    assert np.all(np.diff(times) > 0)
    # spacing is the strap's RR (within the drift nudges), and the last beat is near the host clock
    assert np.median(np.abs(np.diff(times) * 1024 - np.array(raw[1:]))) < 1.0
    assert abs(times[-1] - (notes[-1][0] - 0.3)) < 0.35


def test_repeated_intervals_are_dropped_and_counted():
    notes = strap([800] * 10 + [900, 910] + [800] * 10)
    arrival, payload = notes[5]
    notes.insert(6, (arrival + 0.2, payload))  # the strap sends the same intervals again
    timer = BeatTimer("p", "d")
    beats = [e for e in run(timer, notes) if isinstance(e, Beat)]
    assert len(beats) == 22 and timer.counts.duplicates == len(parse(payload).rr_raw)


def test_a_lost_notification_is_a_gap_and_its_beats_are_counted_missing():
    notes = strap([820] * 60)
    lost = [parse(p).rr_raw for _, p in notes[20:23]]
    del notes[20:23]
    n_lost = sum(map(len, lost))
    timer = BeatTimer("p", "d")
    events = run(timer, notes)
    gaps = [e for e in events if isinstance(e, Gap)]
    assert len(gaps) == 1
    assert abs((gaps[0].end - gaps[0].start) - n_lost * 820 / 1024) < 0.4
    assert timer.counts.missing == n_lost
    beats = [e.t for e in events if isinstance(e, Beat)]
    assert beats == sorted(beats)


def test_no_skin_contact_is_a_gap_until_contact_returns():
    timer = BeatTimer("p", "d")
    events = []
    events += timer.notification(10.0, parse(notify([1024])))
    events += timer.notification(11.0, parse(notify([1024], contact=False)))
    events += timer.notification(12.0, parse(notify([1024], contact=False)))
    events += timer.notification(20.0, parse(notify([1024])))
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Beat", "Gap", "Beat"]
    assert events[1].start == events[0].t and events[1].end < events[2].t
    assert timer.counts.no_contact == 2
