"""Beat timing from notifications: no drift, no overlap, duplicates and losses detected."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

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


@pytest.mark.slow
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


def stepped(notes, at_s: float, step_s: float):
    """(wall arrival, payload, monotonic arrival): the wall clock set by `step_s` once `at_s` s
    have passed, as NTP steps a Raspberry Pi's clock (it has no real-time clock); the monotonic
    clock (a different origin, as time.monotonic has) never steps."""
    t0 = notes[0][0]
    return [(a + (step_s if a - t0 >= at_s else 0.0), p, a - t0 + 5.0) for a, p in notes]


def run_stepped(timer, notes):
    events = []
    for wall, payload, mono in notes:
        events += timer.notification(wall, parse(payload), mono)
    return events


def jittery_strap(seconds: float, seed: int = 0):
    """The reproduction of issue 16: RR = int(717 + gauss(0, 2)), so a notification often repeats
    the previous one's value."""
    rng = random.Random(seed)
    raw = [int(717 + rng.gauss(0, 2)) for _ in range(int(seconds * 1024 / 717))]
    return raw, strap(raw, start=1_767_254_400.0)


@pytest.mark.parametrize("step_s", [-3600.0, 3600.0, -2.0])
def test_a_step_of_the_wall_clock_re_anchors_the_beats_with_a_gap_and_drops_none(step_s):
    raw, notes = jittery_strap(600)
    timer = BeatTimer("p", "d")
    events = run_stepped(timer, stepped(notes, 400.0, step_s))
    beats = [e for e in events if isinstance(e, Beat)]
    # nothing dropped: every interval the strap sent is a beat, once, in order
    assert [round(b.rr_ms * 1.024) for b in beats] == raw and timer.counts.duplicates == 0
    assert timer.counts.clock_steps == 1 and timer.last_step_s == pytest.approx(step_s)
    # one gap, at the step: beats before it on the old clock, after it on the new one
    gaps = [k for k, e in enumerate(events) if isinstance(e, Gap)]
    assert len(gaps) == 1 and timer.counts.gaps == 1
    gap, before, after = events[gaps[0]], events[gaps[0] - 1], events[gaps[0] + 1]
    assert "clock stepped" in gap.reason and gap.start == gap.end
    assert gap.end == pytest.approx(before.t + step_s) and after.t == pytest.approx(
        gap.end + after.rr_ms / 1000
    )
    # the last beat is near the (stepped) wall clock, as before the step
    assert abs(beats[-1].t - (notes[-1][0] + step_s - 0.3)) < 0.35
    for side in (beats[: gaps[0]], beats[gaps[0] :]):
        assert all(y.t > x.t for x, y in itertools.pairwise(side))


def test_a_step_back_during_a_gap_moves_the_gap_onto_the_new_clock():
    timer = BeatTimer("p", "d")
    events = timer.notification(1000.0, parse(notify([1024])), 10.0)
    events += timer.notification(1001.0, parse(notify([1024], contact=False)), 11.0)
    events += timer.notification(10.0, parse(notify([1024])), 20.0)  # the clock went back 1000 s
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Beat", "Gap", "Beat"] and timer.counts.clock_steps == 1
    gap = events[1]
    assert gap.start == pytest.approx(events[0].t - 1000.0) and gap.start < gap.end < events[2].t
    assert events[2].t == pytest.approx(10.0 - 0.3)


def test_without_a_monotonic_clock_the_wall_clock_is_taken_not_to_step():
    timer = BeatTimer("p", "d")
    timer.notification(1000.0, parse(notify([1024])))
    timer.notification(5000.0, parse(notify([1024])))  # a long silence, not a step
    assert timer.counts.clock_steps == 0 and timer.counts.gaps == 1


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


@pytest.mark.parametrize("step_s", [-3600.0, 3600.0])
def test_heart_rates_without_rr_follow_a_step_of_the_wall_clock_with_a_gap_at_the_step(step_s):
    notes = [(1000.0 + k, hr_only(72), 5.0 + k) for k in range(60)]
    # the wall clock set at 30 s, and again at 2 s (while the timer is still undecided: held back)
    for at in (30, 2):
        timer = BeatTimer("ann", "band")
        events = run_stepped(timer, [(a + (step_s if a - 1000.0 >= at else 0.0), p, m) for a, p, m in notes])
        rates = [e for e in events if isinstance(e, HeartRate)]
        gaps = [k for k, e in enumerate(events) if isinstance(e, Gap)]
        assert len(rates) == 60 and timer.counts.clock_steps == 1 and timer.sends_rr is False
        if at == 2:  # held back on the old clock, moved with it: all on the new clock, no gap needed
            assert [r.t for r in rates] == pytest.approx(
                [1000.0 + k + step_s - timer.latency_s for k in range(60)]
            )
            assert gaps == []
            continue
        # every heart rate on the clock of its arrival, none lost
        assert [r.t for r in rates] == pytest.approx(
            [1000.0 + k + (step_s if k >= at else 0.0) - timer.latency_s for k in range(60)]
        )
        # a gap at the step, at the last heart rate sent, on the new clock
        assert len(gaps) == 1 and timer.counts.gaps == 1
        gap = events[gaps[0]]
        assert "clock stepped" in gap.reason and gap.start == gap.end
        assert gap.end == pytest.approx(events[gaps[0] - 1].t + step_s) and gap.end < events[gaps[0] + 1].t


def test_after_rr_intervals_come_again_a_step_is_marked_at_the_beats_not_at_old_heart_rates():
    timer = BeatTimer("ann", "band")
    for k in range(10):
        timer.notification(1000.0 + k, parse(hr_only(72)), 5.0 + k)
    timer.notification(1010.0, parse(notify([1024])), 15.0)
    gap, beat = timer.notification(1011.0 + 100.0, parse(notify([1024])), 16.0)  # a step forward of 100 s
    assert isinstance(beat, Beat) and beat.t > gap.end
    assert gap.end == pytest.approx(1010.0 - timer.latency_s + 100.0) and "clock stepped" in gap.reason
