"""Activity from the accelerometer: a real still recording, synthetic walking and running, and what a
reading's window says."""

from __future__ import annotations

import math

import numpy as np
import pytest

from collector.events import Acceleration, Motion, MotionKind
from collector.files import read_polar_acc
from processing import motion
from processing.motion import AccelerometerClassifier, MotionTrack
from processing.reading import MotionState

STILL_FILE = "motion/polar_sense_rest/Polar_Sense_ACC.txt"


def classify(acc_events) -> list[Motion]:
    c = AccelerometerClassifier("ann", "strap")
    return [m for a in acc_events for m in c.feed(a)]


def test_the_still_recording_is_classed_still_at_least_95_percent_of_the_time(reference):
    windows = classify(read_polar_acc(reference / STILL_FILE))
    still = sum(m.span_s for m in windows if m.kind == MotionKind.STILL)
    total = sum(m.span_s for m in windows)
    print(
        f"\nPolar Verity Sense at rest: {len(windows)} windows over {total:.0f} s, still {still / total:.1%}, "
        f"MAD median {np.median([m.intensity_mg for m in windows]):.1f} mg, "
        f"max {max(m.intensity_mg for m in windows):.1f} mg"
    )
    assert total > 500 and still / total >= 0.95


def test_the_still_recording_at_the_h10s_25_hz_is_still_too(reference):
    """Every other sample of the ~51.7 Hz export: the rate a strap streams at here."""
    events = list(read_polar_acc(reference / STILL_FILE))
    t = np.concatenate([e.t for e in events])[::2]
    xyz = [np.concatenate([getattr(e, k) for e in events])[::2] for k in "xyz"]
    windows = classify([Acceleration("ann", "strap", tuple(t), *(tuple(v) for v in xyz))])
    assert sum(m.kind == MotionKind.STILL for m in windows) / len(windows) >= 0.95


# Synthetic gait: gravity plus a vertical sinusoid at the step frequency, plus noise. Amplitudes
# from the MAD literature (processing/motion.py): walking, 3-5 METs, lies between the 91 mg (3 MET)
# and 414 mg (6 MET) cut-points: amplitude 315 mg gives MAD 2A/pi ~ 200 mg. Running lies above
# 414 mg (up to 1609 mg measured, Aittasalo et al. 2015): 1000 mg, the trunk near weightless in
# flight and ~2 g at landing, gives MAD ~ 640 mg.
def gait(
    step_hz: float,
    amplitude_mg: float,
    noise_mg: float,
    seconds: float = 60.0,
    rate_hz: float = 25.0,
    stride_share: float = 0.0,
    seed: int = 1,
) -> Acceleration:
    rng = np.random.default_rng(seed)
    t = 1_700_000_000.0 + np.arange(0.0, seconds, 1.0 / rate_hz)
    phase = 2 * math.pi * step_hz * (t - t[0])
    vertical = 1000.0 + amplitude_mg * (np.sin(phase) + stride_share * np.sin(phase / 2))
    x, z = rng.normal(0, noise_mg, (2, len(t)))
    y = vertical + rng.normal(0, noise_mg, len(t))
    return Acceleration("ann", "strap", tuple(t), tuple(x), tuple(y), tuple(z))


@pytest.mark.parametrize(
    "steps_per_min, amplitude, noise, stride_share, kind",
    [
        (108, 315.0, 50.0, 0.0, MotionKind.WALKING),
        (96, 315.0, 80.0, 0.3, MotionKind.WALKING),  # a limp: every other step differs
        (168, 1000.0, 150.0, 0.0, MotionKind.RUNNING),
        (180, 1000.0, 150.0, 0.3, MotionKind.RUNNING),  # the stride peak lies in the search band here
    ],
)
def test_synthetic_walking_and_running_are_classed_with_their_cadence(
    steps_per_min, amplitude, noise, stride_share, kind
):
    windows = classify([gait(steps_per_min / 60.0, amplitude, noise, stride_share=stride_share)])
    assert len(windows) >= 5
    for m in windows:
        assert m.kind == kind and m.cadence_spm == pytest.approx(steps_per_min, abs=3)
        assert m.span_s == pytest.approx(10.0, abs=0.1)


def test_noise_without_steps_is_moving_only_above_the_moderate_cut_point():
    rng = np.random.default_rng(3)
    t = 1000.0 + np.arange(0, 30, 0.04)
    for sd, want in ((60.0, MotionState.UNKNOWN), (200.0, MotionState.MOVING)):
        y = 1000.0 + rng.normal(0, sd, len(t))
        [m, *_] = classify([Acceleration("ann", "s", tuple(t), tuple(0 * t), tuple(y), tuple(0 * t))])
        assert m.kind == MotionKind.UNKNOWN and m.cadence_spm is None and motion.says(m) == want


def test_a_break_in_the_samples_starts_a_new_window():
    a = gait(1.8, 315.0, 50.0, seconds=8.0)
    later = Acceleration("ann", "strap", tuple(x + 20.0 for x in a.t), a.x, a.y, a.z)  # 12 s later
    assert classify([a, later]) == []  # neither 8 s run fills a window
    c = AccelerometerClassifier("ann", "strap")
    c.feed(a)
    c.gap()
    assert c.feed(Acceleration("ann", "strap", tuple(x + 8.0 for x in a.t), a.x, a.y, a.z)) == []


def span(kind, end, length=10.0, intensity=None):
    return Motion("ann", "strap", end, kind, length, intensity)


def test_a_window_a_quarter_filled_by_walking_is_moving():
    track = MotionTrack("ann")
    for end in range(10, 50, 10):
        track.feed(span(MotionKind.STILL, end))
    track.feed(span(MotionKind.WALKING, 60, 15.0))
    assert track.over(0, 60) == MotionState.MOVING
    assert track.over(0, 40) == MotionState.STILL
    assert track.over(0, 100) == MotionState.UNKNOWN  # 40 s still of 100: not known
    assert track.over(100, 160) == MotionState.UNKNOWN  # nothing there


def test_light_fidgeting_and_a_car_are_neither_still_nor_moving():
    track = MotionTrack("ann")
    for end in range(10, 70, 10):
        track.feed(span(MotionKind.UNKNOWN, end, intensity=40.0))
    assert track.over(0, 60) == MotionState.UNKNOWN
    assert motion.says(span(MotionKind.IN_VEHICLE, 10)) == MotionState.UNKNOWN
    assert motion.says(span(MotionKind.CYCLING, 10)) == MotionState.MOVING


def test_two_devices_overlapping_are_counted_once_and_moving_wins():
    track = MotionTrack("ann")
    for end in range(10, 70, 10):
        track.feed(span(MotionKind.STILL, end))
        track.feed(Motion("ann", "pod", end, MotionKind.STILL, 10.0, source="rsc"))
    assert track.over(0, 60) == MotionState.STILL
    track.feed(Motion("ann", "pod", 60, MotionKind.WALKING, 20.0, source="rsc"))
    assert track.over(0, 60) == MotionState.MOVING


def test_old_spans_are_forgotten_after_keep_s():
    track = MotionTrack("ann", keep_s=60.0)
    for end in range(10, 1000, 10):
        track.feed(span(MotionKind.STILL, end))
    assert track.over(0, 60) == MotionState.UNKNOWN  # long gone
    assert track.over(930, 990) == MotionState.STILL


def test_a_report_held_past_its_time_lasts_until_the_device_s_next_report():
    """The phone reports once a minute: each report holds for a minute after it, and the next
    report from the same device ends the hold at once."""
    track = MotionTrack("ann", keep_s=60.0)
    track.feed(Motion("ann", "phone", 100.0, MotionKind.WALKING, 90.0, source="phone", hold_s=60.0))
    assert track.over(110.0, 160.0) == MotionState.MOVING  # after the report, before the next
    track.feed(Motion("ann", "phone", 130.0, MotionKind.STILL, 90.0, source="phone", hold_s=60.0))
    assert track.over(131.0, 190.0) == MotionState.STILL  # the walking hold ended at 130
    assert track.over(195.0, 250.0) == MotionState.UNKNOWN  # no report since: nothing known


def test_a_track_restored_from_its_snapshot_says_and_does_what_the_original_does():
    """Mid-window of a strap's samples, with a phone's report held: the snapshot (through JSON, as
    a Kafka worker keeps it) restores spans, the latest report and the unfinished window."""
    import json

    walk = gait(1.8, 315.0, 20.0, seconds=25.0)  # two windows and half of a third
    half = len(walk.t) // 2
    first, rest = (
        Acceleration("ann", "strap", *(v[s] for v in (walk.t, walk.x, walk.y, walk.z)))
        for s in (slice(0, half), slice(half, None))
    )
    track = MotionTrack("ann", keep_s=60.0)
    track.feed(Motion("ann", "phone", walk.t[0], MotionKind.STILL, 90.0, source="phone", hold_s=60.0))
    track.feed(first)
    restored = MotionTrack.restored(json.loads(json.dumps(track.snapshot())), "ann", keep_s=60.0)
    assert restored.snapshot() == track.snapshot() and restored.latest == track.latest
    assert restored.feed(rest) == track.feed(rest) != []  # the window begun before the snapshot ends alike
    assert [restored.over(walk.t[0] + k, walk.t[0] + k + 20) for k in range(0, 40, 5)] == [
        track.over(walk.t[0] + k, walk.t[0] + k + 20) for k in range(0, 40, 5)
    ]
