"""Beat timing from notifications: no drift, no overlap, duplicates and losses detected."""

from __future__ import annotations

import numpy as np

from collector.beat_timing import HR_ONLY_AFTER_S, BeatTimer
from collector.events import Beat, Gap, HeartRate
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


# -- straps that send heart rate without RR intervals ---------------------------------------------


def hr_only(bpm: int = 72) -> bytes:
    """What many bands and cheap straps notify: contact detected, heart rate, no RR flag."""
    return bytes([0x06, bpm])


def every_second(beats_raw: list[int], start: float = 1000.0, latency: float = 0.25):
    """A strap notifying exactly once a second with the intervals that ended in that second:
    a slow heart leaves some notifications without any (heart rate alone)."""
    out, pending, t, tick = [], [], start, start + 1.0
    for r in beats_raw:
        t += r / 1024.0
        while t > tick:
            out.append((tick + latency, notify(pending) if pending else hr_only(round(61440 / r))))
            pending, tick = [], tick + 1.0
        pending.append(r)
    return out


def test_heart_rate_without_rr_once_a_second_becomes_heart_rates_and_the_strap_is_found_to_send_no_rr():
    timer = BeatTimer("ann", "band")
    events = run(timer, [(1000.0 + k, hr_only(72)) for k in range(30)])
    assert events and all(isinstance(e, HeartRate) for e in events)
    # every notification's heart rate, those held back while undecided too, at its arrival - latency
    assert [(e.t, e.hr_bpm) for e in events] == [(1000.0 + k - timer.latency_s, 72.0) for k in range(30)]
    assert events[0].person == "ann" and events[0].device == "band" and events[0].contact is True
    assert timer.sends_rr is False and timer.counts.hr_only == 30 and timer.counts.beats == 0


def test_the_strap_is_found_to_send_no_rr_after_hr_only_after_s_not_at_its_first_notification():
    timer = BeatTimer("ann", "band")
    undecided = [timer.notification(1000.0 + k, parse(hr_only())) for k in range(int(HR_ONLY_AFTER_S))]
    assert undecided == [[]] * int(HR_ONLY_AFTER_S) and timer.sends_rr is None
    assert len(timer.notification(1000.0 + HR_ONLY_AFTER_S, parse(hr_only()))) == int(HR_ONLY_AFTER_S) + 1


def test_a_slow_heart_whose_beats_end_between_notifications_is_no_heart_rate_only_strap():
    raw = [2970, 1500, 2970, 2000, 2970] * 20  # down to 20.7 bpm, the slowest the parser accepts
    notes = every_second(raw)
    assert sum(p == hr_only(round(61440 / 2970)) for _, p in notes) > 50  # many notifications without RR
    timer = BeatTimer("ann", "h10")
    events = run(timer, notes)
    assert not any(isinstance(e, HeartRate | Gap) for e in events)
    assert [round(e.rr_ms * 1.024) for e in events] == raw[: len(events)] and len(events) >= len(raw) - 1
    assert timer.sends_rr is True


def test_rr_intervals_that_stop_and_come_back_leave_heart_rates_between_and_a_gap_not_missing_beats():
    notes = strap([820] * 40)
    stop = notes[-1][0]
    notes += [(stop + 1.0 + k, hr_only(75)) for k in range(20)]
    notes += strap([820] * 40, start=stop + 20.5)
    timer = BeatTimer("ann", "band")
    events, said = [], []
    for arrival, payload in notes:
        events += timer.notification(arrival, parse(payload))
        said.append(timer.sends_rr)
    kinds = [type(e).__name__ for e in events]
    first_hr, last_hr = kinds.index("HeartRate"), len(kinds) - 1 - kinds[::-1].index("HeartRate")
    assert set(kinds[:first_hr]) == {"Beat"} and set(kinds[first_hr : last_hr + 1]) == {"HeartRate"}
    assert kinds[last_hr + 1] == "Gap" and set(kinds[last_hr + 2 :]) == {"Beat"}
    assert kinds.count("HeartRate") == 20 and kinds.count("Beat") == 80
    assert timer.counts.missing == 0  # the beats stopped because the strap stopped sending them
    assert True in said and False in said and said[-1] is True


def test_a_strap_off_the_skin_sending_heart_rate_0_is_no_heart_rate():
    timer = BeatTimer("ann", "band")
    assert run(timer, [(1000.0 + k, bytes([0x00, 0])) for k in range(30)]) == []  # no contact detection
    assert run(timer, [(1030.0 + k, bytes([0x04, 0])) for k in range(30)]) == []  # contact not detected
    assert timer.sends_rr is None
